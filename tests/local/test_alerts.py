"""Alerts reach a real HTTP server as Slack-style JSON; a broken receiver never fails the run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import mlflow
import pytest
from conftest import make_customers
from webhook_server import Webhook, webhook_server

from modelyard.backends import alerts, registry
from modelyard.contract import FinishParams, PrepareParams, RollbackParams
from modelyard.core.errors import BadInputError
from modelyard.runner.local import run_pipeline
from modelyard.steps.finish import finish
from modelyard.steps.rollback import rollback


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Webhook:
    with webhook_server() as server:
        monkeypatch.setenv(alerts.ENV_WEBHOOK_URL, server.url)
        monkeypatch.delenv("MODELYARD_WORKFLOW_NAME", raising=False)
        yield server


def test_an_alert_is_posted_as_json_with_a_slack_text_field(hook: Webhook) -> None:
    assert alerts.send("churn v3 promoted to champion") is True
    assert hook.received == [
        {"text": "modelyard: churn v3 promoted to champion", "_content_type": "application/json"}
    ]


def test_the_argo_workflow_name_is_appended(hook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_WORKFLOW_NAME", "modelyard-train-x7k2p")
    alerts.send("training run failed")
    assert hook.texts() == ["modelyard: training run failed (workflow modelyard-train-x7k2p)"]


def test_without_a_url_nothing_is_sent(hook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(alerts.ENV_WEBHOOK_URL)
    assert alerts.send("nobody listens") is False
    assert hook.received == []


def test_a_failing_receiver_is_logged_without_the_url_and_never_raised(
    hook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.status = 500
    with caplog.at_level(logging.WARNING, logger="modelyard.backends.alerts"):
        assert alerts.send("promoted") is False
    assert len(hook.received) == 1
    assert "alert not sent: webhook failed: Internal Server Error" in caplog.text
    assert hook.url not in caplog.text


def test_an_unreachable_or_hung_receiver_costs_at_most_the_timeout(
    hook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.delay = 3
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="modelyard.backends.alerts"):
        assert alerts.send("slow", timeout=0.5) is False
        assert alerts.send("refused", url="http://127.0.0.1:9/") is False
        assert alerts.send("not http", url="file:///etc/passwd") is False
    assert time.perf_counter() - started < 2.5
    assert caplog.text.count("alert not sent") == 3


def test_a_failed_training_run_alerts_from_the_exit_handler_even_without_a_parent_run(hook: Webhook) -> None:
    finish(FinishParams(run_id="", status="Failed", message="validate: column 'age' drifted"), Path("."))
    finish(FinishParams(run_id="", status="Succeeded"), Path("."))
    assert hook.texts() == ["modelyard: training run failed: validate: column 'age' drifted"]


def test_a_local_pipeline_that_fails_alerts_with_its_mlflow_run(
    hook: Webhook, tracking_uri: str, tmp_path: Path
) -> None:
    one_class = tmp_path / "one-class.csv"
    make_customers().assign(churn="no").to_csv(one_class, index=False)
    inputs = PrepareParams(dataset=str(one_class), label="churn", model_name="alerts").model_dump()
    with pytest.raises(BadInputError, match=r"only one label value \('no'\)"):
        run_pipeline(inputs, tmp_path / "runs", echo=lambda line: None)
    (text,) = hook.texts()
    assert text.startswith("modelyard: training run failed (MLflow run ")
    assert "only one label value ('no')" in text


def test_a_rollback_alerts(hook: Webhook, tracking_uri: str, tmp_path: Path) -> None:
    client = mlflow.MlflowClient()
    client.create_registered_model("alerts")
    first, second = (
        client.create_model_version("alerts", source=str(tmp_path / f"model-{i}")) for i in (1, 2)
    )
    registry.promote(client, first)
    registry.promote(client, second)
    rollback(RollbackParams(model_name="alerts", reason="bad canary"), Path("."))
    assert hook.texts() == ["modelyard: alerts: champion rolled back from v2 to v1 (bad canary)"]
