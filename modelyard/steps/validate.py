from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from modelyard.checks import render, run_checks
from modelyard.config import PipelineConfig
from modelyard.contract import VALIDATION, PipelineStepParams, ValidateOutputs
from modelyard.drift import ColumnDrift
from modelyard.errors import BadInputError
from modelyard.registry import reference_profile
from modelyard.steps.split import PARTS, read_splits
from modelyard.tracking import TAG, child_run, metric_key

log = logging.getLogger(__name__)


def validate(params: PipelineStepParams, work_dir: Path) -> ValidateOutputs:
    config = PipelineConfig.model_validate_json(params.config)
    frame = pd.concat(read_splits(work_dir, *PARTS), ignore_index=True)
    reference = reference_profile(mlflow.MlflowClient(), config.model_name)
    source = (
        f"champion of {config.model_name}"
        if reference
        else "none (no champion yet): schema, label and value checks only"
    )
    findings, drift = run_checks(frame, config, reference)
    errors = [f for f in findings if f.severity == "error"]
    status = "fail" if errors else ("warn" if findings else "pass")
    report = render(findings, drift, source)
    out = work_dir / VALIDATION
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "status": status,
        "reference": source,
        "findings": [f.as_dict() for f in findings],
        "drift": [drift_record(r) for r in drift],
    }
    (out / "report.json").write_text(json.dumps(payload, indent=1))
    (out / "report.txt").write_text(report + "\n")
    print(report, file=sys.stderr)
    with child_run(params.run_id, "validate", {f"{TAG}validation": status}):
        mlflow.log_metrics(
            {"errors": len(errors), "warnings": len(findings) - len(errors)}
            | {metric_key(f"drift_{r.column}"): r.size for r in drift if r.size is not None}
        )
        mlflow.log_artifacts(str(out), VALIDATION)
        if errors:
            mlflow.set_tag(f"{TAG}failure", errors[0].message)
    if errors:
        more = f" (and {len(errors) - 1} more, see {out / 'report.txt'})" if len(errors) > 1 else ""
        raise BadInputError(f"data validation failed: {errors[0].message}{more}")
    return ValidateOutputs(status=status)


def drift_record(result: ColumnDrift) -> dict[str, object]:
    """A column's drift for report.json: the verdict and its numbers, without the plot's bins."""
    fields = ("column", "kind", "method", "rows", "size", "noise", "p_value", "alpha", "level", "note")
    return {name: getattr(result, name) for name in fields}
