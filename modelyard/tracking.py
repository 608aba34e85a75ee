"""MLflow plumbing shared by the steps: where to track, runs, transient-error detection."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard import __version__
from modelyard.config import MLFLOW_DEFAULTS, check_timeouts
from modelyard.contract import ENV_IMAGE, ENV_TRACKING_URI, ENV_WORKFLOW_NAME, ENV_WORKFLOW_UID
from modelyard.contract.records import Tags
from modelyard.errors import Interrupted
from modelyard.errors import is_transient as is_transient  # where the steps and the CLI look for it
from modelyard.errors import transient_message as transient_message

LOCAL_DIR = Path(".modelyard")
CLIENT_DEFAULTS = {name: str(value) for name, value in MLFLOW_DEFAULTS.items()} | {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # A direct database store keeps no pooled connection, so forked candidate workers share none.
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    "DO_NOT_TRACK": "true",
}


def embedded_uri(base: Path = LOCAL_DIR) -> str:
    return f"sqlite:///{(base / 'mlflow.db').resolve()}"


def configure(tracking_uri: str | None) -> str:
    """Point MLflow at the given URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store.

    Checks the timeout settings first: a bad one exits 2 before any directory is created."""
    check_timeouts()
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri or os.environ.get(ENV_TRACKING_URI) or embedded_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_TRACKING_URI] = uri  # inherited by worker processes
    import mlflow

    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = mlflow.get_tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the embedded store, not in ./mlruns
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException as exc:  # another run created it a moment ago
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or not (made := mlflow.get_experiment_by_name(name)):
            raise
        return made.experiment_id


def run_url(run_id: str, experiment_id: str) -> str:
    import mlflow

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return ""
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@contextmanager
def open_run(**start_run: Any) -> Iterator[Any]:
    """mlflow.start_run whose run ends KILLED when a stop signal cuts the body short, FAILED on an error."""
    import mlflow

    with mlflow.start_run(**start_run) as run:
        try:
            yield run
        except Interrupted:
            mlflow.end_run("KILLED")
            raise


@contextmanager
def child_run(parent_run_id: str, name: str, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """A run nested under the pipeline's parent run, ended FAILED if the body raises, KILLED if stopped."""
    import mlflow

    parent = mlflow.get_run(parent_run_id)
    with open_run(
        experiment_id=parent.info.experiment_id,
        run_name=name,
        parent_run_id=parent_run_id,
        tags={Tags.STEP: name} | (tags or {}),
    ) as run:
        yield run


def metric_key(name: str) -> str:
    """A column name as a valid MLflow metric key (no parentheses, commas, ...)."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def code_version() -> str:
    """The git commit when running from a checkout, else the baked-in or package version."""
    if baked := os.environ.get("MODELYARD_CODE_VERSION"):
        return baked
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
        return f"{__version__}+g{sha[:12]}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def lineage_tags() -> dict[str, str]:
    """Where this run came from: code version, image, workflow (when set)."""
    tags = {Tags.CODE_VERSION: code_version()}
    for env, key in (
        (ENV_IMAGE, Tags.IMAGE),
        (ENV_WORKFLOW_NAME, Tags.WORKFLOW_NAME),
        (ENV_WORKFLOW_UID, Tags.WORKFLOW_UID),
    ):
        if value := os.environ.get(env):
            tags[key] = value
    return tags
