from __future__ import annotations

import os
from pathlib import Path

import mlflow

from modelyard import alerts
from modelyard.contract import ENV_WORKFLOW_UID, FinishOutputs, FinishParams
from modelyard.tracking import TAG

STATUSES = {"Succeeded": "FINISHED", "Failed": "FAILED", "Error": "FAILED"}


def finish(params: FinishParams, work_dir: Path) -> FinishOutputs:
    run_id = params.run_id or run_of_this_workflow()
    if params.status != "Succeeded":
        why = f": {params.message[:300]}" if params.message else ""
        run = f" (MLflow run {run_id})" if run_id else ""
        alerts.send(f"training run {params.status.lower()}{run}{why}")
    if not run_id:
        return FinishOutputs(status="no parent run to close")
    client = mlflow.MlflowClient()
    status = STATUSES.get(params.status, "FAILED")
    if params.message:
        client.set_tag(run_id, f"{TAG}failure", params.message[:5000])
    client.set_tag(run_id, f"{TAG}status", params.status)
    client.set_terminated(run_id, status=status)
    return FinishOutputs(status=status)


def run_of_this_workflow() -> str:
    """The parent run prepare opened in this Argo workflow (tagged with its uid), or "" if none.

    An exit handler cannot rely on prepare's outputs: prepare may never have run.
    """
    uid = os.environ.get(ENV_WORKFLOW_UID)
    if not uid:
        return ""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{TAG}workflow_uid` = '{uid}'",
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else ""
