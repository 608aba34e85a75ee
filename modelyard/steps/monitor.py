from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Final

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from modelyard.backends import alerts
from modelyard.backends.registry import by_alias, reference_profile
from modelyard.backends.tracking import experiment_id, lineage_tags, metric_key
from modelyard.contract import MonitorOutputs, MonitorParams, StepName
from modelyard.contract.config import MonitorThresholds, load_config
from modelyard.contract.records import (
    CHAMPION,
    CONFIG_FILE,
    MONITORING,
    OK,
    REFERENCE_PROFILE,
    REPORT_FILE,
    REPORT_TEXT,
    VERDICTS,
    DataProfile,
    MetricDecay,
    MonitorReport,
    Tags,
    drift_metric,
    rows_metric,
    write_record,
)
from modelyard.contract.tasks import task_metrics
from modelyard.core.errors import BadInputError
from modelyard.ml import model
from modelyard.ml.columns import roles_of_profile
from modelyard.ml.datasets import load_dataset
from modelyard.quality.monitoring import check_batch, conclude, decay, decay_noise, drift, plot, render

log = logging.getLogger(__name__)
# Retraining on drifted data must not be failed by the validate checks that compare it with the
# champion's data (value ranges, unseen categories, PSI): that drift is why it runs. Schema, null and
# label checks still apply, and drift still shows as validation warnings (drift_warn is kept).
RETRAIN_THRESHOLDS: Final = {"max_out_of_range_fraction": 1.0, "drift_alert": 100.0}  # sizes stay < ~20


def monitor(params: MonitorParams, work_dir: Path) -> MonitorOutputs:
    outputs, table = check(params)
    print(table, file=sys.stderr)
    return outputs


def check(params: MonitorParams) -> tuple[MonitorOutputs, str]:
    """Drift and decay of the champion on the batch, logged to MLflow; the outputs and the table."""
    limits: MonitorThresholds = params  # the params are the thresholds plus what to watch
    client = mlflow.MlflowClient()
    name = params.model_name
    champion = by_alias(client, name, CHAMPION)
    if champion is None:
        raise BadInputError(
            f"model {name!r} has no {CHAMPION} to monitor yet: train one first (modelyard run --model-name {name})"
        )
    reference = reference_profile(client, name)
    if reference is None:
        raise BadInputError(
            f"champion {name} v{champion.version} has no data profile ({REFERENCE_PROFILE}): retrain it with this modelyard"
        )
    frame = load_dataset(params.dataset)
    frame.columns = [str(c) for c in frame.columns]
    check_batch(frame, reference, limits)
    decays, note = champion_decay(champion, frame, reference, limits)
    features = drift(frame, reference, limits)
    report = conclude(
        MonitorReport(rows=len(frame), features=features, decay=decays, decay_note=note), limits
    )
    table = render(report, f"Monitoring {name} v{champion.version} ({CHAMPION}) on {params.dataset}")
    run_id = log_report(params, champion, report, table)
    if report.verdict != OK:
        shown = "; ".join(report.reasons[:3]) + (" ..." if len(report.reasons) > 3 else "")
        alerts.send(
            f"{name} v{champion.version}: monitoring says {report.verdict.upper()} on {params.dataset}: {shown}"
        )
    config = retrain_config(champion, params.dataset, reference.label)
    return MonitorOutputs(verdict=report.verdict, run_id=run_id, dataset=params.dataset, config=config), table


def champion_decay(
    champion: ModelVersion, frame: pd.DataFrame, reference: DataProfile, limits: MonitorThresholds
) -> tuple[list[MetricDecay], str]:
    """Score the champion on the batch's labelled rows and compare with its recorded test metrics."""
    label, task = reference.label, reference.task
    if label not in frame.columns:
        return [], f"no {label!r} column in the batch: drift checked, decay not"
    labelled = frame.loc[frame[label].notna(), [*reference.columns, label]]
    if len(labelled) < limits.min_rows:
        return [], f"{len(labelled)} labelled rows (min {limits.min_rows}): decay not checked"
    tags = {spec.name: Tags.test_metric(spec.name) for spec in task_metrics(task)}
    recorded: dict[str, float] = {
        m: float(champion.tags[tag]) for m, tag in tags.items() if tag in champion.tags
    }
    if not recorded:
        return [], f"v{champion.version} has no recorded test metrics: decay not checked"
    pipeline = mlflow.sklearn.load_model(f"models:/{champion.name}/{champion.version}")
    features, labels = model.features_and_label(labelled, label, task, roles=roles_of_profile(reference))
    try:
        predicted, proba, classes = model.predictions(task, pipeline, features)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"champion v{champion.version} cannot score the batch: {exc}") from exc
    truth = labels.to_numpy()
    current = model.metrics(task, truth, predicted, proba, classes)
    noise = decay_noise(task, truth, predicted, proba, classes, _test_rows(champion))
    return (
        decay(task, recorded, current, noise, limits.decay_tolerance),
        f"{len(labelled):,} labelled rows scored",
    )


def _test_rows(champion: ModelVersion) -> int | None:
    """How many rows the champion's recorded test metrics came from (the split step's `test_rows`)."""
    pipeline_run = champion.tags.get(Tags.PIPELINE_RUN_ID, "")
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_run(pipeline_run).info.experiment_id
        runs = client.search_runs(
            [experiment],
            f"tags.mlflow.parentRunId = '{pipeline_run}' and tags.`{Tags.STEP}` = '{StepName.SPLIT}'",
            max_results=1,
        )
    except MlflowException:
        return None
    rows = runs[0].data.metrics.get(rows_metric("test")) if runs else None
    return int(rows) if rows else None


def log_report(params: MonitorParams, champion: ModelVersion, report: MonitorReport, table: str) -> str:
    """One run in the monitoring experiment: metrics per feature, report.json/txt, a plot per drift."""
    tags = lineage_tags() | {
        Tags.STEP: StepName.MONITOR,
        Tags.MODEL_NAME: champion.name,
        Tags.CHAMPION_VERSION: str(champion.version),
        Tags.DATASET: params.dataset,
        Tags.VERDICT: report.verdict,
    }
    metrics: dict[str, float] = {
        "rows": report.rows,
        "drifted_features": len(report.drifted()),
        "verdict": VERDICTS.index(report.verdict),
    }
    for f in report.features:
        metrics[metric_key(f"null_change_{f.column}")] = f.null_change
        if f.drift.size is not None:
            metrics[metric_key(drift_metric(f.column))] = f.drift.size
        if f.drift.p_value is not None:
            metrics[metric_key(f"p_value_{f.column}")] = f.drift.p_value
        if f.kind == "categorical":
            metrics[metric_key(f"unseen_{f.column}")] = f.unseen_share
    for d in report.decay:
        metrics |= {f"batch_{d.metric}": d.current, f"drop_{d.metric}": d.drop}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_record(out / REPORT_FILE, report)
        (out / REPORT_TEXT).write_text(table + "\n")
        for feature in report.drifted():
            if feature.drift.bins:
                (out / "plots").mkdir(exist_ok=True)
                plot(feature, out / "plots" / f"{_file_name(feature.column)}.png")
        with mlflow.start_run(
            experiment_id=experiment_id(params.experiment), run_name=f"{champion.name}-monitor", tags=tags
        ) as run:
            mlflow.log_params(params.model_dump())
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(tmp, MONITORING)
    return run.info.run_id


def retrain_config(champion: ModelVersion, dataset: str, label: str) -> str:
    """The champion's training config with the batch as dataset and the champion-relative data
    checks relaxed (`RETRAIN_THRESHOLDS`): what a retraining run should use."""
    fallback = {"model_name": champion.name, "label": label}
    pipeline_run = champion.tags.get(Tags.PIPELINE_RUN_ID, "")
    try:
        config = (
            mlflow.artifacts.load_dict(f"runs:/{pipeline_run}/{CONFIG_FILE}") if pipeline_run else fallback
        )
    except (MlflowException, OSError) as exc:
        log.warning("champion's training config unavailable (%s); retraining with the defaults", exc)
        config = fallback
    overrides = {"dataset": dataset, **RETRAIN_THRESHOLDS}
    try:
        return load_config(json.dumps(config), overrides).model_dump_json()
    except BadInputError as exc:  # trained by an older modelyard whose config no longer validates
        log.warning("champion's training config is not valid any more (%s); retraining with defaults", exc)
        return load_config(json.dumps(fallback), overrides).model_dump_json()


def _file_name(column: str) -> str:
    return re.sub(r"[^\w.-]", "_", column) or "column"
