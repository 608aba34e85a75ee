"""The exit handler's reading of Argo's `{{workflow.failures}}`: the failed nodes as JSON, quoted
once more by the controller (strconv.Quote), the quoted `null` when nothing failed."""

from __future__ import annotations

import json

import pytest

from modelyard.steps.finish import failure_reason

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
