from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import mlflow
from sklearn.pipeline import Pipeline

from modelyard import model
from modelyard.config import PipelineConfig, primary_of, task_of
from modelyard.contract import SPLITS, TrainOutputs, TrainParams
from modelyard.contract.records import (
    GAP_METRIC,
    Candidate,
    CandidateResult,
    Tags,
    dump,
    load,
    read_split_roles,
    read_splits,
)
from modelyard.tasks import overfit_gap
from modelyard.tracking import child_run

# The longest a running candidate stays silent on stderr: a fit on millions of rows takes minutes.
HEARTBEAT_SECONDS: Final = 30.0


def train(params: TrainParams, work_dir: Path) -> TrainOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    candidate = load(Candidate, params.candidate, "--candidate")
    progress = model.Progress(phase="reading the splits")
    with heartbeat(candidate.name, progress, HEARTBEAT_SECONDS):
        pipeline, cut, train_scores, validation_scores = fit_and_score(config, candidate, work_dir, progress)
        metric = primary_of(config)
        gap = overfit_gap(metric, train_scores, validation_scores)
        overfit = gap > config.thresholds.overfit_gap
        tags = {Tags.CANDIDATE: candidate.name, Tags.OVERFIT: str(overfit).lower()}
        if cut:
            tags[Tags.CUT] = f"{cut.grown} of {cut.wanted}"
        progress.phase = "logging the model"
        with child_run(params.run_id, candidate.name, tags) as run:
            mlflow.log_params({"estimator": candidate.estimator} | candidate.params)
            mlflow.log_metrics(
                {f"train_{k}": v for k, v in train_scores.items()}
                | {f"val_{k}": v for k, v in validation_scores.items()}
                | {GAP_METRIC: gap}
            )
            model.log_candidate(pipeline)
    result = CandidateResult(
        name=candidate.name,
        run_id=run.info.run_id,
        score=validation_scores[metric.name],
        gap=gap,
        overfit=overfit,
    )
    return TrainOutputs(result=dump(result))


def fit_and_score(
    config: PipelineConfig, candidate: Candidate, work_dir: Path, progress: model.Progress
) -> tuple[Pipeline, model.Cut | None, dict[str, float], dict[str, float]]:
    """The candidate fitted on the train split within its time budget; its train and validation scores."""
    task = task_of(config)
    train_frame, validation_frame = read_splits(work_dir / SPLITS, "train", "validation")
    roles = read_split_roles(work_dir / SPLITS)
    features, labels = model.features_and_label(train_frame, config.label, task, roles=roles)
    dates = roles.datetime if roles else ()
    pipeline = model.build_pipeline(candidate, task, features, config.seed, datetime_columns=dates)
    cut = model.fit_within(pipeline, features, labels, config.candidate_time_budget, progress)
    if cut:
        print(
            f"train: {candidate.name} cut at {cut.grown} of {cut.wanted} trees after {cut.seconds:.1f} s "
            f"(candidate_time_budget {config.candidate_time_budget:g} s)",
            file=sys.stderr,
        )
    progress.phase = "scoring"
    train_scores = model.score(task, pipeline, features, labels)
    validation = model.features_and_label(validation_frame, config.label, task, roles=roles)
    return pipeline, cut, train_scores, model.score(task, pipeline, *validation)


@contextmanager
def heartbeat(name: str, progress: model.Progress, every: float) -> Iterator[None]:
    """Say on stderr how far the candidate has come, every `every` seconds until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            print(f"train: {name} {progress}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
