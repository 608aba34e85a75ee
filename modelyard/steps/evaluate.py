from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from modelyard import model
from modelyard.config import PipelineConfig
from modelyard.contract import EVALUATION, EvaluateOutputs, EvaluateParams
from modelyard.registry import CHAMPION, by_alias
from modelyard.steps.split import read_splits
from modelyard.steps.train import MODEL_ARTIFACT
from modelyard.tracking import TAG, child_run

log = logging.getLogger(__name__)
PROMOTE, REJECT = "promote", "reject"
METRICS = ("accuracy", "f1_macro", "roc_auc")


def load_candidate(run_id: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return model.load(
            Path(
                mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT, dst_path=tmp)
            )
        )


def evaluate(params: EvaluateParams, work_dir: Path) -> EvaluateOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    (test,) = read_splits(work_dir, "test")
    features, labels = model.features_and_label(test, config.label)
    challenger = load_candidate(params.candidate_run_id)
    scores = model.score(challenger, features, labels)
    champion = score_champion(config.model_name, features, labels)
    gates = absolute_gates(scores, config) + champion_gates(scores, champion, config)
    failed = [g["detail"] for g in gates if not g["passed"]]
    decision = REJECT if failed else PROMOTE
    result = {
        "candidate_run_id": params.candidate_run_id,
        "metrics": scores,
        "champion": champion,
        "gates": gates,
        "decision": decision,
        "reasons": failed or ["all gates passed"],
    }
    out = work_dir / EVALUATION
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))
    plot(challenger, features, labels, out)
    with child_run(params.run_id, "evaluate", {f"{TAG}decision": decision}):
        mlflow.log_metrics({f"test_{k}": v for k, v in scores.items() if not math.isnan(v)})
        mlflow.log_artifacts(str(out), EVALUATION)
    mlflow.MlflowClient().set_tag(params.run_id, f"{TAG}decision", decision)
    return EvaluateOutputs(decision=decision)


def score_champion(name: str, features: pd.DataFrame, labels: pd.Series) -> dict[str, Any] | None:
    version = by_alias(mlflow.MlflowClient(), name, CHAMPION)
    if version is None:
        return None
    try:
        champion = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
        return {"version": version.version, "metrics": model.score(champion, features, labels)}
    except (ValueError, KeyError, TypeError) as exc:  # e.g. the columns changed since it was trained
        return {"version": version.version, "metrics": None, "error": f"{type(exc).__name__}: {exc}"}


def absolute_gates(scores: dict[str, float], config: PipelineConfig) -> list[dict[str, Any]]:
    limits = config.thresholds
    minimums = {
        "accuracy": limits.min_accuracy,
        "f1_macro": limits.min_f1_macro,
        "roc_auc": limits.min_roc_auc,
    }
    return [
        _gate(
            f"min_{m}",
            scores[m] >= low,
            f"test {m} {scores[m]:.4f} {'>=' if scores[m] >= low else '<'} {low}",
        )
        for m, low in minimums.items()
    ]


def champion_gates(
    scores: dict[str, float], champion: dict[str, Any] | None, config: PipelineConfig
) -> list[dict[str, Any]]:
    if champion is None:
        return [_gate("vs_champion", True, "no champion yet")]
    if champion["metrics"] is None:
        return [
            _gate(
                "vs_champion",
                False,
                f"champion v{champion['version']} cannot score the test set ({champion['error']})",
            )
        ]
    tolerance = config.thresholds.champion_tolerance
    gates = []
    for metric in METRICS:
        mine, theirs = scores[metric], champion["metrics"][metric]
        passed = math.isnan(theirs) or mine >= theirs - tolerance
        relation = "within" if passed else "worse than"
        detail = f"test {metric} {mine:.4f} vs champion v{champion['version']} {theirs:.4f}: {relation} tolerance {tolerance}"
        gates.append(_gate(f"vs_champion_{metric}", passed, detail))
    return gates


def _gate(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def plot(pipeline: Any, features: pd.DataFrame, labels: pd.Series, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

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
