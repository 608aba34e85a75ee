"""Faults, as pods meet them: the tracking server or the object store dies while a step runs.

The steps run one process each (`modelyard step ...`), sharing a work dir, as Argo runs them; a
failed step exits 75 and is run again with the same inputs, as Argo's retry policy does. A lock the
test holds in PostgreSQL stops the server at an exact point of the step, so each fault is certain.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .stack import BIN, BUCKET, MlflowServer, Postgres, S3Server, Stack, wait_blocked

pytestmark = pytest.mark.integration

DATABASE = "faults"
CONFIG = "search_space:\n  logistic_regression:\n    C: [1.0]\n"
LINEAGE = ("modelyard.pipeline_run_id", "modelyard.decision", "modelyard.dataset_fingerprint")
TRANSIENT = 75


@dataclass
class Faults:
    """An MLflow server and an S3 server of its own, which these tests stop and start again."""

    postgres: Postgres
    s3: S3Server
    mlflow: MlflowServer

    def heal(self) -> None:
        assert self.s3.process is not None and self.mlflow.process is not None
        if not self.s3.process.running:
            self.s3.start()
        if not self.mlflow.process.running:
            self.mlflow.start()


@pytest.fixture(scope="module")
def faults(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    assert stack.postgres is not None
    root = tmp_path_factory.mktemp("faults")
    stack.postgres.create_database(DATABASE)
    s3 = S3Server(root / "s3")
    server = MlflowServer(root / "mlflow", stack.postgres.uri(DATABASE), s3)
    try:
        s3.start()
        server.start()
        yield Faults(stack.postgres, s3, server)
    finally:
        server.stop()
        s3.stop()


@pytest.fixture
def healthy(faults: Faults) -> Iterator[Faults]:
    """The fault stack, running again after the test whatever the test did to it."""
    faults.heal()
    try:
        yield faults
    finally:
        faults.heal()


class Pod:
    """Runs steps the way the workflow does: one process per step, outputs read from files."""

    def __init__(self, server: MlflowServer, work: Path) -> None:
        self.server, self.work = server, work
        self.home = work.parent / f"{work.name}-home"
        self.home.mkdir(parents=True, exist_ok=True)

    def argv(self, step: str, **params: str) -> list[str]:
        flags = [item for name, value in params.items() for item in (f"--{name.replace('_', '-')}", value)]
        return [str(BIN / "modelyard"), "step", step, *flags, "--work-dir", str(self.work)]

    def env(self, **extra: str) -> dict[str, str]:
        return self.server.client_env(self.home, **extra)

    def run(self, step: str, **params: str) -> dict[str, str]:
        done = subprocess.run(
            self.argv(step, **params),
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"step {step} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self, step: str, env: dict[str, str], **params: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(step, **params), cwd=self.home, env=self.env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip


@dataclass
class Evaluated:
    """A pipeline whose steps ran up to evaluate: what the register step gets."""

    work: Path
    config: str
    run_id: str

    def for_model(self, name: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
        """A copy of the work dir and the register step's params, registering under `name`."""
        work = tmp_path / "work"
        shutil.copytree(self.work, work)
        config = json.loads(self.config) | {"model_name": name}
        return work, {"config": json.dumps(config), "run_id": self.run_id, "model_name": name}


@pytest.fixture(scope="module")
def evaluated(faults: Faults, tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    faults.heal()
    pod = Pod(faults.mlflow, tmp_path_factory.mktemp("pod") / "work")
    prepared = pod.run("prepare", config=CONFIG, model_name="faults")
    context = {"config": prepared["config"], "run_id": prepared["run_id"]}
    pod.run("split", **context)
    pod.run("validate", **context)
    results = [pod.run("train", **context, candidate=json.dumps(c))["result"]
               for c in json.loads(prepared["candidates"])]  # fmt: skip
    selected = pod.run("select", **context, results=json.dumps(results))
    decision = pod.run("evaluate", **context, candidate_run_id=selected["candidate_run_id"])
    assert decision["decision"] == "promote"
    return Evaluated(pod.work, prepared["config"], prepared["run_id"])


def unfinished_versions(postgres: Postgres, name: str) -> list[int]:
    """Versions in the registry's database that lack their lineage tags: half-registered ones."""
    conn = postgres.connect(DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT v.version FROM model_versions v WHERE v.name = %s AND NOT EXISTS (SELECT 1 FROM"
                " model_version_tags t WHERE t.name = v.name AND t.version = v.version AND t.key = %s)",
                (name, LINEAGE[0]),
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def locked(postgres: Postgres, table: str):  # -> psycopg2 connection holding the lock
    """Writes to `table` wait until the returned connection rolls back; reads go on."""
    conn = postgres.connect(DATABASE)
    conn.autocommit = False
    conn.cursor().execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    return conn


def assert_registered_once(server: MlflowServer, name: str, candidate_run_id: str) -> None:
    client = MlflowClient(server.url)
    versions = client.search_model_versions(f"name='{name}'")
    assert [v.version for v in versions] == ["1"], "a retried step must not add a version"
    version = client.get_model_version(name, "1")
    assert version.run_id == candidate_run_id
    assert all(version.tags.get(key) for key in LINEAGE), version.tags
    assert set(client.get_registered_model(name).aliases) == {"champion", "challenger"}


def candidate_of(work: Path) -> str:
    return json.loads((work / "evaluation" / "evaluation.json").read_text())["candidate_run_id"]


def test_tracking_server_killed_during_register(
    healthy: Faults, evaluated: Evaluated, tmp_path: Path
) -> None:
    name = f"killed-{uuid.uuid4().hex[:6]}"
    work, params = evaluated.for_model(name, tmp_path)
    pod = Pod(healthy.mlflow, work)
    lock = locked(healthy.postgres, "model_version_tags")
    try:
        register = pod.start("register", {}, **params)
        wait_blocked(healthy.postgres, DATABASE, 1, {"register": register})
        healthy.mlflow.stop(signal.SIGKILL)  # the server dies with the registration in flight
    finally:
        lock.rollback()
        lock.close()
    _, err = register.communicate(timeout=180)
    assert register.returncode == TRANSIENT, err[-3000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"modelyard: error: MLflow tracking server {healthy.mlflow.url} is unavailable")
    assert "Traceback" not in err
    assert unfinished_versions(healthy.postgres, name) == []

    healthy.mlflow.start()
    pod.run("register", **params)  # the retry, with the same inputs
    assert_registered_once(healthy.mlflow, name, candidate_of(work))
    assert unfinished_versions(healthy.postgres, name) == []


def test_object_store_stopped_during_upload(healthy: Faults, evaluated: Evaluated, tmp_path: Path) -> None:
    name = f"s3down-{uuid.uuid4().hex[:6]}"
    work, params = evaluated.for_model(name, tmp_path)
    pod = Pod(healthy.mlflow, work)
    # The model's record is written just before its files go up: hold it there, then stop S3.
    lock = locked(healthy.postgres, "logged_models")
    try:
        register = pod.start("register", {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}, **params)
        wait_blocked(healthy.postgres, DATABASE, 1, {"register": register})
        healthy.s3.stop()
    finally:
        lock.rollback()
        lock.close()
    _, err = register.communicate(timeout=300)
    assert register.returncode == TRANSIENT, err[-3000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"modelyard: error: MLflow tracking server {healthy.mlflow.url} is unavailable")
    assert "artifact transfer" in message, message
    assert "Traceback" not in err
    assert MlflowClient(healthy.mlflow.url).search_model_versions(f"name='{name}'") == []

    healthy.s3.start()
    pod.run("register", **params)
    assert_registered_once(healthy.mlflow, name, candidate_of(work))
    version = MlflowClient(healthy.mlflow.url).get_model_version(name, "1")
    model_id = version.source.removeprefix("models:/")
    objects = [o.object_name for o in healthy.s3.client().list_objects(BUCKET, recursive=True)]
    assert any(o.endswith(f"/models/{model_id}/artifacts/model.skops") for o in objects)


def test_client_retries_are_bounded_and_configurable(healthy: Faults, evaluated: Evaluated) -> None:
    pod = Pod(healthy.mlflow, evaluated.work.parent / "retry")
    params = {"run_id": evaluated.run_id, "status": "Succeeded"}
    healthy.mlflow.stop()

    # Down for good: exactly the configured number of retries, then exit 75 naming the server.
    failed = pod.start(
        "finish",
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"},
        **params,
    )
    _, err = failed.communicate(timeout=120)
    assert failed.returncode == TRANSIENT, err[-3000:]
    assert err.count("Retrying (Retry(") == 2, err[-3000:]
    assert f"MLflow tracking server {healthy.mlflow.url} is unavailable" in err.strip().splitlines()[-1]

    # Back while the client backs off: the same call goes through.
    patient = pod.start(
        "finish",
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2"},
        **params,
    )
    lines: list[str] = []
    first_retry = threading.Event()

    def read() -> None:
        assert patient.stderr is not None
        for line in patient.stderr:
            lines.append(line)
            if "Retrying (Retry(" in line:
                first_retry.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first_retry.wait(60), "".join(lines)[-3000:]
    healthy.mlflow.start()
    assert patient.wait(timeout=180) == 0, "".join(lines)[-3000:]
    reader.join(10)
    assert MlflowClient(healthy.mlflow.url).get_run(evaluated.run_id).info.status == "FINISHED"


def test_an_unreadable_champion_profile_is_an_outage_not_no_champion(
    healthy: Faults, evaluated: Evaluated, tmp_path: Path
) -> None:
    name = f"profile-{uuid.uuid4().hex[:6]}"
    work, params = evaluated.for_model(name, tmp_path)
    pod = Pod(healthy.mlflow, work)
    pod.run("register", **params)  # a champion whose data profile is an object in the bucket
    context = {"config": params["config"], "run_id": params["run_id"]}
    healthy.s3.stop()  # the artifact store is down, the tracking server is up
    done = subprocess.run(
        pod.argv("validate", **context),
        cwd=pod.home,
        env=pod.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == TRANSIENT, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"modelyard: error: cannot read the data profile of {name} v1 (champion)"), (
        message
    )
    assert "Traceback" not in done.stderr
    healthy.s3.start()
    assert pod.run("validate", **context) == {"status": "pass"}  # the retry checks against the champion
    report = json.loads((work / "validation" / "report.json").read_text())
    assert report["reference"] == f"champion of {name}" and report["drift"]
