"""`modelyard compile` and `modelyard submit`, the latter against a fake Argo Server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from modelyard.cli import main as cli
from workflows.compile import MANIFESTS


class FakeArgo(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, dict[str, Any] | None, str | None]]] = []
    phases: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: dict[str, Any], code: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        if body["resourceName"] != "modelyard-train":
            return self._reply({"code": 5, "message": "not found"}, 404)
        self._reply({"metadata": {"name": "modelyard-train-abcde", "namespace": "ml"}, "spec": {}})

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
        phase = self.phases.pop(0)
        status: dict[str, Any] = {"phase": phase, "progress": "7/7" if phase == "Succeeded" else "2/7"}
        if phase == "Succeeded":
            status["outputs"] = {"parameters": [{"name": "decision", "value": "promote"}]}
        self._reply({"metadata": {"name": "modelyard-train-abcde"}, "spec": {}, "status": status})


@pytest.fixture
def argo() -> Iterator[str]:
    FakeArgo.requests = []
    server = HTTPServer(("127.0.0.1", 0), FakeArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def test_submit_sends_only_the_settings_given_and_waits_for_the_outputs(argo: str) -> None:
    FakeArgo.phases = ["Running", "Succeeded"]
    env = {"ARGO_SERVER": argo, "ARGO_SECURE": "false", "ARGO_TOKEN": "t0k", "ARGO_NAMESPACE": "ml"}
    args = ["submit", "--dataset", "wine", "--seed", "7", "--min-accuracy", "0.8", "--wait"]
    result = CliRunner().invoke(cli, [*args, "--poll-seconds", "1"], env=env)
    assert result.exit_code == 0, result.output
    method, path, body, auth = FakeArgo.requests[0]
    assert (method, path, auth) == ("POST", "/api/v1/workflows/ml/submit", "Bearer t0k")
    assert body["resourceKind"] == "WorkflowTemplate"
    assert sorted(body["submitOptions"]["parameters"]) == ["dataset=wine", "min-accuracy=0.8", "seed=7"]
    assert "Succeeded 7/7" in result.output
    assert "decision: promote" in result.output


def test_submit_rejects_a_bad_setting_before_calling_the_server(argo: str) -> None:
    result = CliRunner().invoke(cli, ["submit", "-s", argo, "--plaintext", "--seed", "many"])
    assert result.exit_code != 0
    assert FakeArgo.requests == []


def test_submit_names_the_fix_when_the_template_is_missing(argo: str) -> None:
    args = ["submit", "-s", f"http://{argo}", "--template", "nope", "-n", "ml"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "argo template create" in str(result.exception) + result.output


def test_compile_writes_every_manifest_to_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MANIFESTS)
    check = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path), "--check"])
    assert check.exit_code == 0, check.output
