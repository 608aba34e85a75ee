"""Bounded waits against real silent endpoints: a socket on 127.0.0.1 that accepts connections and
never answers, the way a hung S3, MLflow or Argo server behaves. Bad settings exit 2 at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import modelyard


class SilentServer:
    """Accepts every connection and never sends a byte (nor closes one) until stopped."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.contacts: list[float] = []  # time.monotonic() of each connection
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed by stop()
                return
            self.accepted.append(connection)
            self.contacts.append(time.monotonic())

    def waited(self, until: float) -> float:
        """Seconds from the first connection to `until`: the client's wait, without its start-up."""
        assert self.contacts, "the client never connected"
        return until - self.contacts[0]

    def stop(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def waited(server: SilentServer, *args: str, cwd: Path, env: dict[str, str]) -> tuple[float, Any]:
    """Run the CLI; how long it waited on the server (from its first connection to its exit)."""
    done = modelyard(*args, cwd=cwd, env=env)
    return server.waited(time.monotonic()), done


def test_a_silent_s3_endpoint_fails_as_transient_within_a_minute_with_the_defaults(
    silent: SilentServer, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{silent.port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret-key"}
    seconds, done = waited(
        silent, "run", "--dataset", "s3://data/customers.csv", "--label", "churn", cwd=tmp_path, env=env
    )
    assert done.returncode == 75, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"modelyard: error: object store {endpoint} did not answer"), line
    assert "s3://data/customers.csv" in line
    # 10 s per attempt, 3 attempts (MODELYARD_S3_TIMEOUT, MODELYARD_S3_RETRIES): not MinIO's 300 s x 6.
    assert 29 < seconds < 40, seconds


def test_the_s3_timeout_and_retries_are_configurable(silent: SilentServer, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{silent.port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret-key",
        "MODELYARD_S3_TIMEOUT": "1.5",
        "MODELYARD_S3_RETRIES": "0",
    }
    seconds, done = waited(
        silent, "run", "--dataset", "s3://data/customers.csv", "--label", "churn", cwd=tmp_path, env=env
    )
    assert done.returncode == 75, done.stderr
    assert endpoint in last_line(done.stderr)
    # 1.5 s, not the default 10 s (a loaded machine takes seconds more to end the process).
    assert 1.5 <= seconds < 10, seconds
    assert len(silent.accepted) == 1  # no retry


def test_a_silent_tracking_server_fails_as_transient_within_a_minute_with_the_defaults(
    silent: SilentServer, tmp_path: Path
) -> None:
    uri = f"http://127.0.0.1:{silent.port}"
    seconds, done = waited(silent, "run", "--dataset", "iris", "--tracking-uri", uri, cwd=tmp_path, env={})
    assert done.returncode == 75, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"modelyard: error: MLflow tracking server {uri} is unavailable"), line
    # 15 s per attempt, 3 attempts, 1 + 2 s of backoff (MLFLOW_HTTP_REQUEST_*): not MLflow's 120 s x 8.
    assert 44 < seconds < 60, seconds


def test_the_tracking_server_timeout_is_configurable(silent: SilentServer, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{silent.port}"
    env = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    seconds, done = waited(silent, "run", "--dataset", "iris", "--tracking-uri", uri, cwd=tmp_path, env=env)
    assert done.returncode == 75, done.stderr
    assert uri in last_line(done.stderr)
    assert 2 <= seconds < 6, seconds
    assert len(silent.accepted) == 1


def test_a_silent_argo_server_fails_submit_as_transient(silent: SilentServer, tmp_path: Path) -> None:
    pytest.importorskip("hera", reason="Hera is missing: pip install 'modelyard[argo]'")
    host = f"127.0.0.1:{silent.port}"
    env = {"MODELYARD_ARGO_TIMEOUT": "2"}
    seconds, done = waited(silent, "submit", "-s", host, "--dataset", "iris", cwd=tmp_path, env=env)
    assert done.returncode == 75, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"modelyard: error: cannot reach the Argo Server at http://{host}"), line
    assert 2 <= seconds < 6, seconds


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "fast", "is not a whole number of at least 1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0", "is not a whole number of at least 1"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1", "is not a whole number of at least 0"),
        ("MODELYARD_S3_TIMEOUT", "soon", "is not a number of seconds above 0"),
        ("MODELYARD_S3_TIMEOUT", "0", "is not a number of seconds above 0"),
        ("MODELYARD_S3_TIMEOUT", "-1", "is not a number of seconds above 0"),
        ("MODELYARD_S3_TIMEOUT", "inf", "is not a number of seconds above 0"),
        ("MODELYARD_S3_RETRIES", "2.5", "is not a whole number of at least 0"),
        ("MODELYARD_ARGO_TIMEOUT", "soon", "is not a number of seconds above 0"),
    ],
)
def test_a_bad_setting_exits_2_naming_it_before_anything_is_created(
    name: str, value: str, expected: str, tmp_path: Path
) -> None:
    done = modelyard("run", "--dataset", "iris", cwd=tmp_path, env={name: value})
    assert done.returncode == 2, done.stderr
    assert last_line(done.stderr).startswith(f"modelyard: error: {name}={value!r} {expected}"), done.stderr
    assert list(tmp_path.iterdir()) == []  # no .modelyard/, no store, no run directory


def test_a_bad_argo_timeout_exits_2_before_submitting(silent: SilentServer, tmp_path: Path) -> None:
    done = modelyard(
        "submit", "-s", f"127.0.0.1:{silent.port}", "--dataset", "iris", cwd=tmp_path,
        env={"MODELYARD_ARGO_TIMEOUT": "soon"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "MODELYARD_ARGO_TIMEOUT='soon' is not a number of seconds above 0" in last_line(done.stderr)
    assert not silent.accepted  # it never connected


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_said_to_be_refused_not_silent(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret-key"}
    done = modelyard("run", "--dataset", "s3://data/customers.csv", "--label", "churn", cwd=tmp_path, env=env)
    assert done.returncode == 75, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"modelyard: error: object store {endpoint} refused the connection"), line

    uri = f"http://127.0.0.1:{closed_port()}"
    done = modelyard("run", "--dataset", "iris", "--tracking-uri", uri, cwd=tmp_path, env={})
    assert done.returncode == 75, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"modelyard: error: MLflow tracking server {uri} is unavailable (it refused"), line


def test_a_failing_address_other_than_the_tracking_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A presigned artifact URL names the object store, not MLflow: the one line says which failed."""
    import requests

    from modelyard.core.transient import transient_message

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    port = closed_port()
    with pytest.raises(requests.ConnectionError) as failed:
        requests.get(f"http://127.0.0.1:{port}/mlflow/model.skops?X-Amz-Signature=0", timeout=5)
    assert transient_message(failed.value).startswith(
        f"127.0.0.1:{port} refused the connection: an address MLflow tracking server http://127.0.0.1:5000 "
        "sent this client to (an artifact download or upload URL)"
    )
