"""`modelyard compile`, and `modelyard submit` up to the Argo Server (tests/e2e submits to a real one)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli import main as cli
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


def test_compile_writes_every_manifest_to_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MANIFESTS)
    check = CliRunner().invoke(cli, ["compile", "--out", str(tmp_path), "--check"])
    assert check.exit_code == 0, check.output
