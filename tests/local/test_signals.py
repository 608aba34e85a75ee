"""Stop signals sent to a real `modelyard run` while its candidates train: Ctrl-C (SIGINT to the
process group, as a terminal sends it) and SIGTERM (to the process alone, as `docker stop`, the
kubelet and a cancelled CI job send it). It exits 130/143 within seconds, every MLflow run of the
pipeline is closed, no queued candidate starts, nothing is registered and the champion stays.
The Docker half does the same with every step in a container, and stops one step's container
from outside with `docker stop`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import MODELYARD, REPO, make_customers, modelyard, store_client
from integration.stack import Process, free_port, http_ok, wait_for
from mlflow import MlflowClient

from modelyard.contract.records import Tags

MODEL = "stoppable"
# Three slow candidates, two at a time: one is still queued when the signal comes.
SLOW_SPACE = {
    "random_forest": {"n_estimators": [400], "max_depth": [None, 16]},
    "gradient_boosting": {"n_estimators": [400]},
}
EASY_GATES = {"min_accuracy": 0.5, "min_f1_macro": 0.3, "min_roc_auc": 0.5}


def write_config(path: Path, dataset: str, space: dict) -> Path:
    config = {"dataset": dataset, "label": "churn", "model_name": MODEL, "search_space": space}
    path.write_text(yaml.safe_dump(config | {"thresholds": EASY_GATES}))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose first, quick run promoted v1; then a table big enough to train for a while."""
    root = tmp_path_factory.mktemp("signals")
    make_customers(600).to_csv(root / "small.csv", index=False)
    make_customers(60_000, seed=1).to_csv(root / "big.csv", index=False)
    quick = write_config(root / "quick.yaml", "small.csv", {"logistic_regression": {"C": [1.0]}})
    write_config(root / "slow.yaml", "big.csv", SLOW_SPACE)
    done = modelyard("run", "--config", str(quick), cwd=root)
    assert done.returncode == 0, done.stderr
    assert champion(root) == "1"
    return root


def champion(root: Path) -> str:
    return str(store_client(root).get_model_version_by_alias(MODEL, "champion").version)


class Watched:
    """A `modelyard run` in its own session (process group), its stderr lines collected as they come."""

    def __init__(self, root: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*MODELYARD, *args],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "\n".join(self.lines[-30:])
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.1)

    def stderr(self) -> str:
        self.reader.join(timeout=10)
        return "\n".join(self.lines)


def pipeline_runs(root: Path) -> list:
    mlflow = store_client(root)
    experiment = mlflow.get_experiment_by_name("modelyard")
    assert experiment is not None
    return mlflow.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_stop_signal_closes_every_run_and_exits_within_seconds(
    project: Path, signum: int, code: int
) -> None:
    before = {run.info.run_id for run in pipeline_runs(project)}
    work_dirs = set((project / ".modelyard" / "runs").iterdir())
    run = Watched(project, "run", "--config", "slow.yaml", "--parallel", "2")
    try:
        run.wait_for("train: started 2/3", timeout=400)
        time.sleep(2)  # both candidates are fitting
        sent = time.time()
        if signum == signal.SIGINT:
            os.killpg(run.proc.pid, signum)  # a terminal's Ctrl-C reaches the whole foreground group
        else:
            run.proc.send_signal(signum)
        exit_code = run.proc.wait(timeout=60)
        took = time.time() - sent
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    stderr = run.stderr()
    assert exit_code == code, stderr[-3000:]
    assert took < 10, took
    assert stderr.splitlines()[-1] == f"modelyard: error: stopped by {signal.Signals(signum).name}"
    assert "train: started 3/3" not in stderr  # the queued candidate was cancelled
    assert "train: cancelled 1 queued" in stderr

    runs = [r for r in pipeline_runs(project) if r.info.run_id not in before]
    (parent,) = [r for r in runs if Tags.STEP not in r.data.tags]
    assert parent.info.status == "KILLED"
    assert parent.data.tags[Tags.FAILURE] == f"train stopped by {signal.Signals(signum).name}"
    assert parent.info.end_time <= (sent + took) * 1000
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED", "FAILED"}, [r.info.status for r in runs]
    late = [r.info.run_name for r in runs if r.info.status == "FINISHED" and r.info.end_time > sent * 1000]
    assert not late, f"finished after the signal: {late}"
    assert not [r for r in runs if Tags.CANDIDATE in r.data.tags and r.info.status == "FINISHED"]

    versions = store_client(project).search_model_versions(f"name='{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert champion(project) == "1"
    (work_dir,) = set((project / ".modelyard" / "runs").iterdir()) - work_dirs
    assert (work_dir / "tasks" / "validate.json").exists()
    assert not (work_dir / "tasks" / "train.json").exists()  # no train outputs for select to read


# --- The same with every step in a container (`modelyard run --image`) ---------------------------------

NO_DOCKER = "Docker engine not running: install docker.io and start dockerd (CI does: .ci/run)"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def trainer_image() -> str:
    """The trainer image of this tree: MODELYARD_TRAINER_IMAGE when set, else built (or reused from
    Docker's cache) by scripts/build-images.sh."""
    if shutil.which("docker") is None or _docker("info").returncode:
        pytest.skip(NO_DOCKER)
    if image := os.environ.get("MODELYARD_TRAINER_IMAGE"):
        return image
    script = REPO / "scripts" / "build-images.sh"
    built = subprocess.run(
        ["bash", str(script), "--only", "trainer"], capture_output=True, text=True, timeout=1800
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tags = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
    return tags["MODELYARD_TRAINER_IMAGE"]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (SQLite, proxied local artifacts), as the containers need."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = Process("mlflow server", argv, root / "server.log")
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/health"), f"MLflow server {url}", 180, server.log)
        yield url
    finally:
        server.stop()


def our_containers(root: Path) -> list[str]:
    """Running containers of the runs in this project: labelled, with a mount from its directory."""
    ids = _docker("ps", "--quiet", "--filter", "label=modelyard.run").stdout.split()
    mine = []
    for container in ids:
        mounts = _docker("inspect", "--format", "{{range .Mounts}}{{.Source}} {{end}}", container).stdout
        if str(root) in mounts:
            mine.append(container)
    return mine


def server_runs(url: str, before: frozenset[str] | set[str] = frozenset()) -> list:
    """The runs on the server but those in `before`; none before a pipeline made the experiment."""
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("modelyard")
    if experiment is None:
        return []
    return [
        r
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if r.info.run_id not in before
    ]


@pytest.mark.docker
@pytest.mark.parametrize("stopped_by", ["sigterm-to-modelyard", "docker-stop-of-a-step"])
def test_a_stop_ends_a_run_in_containers_the_same_way(
    project: Path, trainer_image: str, mlflow_server: str, stopped_by: str
) -> None:
    before = {r.info.run_id for r in server_runs(mlflow_server)}
    run = Watched(
        project, "run", "--image", trainer_image, "--tracking-uri", mlflow_server,
        "--config", "slow.yaml", "--parallel", "2",
    )  # fmt: skip
    try:
        run.wait_for("train: started 2/3", timeout=900)
        deadline = time.monotonic() + 60
        while len(containers := our_containers(project)) < 2:  # both train containers are up
            assert time.monotonic() < deadline, "\n".join(run.lines[-30:])
            time.sleep(0.5)
        time.sleep(5)  # fitting
        sent = time.time()
        if stopped_by == "docker-stop-of-a-step":
            assert _docker("stop", containers[0]).returncode == 0  # SIGTERM, as the kubelet sends it
        else:
            run.proc.send_signal(signal.SIGTERM)
        exit_code = run.proc.wait(timeout=120)
        took = time.time() - sent
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    stderr = run.stderr()
    assert exit_code == 143, stderr[-3000:]
    assert took < 30, took
    assert stderr.splitlines()[-1] == "modelyard: error: stopped by SIGTERM", stderr[-2000:]
    assert "train: started 3/3" not in stderr
    assert our_containers(project) == []  # every step container stopped (and removed: --rm)
    runs = server_runs(mlflow_server, before)
    (parent,) = [r for r in runs if Tags.STEP not in r.data.tags]
    assert parent.info.status == "KILLED"
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED", "FAILED"}, [r.info.status for r in runs]
    assert not [r for r in runs if Tags.CANDIDATE in r.data.tags and r.info.status == "FINISHED"]
