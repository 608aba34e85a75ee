"""Column roles through the real CLI: dates become date features, ID-like and free-text columns are
left out with a warning, the config's `columns` section is honoured and recorded, and the champion
serves raw rows with later dates and unseen IDs; monitoring and validation follow the same roles."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import champion_predictions, modelyard, store_client

from modelyard.contract.config import Columns
from modelyard.core.errors import BadInputError
from modelyard.dates import DateFeatures
from modelyard.ml.columns import resolve_roles

MODEL = "accounts"
# Two estimators keep each run short; the columns, not the search, are under test.
CONFIG = "search_space: {logistic_regression: {C: [1.0]}, random_forest: {n_estimators: [50]}}\n"
FIRST = ["Ann", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana"]
LAST = ["Smith", "Jones", "Brown", "Lee", "Khan", "Garcia", "Meyer", "Rossi"]


def make_accounts(rows: int = 800, seed: int = 0) -> pd.DataFrame:
    """Accounts as an export has them: an ID, the holder's name, a signup date (text), and churn
    that falls with tenure, which only a date feature can learn."""
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, rows), unit="D")
    tenure = np.asarray((pd.Timestamp("2025-01-01") - signup).days) / 365
    plan = rng.choice(["basic", "pro", "enterprise"], rows, p=[0.5, 0.35, 0.15])
    logits = 2.5 - 1.8 * tenure + 0.8 * (plan == "basic") - 0.8 * (plan == "enterprise")
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logits)), "yes", "no")
    holders = [
        f"{a} {b} no. {seed}-{i}"
        for i, (a, b) in enumerate(zip(rng.choice(FIRST, rows), rng.choice(LAST, rows), strict=True))
    ]
    return pd.DataFrame(
        {
            "account_id": np.arange(rows) + 1_000_000 * seed + 1,
            "holder": holders,
            "signup": signup.strftime("%Y-%m-%d"),
            "age": rng.normal(40, 12, rows).round(),
            "plan": plan,
            "churn": churn,
        }
    )


def run(root: Path, dataset: str, config: str = "") -> subprocess.CompletedProcess[str]:
    (root / "pipeline.yaml").write_text(CONFIG + config)
    args = ("--config", "pipeline.yaml", "--dataset", dataset, "--label", "churn", "--model-name", MODEL)
    return modelyard("run", *args, cwd=root)


def version_tags(root: Path, version: str) -> dict[str, str]:
    return store_client(root).get_model_version(MODEL, version).tags


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


# A recent signup churns, an old one stays; the holder and the ID were never seen.
RAW_ROWS = pd.DataFrame(
    {
        "account_id": [99_999_998, 99_999_999],
        "holder": ["Zed Quinn no. new-1", "Yara Ode no. new-2"],
        "signup": ["2026-03-01", "2022-01-15"],  # the first is later than every training date
        "age": [40.0, 40.0],
        "plan": ["pro", "pro"],
    }
)


# One recent signup written three ways in one request: every row is the same date.
SAME_DATE_ROWS = pd.concat([RAW_ROWS.iloc[[0]]] * 3, ignore_index=True).assign(
    signup=["2026-03-25", "03/25/2026", "Mar 25 2026"]
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A project whose first run, on a CSV export, promoted a champion."""
    root = tmp_path_factory.mktemp("columns")
    make_accounts().to_csv(root / "accounts.csv", index=False)
    done = run(root, "accounts.csv")
    assert done.returncode == 0, done.stderr
    return root, done


def test_id_and_free_text_are_left_out_with_a_warning_naming_them(
    project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, done = project
    (warning,) = [
        line for line in done.stderr.splitlines() if line.startswith("WARNING modelyard.ml.columns")
    ]
    assert "account_id (ID-like: 800 distinct values in 800 rows)" in warning
    assert "holder (free text: 800 distinct values in 800 rows)" in warning
    tags = version_tags(root, "1")
    assert tags["modelyard.decision"] == "promote"
    assert tags["modelyard.features"] == "signup, age, plan"
    assert tags["modelyard.datetime_columns"] == "signup"
    assert tags["modelyard.excluded_columns"].startswith("account_id (ID-like")
    parent = store_client(root).get_run(tags["modelyard.pipeline_run_id"]).data.tags
    assert {k: parent[k] for k in ("modelyard.features", "modelyard.datetime_columns")} == {
        "modelyard.features": "signup, age, plan",
        "modelyard.datetime_columns": "signup",
    }


def test_the_champion_profiles_dates_as_a_range_and_not_the_left_out_columns(
    project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, _ = project
    version = store_client(root).get_model_version(MODEL, "1")
    path = store_client(root).download_artifacts(version.run_id, "reference/profile.json", str(root))
    columns = json.loads(Path(path).read_text())["columns"]
    assert sorted(columns) == ["age", "plan", "signup"]
    assert columns["signup"]["kind"] == "datetime"
    assert "2022-01-01" <= columns["signup"]["min"] < columns["signup"]["max"] < "2025-01-01"


def test_a_fresh_process_serves_raw_rows_with_a_later_date_and_an_unseen_id(
    project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, _ = project
    assert champion_predictions(root, MODEL, RAW_ROWS) == ["yes", "no"]


def test_a_fresh_process_reads_one_date_in_three_formats_in_one_request_alike(
    project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, _ = project
    assert champion_predictions(root, MODEL, SAME_DATE_ROWS) == ["yes", "yes", "yes"]


def _other_format(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(signup=pd.to_datetime(frame["signup"]).dt.strftime("%d/%m/%Y"))


def _unreadable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(signup=frame["signup"].where(np.arange(len(frame)) % 3 != 0, "soon"))


@pytest.mark.parametrize(
    ("change", "verdict"),
    [(lambda f: f, "ok"), (_other_format, "ok"), (_unreadable, "retrain")],
    ids=["fresh", "dates-in-another-format", "a-third-of-dates-unreadable"],
)
def test_monitor_follows_the_roles_and_reads_dates_as_dates(
    change, verdict: str, project: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    root, _ = project
    change(make_accounts(600, seed=1)).to_csv(tmp_path / "batch.csv", index=False)  # new IDs and holders
    done = modelyard("monitor", "--dataset", str(tmp_path / "batch.csv"), "--model-name", MODEL, cwd=root)
    assert done.returncode == 0, done.stderr
    assert f"verdict: {verdict}" in done.stdout, done.stdout
    table = done.stdout.split("verdict:")[0]
    assert "account_id" not in table and "holder" not in table
    assert re.search(r"^  signup +datetime ", table, re.MULTILINE), table
    if verdict == "retrain":
        assert "- signup: missing share 0.0% -> 33.3%" in table, table


def test_native_datetimes_in_parquet_train_and_serve_date_strings(tmp_path: Path) -> None:
    frame = make_accounts()
    frame["signup"] = pd.to_datetime(frame["signup"])
    frame.to_parquet(tmp_path / "accounts.parquet")
    done = run(tmp_path, "accounts.parquet")
    assert done.returncode == 0, done.stderr
    assert "holds text" not in done.stderr
    tags = version_tags(tmp_path, "1")
    assert tags["modelyard.decision"] == "promote", tags["modelyard.reasons"]
    assert tags["modelyard.datetime_columns"] == "signup"
    assert champion_predictions(tmp_path, MODEL, RAW_ROWS) == ["yes", "no"]
    # Served as text, its dates are parsed by the model, not MLflow: an unreadable one is imputed.
    rows = pd.concat([SAME_DATE_ROWS, RAW_ROWS.assign(signup=["soon", None])], ignore_index=True)
    predicted = champion_predictions(tmp_path, MODEL, rows)
    assert predicted[:3] == ["yes", "yes", "yes"] and set(predicted[3:]) <= {"yes", "no"}


def test_columns_drop_is_honoured_recorded_and_the_champion_still_scored_with_its_own_columns(
    tmp_path: Path,
) -> None:
    make_accounts().to_csv(tmp_path / "first.csv", index=False)
    assert run(tmp_path, "first.csv").returncode == 0
    make_accounts(seed=2).to_csv(tmp_path / "fresh.csv", index=False)  # new IDs and holders
    done = run(tmp_path, "fresh.csv", "columns: {drop: [age]}\n")
    assert done.returncode == 0, done.stderr
    tags = version_tags(tmp_path, "2")
    assert tags["modelyard.features"] == "signup, plan"
    assert "age (in columns.drop)" in tags["modelyard.excluded_columns"]
    runs = store_client(tmp_path).search_runs(
        [store_client(tmp_path).get_run(tags["modelyard.pipeline_run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{tags['modelyard.pipeline_run_id']}'",
    )
    steps = {r.info.run_name: r for r in runs}
    # The fresh export passes validation against the champion, whose profile has no ID or holder.
    assert steps["validate"].data.tags["modelyard.validation"] in ("pass", "warn")
    evaluation = mlflow.artifacts.load_dict(
        f"{steps['evaluate'].info.artifact_uri}/evaluation/evaluation.json"
    )
    # v1 was trained with age: it is scored with age, though this run leaves it out.
    assert evaluation["champion"]["version"] == "1" and evaluation["champion"]["metrics"], evaluation


def test_columns_features_are_the_only_ones_and_may_keep_free_text(tmp_path: Path) -> None:
    frame = make_accounts()
    frame.loc[frame.index % 25 == 0, "signup"] = "unknown"  # 4%: still a date column, with a warning
    frame.to_csv(tmp_path / "accounts.csv", index=False)
    done = run(tmp_path, "accounts.csv", "columns: {features: [holder, signup, plan]}\n")
    assert done.returncode == 0, done.stderr
    assert "WARNING modelyard.ml.columns" not in done.stderr
    assert "warning [dates] column 'signup': 4.0% of values are not dates, e.g. ['unknown']" in done.stderr
    tags = version_tags(tmp_path, "1")
    assert tags["modelyard.features"] == "holder, signup, plan"
    assert tags["modelyard.excluded_columns"] == (
        "account_id (not in columns.features); age (not in columns.features)"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("columns: {features: [age, plan], drop: [plan]}", "columns: features and drop both list plan"),
        ("columns: {features: [age], datetime: [signup]}", "columns: datetime lists signup, not in features"),
        ("columns: {drop: [signup], datetime: [signup]}", "columns: datetime lists dropped column(s) signup"),
        ("columns: {drop: [churn]}", "columns lists the label 'churn': the label is never a feature"),
    ],
    ids=["features-and-drop", "datetime-not-a-feature", "datetime-dropped", "label"],
)
def test_contradictory_columns_exit_2_before_anything_is_written(
    config: str, message: str, tmp_path: Path
) -> None:
    make_accounts(100).to_csv(tmp_path / "accounts.csv", index=False)
    done = run(tmp_path, "accounts.csv", config + "\n")
    assert done.returncode == 2, done.stderr
    assert message in last_line(done)
    assert not (tmp_path / ".modelyard").exists()


def test_columns_not_in_the_data_exit_2_naming_them_and_register_nothing(tmp_path: Path) -> None:
    make_accounts(100).to_csv(tmp_path / "accounts.csv", index=False)
    done = run(tmp_path, "accounts.csv", "columns: {drop: [agee, planx]}\n")
    assert done.returncode == 2, done.stderr
    assert last_line(done).startswith("modelyard: error: columns: agee, planx not in the dataset (it has:")
    assert store_client(tmp_path).search_registered_models() == []


def test_a_datetime_column_that_holds_no_dates_is_refused() -> None:
    frame = make_accounts(100)
    with pytest.raises(
        BadInputError, match=r"columns.datetime: column 'plan' holds values that are not dates"
    ):
        resolve_roles(frame, "churn", Columns(datetime=["plan"]))


def test_default_roles_keep_real_features() -> None:
    frame = make_accounts(200)
    frame["visits"] = np.random.default_rng(0).permutation(200) * 37  # distinct integers, not row numbers
    frame["city"] = np.random.default_rng(1).choice([f"city {i}" for i in range(60)], 200)
    frame["when"] = pd.date_range("2024-01-01 08:00", periods=200, freq="7h").strftime("%d/%m/%Y %H:%M")
    roles = resolve_roles(frame, "churn", Columns())
    assert roles.datetime == ["signup", "when"]
    assert roles.numeric == ["age", "visits"]
    assert roles.categorical == ["plan", "city"]
    assert sorted(roles.excluded) == ["account_id", "holder"]


def test_date_features_parse_text_and_datetimes_and_leave_missing_dates_for_the_imputer() -> None:
    train = pd.DataFrame(
        {"day": ["2024-01-01", "2024-03-02", None], "at": pd.to_datetime(["2024-01-01 10:00"] * 3)}
    )
    features = DateFeatures().fit(train)
    assert list(features.get_feature_names_out()) == [
        *("day_year", "day_month", "day_day", "day_weekday", "day_days"),
        *("at_year", "at_month", "at_day", "at_weekday", "at_hour", "at_days"),
    ]
    served = features.transform(
        pd.DataFrame({"day": ["2025-01-01", "not a date"], "at": ["2024-01-02 11:00", None]})
    )
    assert served[0].tolist() == pytest.approx([2025, 1, 1, 2, 366, 2024, 1, 2, 1, 11, 1 + 1 / 24])
    assert np.isnan(served[1]).all()


@pytest.mark.parametrize(
    "trained_on",
    [
        ["2004-03-02", "2006-12-25", "2005-07-15"],
        pd.to_datetime(["2004-03-02", "2006-12-25", "2005-07-15"]),
        ["02/03/2004", "25/12/2006", "15/07/2005"],
    ],
    ids=["iso-text", "parquet-datetimes", "day-first-text"],
)
def test_date_features_read_one_date_in_any_format_alike(trained_on: list[str] | pd.DatetimeIndex) -> None:
    features = DateFeatures().fit(pd.DataFrame({"day": trained_on}))
    served = features.transform(pd.DataFrame({"day": ["2005-01-01", "01/01/2005", "Jan 1 2005"]}))
    assert not np.isnan(served).any()
    assert (served == served[0]).all(), served


def test_date_features_read_other_formats_day_first_when_trained_day_first() -> None:
    features = DateFeatures().fit(pd.DataFrame({"day": ["02/03/2004", "25/12/2006", "15/07/2005"]}))
    served = features.transform(
        pd.DataFrame({"day": ["01/02/2005", "2005-02-01", "1 Feb 2005", "01.02.2005"]})
    )
    assert (served[:, :3] == [2005, 2, 1]).all(), served
