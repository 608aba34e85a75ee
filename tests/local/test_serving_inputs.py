"""What a registered champion accepts as raw rows: a missing value in any feature (an integer one
included) is imputed, through MLflow's pyfunc and through the real scoring server alike, which still
refuses a request that lacks a column. `modelyard serve` runs that server for one version, named in
a header of every answer, and refuses a version or alias that does not exist before it starts."""

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
from email.message import Message
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import MODELYARD, ONE_CANDIDATE, champion_predictions, make_customers, modelyard, store_client

from modelyard.backends.tracking import embedded_uri
from modelyard.contract.serving import MODEL_VERSION_HEADER

MODEL = "visits"
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


def exchange(url: str, records: list[dict[str, Any]]) -> tuple[int, Message, dict[str, Any]]:
    """POST rows to a scoring server: the status, the headers and the JSON answer."""
    body = json.dumps({"dataframe_records": records}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def post(url: str, records: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, _, answer = exchange(url, records)
    return status, answer


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
        stop(server)


def stop(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the server's process group; its exit status (SIGKILL after 30 s)."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        return server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return server.wait()


def test_modelyard_serve_answers_with_the_champion_and_names_its_version(
    project: Path, tmp_path: Path
) -> None:
    champion = str(store_client(project).get_model_version_by_alias(MODEL, "champion").version)
    frame = make_customers(40, seed=7).drop(columns="churn")
    frame["visits"] = np.random.default_rng(7).integers(0, 30, len(frame))
    # Numbers missing (incomes, visits), no category: the server hands the model a JSON null in a
    # text column as None, which scikit-learn's imputer does not count as missing (the one-hot
    # encoder takes it for an unseen category), while champion_predictions' frame holds NaN there.
    frame["region"] = frame["region"].fillna("eu")
    rows = json.loads(frame.to_json(orient="records"))
    for row in rows[::5]:
        row["visits"] = None
    port = free_port()
    env = os.environ | {"MLFLOW_TRACKING_URI": embedded_uri(project / ".modelyard")}
    # As the chart's pod runs it: the version from the pod template, empty meaning "the alias's".
    serve = ["serve", "--model-name", MODEL, "--version=", "--alias", "champion", "--port", str(port)]
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [*MODELYARD, *serve],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/ping", server)
        status, headers, answer = exchange(f"{base}/invocations", rows)
        assert status == 200, answer
        assert answer["predictions"] == champion_predictions(project, MODEL, pd.DataFrame(rows))
        assert headers[MODEL_VERSION_HEADER] == champion
        status, headers, answer = exchange(f"{base}/invocations", [ROW])  # no `visits` column
        assert status == 400, answer
        assert "missing inputs ['visits']" in str(answer["message"]), answer
        assert headers[MODEL_VERSION_HEADER] == champion
    finally:
        code = stop(server)
    said = (tmp_path / "server.log").read_text()
    assert f"serving {MODEL} v{champion} (@champion) on http://127.0.0.1:{port}" in said, said
    assert code == 0, said  # a server stopped by SIGTERM, once it has answered, did its job


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--model-name", MODEL, "--version", "99"), f"model '{MODEL}' has no version 99"),
        (("--model-name", MODEL, "--alias", "nightly"), f"model '{MODEL}' has no alias 'nightly'"),
        (("--model-name", "never-trained"), "model 'never-trained' is not registered"),
    ],
    ids=["version", "alias", "model"],
)
def test_modelyard_serve_refuses_what_the_registry_does_not_hold(
    project: Path, flags: tuple[str, ...], expected: str
) -> None:
    env = {"MLFLOW_TRACKING_URI": embedded_uri(project / ".modelyard")}
    done = modelyard("serve", *flags, "--port", str(free_port()), cwd=project, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"modelyard: error: {expected}" in done.stderr, done.stderr


def test_modelyard_serve_exits_75_at_once_when_the_tracking_server_is_down(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    done = modelyard("serve", "--model-name", MODEL, "--tracking-uri", uri, cwd=tmp_path, timeout=120)
    seconds = time.monotonic() - started
    assert done.returncode == 75, done.stderr
    assert f"MLflow tracking server {uri} is unavailable" in done.stderr, done.stderr
    assert seconds < 30, seconds


def deploy(project: Path, tmp_path: Path, *flags: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "MLFLOW_TRACKING_URI": embedded_uri(project / ".modelyard"),
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(tmp_path),  # no ~/.kube/config to fall back on
    }
    return modelyard("deploy", "--model-name", MODEL, *flags, cwd=project, env=env, timeout=120)


def test_modelyard_deploy_refuses_an_unknown_version_before_it_looks_for_a_cluster(
    project: Path, tmp_path: Path
) -> None:
    done = deploy(project, tmp_path, "--version", "99", kubeconfig=tmp_path / "none")
    assert done.returncode == 2, done.stderr
    assert f"modelyard: error: model '{MODEL}' has no version 99" in done.stderr, done.stderr


def test_modelyard_deploy_without_a_cluster_exits_2_and_with_one_unreachable_75(
    project: Path, tmp_path: Path
) -> None:
    done = deploy(project, tmp_path, "--version", "1", kubeconfig=tmp_path / "none")
    assert done.returncode == 2, done.stderr
    assert "modelyard: error: no Kubernetes cluster configured" in done.stderr, done.stderr

    closed = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": closed, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "serving"}}],
                "current-context": "x",
            }
        )
    )
    started = time.monotonic()
    done = deploy(project, tmp_path, "--version", "1", kubeconfig=kubeconfig)
    assert done.returncode == 75, done.stderr
    assert "modelyard: error: the Kubernetes API server is unreachable" in done.stderr, done.stderr
    assert time.monotonic() - started < 60


def test_promotion_canary_without_a_cluster_exits_2_before_any_run_or_version(
    project: Path, tmp_path: Path
) -> None:
    client = store_client(project)
    versions = len(client.search_model_versions(f"name='{MODEL}'"))
    runs = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    env = {"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    args = ("--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn", *GATES)
    done = modelyard("run", *args, "--model-name", MODEL, "--promotion", "canary", cwd=project, env=env)
    assert done.returncode == 2, done.stderr
    assert "modelyard: error: no Kubernetes cluster configured" in done.stderr, done.stderr
    assert len(client.search_model_versions(f"name='{MODEL}'")) == versions
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == runs


def test_under_promotion_canary_a_passing_version_leaves_champion_to_the_deploy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.backends.tracking import configure
    from modelyard.contract.records import PROMOTE, ChampionScore, Evaluation
    from modelyard.steps.register import decide

    # The new version's source (models:/m-...) resolves in the project's store, as the tracking_uri
    # fixture points in-process steps at a store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", embedded_uri(project / ".modelyard"))
    configure(embedded_uri(project / ".modelyard"))
    client = store_client(project)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.create_model_version(MODEL, champion.source, champion.run_id)
    compared = ChampionScore(version=str(champion.version), metrics={"f1_macro": 0.5})
    passed = Evaluation(
        candidate_run_id=champion.run_id,
        metrics={},
        champion=compared,
        gates=[],
        decision=PROMOTE,
        reasons=[],
    )
    decision, note = decide(client, challenger, passed, canary=True)
    assert decision == PROMOTE
    assert note == (
        f"v{challenger.version} passed: it goes out as a canary (promotion: canary); "
        f"champion stays v{champion.version} until the canary is promoted"
    )
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion.version
