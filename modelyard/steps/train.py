from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import mlflow
from sklearn.pipeline import Pipeline

from modelyard.backends.tracking import child_run
from modelyard.contract import SPLITS, TrainOutputs, TrainParams
from modelyard.contract.config import PipelineConfig, primary_of, task_of
from modelyard.contract.records import (
    GAP_METRIC,
    Candidate,
    CandidateResult,
    Tags,
    dump,
    load,
    part_metric,
    read_split_roles,
    read_splits,
)
from modelyard.contract.tasks import overfit_gap
from modelyard.ml import model

# The longest a running candidate stays silent on stderr: a fit on millions of rows takes minutes.
HEARTBEAT_SECONDS: Final = 30.0
# Resamples of the validation rows that estimate the validation score's standard error (select's
# noise band): 50 give it to within about 10%, in well under a second on 10,000 rows.
SELECTION_BOOTSTRAP_ROUNDS: Final = 50


def train(params: TrainParams, work_dir: Path) -> TrainOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    candidate = load(Candidate, params.candidate, "--candidate")
    progress = model.Progress(phase="reading the splits")
    with heartbeat(candidate.name, progress, HEARTBEAT_SECONDS):
        metric = primary_of(config)
        fitted = fit_and_score(config, candidate, work_dir, progress)
        train_scores, validation_scores = fitted.train_scores, fitted.validation_scores
        gap = overfit_gap(metric, train_scores, validation_scores)
        overfit = gap > config.thresholds.overfit_gap
        tags = {Tags.CANDIDATE: candidate.name, Tags.OVERFIT: str(overfit).lower()}
        if fitted.cut:
            tags[Tags.CUT] = f"{fitted.cut.grown} of {fitted.cut.wanted}"
        progress.phase = "logging the model"
        with child_run(params.run_id, candidate.name, tags) as run:
            mlflow.log_params({"estimator": candidate.estimator} | candidate.params)
            mlflow.log_metrics(
                {part_metric("train", k): v for k, v in train_scores.items()}
                | {part_metric("validation", k): v for k, v in validation_scores.items()}
                | {GAP_METRIC: gap}
            )
            model.log_candidate(fitted.pipeline)
    result = CandidateResult(
        name=candidate.name,
        run_id=run.info.run_id,
        score=validation_scores[metric.name],
        noise=fitted.validation_errors[metric.name],
        gap=gap,
        overfit=overfit,
    )
    return TrainOutputs(result=dump(result))


@dataclass(frozen=True)
class Fitted:
    pipeline: Pipeline
    cut: model.Cut | None
    train_scores: dict[str, float]
    validation_scores: dict[str, float]
    validation_errors: dict[str, float]  # each validation score's standard error (bootstrapped)


def fit_and_score(
    config: PipelineConfig, candidate: Candidate, work_dir: Path, progress: model.Progress
) -> Fitted:
    """The candidate fitted on the train split within its time budget, scored on train and validation."""
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
    validation_features, validation_labels = model.features_and_label(
        validation_frame, config.label, task, roles=roles
    )
    truth = validation_labels.to_numpy()
    predicted = model.predictions(task, pipeline, validation_features)
    validation_scores = model.metrics(task, truth, *predicted)
    errors = model.standard_errors(task, truth, *predicted, rounds=SELECTION_BOOTSTRAP_ROUNDS)
    return Fitted(pipeline, cut, train_scores, validation_scores, errors)


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
