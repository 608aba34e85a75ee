"""The table `modelyard run` ends with: metrics, gates, the registered version, aliases, where to look."""

from __future__ import annotations

from mlflow import MlflowClient

from modelyard.backends.tracking import embedded_db, experiment_url, ui_command
from modelyard.contract import EVALUATION, SPLITS, StepName
from modelyard.contract.records import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_FILE,
    SPLIT_FILE,
    Evaluation,
    SplitSummary,
    read_record,
)
from modelyard.runner.local import PipelineRun


def summarize(run: PipelineRun, model_name: str, tracking_uri: str) -> str:
    evaluation = read_record(Evaluation, run.work_dir / EVALUATION / EVALUATION_FILE)
    registered = run.outputs[StepName.REGISTER]
    # The aliases as this run's register step left them, under the model's lock: what it did, even
    # when another run moves them a moment later.
    rows = [
        ("decision", registered.decision.upper()),
        ("registered", f"{model_name} v{registered.version}"),
        (f"@{CHAMPION}", f"v{registered.champion_version}" if registered.champion_version else "-"),
        (f"@{CHALLENGER}", f"v{registered.version}"),
        ("note", registered.note),
        *_deployed(run),
        ("winner", winner(evaluation)),
    ]
    small_test = read_record(SplitSummary, run.work_dir / SPLITS / SPLIT_FILE).small_test
    if small_test:
        rows.append(("WARNING", small_test))
    champion = evaluation.champion
    for metric, value in evaluation.metrics.items():
        before = champion.metrics.get(metric) if champion and champion.metrics else None
        versus = f"  (champion v{champion.version}: {before:.4f})" if champion and before is not None else ""
        rows.append((f"test {metric}", f"{value:.4f}{versus}"))
    rows += [("gate " + g.name, ("pass  " if g.passed else "FAIL  ") + g.detail) for g in evaluation.gates]
    rows += [("time " + name, f"{seconds:.1f}s") for name, seconds in run.timings.items()]
    rows.append(("MLflow run", run.outputs[StepName.PREPARE].run_url or run.run_id))
    experiment = MlflowClient().get_run(run.run_id).info.experiment_id
    if embedded_db(tracking_uri) is not None:
        rows.append(("look at it", ui_command(tracking_uri, experiment)))
    else:
        rows.append(("MLflow runs", experiment_url(experiment)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _deployed(run: PipelineRun) -> list[tuple[str, str]]:
    """The canary's end (promotion: canary): promoted (now champion) or aborted, and why."""
    deployed = run.outputs.get(StepName.DEPLOY)
    if deployed is None:
        return []
    return [
        (
            "canary",
            f"v{deployed.version} {deployed.outcome}" + (f": {deployed.reasons}" if deployed.reasons else ""),
        )
    ]


def winner(evaluation: Evaluation) -> str:
    """The selected candidate and its train-validation gap, flagged OVERFIT when it overfits."""
    gap = f"  gap {evaluation.gap:+.4f}" if evaluation.gap is not None else ""
    return f"{evaluation.candidate or evaluation.candidate_run_id}{gap}" + (
        "  OVERFIT" if evaluation.overfit else ""
    )
