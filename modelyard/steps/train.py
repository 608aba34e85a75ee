from __future__ import annotations

import sys
from pathlib import Path

import mlflow

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
from modelyard.tasks import worse_by
from modelyard.tracking import child_run


def train(params: TrainParams, work_dir: Path) -> TrainOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    candidate = load(Candidate, params.candidate, "--candidate")
    task = task_of(config)
    train_frame, validation_frame = read_splits(work_dir / SPLITS, "train", "validation")
    roles = read_split_roles(work_dir / SPLITS)
    features, labels = model.features_and_label(train_frame, config.label, task, roles=roles)
    dates = roles.datetime if roles else ()
    pipeline = model.build_pipeline(candidate, task, features, config.seed, datetime_columns=dates)
    cut = model.fit_within(pipeline, features, labels, config.candidate_time_budget)
    if cut:
        print(
            f"train: {candidate.name} cut at {cut.grown} of {cut.wanted} trees after "
            f"{config.candidate_time_budget:g} s (candidate_time_budget)",
            file=sys.stderr,
        )
    train_scores = model.score(task, pipeline, features, labels)
    validation = model.features_and_label(validation_frame, config.label, task, roles=roles)
    validation_scores = model.score(task, pipeline, *validation)
    metric = primary_of(config)
    # How much worse on unseen rows: a difference for scores, a share of the error for RMSE and MAE.
    gap = worse_by(metric, train_scores[metric.name], validation_scores[metric.name])
    overfit = gap > config.thresholds.overfit_gap
    tags = {Tags.CANDIDATE: candidate.name, Tags.OVERFIT: str(overfit).lower()}
    if cut:
        tags[Tags.CUT] = f"{cut.grown} of {cut.wanted}"
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
