"""Server fixtures: one session-wide S3 + PostgreSQL + `mlflow server` stack, started and stopped here.

Tests skip only when a tool is missing, with the reason naming it and how to install it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stack import Missing, Stack, postgres_bin, s3_binary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs real servers (S3, PostgreSQL, mlflow server)")


def require_tools() -> None:
    try:
        s3_binary()
        postgres_bin()
    except Missing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """S3 + PostgreSQL + MLflow server for tests that do not stop them; use a fresh model name."""
    require_tools()
    try:
        started = Stack(tmp_path_factory.mktemp("stack")).start()
    except Missing as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name.removeprefix('test_')[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def pod_home(tmp_path: Path) -> Path:
    """HOME and working directory of a step process: empty, no ~/.aws, no ~/.mlflow."""
    home = tmp_path / "home"
    home.mkdir()
    return home
