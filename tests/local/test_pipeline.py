"""The whole pipeline through the real CLI, as a user runs it: promote, reject, rollback, bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import champion_predictions, copy_project, make_customers, modelyard, store_client

from modelyard.backends.tracking import embedded_uri

MODEL = "churn"


def first_run(root: Path) -> Path:
    """A project directory whose first run promoted a champion (v1) on the churn table."""
    make_customers().to_csv(root / "customers.csv", index=False)
    shuffled = make_customers()
    shuffled["churn"] = np.random.default_rng(5).permutation(shuffled["churn"].to_numpy())
    shuffled.to_csv(root / "shuffled.csv", index=False)
    done = modelyard("run", "--dataset", "customers.csv", "--label", "churn", "--model-name", MODEL, cwd=root)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^ +decision +PROMOTE$", done.stdout, re.MULTILINE), done.stdout
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """After its first run, left as it is: the tests get copies."""
    return first_run(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def project(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the tests that leave the registry as they found it."""
    return copy_project(trained, tmp_path_factory.mktemp("project"))


@pytest.fixture
def own_project(trained: Path, tmp_path: Path) -> Path:
    """For one test that moves aliases or adds versions."""
    return copy_project(trained, tmp_path)


def aliases(root: Path) -> dict[str, str]:
    return {
        alias: str(version)
        for alias, version in store_client(root).get_registered_model(MODEL).aliases.items()
    }


def test_first_run_promotes_a_champion_with_lineage(project: Path) -> None:
    assert aliases(project) == {"champion": "1", "challenger": "1"}
    version = store_client(project).get_model_version(MODEL, "1")
    tags = version.tags
    assert tags["modelyard.dataset"] == "customers.csv"
    assert len(tags["modelyard.dataset_fingerprint"]) == 64
    assert tags["modelyard.decision"] == "promote"
    assert tags["modelyard.code_version"] and tags["modelyard.config_hash"]
    assert float(tags["modelyard.test_accuracy"]) > 0.5
    run = store_client(project).get_run(tags["modelyard.pipeline_run_id"])
    assert run.info.status == "FINISHED"
    children = store_client(project).search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=100
    )
    names = {c.info.run_name for c in children}
    assert {"split", "validate", "evaluate"} <= names
    candidates = [c for c in children if "modelyard.candidate" in c.data.tags]
    assert len(candidates) == 8  # the default space for balanced classes
    assert all("train_val_gap" in c.data.metrics and "val_f1_macro" in c.data.metrics for c in candidates)


def test_a_fresh_process_loads_the_champion_and_predicts_raw_rows(project: Path) -> None:
    rows = pd.DataFrame(
        {
            "age": [35.0, np.nan, 61.0],
            "income": [np.nan, 18000.0, 52000.0],
            "plan": ["basic", "enterprise", "platinum"],  # 'platinum' was never seen in training
            "region": [None, "eu", "us"],
        }
    )
    predictions = champion_predictions(project, MODEL, rows)
    assert len(predictions) == 3 and set(predictions) <= {"yes", "no"}


def test_registering_the_same_training_run_again_creates_no_second_version(project: Path) -> None:
    # The first run's work dir: the only run on this project that got as far as registering.
    runs = (project / ".modelyard" / "runs").iterdir()
    (work_dir,) = [run for run in runs if (run / "tasks" / "register.json").exists()]
    prepared = json.loads((work_dir / "tasks" / "prepare.json").read_text())
    registered = json.loads((work_dir / "tasks" / "register.json").read_text())
    again = modelyard(
        "step",
        "register",
        "--work-dir",
        str(work_dir),
        "--config",
        prepared["config"],
        "--run-id",
        prepared["run_id"],
        "--model-name",
        prepared["model_name"],
        cwd=project,
        env={"MLFLOW_TRACKING_URI": embedded_uri(project / ".modelyard")},
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == registered["version"] == "1"
    assert (work_dir / "outputs" / "version").read_text() == "1"
    assert len(store_client(project).search_model_versions(f"name='{MODEL}'")) == 1


def test_a_copied_project_serves_its_champion_from_its_own_files(trained: Path, tmp_path: Path) -> None:
    """What the tests that change a store rely on: a copy that outlives the directory it came from."""
    middle = copy_project(trained, tmp_path / "middle")
    copy = copy_project(middle, tmp_path / "copy")
    shutil.rmtree(middle)
    rows = make_customers(5, seed=9).drop(columns=["churn"])
    assert champion_predictions(copy, MODEL, rows) == champion_predictions(trained, MODEL, rows)


def test_a_worse_model_is_rejected_and_the_champion_stays(own_project: Path) -> None:
    project = own_project
    done = modelyard(
        "run", "--dataset", "shuffled.csv", "--label", "churn", "--model-name", MODEL, cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^ +decision +REJECT$", done.stdout, re.MULTILINE), done.stdout
    assert aliases(project) == {"champion": "1", "challenger": "2"}
    assert store_client(project).get_model_version(MODEL, "2").tags["modelyard.decision"] == "reject"
    strict = modelyard(
        "run", "--dataset", "shuffled.csv", "--label", "churn", "--model-name", MODEL, "--strict", cwd=project
    )
    assert strict.returncode == 3, strict.stderr
    last = strict.stderr.strip().splitlines()[-1]
    assert last == "modelyard: error: challenger v3 was rejected (--strict)", last
    assert "Traceback" not in strict.stderr
    assert aliases(project) == {"champion": "1", "challenger": "3"}


def test_rollback_moves_the_champion_back_and_records_why(own_project: Path) -> None:
    project = own_project
    # The same data and seed retrain the same model: not worse, so it is promoted over v1.
    done = modelyard(
        "run", "--dataset", "customers.csv", "--label", "churn", "--model-name", MODEL, cwd=project
    )
    assert done.returncode == 0, done.stderr
    promoted = aliases(project)["champion"]
    assert promoted == "2"
    assert store_client(project).get_model_version(MODEL, promoted).tags["modelyard.previous_champion"] == "1"
    back = modelyard("rollback", "--model-name", MODEL, "--reason", "bad canary", cwd=project)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout) == {"champion_version": "1", "previous_version": promoted}
    assert aliases(project)["champion"] == "1"
    demoted = store_client(project).get_model_version(MODEL, promoted).tags
    assert demoted["modelyard.rollback_reason"] == "bad canary" and demoted["modelyard.rolled_back_by"]
    again = modelyard("rollback", "--model-name", MODEL, cwd=project)
    assert again.returncode == 2, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert last == f"modelyard: error: champion {MODEL} v1 has no previous champion to roll back to", last
    assert aliases(project)["champion"] == "1"


def test_bad_input_exits_2_with_one_line_and_leaves_the_champion(project: Path) -> None:
    champion = aliases(project)["champion"]
    versions = len(store_client(project).search_model_versions(f"name='{MODEL}'"))
    (project / "bad.yaml").write_text("thresholds:\n  min_acuracy: 0.9\n")
    cases = [
        (["--config", "bad.yaml"], "invalid config: thresholds.min_acuracy: unknown key"),
        (["--config", "absent.yaml"], "cannot read config file absent.yaml"),
        (["--dataset", "customers.csv", "--label", "nope"], "label column 'nope' not in dataset"),
        (["--dataset", "nowhere.parquet"], "dataset file not found: nowhere.parquet"),
        (["--min-accuracy", "1.5"], "min_accuracy: Input should be less than or equal to 1"),
    ]
    for args, message in cases:
        done = modelyard("run", "--model-name", MODEL, *args, cwd=project)
        assert done.returncode == 2, (args, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("modelyard: error: ") and message in last, (args, last)
    assert aliases(project)["champion"] == champion
    assert len(store_client(project).search_model_versions(f"name='{MODEL}'")) == versions


def test_a_label_without_values_exits_2_naming_it_and_registers_nothing(tmp_path: Path) -> None:
    frame = make_customers(40)
    frame["churn"] = None
    frame.to_csv(tmp_path / "unlabelled.csv", index=False)
    # Task and search space given: prepare does not read the label, so the split step refuses it.
    (tmp_path / "given.yaml").write_text(
        "task: classification\nsearch_space: {logistic_regression: {C: [1.0]}}\n"
    )
    for args in ([], ["--task", "regression"], ["--config", "given.yaml"]):
        done = modelyard(
            "run",
            "--dataset",
            "unlabelled.csv",
            "--label",
            "churn",
            "--model-name",
            MODEL,
            *args,
            cwd=tmp_path,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last == (
            "modelyard: error: label column 'churn' in dataset unlabelled.csv has no values: all 40 rows are missing"
        ), (args, last)
    assert store_client(tmp_path).search_registered_models() == []


def test_a_small_test_split_is_said_on_stderr_and_in_the_summary(tmp_path: Path) -> None:
    make_customers(40).to_csv(tmp_path / "small.csv", index=False)
    (tmp_path / "quick.yaml").write_text("search_space: {logistic_regression: {C: [1.0]}}\n")
    done = modelyard(
        "run",
        "--dataset",
        "small.csv",
        "--label",
        "churn",
        "--model-name",
        MODEL,
        "--config",
        "quick.yaml",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "small test split: 6 rows (fewer than 30)" in done.stderr
    assert re.search(r"^ +WARNING +small test split: 6 rows \(fewer than 30\)", done.stdout, re.MULTILINE), (
        done.stdout
    )
