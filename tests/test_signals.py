"""Stop signals sent to a real `modelyard run` while its candidates train: Ctrl-C (SIGINT to the
process group, as a terminal sends it) and SIGTERM (to the process alone, as `docker stop`, the
kubelet and a cancelled CI job send it). It exits 130/143 within seconds, every MLflow run of the
pipeline is closed, no queued candidate starts, nothing is registered and the champion stays."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import MODELYARD, make_customers, modelyard
from mlflow import MlflowClient

from modelyard.contract.records import Tags
from modelyard.tracking import embedded_uri

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


def client(root: Path) -> MlflowClient:
    return MlflowClient(embedded_uri(root / ".modelyard"))


def champion(root: Path) -> str:
    return str(client(root).get_model_version_by_alias(MODEL, "champion").version)


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
    mlflow = client(root)
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

    versions = client(project).search_model_versions(f"name='{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert champion(project) == "1"
    (work_dir,) = set((project / ".modelyard" / "runs").iterdir()) - work_dirs
    assert (work_dir / "tasks" / "validate.json").exists()
    assert not (work_dir / "tasks" / "train.json").exists()  # no train outputs for select to read
