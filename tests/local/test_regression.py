"""Regression through the real CLI: a continuous label is inferred as regression, trained on the
default regressors, gated, registered with its plots and served by MLflow's pyfunc; the champion
is compared in each metric's own direction; the other task's options exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import champion_predictions, modelyard, store_client
from mlflow import MlflowClient

from modelyard.contract import PrepareParams, parse_params
from modelyard.contract.records import CandidateResult
from modelyard.runner.local import run_in_process

AUTO_MPG = Path(__file__).parents[1] / "data" / "auto_mpg.csv"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regression")
    shutil.copy(AUTO_MPG, root / "auto_mpg.csv")
    return root


@pytest.fixture(scope="module")
def diabetes(project: Path) -> subprocess.CompletedProcess[str]:
    done = modelyard("run", "--dataset", "diabetes", "--model-name", "diabetes", cwd=project)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def auto_mpg(project: Path) -> subprocess.CompletedProcess[str]:
    args = ("--dataset", "auto_mpg.csv", "--label", "mpg", "--model-name", "mpg", "--work-dir", "mpg-runs")
    done = modelyard("run", *args, cwd=project)
    assert done.returncode == 0, done.stderr
    return done


def test_diabetes_is_inferred_as_regression_trained_gated_and_registered(
    project: Path, diabetes: subprocess.CompletedProcess[str]
) -> None:
    assert (
        "task: regression (inferred: the label is numeric with 214 distinct values (> 20)" in diabetes.stderr
    )
    assert "candidates by validation rmse" in diabetes.stderr
    assert "gate min_r2" in diabetes.stdout and "PROMOTE" in diabetes.stdout
    version = store_client(project).get_model_version_by_alias("diabetes", "champion")
    tags = version.tags
    assert tags["modelyard.task"] == "regression"
    assert 45 < float(tags["modelyard.test_rmse"]) < 70  # the target spans 25-346; its sd is 77
    assert 30 < float(tags["modelyard.test_mae"]) < float(tags["modelyard.test_rmse"])
    assert 0.3 < float(tags["modelyard.test_r2"]) < 0.7
    run = store_client(project).get_run(tags["modelyard.pipeline_run_id"])
    children = store_client(project).search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=100
    )
    candidates = [c for c in children if "modelyard.candidate" in c.data.tags]
    assert {c.data.params["estimator"] for c in candidates} == {
        "ridge",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
    }
    assert all({"val_rmse", "val_r2", "train_val_gap"} <= set(c.data.metrics) for c in candidates)
    (evaluation,) = [c for c in children if c.info.run_name == "evaluate"]
    plots = {a.path for a in store_client(project).list_artifacts(evaluation.info.run_id, "evaluation")}
    assert {"evaluation/predicted_vs_actual.png", "evaluation/residuals.png"} <= plots


def test_the_diabetes_champion_serves_numbers(
    project: Path, diabetes: subprocess.CompletedProcess[str]
) -> None:
    from sklearn.datasets import load_diabetes

    rows = load_diabetes(as_frame=True).frame.drop(columns="target").head(5)
    predictions = champion_predictions(project, "diabetes", rows)
    assert len(predictions) == 5 and all(25 < p < 346 for p in predictions)


def test_a_real_table_with_categories_and_missing_values_trains_and_serves_raw_rows(
    project: Path, auto_mpg: subprocess.CompletedProcess[str]
) -> None:
    assert "task: regression (inferred: the label is numeric with non-integer values" in auto_mpg.stderr
    tags = store_client(project).get_model_version_by_alias("mpg", "champion").tags
    assert float(tags["modelyard.test_rmse"]) < 4.0  # mpg spans 9-47
    assert float(tags["modelyard.test_r2"]) > 0.75
    split = json.loads(
        Path(
            store_client(project).download_artifacts(
                tags["modelyard.pipeline_run_id"], "config.json", str(project)
            )
        ).read_text()
    )
    assert split["task"] == "regression" and split["primary_metric"] == "rmse"
    rows = pd.DataFrame(
        {
            "cylinders": [4, 8, 6],
            "displacement": [97.0, 350.0, 225.0],
            "horsepower": [np.nan, 165.0, 100.0],  # missing, as 6 cars in the data
            "weight": [2130, 3693, 3233],
            "acceleration": [14.5, 11.5, 15.4],
            "model_year": [1982, 1970, 1976],
            "origin": ["Japan", "USA", "Korea"],  # 'Korea' was never seen in training
        }
    )
    predictions = champion_predictions(project, "mpg", rows)
    assert predictions[0] > predictions[2] > predictions[1] > 5  # a small 1982 Japanese car goes furthest


def test_the_split_is_stratified_on_quantile_bins_of_the_label(
    project: Path, auto_mpg: subprocess.CompletedProcess[str]
) -> None:
    (run,) = (project / "mpg-runs").iterdir()
    splits = run / "splits"
    assert json.loads((splits / "split.json").read_text())["stratified"] is True
    labels = {
        part: pd.read_parquet(splits / f"{part}.parquet")["mpg"] for part in ("train", "validation", "test")
    }
    deciles = np.quantile(labels["train"], np.linspace(0.1, 0.9, 9))
    for part in ("validation", "test"):
        shares = np.bincount(np.searchsorted(deciles, labels[part]), minlength=10) / len(labels[part])
        assert np.abs(shares - 0.1).max() < 0.06, (part, shares)


def test_the_champion_is_compared_in_each_metrics_direction(
    project: Path, auto_mpg: subprocess.CompletedProcess[str]
) -> None:
    again = modelyard(
        "run", "--dataset", "auto_mpg.csv", "--label", "mpg", "--model-name", "mpg", cwd=project
    )
    assert again.returncode == 0, again.stderr
    assert "gate vs_champion_rmse  pass" in again.stdout and "within tolerance 1.0% of" in again.stdout
    assert "gate vs_champion_r2    pass" in again.stdout
    champion = store_client(project).get_model_version_by_alias("mpg", "champion").version
    strict = modelyard(
        "run",
        "--dataset",
        "auto_mpg.csv",
        "--label",
        "mpg",
        "--model-name",
        "mpg",
        "--max-rmse",
        "1",
        cwd=project,
    )
    assert strict.returncode == 0, strict.stderr
    assert "decision               REJECT" in strict.stdout
    assert "gate max_rmse          FAIL  test rmse" in strict.stdout and "> 1.0" in strict.stdout
    assert store_client(project).get_model_version_by_alias("mpg", "champion").version == champion


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dataset", "diabetes", "--min-accuracy", "0.8"],
            "the task is regression, but thresholds.min_accuracy is a classification gate",
        ),
        (
            ["--dataset", "diabetes", "--primary-metric", "f1_macro"],
            "primary_metric f1_macro is a classification metric",
        ),
        (
            ["--dataset", "iris", "--max-rmse", "3"],
            "the task is classification, but thresholds.max_rmse is a regression gate",
        ),
        (
            ["--dataset", "iris", "--task", "regression"],
            "regression label 'target' holds values that are not numbers",
        ),
        (
            ["--dataset", "diabetes", "--task", "clustering"],
            "task: Input should be 'classification' or 'regression'",
        ),
    ],
    ids=["classification-gate", "classification-metric", "regression-gate", "text-label", "unknown-task"],
)
def test_the_other_tasks_options_exit_2_and_register_nothing(
    project: Path, args: list[str], message: str
) -> None:
    done = modelyard("run", "--model-name", "refused", *args, cwd=project)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("modelyard: error: ") and message in last, done.stderr
    assert "Traceback" not in done.stderr
    assert store_client(project).search_model_versions("name='refused'") == []


def test_monitor_finds_a_regression_champions_decay_against_its_test_rmse(
    project: Path, diabetes: subprocess.CompletedProcess[str]
) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(project / "same.csv", index=False)
    shuffled = frame.assign(target=np.random.default_rng(0).permutation(frame["target"].to_numpy()))
    shuffled.to_csv(project / "shuffled.csv", index=False)
    calm = modelyard("monitor", "--dataset", "same.csv", "--model-name", "diabetes", cwd=project)
    assert calm.returncode == 0, calm.stderr
    assert "verdict: ok" in calm.stdout and "442 labelled rows scored" in calm.stdout
    decayed = modelyard("monitor", "--dataset", "shuffled.csv", "--model-name", "diabetes", cwd=project)
    assert decayed.returncode == 0, decayed.stderr
    assert "verdict: retrain" in decayed.stdout
    assert "champion rmse worse by" in decayed.stdout and "champion r2 worse by" in decayed.stdout


def linear_signal(rng: np.random.Generator) -> pd.DataFrame:
    """30 features, a label they explain but for a little noise: a ridge predicts it well, and its
    tiny validation RMSE is still a fifth above its train RMSE."""
    features = rng.normal(size=(300, 30))
    label = features @ rng.uniform(10, 100, 30) + rng.normal(0, 5, 300)
    return pd.DataFrame(features).add_prefix("x").assign(y=label)


def mostly_noise(rng: np.random.Generator) -> pd.DataFrame:
    """A label that one feature explains a little: deep trees learn the noise of the train rows."""
    features = rng.normal(size=(400, 5))
    return pd.DataFrame(features).add_prefix("x").assign(y=features[:, 0] + rng.normal(0, 3, 400))


@pytest.mark.parametrize(
    ("table", "space", "overfits"),
    [
        (linear_signal, "ridge: {alpha: [1.0]}", False),
        (mostly_noise, "random_forest: {n_estimators: [50], max_depth: [null]}", True),
    ],
    ids=["ridge-generalises", "deep-forest-memorises"],
)
def test_a_regressor_overfits_when_its_r2_drops_on_unseen_rows_not_when_its_small_error_grows(
    tmp_path: Path,
    tracking_uri: str,
    table: Callable[[np.random.Generator], pd.DataFrame],
    space: str,
    overfits: bool,
) -> None:
    table(np.random.default_rng(0)).to_csv(tmp_path / "table.csv", index=False)
    params = {"config": f"search_space: {{{space}}}", "dataset": str(tmp_path / "table.csv"), "label": "y"}
    prepared = run_in_process("prepare", parse_params(PrepareParams, params).model_dump(), tmp_path)
    pipeline = {"config": prepared.config, "run_id": prepared.run_id}
    run_in_process("split", pipeline, tmp_path)
    (candidate,) = json.loads(prepared.candidates)
    outputs = run_in_process("train", pipeline | {"candidate": json.dumps(candidate)}, tmp_path)
    result = CandidateResult.model_validate_json(outputs.result)
    metrics = MlflowClient(tracking_uri).get_run(result.run_id).data.metrics
    assert result.gap == pytest.approx(metrics["train_r2"] - metrics["val_r2"])
    assert metrics["train_val_gap"] == pytest.approx(result.gap)
    assert result.overfit is overfits, metrics
    if not overfits:  # by the error's growth as a share of itself, it would have been flagged
        assert (metrics["val_rmse"] - metrics["train_rmse"]) / metrics["val_rmse"] > 0.1, metrics
