from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, RunTag

from modelyard.backends.registry import by_alias, reference_profile
from modelyard.backends.tracking import child_run
from modelyard.contract import EVALUATION, SPLITS, EvaluateOutputs, EvaluateParams, StepName
from modelyard.contract.config import PipelineConfig, task_of
from modelyard.contract.records import (
    CHAMPION,
    EVALUATION_FILE,
    GAP_METRIC,
    PROMOTE,
    REJECT,
    ChampionScore,
    Evaluation,
    Gate,
    Tags,
    part_metric,
    read_split_roles,
    read_splits,
    write_record,
)
from modelyard.contract.tasks import MetricSpec, Task, scale, task_metrics, worse_by
from modelyard.ml import model
from modelyard.ml.columns import roles_of_profile

log = logging.getLogger(__name__)


def evaluate(params: EvaluateParams, work_dir: Path) -> EvaluateOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    task = task_of(config)
    (test,) = read_splits(work_dir / SPLITS, "test")
    roles = read_split_roles(work_dir / SPLITS)
    features, labels = model.features_and_label(test, config.label, task, roles=roles)
    challenger = model.load_candidate(params.candidate_run_id)
    name, overfit, gap = winner_fit(params.candidate_run_id)
    scores = model.score(task, challenger, features, labels)
    champion = score_champion(config.model_name, task, test, config.label)
    gates = absolute_gates(scores, config) + overfit_gates(overfit, gap, config)
    gates += champion_gates(scores, champion, config)
    failed = [g.detail for g in gates if not g.passed]
    decision = REJECT if failed else PROMOTE
    result = Evaluation(
        candidate_run_id=params.candidate_run_id,
        candidate=name,
        overfit=overfit,
        gap=gap,
        metrics=scores,
        champion=champion,
        gates=gates,
        decision=decision,
        reasons=failed or ["all gates passed"],
    )
    out = work_dir / EVALUATION
    write_record(out / EVALUATION_FILE, result)
    PLOTS[task](challenger, features, labels, out)
    test_metrics = {part_metric("test", k): v for k, v in scores.items() if not math.isnan(v)}
    with child_run(params.run_id, StepName.EVALUATE, {Tags.DECISION: decision}):
        mlflow.log_metrics(test_metrics)
        mlflow.log_artifacts(str(out), EVALUATION)
    record_on_parent(params.run_id, result, test_metrics)
    return EvaluateOutputs(decision=decision)


def winner_fit(candidate_run_id: str) -> tuple[str, bool, float | None]:
    """The selected candidate's name, overfitting flag and train-validation gap, as train logged them."""
    run = mlflow.MlflowClient().get_run(candidate_run_id)
    gap = run.data.metrics.get(GAP_METRIC)
    return run.data.tags.get(Tags.CANDIDATE, ""), run.data.tags.get(Tags.OVERFIT) == "true", gap


def overfit_gates(overfit: bool, gap: float | None, config: PipelineConfig) -> list[Gate]:
    """The optional gate `reject_overfit`: the winner's gap must not exceed `overfit_gap`."""
    if not config.thresholds.reject_overfit:
        return []
    limit = config.thresholds.overfit_gap
    shown = "unknown" if gap is None else f"{gap:+.4f}"
    detail = f"train-validation gap {shown} {'>' if overfit else '<='} overfit_gap {limit}"
    return [Gate(name="reject_overfit", passed=not overfit, detail=detail)]


def record_on_parent(run_id: str, result: Evaluation, test_metrics: dict[str, float]) -> None:
    """The parent run shows the outcome: test metrics, the decision, the winner and its overfitting."""
    client = mlflow.MlflowClient()
    metrics = test_metrics | ({GAP_METRIC: result.gap} if result.gap is not None else {})
    tags = {
        Tags.DECISION: result.decision,
        Tags.REASONS: "; ".join(result.reasons),
        Tags.OVERFIT: str(result.overfit).lower(),
    }
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


def score_champion(name: str, task: Task, test: pd.DataFrame, label: str) -> ChampionScore | None:
    """The champion's test scores, on the columns it was trained with (its profile's), whatever
    columns this run chose."""
    client = mlflow.MlflowClient()
    version = by_alias(client, name, CHAMPION)
    if version is None:
        return None
    reference = reference_profile(client, name)
    roles = roles_of_profile(reference) if reference else None
    try:  # by version: the alias may move while this step runs
        features, labels = model.features_and_label(test, label, task, roles=roles)
        champion = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        return ChampionScore(
            version=str(version.version), metrics=model.score(task, champion, features, labels)
        )
    except (ValueError, KeyError, TypeError) as exc:  # e.g. the columns changed since it was trained
        return ChampionScore(version=str(version.version), metrics=None, error=f"{type(exc).__name__}: {exc}")


def absolute_gates(scores: dict[str, float], config: PipelineConfig) -> list[Gate]:
    """One gate per metric of the task that has a threshold (`min_accuracy`, `max_rmse`, ...)."""
    gates = []
    for spec in task_metrics(task_of(config)):
        limit = getattr(config.thresholds, spec.gate)
        if limit is None:
            continue
        value = scores[spec.name]
        passed = value >= limit if spec.higher_is_better else value <= limit
        relation = (">=" if passed else "<") if spec.higher_is_better else ("<=" if passed else ">")
        gates.append(
            Gate(name=spec.gate, passed=passed, detail=f"test {spec.name} {value:.4f} {relation} {limit}")
        )
    return gates


def champion_gates(
    scores: dict[str, float], champion: ChampionScore | None, config: PipelineConfig
) -> list[Gate]:
    if champion is None:
        return [Gate(name="vs_champion", passed=True, detail="no champion yet")]
    if champion.metrics is None:
        detail = f"champion v{champion.version} cannot score the test set ({champion.error})"
        return [Gate(name="vs_champion", passed=False, detail=detail)]
    tolerance = config.thresholds.champion_tolerance
    return [
        _versus(
            spec, scores[spec.name], champion.metrics.get(spec.name, math.nan), champion.version, tolerance
        )
        for spec in task_metrics(task_of(config))
    ]


def _versus(spec: MetricSpec, mine: float, theirs: float, version: str, tolerance: float) -> Gate:
    passed = math.isnan(theirs) or worse_by(spec, theirs, mine) <= tolerance
    allowed = f"{tolerance:.1%} of {scale(spec, theirs, mine):.4g}" if spec.relative else f"{tolerance}"
    relation = "within" if passed else "worse than"
    detail = (
        f"test {spec.name} {mine:.4f} vs champion v{version} {theirs:.4f}: {relation} tolerance {allowed}"
    )
    return Gate(name=f"vs_champion_{spec.name}", passed=passed, detail=detail)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_classifier(pipeline: Any, features: pd.DataFrame, labels: pd.Series, out: Path) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    plt = _pyplot()
    ConfusionMatrixDisplay.from_estimator(pipeline, features, labels, xticks_rotation=45)
    plt.tight_layout()
    plt.savefig(out / "confusion_matrix.png", dpi=80)
    plt.close("all")
    if labels.nunique() < 2:
        return
    proba = pipeline.predict_proba(features)
    _, axes = plt.subplots()
    for index, cls in enumerate(pipeline.classes_):
        RocCurveDisplay.from_predictions(labels == cls, proba[:, index], name=str(cls), ax=axes)
    axes.set_title("ROC, one vs rest")
    plt.savefig(out / "roc.png", dpi=80)
    plt.close("all")


def plot_regressor(pipeline: Any, features: pd.DataFrame, labels: pd.Series, out: Path) -> None:
    from sklearn.metrics import PredictionErrorDisplay

    plt = _pyplot()
    predicted = pipeline.predict(features)
    for kind, name in (
        ("actual_vs_predicted", "predicted_vs_actual"),
        ("residual_vs_predicted", "residuals"),
    ):
        PredictionErrorDisplay.from_predictions(labels, predicted, kind=kind)
        plt.tight_layout()
        plt.savefig(out / f"{name}.png", dpi=80)
        plt.close("all")


PLOTS: dict[Task, Any] = {"classification": plot_classifier, "regression": plot_regressor}
