"""Scale and disk: the search space sized to the table, the per-candidate time budget, only the
winner's model kept, and pruning old local run directories (`modelyard gc`, `run --keep-runs`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ONE_CANDIDATE, champion_predictions, make_customers, modelyard
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from modelyard.backends.tracking import embedded_uri
from modelyard.contract import SPLITS, PrepareParams
from modelyard.contract.records import Candidate, read_splits
from modelyard.ml import model
from modelyard.runner.retention import LOCK_FILE, run_dirs
from modelyard.steps.prepare import prepare

# Two candidates: a forest far too big for a 1 s budget, and a quick linear model.
BUDGET_CONFIG = """\
candidate_time_budget: 1
search_space:
  random_forest: {n_estimators: [2000]}
  logistic_regression: {C: [1.0]}
"""
RARE_SEED = 2


def estimators(prepared_candidates: str) -> set[str]:
    return {c["estimator"] for c in json.loads(prepared_candidates)}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_default_search_space_is_sized_to_the_rows(
    tmp_path: Path, tracking_uri: str, suffix: str
) -> None:
    table = tmp_path / f"customers{suffix}"
    frame = make_customers(600)
    frame.to_csv(table, index=False) if suffix == ".csv" else frame.to_parquet(table, index=False)
    small = prepare(PrepareParams(dataset=str(table), label="churn"), tmp_path)
    assert estimators(small.candidates) == {
        "logistic_regression",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
    }
    large = prepare(PrepareParams(dataset=str(table), label="churn", large_table_rows=600), tmp_path)
    assert estimators(large.candidates) == {"logistic_regression", "random_forest", "hist_gradient_boosting"}
    forests = [c for c in json.loads(large.candidates) if c["estimator"] == "random_forest"]
    assert all(c["params"]["max_depth"] and c["params"]["max_samples"] < 1 for c in forests)
    # A task set in the config still gets a search space sized to the table.
    set_task = prepare(
        PrepareParams(dataset=str(table), label="churn", task="classification", large_table_rows=600),
        tmp_path,
    )
    assert estimators(set_task.candidates) == estimators(large.candidates)


def rare_positives(rows: int, seed: int) -> pd.DataFrame:
    """3% positives, from a latent score of a few features and one interaction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    signal = 2 * (1.4 * x[:, 0] + x[:, 1] - 0.8 * x[:, 2] + 0.8 * x[:, 3] * x[:, 4])
    latent = signal + rng.logistic(size=rows)
    return pd.DataFrame(x).add_prefix("x").assign(rare=(latent > np.quantile(latent, 0.97)).astype(int))


def test_the_default_run_on_rare_positives_matches_a_default_histogram_boosting(tmp_path: Path) -> None:
    """The default search space weighs classes and has histogram boosting: on 3% positives it is at
    least as good as scikit-learn's HistGradientBoostingClassifier on the same split."""
    rare_positives(5000, RARE_SEED).to_csv(tmp_path / "rare.csv", index=False)
    done = modelyard("run", "--dataset", "rare.csv", "--label", "rare", "--model-name", "rare", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(embedded_uri(tmp_path / ".modelyard"))
    parent = client.get_run(client.get_model_version("rare", "1").tags["modelyard.pipeline_run_id"])
    ours = parent.data.metrics["test_f1_macro"]
    (run_dir,) = (tmp_path / ".modelyard" / "runs").iterdir()
    train, test = read_splits(run_dir / SPLITS, "train", "test")
    with threadpool_limits(1):  # two OpenMP threads on a busy machine take a minute, one takes seconds
        baseline = HistGradientBoostingClassifier().fit(train.drop(columns="rare"), train["rare"])
    theirs = f1_score(test["rare"], baseline.predict(test.drop(columns="rare")), average="macro")
    assert ours >= theirs, done.stdout


def test_a_forest_is_cut_at_the_time_budget_and_still_predicts() -> None:
    features, labels = model.features_and_label(make_customers(3000), "churn", "classification")
    candidate = Candidate(name="rf", estimator="random_forest", params={"n_estimators": 2000})
    pipeline = model.build_pipeline(candidate, "classification", features, 0)
    started = time.monotonic()
    cut = model.fit_within(pipeline, features, labels, 1.0)
    assert cut is not None and cut.wanted == 2000 and 1 <= cut.grown < 2000
    assert time.monotonic() - started < 30  # 2000 trees take far longer; the cut stopped it
    forest = pipeline.steps[-1][1]
    assert len(forest.estimators_) == forest.n_estimators == cut.grown
    assert set(pipeline.predict(features)) <= {"yes", "no"}


def test_histogram_boosting_fits_whole_within_budget_and_survives_storage(tmp_path: Path) -> None:
    frame = make_customers(2000)
    features, labels = model.features_and_label(frame, "churn", "classification")
    candidate = Candidate(name="hgb", estimator="hist_gradient_boosting", params={"max_iter": 40})
    pipeline = model.build_pipeline(candidate, "classification", features, 0)
    assert model.fit_within(pipeline, features, labels, 600) is None
    assert pipeline.steps[-1][1].n_iter_ == 40
    model.save(pipeline, tmp_path / "model.skops")
    loaded = model.load(tmp_path / "model.skops")
    unseen = features.head(5).assign(plan="platinum")  # a category never seen in training
    assert list(loaded.predict(unseen)) == list(pipeline.predict(unseen))
    assert model.score("classification", loaded, features, labels)["accuracy"] > 0.7


def test_a_histogram_boosting_champion_loads_in_a_fresh_process(tmp_path: Path) -> None:
    make_customers(1500).to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text("search_space: {hist_gradient_boosting: {max_iter: [30]}}\n")
    gates = ["--min-accuracy", "0", "--min-f1-macro", "0", "--min-roc-auc", "0"]
    args = ["run", "--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn"]
    done = modelyard(*args, "--model-name", "hgb", *gates, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^ +decision +PROMOTE$", done.stdout, re.MULTILINE), done.stdout
    rows = make_customers(3, seed=9).drop(columns=["churn"]).assign(plan=["basic", "platinum", None])
    assert set(champion_predictions(tmp_path, "hgb", rows)) <= {"yes", "no"}


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("budget")
    make_customers(3000).to_csv(root / "customers.csv", index=False)
    (root / "pipeline.yaml").write_text(BUDGET_CONFIG)
    done = modelyard(
        "run", "--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn", cwd=root
    )
    assert done.returncode == 0, done.stderr
    return root, done


def candidate_runs(root: Path) -> list:
    client = MlflowClient(embedded_uri(root / ".modelyard"))
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`modelyard.candidate` != ''"
    )
    return runs


def test_the_cut_is_said_on_stderr_and_tagged_on_the_run(
    budget_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, done = budget_run
    said = re.search(
        r"^train: random_forest\[n_estimators=2000\] cut at (\d+) of 2000 trees after \d+\.\d s "
        r"\(candidate_time_budget 1 s\)$",
        done.stderr,
        re.MULTILINE,
    )
    assert said, done.stderr
    (forest,) = [r for r in candidate_runs(root) if r.data.params["estimator"] == "random_forest"]
    assert forest.data.tags["modelyard.cut"] == f"{said.group(1)} of 2000"
    (linear,) = [r for r in candidate_runs(root) if r.data.params["estimator"] == "logistic_regression"]
    assert "modelyard.cut" not in linear.data.tags


def test_only_the_winners_model_is_kept(budget_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = budget_run
    client = MlflowClient(embedded_uri(root / ".modelyard"))
    runs = candidate_runs(root)
    assert len(runs) == 2
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    winner = parent.data.tags["modelyard.best_candidate_run_id"]
    kept = {r.info.run_id for r in runs if client.list_artifacts(r.info.run_id, "candidate")}
    assert kept == {winner}
    assert len(list((root / ".modelyard" / "artifacts").rglob("candidate/model.skops"))) == 1


def fake_runs(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name / "splits").mkdir(parents=True)
        (root / name / "splits" / "train.parquet").write_bytes(b"x" * 1024)


def test_gc_keeps_the_newest_and_spares_a_held_directory(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    names = [f"2026010{day}-120000-000000" for day in range(1, 6)]
    fake_runs(runs, names)
    (runs / "notes").mkdir()  # not a run directory: never touched
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from modelyard.runner.retention import hold; "
            f"lock = hold(Path({str(runs / names[0])!r})); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout and holder.stdout.readline() == "held\n"
        done = modelyard("gc", "--work-dir", str(runs), "--keep", "2", cwd=tmp_path)
    finally:
        holder.communicate("", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "gc: deleted 2 old run directories" in done.stderr
    assert [p.name for p in run_dirs(runs)] == [names[0], *names[3:]]
    assert (runs / "notes").is_dir()
    again = modelyard("gc", "--work-dir", str(runs), "--keep", "2", cwd=tmp_path)  # no longer held
    assert again.returncode == 0, again.stderr
    assert [p.name for p in run_dirs(runs)] == names[3:]


def test_a_running_run_holds_its_directory(tmp_path: Path) -> None:
    make_customers(3000).to_csv(tmp_path / "customers.csv", index=False)
    # The 2000-tree forest keeps the run busy until the budget cuts it: long enough for gc to meet the lock.
    (tmp_path / "pipeline.yaml").write_text(
        BUDGET_CONFIG.replace("candidate_time_budget: 1", "candidate_time_budget: 15")
    )
    args = ["run", "--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn"]
    running = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli.main", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / ".modelyard" / "runs"
    try:
        deadline = time.monotonic() + 120
        while not (dirs := run_dirs(runs)) or not (dirs[0] / LOCK_FILE).exists():
            assert running.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        fake_runs(runs, ["29990101-000000-000000"])  # newer than the running run
        done = modelyard("gc", "--work-dir", str(runs), "--keep", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert running.poll() is None, "the run ended before gc could test its lock"
        assert len(run_dirs(runs)) == 2  # the running run's directory was spared
    finally:
        _, stderr = running.communicate(timeout=600)
    assert running.returncode == 0, stderr
    done = modelyard("gc", "--work-dir", str(runs), "--keep", "1", cwd=tmp_path)
    assert [p.name for p in run_dirs(runs)] == ["29990101-000000-000000"]


def test_keep_runs_prunes_after_each_run(tmp_path: Path) -> None:
    make_customers().to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(ONE_CANDIDATE)
    args = ["run", "--config", "pipeline.yaml", "--dataset", "customers.csv", "--label", "churn"]
    first = modelyard(*args, "--keep-runs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = modelyard(*args, cwd=tmp_path, env={"MODELYARD_KEEP_RUNS": "1"})
    assert second.returncode == 0, second.stderr
    assert "gc: deleted 1 old run directories" in second.stderr
    (kept,) = run_dirs(tmp_path / ".modelyard" / "runs")
    run_id = json.loads((kept / "tasks" / "prepare.json").read_text())["run_id"]
    assert re.search(rf"MLflow run +{run_id}$", second.stdout, re.MULTILINE), second.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run", "--keep-runs", "0"], {}, "Invalid value for '--keep-runs'"),
        (["run"], {"MODELYARD_KEEP_RUNS": "some"}, "Invalid value for '--keep-runs'"),
        (["gc", "--keep", "0"], {}, "Invalid value for '--keep'"),
        (
            ["run", "--candidate-time-budget", "0"],
            {},
            "modelyard: error: invalid config: candidate_time_budget: Input should be greater than 0",
        ),
        (
            ["run", "--large-table-rows", "many"],
            {},
            "modelyard: error: invalid parameters: large_table_rows: Input should be a valid integer",
        ),
        (
            ["run", "--config", "bad.yaml"],
            {},
            "modelyard: error: invalid config: search_space: hist_gradient_boosting: max_leaf_nodes.0: "
            "Input should be greater than or equal to 2",
        ),
    ],
)
def test_bad_settings_exit_2_before_anything_is_created(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "bad.yaml").write_text("search_space: {hist_gradient_boosting: {max_leaf_nodes: [1]}}\n")
    done = modelyard(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.strip().splitlines()[-1], done.stderr
    assert not (tmp_path / ".modelyard").exists()
