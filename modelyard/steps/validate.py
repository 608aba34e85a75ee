from __future__ import annotations

import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from modelyard.backends.registry import reference_profile
from modelyard.backends.tracking import child_run, metric_key
from modelyard.contract import SPLITS, VALIDATION, PipelineStepParams, StepName, ValidateOutputs
from modelyard.contract.config import PipelineConfig
from modelyard.contract.records import (
    PARTS,
    REPORT_FILE,
    REPORT_TEXT,
    Tags,
    ValidationReport,
    ValidationStatus,
    drift_metric,
    read_split_roles,
    read_splits,
    write_record,
)
from modelyard.core.errors import BadInputError
from modelyard.quality.checks import render, run_checks

log = logging.getLogger(__name__)


def validate(params: PipelineStepParams, work_dir: Path) -> ValidateOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    frame = pd.concat(read_splits(work_dir / SPLITS, *PARTS), ignore_index=True)
    reference = reference_profile(mlflow.MlflowClient(), config.model_name)
    source = (
        f"champion of {config.model_name}"
        if reference
        else "none (no champion yet): schema, label and value checks only"
    )
    findings, drift = run_checks(frame, config, reference, roles=read_split_roles(work_dir / SPLITS))
    errors = [f for f in findings if f.severity == "error"]
    status: ValidationStatus = "fail" if errors else ("warn" if findings else "pass")
    report = render(findings, drift, source)
    out = work_dir / VALIDATION
    # The drift bins are for monitoring's plots; the validation report keeps the verdicts.
    drift_only = [r.model_copy(update={"bins": [], "expected": [], "actual": []}) for r in drift]
    write_record(
        out / REPORT_FILE,
        ValidationReport(status=status, reference=source, findings=findings, drift=drift_only),
    )
    (out / REPORT_TEXT).write_text(report + "\n")
    print(report, file=sys.stderr)
    with child_run(params.run_id, StepName.VALIDATE, {Tags.VALIDATION: status}):
        mlflow.log_metrics(
            {"errors": len(errors), "warnings": len(findings) - len(errors)}
            | {metric_key(drift_metric(r.column)): r.size for r in drift if r.size is not None}
        )
        mlflow.log_artifacts(str(out), VALIDATION)
        if errors:
            mlflow.set_tag(Tags.FAILURE, errors[0].message)
    if errors:
        more = f" (and {len(errors) - 1} more, see {out / REPORT_TEXT})" if len(errors) > 1 else ""
        raise BadInputError(f"data validation failed: {errors[0].message}{more}")
    return ValidateOutputs(status=status)
