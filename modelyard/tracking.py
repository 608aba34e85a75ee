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
from modelyard.contract import ENV_IMAGE, ENV_TRACKING_URI, ENV_WORKFLOW_NAME, ENV_WORKFLOW_UID
from modelyard.contract.records import Tags

LOCAL_DIR = Path(".modelyard")
# Bounded client retries: MLflow's defaults (7 retries, factor 2) wait minutes before failing.
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # A direct database store keeps no pooled connection, so forked candidate workers share none.
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    "DO_NOT_TRACK": "true",
}


def embedded_uri(base: Path = LOCAL_DIR) -> str:
    return f"sqlite:///{(base / 'mlflow.db').resolve()}"


def configure(tracking_uri: str | None) -> str:
    """Point MLflow at the given URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store."""
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
def child_run(parent_run_id: str, name: str, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """A run nested under the pipeline's parent run, ended FAILED if the body raises."""
    import mlflow

    parent = mlflow.get_run(parent_run_id)
    with mlflow.start_run(
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


def transient_message(exc: BaseException) -> str:
    """One line for a transient failure that names the server the step was talking to."""
    uri = os.environ.get(ENV_TRACKING_URI, "")
    server = f"MLflow tracking server {uri}" if uri.startswith(("http://", "https://")) else "a server"
    artifacts = " (artifact transfer: check its object store too)" if "/mlflow-artifacts/" in str(exc) else ""
    return f"{server} is unavailable{artifacts}, retry later: {exc}"


def is_transient(exc: BaseException) -> bool:
    """True when the error, or one it was raised from, is a connection failure or a 5xx/429."""
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout | Urllib3Error
        ):
            return True
        code = getattr(seen, "error_code", "")
        if code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
