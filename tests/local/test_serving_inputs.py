"""What a registered champion accepts as raw rows: a missing value in any feature (an integer one
included) is imputed, through MLflow's pyfunc and through the real scoring server alike, which still
refuses a request that lacks a column."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import champion_predictions, make_customers, modelyard

from modelyard.backends.tracking import embedded_uri

MODEL = "visits"
ONE_CANDIDATE = "search_space: {logistic_regression: {C: [1.0]}}\n"
GATES = ("--min-accuracy", "0", "--min-f1-macro", "0", "--min-roc-auc", "0")
ROW = {"age": 40.0, "income": 22000.0, "plan": "pro", "region": "eu"}
SERVER_START_SECONDS = 180


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose champion was trained on an integer feature (`visits`) never missing."""
    root = tmp_path_factory.mktemp("serving")
    frame = make_customers(300)
    frame["visits"] = np.random.default_rng(1).integers(0, 30, len(frame))
    frame.to_csv(root / "customers.csv", index=False)
    (root / "pipeline.yaml").write_text(ONE_CANDIDATE)
    args = ("--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn")
    done = modelyard("run", *args, "--model-name", MODEL, *GATES, cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_pyfunc_imputes_a_missing_integer_and_still_takes_plain_integers(project: Path) -> None:
    missing = pd.DataFrame([ROW | {"visits": None}, ROW | {"visits": 3}])
    assert set(champion_predictions(project, MODEL, missing)) <= {"yes", "no"}
    integers = pd.DataFrame([ROW | {"visits": 3}, ROW | {"visits": 29}])  # int64, as a CSV reads them
    assert len(champion_predictions(project, MODEL, integers)) == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(url: str, records: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"dataframe_records": records}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, "the model server exited"
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the model server did not answer {url} within {SERVER_START_SECONDS} s")


def test_the_scoring_server_imputes_a_missing_integer_and_refuses_a_missing_column(
    project: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = os.environ | {
        "MLFLOW_TRACKING_URI": embedded_uri(project / ".modelyard"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # it execs uvicorn
    }
    serve = ["models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager", "local"]
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", *serve, "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn, its child, stops with it
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/ping", server)
        status, answer = post(f"{base}/invocations", [ROW | {"visits": None}, ROW | {"visits": 3}])
        assert status == 200, answer
        assert set(answer["predictions"]) <= {"yes", "no"}
        status, answer = post(f"{base}/invocations", [ROW])
        assert status == 400, answer
        assert "missing inputs ['visits']" in str(answer["message"]), answer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
