"""`modelyard compile`, and `modelyard submit` up to the Argo Server (tests/e2e submits to a real one)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelyard.cli.main import main as cli
from workflows.compile import MANIFESTS


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_submit_rejects_a_bad_setting_before_calling_the_server() -> None:
    result = CliRunner().invoke(cli, ["submit", "-s", f"127.0.0.1:{closed_port()}", "--seed", "many"])
    assert result.exit_code == 2, result.output
    assert "seed" in result.output


@pytest.mark.parametrize(
    ("flags", "scheme"), [([], "http"), (["--plaintext"], "http"), (["--secure"], "https")]
)
def test_submit_speaks_plain_http_unless_told_otherwise(flags: list[str], scheme: str) -> None:
    # The chart's Argo Server, reached through kubectl port-forward, serves plain HTTP.
    server = f"127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["submit", "-s", server, *flags], env={"ARGO_SECURE": None})
    assert result.exit_code == 75, result.output
    assert f"{scheme}://{server}" in result.output


class FakeArgo(ThreadingHTTPServer):
    """An Argo Server's submit and get-workflow endpoints; gets answer `phases` in turn, the last one stays."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeArgoHandler)
        self.phases: list[dict[str, Any]] = []
        self.gets = 0
        self.gone_after_submit = False

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class FakeArgoHandler(BaseHTTPRequestHandler):
    server: FakeArgo

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: dict[str, Any] | None) -> None:
        body = {"metadata": {"name": "train-x1", "namespace": "ml"}, "spec": {}}
        body |= {"status": status} if status is not None else {}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        assert self.path == "/api/v1/workflows/ml/submit"
        self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(None)
        if self.server.gone_after_submit:  # closes the port within Hera's first poll interval
            threading.Thread(target=self.server.stop).start()

    def do_GET(self) -> None:
        assert self.path.startswith("/api/v1/workflows/ml/train-x1")
        self.server.gets += 1
        phases = self.server.phases
        self.reply(phases.pop(0) if len(phases) > 1 else phases[0])


@pytest.fixture
def argo() -> Iterator[FakeArgo]:
    server = FakeArgo()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop()


def submit_and_wait(argo: FakeArgo) -> Any:
    args = ["submit", "-s", argo.url, "-n", "ml", "--wait", "--poll-seconds", "1"]
    return CliRunner().invoke(cli, args, env={"ARGO_SECURE": None, "ARGO_TOKEN": None})


def test_submit_wait_follows_the_workflow_to_its_end_and_prints_its_outputs(argo: FakeArgo) -> None:
    # No phase before the controller sees it, then queued: Hera's own wait returns early on both.
    outputs = {"parameters": [{"name": "decision", "value": "promote"}]}
    argo.phases = [
        {},
        {"phase": "Pending"},
        {"phase": "Running", "progress": "1/7"},
        {"phase": "Succeeded", "progress": "7/7", "outputs": outputs},
    ]
    result = submit_and_wait(argo)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "submitted ml/train-x1",
        "waiting for train-x1 ...",
        "train-x1: Succeeded 7/7",
        "  decision: promote",
    ]
    assert argo.gets == 4


def test_submit_wait_fails_when_the_workflow_fails(argo: FakeArgo) -> None:
    argo.phases = [{"phase": "Failed", "progress": "2/7", "message": "child 'train' failed"}]
    result = submit_and_wait(argo)
    assert result.exit_code == 1, result.output
    assert "train-x1: Failed 2/7" in result.output
    assert "workflow train-x1 Failed: child 'train' failed" in result.output


def test_submit_wait_reports_an_argo_server_gone_during_the_wait_as_transient(argo: FakeArgo) -> None:
    argo.phases, argo.gone_after_submit = [{"phase": "Running"}], True
    result = submit_and_wait(argo)
    assert result.exit_code == 75, result.output
    assert result.output.startswith("submitted ml/train-x1\nwaiting for train-x1 ...\n"), result.output
    assert f"cannot reach the Argo Server at http://{argo.url}" in result.output
    assert argo.gets == 0


def test_compile_writes_every_manifest_to_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MANIFESTS)
    check = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path), "--check"])
    assert check.exit_code == 0, check.output
