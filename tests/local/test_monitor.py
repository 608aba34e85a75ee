"""Monitoring: drift and decay raise `retrain`, fresh data does not; the CLI reports, logs and retrains."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import copy_project, make_customers, modelyard, store_client
from webhook_server import Webhook, webhook_server

from modelyard.contract.config import MonitorThresholds
from modelyard.contract.records import DataProfile, MonitorReport
from modelyard.core.errors import BadInputError
from modelyard.quality.monitoring import check_batch, conclude, decay, decay_noise, drift
from modelyard.quality.profile import profile_frame

MODEL = "churn-watch"
TRAINING_ROWS = 2000
LIMITS = MonitorThresholds()


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return make_customers(TRAINING_ROWS, seed=0)


@pytest.fixture(scope="module")
def reference(training: pd.DataFrame) -> dict:
    """The profile the split step records and register stores with the champion."""
    return profile_frame(training, "churn", "classification")


def verdict(frame: pd.DataFrame, reference: DataProfile) -> MonitorReport:
    check_batch(frame, reference, LIMITS)
    return conclude(
        MonitorReport(rows=len(frame), features=drift(frame, reference, LIMITS), decay=[], decay_note=""),
        LIMITS,
    )


def test_bootstrap_samples_of_the_training_data_rarely_raise_an_alarm(
    training: pd.DataFrame, reference: dict
) -> None:
    # The smallest batch the defaults accept is the noisiest: the false-alarm rate is measured there.
    reports = [
        verdict(training.sample(LIMITS.min_rows, replace=True, random_state=i), reference) for i in range(200)
    ]
    counts = Counter(r.verdict for r in reports)
    assert counts["ok"] >= 0.95 * len(reports), [r.reasons for r in reports if r.reasons]
    assert all(f.drift.method in ("ks", "chi2") for r in reports for f in r.features)


def test_fresh_samples_from_the_same_source_raise_at_most_one_warning(reference: DataProfile) -> None:
    reports = [verdict(make_customers(500, seed=100 + i), reference) for i in range(20)]
    counts = Counter(r.verdict for r in reports)
    assert counts["retrain"] == 0 and counts["warn"] <= 1, [r.reasons for r in reports if r.reasons]


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        (lambda f: f.assign(age=f.age + 12), "age", "ks p="),  # mean shifted by one standard deviation
        (lambda f: f.assign(income=f.income * 2), "income", "ks p="),  # rescaled (e.g. a currency change)
        (lambda f: f.assign(plan=np.where(np.arange(len(f)) % 5 == 0, "premium", f.plan)), "plan", "unseen"),
        (lambda f: f.assign(income=f.income.where(np.arange(len(f)) % 4 != 0)), "income", "missing share"),
    ],
    ids=["shifted-mean", "rescaled", "new-category", "more-missing"],
)
def test_drift_calls_for_retraining_and_names_the_feature(
    change, column: str, reason: str, reference: dict
) -> None:
    report = verdict(change(make_customers(500, seed=7)), reference)
    assert report.verdict == "retrain"
    assert [f.column for f in report.drifted()] == [column]
    assert any(r.startswith(f"{column}: ") and reason in r for r in report.reasons), report.reasons


def test_a_small_shift_only_warns(reference: DataProfile) -> None:
    # 4,000 rows against 2,000: a large sample, judged by the drift size (a quarter of a standard deviation)
    report = verdict(make_customers(4000, seed=8).assign(age=lambda f: f.age + 3), reference)
    assert report.verdict == "warn"
    assert [(f.column, f.drift.method) for f in report.drifted()] == [("age", "wasserstein")]


def test_decay_beyond_noise_and_tolerance_calls_for_retraining() -> None:
    recorded = {"accuracy": 0.9, "f1_macro": 0.85, "roc_auc": float("nan")}
    noise = {"accuracy": 0.04, "f1_macro": 0.04}
    current = {"accuracy": 0.82, "f1_macro": 0.84, "roc_auc": 0.9}
    fine = decay("classification", recorded, current, noise, tolerance=0.05)
    assert [(d.metric, d.level) for d in fine] == [("accuracy", "ok"), ("f1_macro", "ok")]
    worse = decay("classification", recorded, {"accuracy": 0.8, "f1_macro": 0.84}, noise, tolerance=0.05)
    report = conclude(MonitorReport(rows=500, features=[], decay=worse, decay_note=""), LIMITS)
    assert report.verdict == "retrain"
    assert report.reasons == [
        "champion accuracy worse by 0.100 (0.900 -> 0.800; noise 0.040 + tolerance 0.05)"
    ]


def test_regression_decay_is_a_share_of_the_error_in_its_own_direction() -> None:
    recorded = {"rmse": 10.0, "mae": 8.0, "r2": 0.6}
    noise = {"rmse": 0.5, "mae": 0.4, "r2": 0.02}
    better = decay("regression", recorded, {"rmse": 8.0, "mae": 6.0, "r2": 0.7}, noise, tolerance=0.05)
    assert all(d.level == "ok" and d.drop < 0 for d in better)
    worse = decay("regression", recorded, {"rmse": 12.0, "mae": 8.2, "r2": 0.58}, noise, tolerance=0.05)
    assert [(d.metric, d.level) for d in worse] == [("rmse", "alert"), ("mae", "ok"), ("r2", "ok")]
    rmse = worse[0]
    assert rmse.drop == pytest.approx(2 / 12) and rmse.noise == pytest.approx(0.5 / 12)
    reasons = conclude(MonitorReport(rows=500, features=[], decay=worse, decay_note=""), LIMITS).reasons
    assert reasons == ["champion rmse worse by 16.7% (10.000 -> 12.000; noise 4.2% + tolerance 5.0%)"]


def test_decay_noise_is_two_standard_errors_of_the_difference() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(["no", "yes"], 2000)
    proba = np.clip(np.where(labels == "yes", 0.7, 0.3) + rng.normal(0, 0.3, 2000), 0, 1)
    predicted = np.where(proba > 0.5, "yes", "no")
    both = np.column_stack([1 - proba, proba])
    accuracy = (predicted == labels).mean()
    binomial = np.sqrt(accuracy * (1 - accuracy) / 2000)
    same_size = decay_noise("classification", labels, predicted, both, ["no", "yes"], test_rows=2000)
    assert same_size["accuracy"] == pytest.approx(2 * np.sqrt(2) * binomial, rel=0.25)
    smaller_test = decay_noise("classification", labels, predicted, both, ["no", "yes"], test_rows=500)
    assert smaller_test["accuracy"] == pytest.approx(2 * np.sqrt(1 + 4) * binomial, rel=0.25)
    assert 0 < same_size["roc_auc"] < 0.1 and 0 < same_size["f1_macro"] < 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.head(20), "the batch has 20 rows; a drift check needs at least 30"),
        (
            lambda f: f.drop(columns=["income", "region"]),
            "lacks 2 column(s) the champion was trained on: income, region",
        ),
        (lambda f: f.assign(age=f.age.astype(str).where(f.index != 3, "forty")), "column 'age' was numeric"),
    ],
    ids=["too-few-rows", "missing-columns", "text-in-numeric"],
)
def test_a_batch_the_check_cannot_judge_is_refused(change, message: str, reference: DataProfile) -> None:
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_batch(change(make_customers(500, seed=9)), reference, LIMITS)


# --- the command, end to end: real MLflow store, real webhook receiver, fresh processes ----------


@pytest.fixture(scope="module")
def hook() -> Webhook:
    with webhook_server() as server:
        yield server


def first_run(root: Path, training: pd.DataFrame, hook: Webhook) -> Path:
    """A project whose first run promoted a champion (v1), and batches: fresh, drifted, relabelled."""
    training.to_csv(root / "customers.csv", index=False)
    make_customers(600, seed=21).to_csv(root / "fresh.csv", index=False)
    make_customers(600, seed=22).assign(age=lambda f: f.age + 15).to_csv(root / "older.csv", index=False)
    flipped = make_customers(600, seed=23)
    flip = np.random.default_rng(0).random(len(flipped)) < 0.4
    flipped.loc[flip, "churn"] = flipped.loc[flip, "churn"].map({"yes": "no", "no": "yes"})
    flipped.to_csv(root / "flipped.csv", index=False)
    make_customers(600, seed=24).drop(columns=["churn"]).to_csv(root / "unlabelled.csv", index=False)
    hook.received.clear()
    done = modelyard(
        "run",
        "--dataset",
        "customers.csv",
        "--label",
        "churn",
        "--model-name",
        MODEL,
        cwd=root,
        env=env(hook),
    )
    assert done.returncode == 0, done.stderr
    assert hook.texts() == [f"modelyard: {MODEL}: promoted v1 to champion"]
    hook.received.clear()
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, training: pd.DataFrame, hook: Webhook) -> Path:
    """After its first run, left as it is: the tests get copies."""
    return first_run(tmp_path_factory.mktemp("trained"), training, hook)


@pytest.fixture(scope="module")
def project(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the tests that monitor without retraining: v1 stays the champion."""
    return copy_project(trained, tmp_path_factory.mktemp("monitor"))


@pytest.fixture
def own_project(trained: Path, tmp_path: Path, hook: Webhook) -> Path:
    """For one test that retrains: new versions, perhaps a new champion."""
    hook.received.clear()
    return copy_project(trained, tmp_path)


def env(hook: Webhook) -> dict[str, str]:
    return {"MODELYARD_WEBHOOK_URL": hook.url}


def monitor(project: Path, hook: Webhook, *args: str):
    return modelyard("monitor", "--model-name", MODEL, *args, cwd=project, env=env(hook))


def monitoring_run(project: Path, stdout: str) -> mlflow.entities.Run:
    run_id = stdout.rsplit("(MLflow run ", 1)[1].split(")")[0]
    return store_client(project).get_run(run_id)


def test_fresh_data_is_ok_and_logged_without_alert(project: Path, hook: Webhook) -> None:
    hook.received.clear()
    done = monitor(project, hook, "--dataset", "fresh.csv")
    assert done.returncode == 0, done.stderr
    assert "verdict: ok" in done.stdout
    assert "600 labelled rows scored" in done.stdout
    run = monitoring_run(project, done.stdout)
    experiment = store_client(project).get_experiment(run.info.experiment_id)
    assert experiment.name == "modelyard-monitoring"
    assert run.data.tags["modelyard.verdict"] == "ok" and run.data.tags["modelyard.champion_version"] == "1"
    assert {"drift_age", "p_value_income", "unseen_plan", "null_change_region", "batch_accuracy"} <= set(
        run.data.metrics
    )
    assert hook.received == []


def test_drift_says_retrain_with_a_report_a_picture_per_drifted_feature_and_an_alert(
    project: Path, hook: Webhook
) -> None:
    hook.received.clear()
    done = monitor(project, hook, "--dataset", "older.csv")
    assert done.returncode == 0, done.stderr
    assert "verdict: retrain" in done.stdout
    assert "age: ks p=" in done.stdout
    run = monitoring_run(project, done.stdout)
    assert run.data.metrics["verdict"] == 2 and run.data.metrics["drift_age"] > 1  # 15 years: 1.2 sd
    artifacts = {a.path for a in store_client(project).list_artifacts(run.info.run_id, "monitoring/plots")}
    assert artifacts == {"monitoring/plots/age.png"}
    local = store_client(project).download_artifacts(run.info.run_id, "monitoring/report.json", str(project))
    report = json.loads(Path(local).read_text())
    assert report["verdict"] == "retrain" and report["rows"] == 600
    (text,) = hook.texts()
    assert text.startswith(f"modelyard: {MODEL} v1: monitoring says RETRAIN on older.csv: age: ks p=")


def test_partly_flipped_labels_show_decay(project: Path, hook: Webhook) -> None:
    done = monitor(project, hook, "--dataset", "flipped.csv")
    assert done.returncode == 0, done.stderr
    assert "verdict: retrain" in done.stdout
    assert "champion accuracy worse by" in done.stdout
    run = monitoring_run(project, done.stdout)
    assert run.data.metrics["drop_accuracy"] > 0.15  # 40% of answers flipped: about 0.74 -> 0.55
    assert run.data.metrics["drifted_features"] == 0  # the features did not move, only the answers


def test_without_labels_only_drift_is_checked(project: Path, hook: Webhook) -> None:
    done = monitor(project, hook, "--dataset", "unlabelled.csv")
    assert done.returncode == 0, done.stderr
    assert "no 'churn' column in the batch: drift checked, decay not" in done.stdout
    assert "verdict: ok" in done.stdout


def test_bad_input_exits_2_with_a_specific_message(project: Path, hook: Webhook) -> None:
    (project / "broken.csv").write_bytes(b"\x00\x01 not a csv \xff")
    cases = [
        (
            ["--dataset", "fresh.csv", "--model-name", "nobody"],
            "model 'nobody' has no champion to monitor yet",
        ),
        (["--dataset", "absent.csv"], "dataset file not found: absent.csv"),
        (["--dataset", "broken.csv"], "cannot read dataset broken.csv"),
        (["--dataset", "fresh.csv", "--min-rows", "1000"], "the batch has 600 rows"),
        (["--dataset", "fresh.csv", "--drift-warn", "0.5"], "drift_warn must not exceed drift_alert"),
    ]
    for args, message in cases:
        done = monitor(project, hook, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("modelyard: error: ") and message in last, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_monitor_step_writes_the_verdict_for_argo(project: Path, hook: Webhook) -> None:
    done = modelyard(
        "step", "monitor", "--dataset", "older.csv", "--model-name", MODEL, "--work-dir", "argo", cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert (project / "argo" / "outputs" / "verdict").read_text() == "retrain"
    assert (project / "argo" / "outputs" / "dataset").read_text() == "older.csv"
    config = json.loads((project / "argo" / "outputs" / "config").read_text())
    assert (config["dataset"], config["label"], config["model_name"]) == ("older.csv", "churn", MODEL)
    assert config["thresholds"]["max_out_of_range_fraction"] == 1.0  # the drift is why it retrains
    assert config["thresholds"]["min_accuracy"] == 0.7  # the quality gates stay
    assert "RETRAIN" in done.stderr  # the table goes to the pod log; stdout stays machine-readable
    assert json.loads(done.stdout)["verdict"] == "retrain"


def test_retrain_runs_the_pipeline_on_the_batch_only_when_the_verdict_says_so(
    own_project: Path, hook: Webhook
) -> None:
    project = own_project
    before = len(store_client(project).search_model_versions(f"name='{MODEL}'"))
    calm = monitor(project, hook, "--dataset", "fresh.csv", "--retrain")
    assert calm.returncode == 0, calm.stderr
    assert len(store_client(project).search_model_versions(f"name='{MODEL}'")) == before
    hook.received.clear()
    done = monitor(project, hook, "--dataset", "older.csv", "--retrain")
    assert done.returncode == 0, done.stderr
    versions = store_client(project).search_model_versions(f"name='{MODEL}'")
    assert len(versions) == before + 1
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.tags["modelyard.dataset"] == "older.csv"
    assert "retraining" in done.stderr and "registered" in done.stdout
    assert hook.texts()[0].startswith(f"modelyard: {MODEL} v1: monitoring says RETRAIN")


def test_retrain_after_predicting_with_a_histogram_boosting_champion_trains_on_every_core(
    tmp_path: Path,
) -> None:
    """The monitor predicts with the champion in the CLI's own process, then forks the retraining's
    candidate workers; a lone candidate gets every core. GNU OpenMP (scikit-learn's) hung in such a
    worker when the prediction had run on more than one thread (runner.local.forking_parent)."""
    make_customers(1500, seed=0).to_csv(tmp_path / "customers.csv", index=False)
    make_customers(600, seed=5).assign(age=lambda f: f.age + 12).to_csv(tmp_path / "older.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(
        "label: churn\n"
        "search_space: {hist_gradient_boosting: {max_iter: [30]}}\n"
        "thresholds: {min_accuracy: 0.5, min_f1_macro: 0.5, min_roc_auc: 0.5}\n"
    )
    model = ("--model-name", "boosted")
    trained = modelyard(
        "run", "--config", "pipeline.yaml", "--dataset", "customers.csv", *model, cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert "train: started 1/1 hist_gradient_boosting" in trained.stderr
    # A hang is a timeout here; the run itself takes about 15 s.
    done = modelyard("monitor", *model, "--dataset", "older.csv", "--retrain", cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "verdict: retrain" in done.stdout and "retraining boosted on older.csv" in done.stderr
    assert "train: finished 1/1 hist_gradient_boosting" in done.stderr
