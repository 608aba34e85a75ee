from __future__ import annotations

from pathlib import Path

import mlflow

from modelyard import alerts
from modelyard.contract import FinishOutputs, FinishParams
from modelyard.tracking import TAG

STATUSES = {"Succeeded": "FINISHED", "Failed": "FAILED", "Error": "FAILED"}


def finish(params: FinishParams, work_dir: Path) -> FinishOutputs:
    if params.status != "Succeeded":
        why = f": {params.message[:300]}" if params.message else ""
        run = f" (MLflow run {params.run_id})" if params.run_id else ""
        alerts.send(f"training run {params.status.lower()}{run}{why}")
    if not params.run_id:
        return FinishOutputs(status="no parent run to close")
    client = mlflow.MlflowClient()
    status = STATUSES.get(params.status, "FAILED")
    if params.message:
        client.set_tag(params.run_id, f"{TAG}failure", params.message[:5000])
    client.set_tag(params.run_id, f"{TAG}status", params.status)
    client.set_terminated(params.run_id, status=status)
    return FinishOutputs(status=status)
