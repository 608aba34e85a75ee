"""The exit handler's reading of Argo's `{{workflow.failures}}`: the failed nodes as JSON, quoted
once more by the controller (strconv.Quote), the quoted `null` when nothing failed."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from modelyard.backends.tracking import open_run
from modelyard.contract import FinishParams
from modelyard.core.signals import Interrupted
from modelyard.steps.finish import close_running_children, failure_reason, finish, mlflow_status

FAILED_NODES = [
    {"displayName": "modelyard-train-x", "message": "child 'modelyard-train-x-1' failed", "phase": "Failed"},
    {"displayName": "validate", "message": "No more retries left", "phase": "Failed"},
    {
        "displayName": "validate(0)",
        "message": "main: Error (exit code 2): data validation failed: column 'income' is 71.7% missing",
        "templateName": "validate",
        "phase": "Failed",
    },
]


@pytest.mark.parametrize("nothing", ['"null"', "null", "", '""', '"[]"'])
def test_a_run_that_failed_nowhere_has_no_failure_reason(nothing: str) -> None:
    assert failure_reason(nothing) == ""


def test_the_reason_is_the_failed_step_s_own_words_without_escaped_json() -> None:
    as_argo_passes_it = json.dumps(json.dumps(FAILED_NODES))
    reason = failure_reason(as_argo_passes_it)
    assert (
        reason
        == "validate(0): main: Error (exit code 2): data validation failed: column 'income' is 71.7% missing"
    )
    assert failure_reason(json.dumps(FAILED_NODES)) == reason  # once-encoded, as an emulator passes it


def test_the_local_runner_s_plain_message_is_kept() -> None:
    assert (
        failure_reason("BadInputError: label 'churn' not in dataset")
        == "BadInputError: label 'churn' not in dataset"
    )


def test_mlflow_status_maps_each_pipeline_status() -> None:
    assert [mlflow_status(s) for s in ("Succeeded", "Failed", "Error", "Stopped")] == [
        "FINISHED",
        "FAILED",
        "FAILED",
        "KILLED",
    ]


def _pipeline_with_children(client: MlflowClient) -> tuple[str, str, str]:
    """A real parent run with one child that finished and one left RUNNING (its worker was killed)."""
    experiment = client.create_experiment("finish-test")
    parent = client.create_run(experiment).info.run_id
    done = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(done, "FINISHED")
    left = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    return parent, done, left


@pytest.mark.parametrize(("status", "closed"), [("Stopped", "KILLED"), ("Failed", "FAILED")])
def test_finish_closes_the_children_left_running_and_the_parent(
    tracking_uri: str, tmp_path: Path, status: str, closed: str
) -> None:
    client = MlflowClient(tracking_uri)
    parent, done, left = _pipeline_with_children(client)
    outputs = finish(FinishParams(run_id=parent, status=status, message="train stopped by SIGTERM"), tmp_path)
    assert outputs.status == closed
    assert client.get_run(parent).info.status == closed
    assert client.get_run(left).info.status == closed
    assert client.get_run(done).info.status == "FINISHED"  # what had finished stays finished
    assert client.get_run(parent).data.tags["modelyard.failure"] == "train stopped by SIGTERM"


def test_close_running_children_leaves_other_pipelines_alone(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    parent, _, left = _pipeline_with_children(client)
    other = client.create_run(client.get_run(parent).info.experiment_id).info.run_id
    other_child = client.create_run(
        client.get_run(parent).info.experiment_id, tags={"mlflow.parentRunId": other}
    ).info.run_id
    assert close_running_children(client, parent, "KILLED") == [left]
    assert client.get_run(other_child).info.status == "RUNNING"


@pytest.mark.parametrize(
    ("raised", "status"), [(Interrupted(signal.SIGTERM), "KILLED"), (ValueError("bug"), "FAILED")]
)
def test_a_run_cut_short_by_a_stop_signal_ends_killed_by_an_error_failed(
    tracking_uri: str, raised: BaseException, status: str
) -> None:
    experiment = MlflowClient(tracking_uri).create_experiment("open-run")
    with pytest.raises(type(raised)), open_run(experiment_id=experiment) as run:
        raise raised
    assert MlflowClient(tracking_uri).get_run(run.info.run_id).info.status == status
