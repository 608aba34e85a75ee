"""Shared fixtures: a throwaway MLflow store, generated datasets, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELYARD = [sys.executable, "-m", "modelyard.cli.main"]
# A pipeline config for tests about something other than the search: one quick candidate.
ONE_CANDIDATE = "search_space: {logistic_regression: {C: [1.0]}}\n"
# Tests choose their own MLflow store; one exported by the user's shell must never receive test runs.
os.environ.pop("MLFLOW_TRACKING_URI", None)


def make_customers(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A churn table with categorical columns and missing values, like a real export."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "enterprise"], rows, p=[0.5, 0.35, 0.15])
    region = rng.choice(["eu", "us", "apac"], rows).astype(object)
    age = rng.normal(40, 12, rows).round()
    income = rng.lognormal(10, 0.4, rows).round(2)
    logits = (
        0.08 * (age - 40)
        - 1.2 * (plan == "enterprise")
        + 0.9 * (plan == "basic")
        - 0.00002 * (income - 22000)
    )
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logits)), "yes", "no")
    region[rng.random(rows) < 0.05] = None
    income[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "region": region, "churn": churn})


@pytest.fixture(scope="session", autouse=True)
def openmp_safe_to_fork() -> Iterator[None]:
    """Tests run pipelines in their own process, whose runner forks candidate workers, after other
    tests predicted in it: the process keeps OpenMP to one thread, as the CLI's does."""
    from modelyard.runner.local import forking_parent

    with forking_parent():
        yield


@pytest.fixture
def customers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    make_customers().to_csv(path, index=False)
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh embedded MLflow store for one test, used by in-process steps and subprocesses alike."""
    from modelyard.backends.tracking import configure, embedded_uri

    uri = embedded_uri(tmp_path / "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    configure(uri)
    return uri


def modelyard(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh process, as a user or a container would."""
    return subprocess.run(
        [*MODELYARD, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def champion_predictions(root: Path, model: str, rows: pd.DataFrame) -> list:
    """What the champion predicts for raw rows, loaded through MLflow's pyfunc by a fresh process
    (as a model server loads it) from the project's embedded store."""
    from modelyard.backends.tracking import embedded_uri

    rows.to_json(root / "rows.json", orient="records")
    script = (
        "import json, mlflow, pandas as pd; "
        f"mlflow.set_tracking_uri({embedded_uri(root / '.modelyard')!r}); "
        f"model = mlflow.pyfunc.load_model('models:/{model}@champion'); "
        "rows = pd.read_json('rows.json', orient='records', dtype=False); "
        "print(json.dumps(pd.Series(model.predict(rows)).tolist()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def store_client(root: Path):  # -> mlflow.MlflowClient (imported here lazily: conftest loads first)
    """A client of the embedded MLflow store of the project at `root` (its .modelyard/)."""
    from mlflow import MlflowClient

    from modelyard.backends.tracking import embedded_uri

    return MlflowClient(embedded_uri(root / ".modelyard"))


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a trained project directory, for a test that changes its store: cheaper than
    training again. The embedded store records absolute artifact locations; the copy's name its own."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    old, new = str(source.resolve()), str(target.resolve())
    with closing(sqlite3.connect(target / ".modelyard" / "mlflow.db")) as db, db:
        for table, column in _text_columns(db):
            db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?)', (old, new))
    return target


def _text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [
        (table, column[1])
        for table in tables
        for column in db.execute(f'PRAGMA table_info("{table}")')
        if column[2].upper().startswith(("VARCHAR", "TEXT", "CHAR"))
    ]
