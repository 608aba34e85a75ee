"""The pipeline against `mlflow server` (PostgreSQL backend, proxied artifacts on S3), as a pod runs it."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .stack import BIN, BUCKET, DATASETS, REPO, S3_ENV, Stack, modelyard, wait_blocked

pytestmark = pytest.mark.integration

# Two candidates keep each run short; the default search space trains eight (twelve for a rare class).
SMALL = "search_space:\n  logistic_regression:\n    C: [0.1, 1.0]\n"
LINEAGE = ("modelyard.pipeline_run_id", "modelyard.decision", "modelyard.dataset_fingerprint")


def run_pipeline(stack: Stack, home: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert stack.mlflow is not None
    (home / "config.yaml").write_text(SMALL)
    return modelyard(
        "run", "--config", "config.yaml", *flags, cwd=home, env=stack.mlflow.client_env(home, **env)
    )


def client(stack: Stack) -> MlflowClient:
    assert stack.mlflow is not None
    return MlflowClient(stack.mlflow.url)


def test_run_registers_champion_with_artifacts_in_bucket(
    stack: Stack, model_name: str, pod_home: Path
) -> None:
    assert stack.mlflow is not None and stack.s3 is not None
    env = stack.mlflow.client_env(pod_home)
    assert not set(S3_ENV) & set(env), "the client must reach S3 only through the MLflow server"

    done = run_pipeline(stack, pod_home, "--model-name", model_name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PROMOTE" in done.stdout

    mlflow = client(stack)
    champion = mlflow.get_model_version_by_alias(model_name, "champion")
    assert champion.version == "1"
    assert all(champion.tags.get(key) for key in LINEAGE), champion.tags
    run = mlflow.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    # The model's files and the reference profile are objects in the bucket, written by the server.
    logged = mlflow.get_logged_model(champion.source.removeprefix("models:/"))
    prefix = logged.artifact_location.removeprefix("mlflow-artifacts:/").strip("/") + "/"
    objects = {o.object_name for o in stack.s3.client().list_objects(BUCKET, prefix=prefix, recursive=True)}
    assert {prefix + "MLmodel", prefix + "model.skops", prefix + "requirements.txt"} <= objects, objects
    profile = f"{run.info.experiment_id}/{champion.run_id}/artifacts/reference/profile.json"
    assert stack.s3.client().stat_object(BUCKET, profile).size > 0

    # A fresh process, with no S3 credentials, loads the champion through the server and predicts.
    serve = (
        "import sys, mlflow, sklearn.datasets as d\n"
        "rows = d.load_iris(as_frame=True).frame.drop(columns=['target']).head(5)\n"
        f"model = mlflow.pyfunc.load_model('models:/{model_name}@champion')\n"
        "print(list(model.predict(rows)))\n"
    )
    loaded = subprocess.run(
        [str(BIN / "python"), "-c", serve], cwd=pod_home, env=env, capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-1] == str(["setosa"] * 5)

    # Everything went through the server (`--app-name modelyard`): it offers no presigned transfers,
    # so no client, modelyard or plain MLflow, was sent to the object store's own address.
    with urllib.request.urlopen(f"{stack.mlflow.url}/api/3.0/mlflow/server-info", timeout=30) as answer:
        info = json.load(answer)
    assert (info["multipart_downloads_enabled"], info["multipart_uploads_enabled"]) == (False, False)
    assert stack.mlflow.process is not None
    access_log = stack.mlflow.process.log.read_text()
    assert "GET /api/3.0/mlflow/server-info" in access_log
    assert "presigned" not in access_log


def test_dataset_from_s3(stack: Stack, model_name: str, pod_home: Path, customers_csv: Path) -> None:
    assert stack.mlflow is not None and stack.s3 is not None
    key = f"{model_name}/customers.csv"
    stack.s3.client().fput_object(DATASETS, key, str(customers_csv))
    uri = f"s3://{DATASETS}/{key}"

    # The pod's optional dataset Secret: read-only keys for the datasets bucket, nothing for artifacts.
    flags = ("--model-name", model_name, "--dataset", uri, "--label", "churn")
    done = run_pipeline(stack, pod_home, *flags, **stack.s3.dataset_env())
    assert done.returncode == 0, done.stderr[-3000:]

    from modelyard.ml.datasets import load_dataset
    from modelyard.steps.split import canonical, fingerprint

    version = client(stack).get_model_version(model_name, "1")
    assert version.tags["modelyard.dataset"] == uri
    expected = fingerprint(canonical(load_dataset(str(customers_csv))))
    assert version.tags["modelyard.dataset_fingerprint"] == expected

    missing = run_pipeline(stack, pod_home, "--model-name", model_name, "--dataset", uri + ".gone",
                           "--label", "churn", **stack.s3.dataset_env())  # fmt: skip
    assert missing.returncode == 2, missing.stderr[-3000:]
    last = missing.stderr.strip().splitlines()[-1]
    assert last.startswith(f"modelyard: error: cannot read dataset {uri}.gone: NoSuchKey"), last


def test_parquet_from_s3_a_file_and_a_partitioned_prefix(
    stack: Stack, model_name: str, pod_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Parquet form the README lists, in S3: a file, and a prefix holding pandas' partition
    folders (read as one table, the partition values as columns), through the read-only keys."""
    import pandas as pd
    from conftest import make_customers

    from modelyard.ml.datasets import load_column, load_dataset

    assert stack.mlflow is not None and stack.s3 is not None
    rows = make_customers(rows=300, seed=5)
    rows.to_parquet(tmp_path / "customers.parquet", index=False)
    rows.to_parquet(tmp_path / "parts", partition_cols=["plan"], index=False)
    s3 = stack.s3.client()
    s3.fput_object(DATASETS, f"{model_name}/customers.parquet", str(tmp_path / "customers.parquet"))
    for part in (tmp_path / "parts").rglob("*.parquet"):
        s3.fput_object(DATASETS, f"{model_name}/parts/{part.relative_to(tmp_path / 'parts')}", str(part))
    for name, value in stack.s3.dataset_env().items():
        monkeypatch.setenv(name, value)

    ordered = lambda frame: frame[sorted(frame.columns)].sort_values(["age", "income"]).reset_index(drop=True)  # noqa: E731
    single = load_dataset(f"s3://{DATASETS}/{model_name}/customers.parquet")
    pd.testing.assert_frame_equal(ordered(single), ordered(rows))
    for prefix in (f"s3://{DATASETS}/{model_name}/parts", f"s3://{DATASETS}/{model_name}/parts/"):
        partitioned = load_dataset(prefix)
        assert sorted(partitioned["plan"].unique()) == ["basic", "enterprise", "pro"]
        pd.testing.assert_frame_equal(ordered(partitioned), ordered(rows), check_dtype=False)
        assert sorted(load_column(prefix, "churn")) == sorted(rows["churn"])

    flags = (
        "--model-name",
        model_name,
        "--dataset",
        f"s3://{DATASETS}/{model_name}/parts",
        "--label",
        "churn",
    )
    done = run_pipeline(stack, pod_home, *flags, **stack.s3.dataset_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert client(stack).get_model_version(model_name, "1").tags["modelyard.dataset"].endswith("/parts")


def test_concurrent_pipelines_one_champion(stack: Stack, model_name: str, tmp_path: Path) -> None:
    """Two pipelines reach registration together: one passes its gates, one fails them."""
    assert stack.mlflow is not None and stack.postgres is not None
    homes = {name: tmp_path / name for name in ("good", "strict")}
    flags = {"good": [], "strict": ["--min-accuracy", "0.999", "--min-f1-macro", "0.999"]}
    lock = stack.postgres.connect()
    lock.autocommit = False
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        # Hold new model versions back until both pipelines wait to create one, then let both go at once.
        lock.cursor().execute("LOCK TABLE model_versions IN EXCLUSIVE MODE")
        for name, home in homes.items():
            home.mkdir()
            (home / "config.yaml").write_text(SMALL)
            argv = [str(BIN / "modelyard"), "run", "--config", "config.yaml", "--model-name", model_name]
            procs[name] = subprocess.Popen(
                [*argv, *flags[name]], cwd=home, env=stack.mlflow.client_env(home),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        wait_blocked(stack.postgres, stack.postgres.database, 2, procs)
    finally:
        lock.rollback()
        lock.close()
    results = {name: (p.communicate(timeout=300), p.returncode) for name, p in procs.items()}
    for name, ((_, err), code) in results.items():
        assert code == 0, f"{name}: {err[-3000:]}"

    mlflow = client(stack)
    versions = {
        v.tags["modelyard.pipeline_run_id"]: v for v in mlflow.search_model_versions(f"name='{model_name}'")
    }
    assert len(versions) == 2 and {v.version for v in versions.values()} == {"1", "2"}
    decisions = {v.tags["modelyard.decision"] for v in versions.values()}
    assert decisions == {"promote", "reject"}
    for run_id, version in versions.items():  # each pipeline recorded its own decision
        assert mlflow.get_run(run_id).data.tags["modelyard.decision"] == version.tags["modelyard.decision"]
    champion = mlflow.get_model_version_by_alias(model_name, "champion")
    assert champion.tags["modelyard.decision"] == "promote"
    assert "all gates passed" in champion.tags["modelyard.reasons"]
    model = mlflow.get_registered_model(model_name)
    assert model.aliases["champion"] == champion.version


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("headless Chromium not found: apt-get install chromium")


def test_ui_shows_model_and_champion(stack: Stack, pod_home: Path) -> None:
    assert stack.mlflow is not None
    model_name = f"ui-{uuid.uuid4().hex[:8]}"  # no alias name in it: the page must show the alias itself
    done = run_pipeline(stack, pod_home, "--model-name", model_name)
    assert done.returncode == 0, done.stderr[-3000:]
    browser = chromium()
    page = f"{stack.mlflow.url}/#/models/{model_name}"
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    shot = out / "mlflow-ui-registered-model.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--window-size=1400,900",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in S3_ENV} | {"HOME": profile}
        dom = subprocess.run(
            [*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120, env=env
        )
        subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, timeout=120, env=env)
    (out / "mlflow-ui-registered-model.html").write_text(dom.stdout)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom.stdout)).replace("\xa0", " ")
    assert f"Model: {model_name} - MLflow" in text, dom.stderr[-2000:]
    assert "Version 1" in text, text[-3000:]
    assert re.search(r"@\s*champion", text) and re.search(r"@\s*challenger", text), text[-3000:]
    assert shot.stat().st_size > 10_000
