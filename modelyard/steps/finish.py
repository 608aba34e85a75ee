from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Final

import mlflow

from modelyard.backends import alerts
from modelyard.contract import FinishOutputs, FinishParams
from modelyard.contract.records import RunStatus, Tags
from modelyard.core.settings import ENV_WORKFLOW_UID

STATUSES: Final[dict[RunStatus, str]] = {
    "Succeeded": "FINISHED",
    "Failed": "FAILED",
    "Error": "FAILED",
    "Stopped": "KILLED",
}
UID: Final = re.compile(r"[0-9a-f-]{36}")  # a Kubernetes uid; it goes into a run search filter


def finish(params: FinishParams, work_dir: Path) -> FinishOutputs:
    run_id = params.run_id or run_of_this_workflow()
    reason = failure_reason(params.message)
    if params.status != "Succeeded":
        why = f": {reason[:300]}" if reason else ""
        run = f" (MLflow run {run_id})" if run_id else ""
        alerts.send(f"training run {params.status.lower()}{run}{why}")
    if not run_id:
        return FinishOutputs(status="no parent run to close")
    client = mlflow.MlflowClient()
    status = mlflow_status(params.status)
    if reason:
        client.set_tag(run_id, Tags.FAILURE, reason[:5000])
    close_running_children(client, run_id, "KILLED" if status == "KILLED" else "FAILED")
    client.set_tag(run_id, Tags.STATUS, params.status)
    client.set_terminated(run_id, status=status)
    return FinishOutputs(status=status)


def mlflow_status(status: RunStatus) -> str:
    """The MLflow run status of a pipeline status: FINISHED, FAILED or KILLED (stopped by a signal)."""
    return STATUSES[status]


def close_running_children(client: mlflow.MlflowClient, run_id: str, status: str) -> list[str]:
    """End the runs under the parent still RUNNING (a worker or pod killed mid-step); their ids."""
    parent = client.get_run(run_id)
    left = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    for child in left:
        client.set_terminated(child.info.run_id, status=status)
    return [child.info.run_id for child in left]


def run_of_this_workflow() -> str:
    """The parent run prepare opened in this Argo workflow (tagged with its uid), or "" if none.

    An exit handler cannot rely on prepare's outputs: prepare may never have run.
    """
    uid = os.environ.get(ENV_WORKFLOW_UID, "")
    if not UID.fullmatch(uid):
        return ""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{Tags.WORKFLOW_UID}` = '{uid}'",
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else ""


def failure_reason(message: str) -> str:
    """One readable line from what failed. Argo's {{workflow.failures}} is a JSON list of the failed
    nodes, JSON-quoted once more, and the quoted `null` when nothing failed; any other text (the
    local runner's) is the reason as it is."""
    value: Any = message.strip()
    while isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            break
    if not value:
        return ""
    if not isinstance(value, list):
        return str(value)
    # The failed pods say why (exit code, the step's own message); their DAG and retry parents
    # only repeat "child failed" or "No more retries left".
    steps = [n for n in value if isinstance(n, dict) and "exit code" in str(n.get("message", ""))]
    reasons = dict.fromkeys(f"{n.get('displayName', '?')}: {n.get('message', '')}" for n in steps or value)
    return "; ".join(reasons)
