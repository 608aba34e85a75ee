"""MLflow plumbing shared by the steps: where to track, runs, locks, transient-error detection."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard import __version__
from modelyard.contract.config import MLFLOW_DEFAULTS, MLFLOW_RETRIES, MLFLOW_TIMEOUT, check_timeouts
from modelyard.contract.records import Tags
from modelyard.core.errors import BadInputError
from modelyard.core.settings import ENV_IMAGE, ENV_TRACKING_URI, ENV_WORKFLOW_NAME, ENV_WORKFLOW_UID
from modelyard.core.signals import Interrupted
from modelyard.core.transient import is_transient as is_transient  # where the steps and the CLI look for it
from modelyard.core.transient import transient_message as transient_message

LOCAL_DIR = Path(".modelyard")
SQLITE = "sqlite:///"
# MLflow 3's UI opens an experiment on its GenAI pages unless the experiment is tagged as classic
# ML (the tag the UI's own "experiment type" selector sets) or the URL asks for that view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
RUNS_VIEW = "runs?workflowType=machine_learning"
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
CLIENT_DEFAULTS = {name: str(value) for name, value in MLFLOW_DEFAULTS.items()} | {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # A direct database store keeps no pooled connection, so forked candidate workers share none.
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    "DO_NOT_TRACK": "true",
    # Artifacts go through the tracking server, which holds the object store's credentials. An
    # MLflow 3 client otherwise asks the server for presigned URLs, which name the object store's
    # address as the server sees it (inside a cluster: unreachable from a laptop's port-forward).
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
}
# A lookup before a server starts: one that cannot reach MLflow exits 75 at once, and its restart
# (a pod's, by the kubelet) is the retry, rather than waiting out 15 s x 3 attempts first.
QUICK_REQUESTS = {MLFLOW_TIMEOUT: 5, MLFLOW_RETRIES: 1}


def embedded_uri(base: Path = LOCAL_DIR) -> str:
    return f"{SQLITE}{(base / 'mlflow.db').resolve()}"


def resolve_uri(tracking_uri: str | None) -> str:
    """The given URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store."""
    return tracking_uri or os.environ.get(ENV_TRACKING_URI) or embedded_uri()


def embedded_db(uri: str) -> Path | None:
    """The database file of an embedded SQLite store; None for any other store."""
    return Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else None


def configure(tracking_uri: str | None) -> str:
    """Point MLflow at the given URI, else $MLFLOW_TRACKING_URI, else the embedded SQLite store.

    Checks the timeout settings first: a bad one exits 2 before any directory is created."""
    check_timeouts()
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = resolve_uri(tracking_uri)
    if (db := embedded_db(uri)) is not None:
        writable_dir(db.parent, "the MLflow store's directory")
        db.parent.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_TRACKING_URI] = uri  # inherited by worker processes
    import mlflow

    mlflow.set_tracking_uri(uri)
    if db is not None:
        _create_store_once(uri, db)
    return uri


@contextmanager
def quick_requests() -> Iterator[None]:
    """MLflow requests inside give up sooner (QUICK_REQUESTS) unless the user set the variables.
    Enter it before `configure`: on the way out the variables it set get configure's defaults."""
    shortened = [name for name in QUICK_REQUESTS if name not in os.environ]
    for name in shortened:
        os.environ[name] = str(QUICK_REQUESTS[name])
    try:
        yield
    finally:
        for name in shortened:
            os.environ[name] = CLIENT_DEFAULTS[name]


def _create_store_once(uri: str, db: Path) -> None:
    """Open the embedded store under a lock: the first process creates the tables while the others
    wait, since MLflow's migrations fail when two processes run them on one fresh database."""
    from mlflow import MlflowClient

    with file_lock(db.with_name(db.name + ".lock")):
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # the tracking store: creates and migrates the tables
        client.search_registered_models(max_results=1)  # the registry store: finds them made


def writable_dir(path: Path, what: str = "the work dir") -> None:
    """Refuse a directory that cannot be written or created, before anything is created in it."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"{what} {path} cannot be created: {existing.absolute()} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is" if existing == path else f"cannot be created: {existing.absolute()} is"
        raise BadInputError(f"{what} {path} {where} not writable")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of one machine; released when the holder exits, even by a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def lock_path(model_name: str, tracking_uri: str | None = None) -> Path:
    """The lock file guarding the champion alias of one model of the store (default: the current
    one): beside the embedded store's database, else in this machine's temp dir (a tracking
    server's models are guarded only among the runs of one machine; Argo's mutex guards them in
    the cluster)."""
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    if (db := embedded_db(uri)) is not None:
        return db.parent / "locks" / f"{model_name}.lock"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "modelyard-locks" / digest / f"{model_name}.lock"


def experiment_id(name: str) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in EXPERIMENT_KIND.items():
            if key not in experiment.tags:  # made before modelyard tagged its experiments
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    location = None
    if (db := embedded_db(mlflow.get_tracking_uri())) is not None:  # artifacts beside the store, not ./mlruns
        location = (db.parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException as exc:  # another run created it a moment ago
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or not (made := mlflow.get_experiment_by_name(name)):
            raise
        return made.experiment_id


def experiment_url(experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI: the tracking server's, else what `mlflow ui` serves."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}/{RUNS_VIEW}"


def ui_command(tracking_uri: str, experiment_id: str) -> str:
    """How to look at an embedded store's runs: the command, then the page to open."""
    return f"mlflow ui --backend-store-uri {tracking_uri}  # then open {experiment_url(experiment_id)}"


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
