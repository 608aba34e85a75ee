"""The decision: the earliest candidate within the validation noise of the best wins; overfitting is
shown and may gate; the parent run and the summary show the outcome;
bad flags and unwritable directories exit 2 before anything is created."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import MODELYARD, make_customers, modelyard
from mlflow import MlflowClient

from modelyard.backends.tracking import embedded_uri
from modelyard.contract import PrepareParams, SelectParams, parse_params
from modelyard.contract.records import CandidateResult
from modelyard.contract.tasks import METRICS
from modelyard.runner.local import run_in_process
from modelyard.steps.select import pick

MODEL = "churn"
# Random forests of unlimited depth learn the noisy churn table by heart: the winner overfits
# (and scores below the default gates, lowered here so that only overfitting can reject it).
DEEP_FORESTS = """
search_space: {random_forest: {n_estimators: [50], max_depth: [null]}}
thresholds: {min_accuracy: 0.5, min_f1_macro: 0.5, min_roc_auc: 0.5}
"""


def result(name: str, score: float, overfit: bool, gap: float = 0.0, noise: float = 0.0) -> CandidateResult:
    return CandidateResult(name=name, run_id="0" * 32, score=score, noise=noise, gap=gap, overfit=overfit)


def test_within_1e4_the_earlier_candidate_wins_whether_or_not_it_overfits() -> None:
    f1, rmse = METRICS["f1_macro"], METRICS["rmse"]
    memorizer, honest = result("memorizer", 0.9, True, 0.3), result("honest", 0.89995, False)
    assert pick([memorizer, honest], f1) is memorizer
    assert pick([honest, memorizer], f1) is honest
    clearly_better = result("clearly better", 0.9002, True, 0.3)  # more than 1e-4 ahead
    assert pick([honest, clearly_better], f1) is clearly_better
    # Lower is better for RMSE; the tie is within 1e-4 of the lowest error.
    low, close = result("low", 10.0, True, 0.2), result("close", 10.00008, False)
    assert pick([close, low], rmse) is close
    assert pick([close, result("much lower", 9.0, True)], rmse).name == "much lower"
    assert pick([result("nan", float("nan"), False), result("b", 0.1, True)], f1).name == "b"
    assert (
        pick([result("nan", float("nan"), False), result("nan too", float("nan"), False)], f1).name == "nan"
    )


def test_a_later_candidate_must_beat_an_earlier_one_by_more_than_the_validation_noise() -> None:
    f1, rmse = METRICS["f1_macro"], METRICS["rmse"]
    baseline = result("hist_gradient_boosting[max_iter=100]", 0.80, False, noise=0.02)
    within = result("random_forest[max_depth=5]", 0.815, False, noise=0.02)
    beyond = result("gradient_boosting[learning_rate=0.1]", 0.85, False, noise=0.02)
    assert pick([baseline, within], f1) is baseline  # 0.015 ahead: inside one standard error
    assert pick([baseline, within, beyond], f1) is beyond  # 0.035 ahead of the next
    close_to_best = beyond.model_copy(update={"score": 0.83})
    assert pick([baseline, within, close_to_best], f1) is within  # the earliest within 0.02 of 0.83
    assert pick([within, baseline], f1) is within  # the order of the search space decides
    # The band is the best candidate's standard error; for RMSE lower is better.
    low = result("ridge[alpha=1.0]", 48.0, False, noise=1.5)
    assert pick([result("hgb", 49.0, False, noise=3.0), low], rmse).name == "hgb"
    assert pick([result("hgb", 50.0, False, noise=3.0), low], rmse) is low
    # Overfitting does not decide (reject_overfit gates it): inside the band the earlier one wins.
    assert pick([result("hgb", 0.81, True, 0.2, noise=0.02), within], f1).name == "hgb"


def test_select_on_real_candidate_runs_takes_the_first_in_the_search_space_among_equals(
    tmp_path: Path, tracking_uri: str, customers_csv: Path
) -> None:
    space = "search_space:\n  logistic_regression: {C: [0.1, 1.0]}\n"
    prepared = run_in_process(
        "prepare",
        parse_params(
            PrepareParams, {"config": space, "dataset": str(customers_csv), "label": "churn"}
        ).model_dump(),
        tmp_path,
    )
    pipeline = {"config": prepared.config, "run_id": prepared.run_id}
    run_in_process("split", pipeline, tmp_path)
    trained = [
        CandidateResult.model_validate_json(
            run_in_process("train", pipeline | {"candidate": json.dumps(c)}, tmp_path).result
        )
        for c in json.loads(prepared.candidates)
    ]
    client = MlflowClient(tracking_uri)
    first, second = trained
    for overfits in (first, second):  # the same score for both; the flag does not decide
        results = [r.model_copy(update={"score": 0.8, "overfit": r is overfits}) for r in trained]
        params = SelectParams(results=json.dumps([r.model_dump() for r in results]), **pipeline)
        selected = run_in_process("select", params.model_dump(), tmp_path)
        assert selected.candidate_run_id == first.run_id
        tags = client.get_run(prepared.run_id).data.tags
        assert tags["modelyard.best_candidate"] == first.name
    assert all(r.noise > 0 for r in trained)  # bootstrapped on the validation rows
    # Gathered in another order (as Argo may), a tie still goes to the first in the search space.
    tie = [r.model_copy(update={"score": 0.8, "overfit": False}) for r in reversed(trained)]
    params = SelectParams(results=json.dumps([r.model_dump() for r in tie]), **pipeline)
    assert run_in_process("select", params.model_dump(), tmp_path).candidate_run_id == trained[0].run_id


def summary_rows(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\S+(?: \S+)*?) {2,}(.*)$", stdout, re.MULTILINE))


def test_an_overfit_winner_is_shown_recorded_and_rejected_by_the_optional_gate(tmp_path: Path) -> None:
    make_customers().to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "deep.yaml").write_text(DEEP_FORESTS)
    args = (
        "run",
        "--config",
        "deep.yaml",
        "--dataset",
        "customers.csv",
        "--label",
        "churn",
        "--model-name",
        MODEL,
    )
    first = modelyard(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = summary_rows(first.stdout)
    assert rows["decision"] == "PROMOTE", first.stdout  # the gate is off by default: only shown
    assert re.fullmatch(
        r"random_forest\[max_depth=None,n_estimators=50\]  gap \+0\.\d{4}  OVERFIT", rows["winner"]
    )
    uri = embedded_uri(tmp_path / ".modelyard")
    client = MlflowClient(uri)
    parent = client.get_run(client.get_model_version(MODEL, "1").tags["modelyard.pipeline_run_id"])
    assert {"test_accuracy", "test_f1_macro", "test_roc_auc", "train_val_gap"} <= set(parent.data.metrics)
    assert parent.data.metrics["train_val_gap"] > 0.1
    assert f"test accuracy      {parent.data.metrics['test_accuracy']:.4f}" in first.stdout
    tags = parent.data.tags
    assert (tags["modelyard.decision"], tags["modelyard.overfit"]) == ("promote", "true")
    assert tags["modelyard.note"] == "promoted v1 to champion" == rows["note"]
    experiment = parent.info.experiment_id
    assert rows["look at it"] == (
        f"mlflow ui --backend-store-uri {uri}  # then open "
        f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning"
    )
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"

    gated = modelyard(*args, "--reject-overfit", "true", cwd=tmp_path)
    assert gated.returncode == 0, gated.stderr
    rows = summary_rows(gated.stdout)
    assert (rows["decision"], rows["@champion"], rows["registered"]) == ("REJECT", "v1", f"{MODEL} v2")
    failed = {k: v for k, v in rows.items() if k.startswith("gate ") and v.startswith("FAIL")}
    assert list(failed) == ["gate reject_overfit"], rows
    assert re.fullmatch(
        r"FAIL  train-validation gap \+0\.\d{4} > overfit_gap 0\.1", failed["gate reject_overfit"]
    )
    assert rows["note"].startswith("v2 rejected: train-validation gap +0.")
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == "1"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["run", "--model-name", ""], "--model-name is empty: give it a value or leave the flag out"),
        (["run", "--dataset="], "--dataset is empty: give it a value or leave the flag out"),
        (
            ["run", "--model-name", "m", "--work-dir", ""],
            "--work-dir is empty: give it a value or leave the flag out",
        ),
        (
            ["monitor", "--retrain", "--dataset", "batch.csv", "--model-name", ""],
            "--model-name is empty: give it a value or leave the flag out",
        ),
        (["rollback", "--model-name="], "--model-name is empty: give it a value or leave the flag out"),
    ],
)
def test_an_empty_flag_value_exits_2_before_anything_is_created(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    done = modelyard(*flags, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"modelyard: error: {message}"]
    assert list(tmp_path.iterdir()) == []


def read_only(directory: Path) -> list[str]:
    """A command prefix that runs its command with `directory` read-only, even for root (for whom
    file modes are no barrier: a read-only bind mount in a private mount namespace)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip(
            "needs unshare (util-linux: apt-get install util-linux) to make a directory read-only for root"
        )
    # cd again: a working directory entered before the mount would still be the writable one.
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && cd "$PWD" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(directory)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["run"], "the work dir .modelyard/runs cannot be created: {ro} is not writable"),
        (
            ["run", "--work-dir", "{ro}/runs"],
            "the work dir {ro}/runs cannot be created: {ro} is not writable",
        ),
        (
            ["run", "--work-dir", "{rw}/runs"],
            "the MLflow store's directory {ro}/.modelyard cannot be created: {ro} is not writable",
        ),
        (
            ["monitor", "--retrain", "--dataset", "batch.csv", "--model-name", "m"],
            "the work dir .modelyard/runs cannot be created: {ro} is not writable",
        ),
    ],
    ids=["project-dir", "work-dir", "store-dir", "monitor-retrain"],
)
def test_a_read_only_directory_exits_2_and_nothing_is_created(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    prefix = read_only(ro)
    probe = subprocess.run([*prefix, "touch", str(ro / "probe")], capture_output=True, text=True)
    assert probe.returncode != 0, "the directory is writable: the test would prove nothing"
    cwd = rw if "{ro}" in " ".join(flags) else ro
    command = [*prefix, *MODELYARD, *(f.format(ro=ro, rw=rw) for f in flags)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"modelyard: error: {message.format(ro=ro, rw=rw)}"]
    assert list(ro.iterdir()) == [] and list(rw.iterdir()) == []


def test_a_full_tie_goes_to_the_earlier_candidate_in_the_search_space() -> None:
    f1 = METRICS["f1_macro"]
    listed = [result("logistic_regression[C=1.0]", 1.0, False), result("gradient_boosting[n=50]", 1.0, False)]
    assert pick(listed, f1).name == "logistic_regression[C=1.0]"
    assert pick(listed[::-1], f1).name == "gradient_boosting[n=50]"
