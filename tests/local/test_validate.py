"""Every validation rule has a failing case; good data passes; the step reports all findings at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_customers

from modelyard.contract import SPLITS, VALIDATION, PipelineStepParams
from modelyard.contract.config import for_task, load_config
from modelyard.core.errors import BadInputError
from modelyard.quality.checks import run_checks
from modelyard.quality.profile import profile_frame
from modelyard.steps.validate import validate

CONFIG = for_task(load_config("label: churn"), "classification")
GATED = for_task(load_config("label: churn\nthresholds: {max_null_fraction: 0.1}"), "classification")


@pytest.fixture
def reference() -> dict:
    return profile_frame(make_customers(seed=1), "churn", "classification")


def rules(
    frame: pd.DataFrame, reference: dict | None, config=CONFIG, severity: str = "error"
) -> dict[str, list[str]]:
    findings, _ = run_checks(frame, config, reference)
    found: dict[str, list[str]] = {}
    for f in findings:
        if f.severity == severity:
            found.setdefault(f.rule, []).append(f.message)
    return found


def test_fresh_data_from_the_same_source_passes(reference: dict) -> None:
    assert rules(make_customers(seed=2), reference) == {}


def test_without_a_champion_good_data_passes_the_reference_free_rules() -> None:
    assert rules(make_customers(), None) == {}


def test_missing_extra_and_renamed_columns(reference: dict) -> None:
    frame = make_customers(seed=2).rename(columns={"income": "incme"}).drop(columns=["region"])
    frame["shoe_size"] = 42
    found = rules(frame, reference)
    assert "expected column 'income' is missing (renamed to 'incme'?)" in found["missing_column"]
    assert "expected column 'region' is missing" in found["missing_column"]
    assert "unexpected column 'shoe_size'" in found["extra_column"]


def test_text_in_a_numeric_column(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "forty"
    assert rules(frame, reference)["dtype"] == ["column 'age' should be numeric but holds text: ['forty']"]
    assert "dtype" in rules(frame, None)  # caught without a reference too: mostly numbers, some text


def test_null_fraction_above_a_set_maximum(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame.loc[frame.index[:200], "plan"] = None
    assert rules(frame, reference, GATED)["nulls"] == ["column 'plan' is 33.3% missing (max 10.0%)"]
    frame.loc[0, "churn"] = None
    assert "label column 'churn' has 1 missing values" in rules(frame, reference)["nulls"]


def test_missing_feature_values_are_imputed_so_by_default_they_only_warn() -> None:
    frame = make_customers(seed=2)
    frame.loc[frame.index[:120], "age"] = np.nan  # 20%, as Titanic's age
    frame["notes"] = np.nan
    assert rules(frame, None) == {}
    warnings = rules(frame, None, severity="warning")["nulls"]
    assert "column 'age' is 20.0% missing (imputed)" in warnings
    assert "column 'notes' is entirely missing: the model learns nothing from it" in warnings


def test_infinite_values(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame.loc[5, "income"] = np.inf
    assert rules(frame, reference)["inf"] == ["column 'income' holds infinite values"]


def test_out_of_range_numerics_versus_the_reference(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame.loc[frame.index[:30], "age"] = 250
    (message,) = rules(frame, reference)["range"]
    assert message.startswith("column 'age': 5.") and "outside the expected range [5, 78]" in message
    assert "250.0]" in message
    frame.loc[frame.index[:30], "age"] = 40
    frame.loc[0, "age"] = 250  # one stray value is within the tolerated share: a warning only
    assert "range" in rules(frame, reference, severity="warning")


def test_out_of_range_versus_explicit_expectations() -> None:
    config = for_task(
        load_config("label: churn\nexpectations: {columns: {age: {min: 18, max: 99}}}"), "classification"
    )
    frame = make_customers(seed=2)
    frame.loc[frame.index[:20], "age"] = 5
    assert "outside the expected range [18, 99]" in rules(frame, None, config)["range"][0]


def test_expectations_for_some_columns_leave_the_others_alone(reference: dict) -> None:
    partial = "label: churn\nexpectations: {columns: {age: {min: 0}}%s}"
    config = for_task(load_config(partial % ""), "classification")
    assert rules(make_customers(seed=2), None, config) == {}
    frame = make_customers(seed=2)
    frame["shoe_size"] = 42
    assert rules(frame, reference, config)["extra_column"] == ["unexpected column 'shoe_size'"]
    closed = for_task(load_config(partial % ", allow_extra_columns: false"), "classification")
    extra = rules(make_customers(seed=2), None, closed)["extra_column"]
    assert extra == ["unexpected column 'income'", "unexpected column 'plan'", "unexpected column 'region'"]
    open_ = for_task(load_config(partial % ", allow_extra_columns: true"), "classification")
    assert rules(frame, reference, open_) == {}


def test_unseen_categories(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame.loc[frame.index[:60], "plan"] = "platinum"
    assert "categories never seen before" in rules(frame, reference)["categories"][0]


def test_label_values_outside_the_expected_set(reference: dict) -> None:
    frame = make_customers(seed=2)
    frame.loc[frame.index[:10], "churn"] = "unknown"
    assert rules(frame, reference)["labels"] == [
        "label values not in the expected set ['no', 'yes']: ['unknown']"
    ]
    config = for_task(load_config("label: churn\nexpectations: {labels: ['no']}"), "classification")
    assert "['yes']" in rules(make_customers(), None, config)["labels"][0]


def test_too_few_rows_per_class_and_a_single_class() -> None:
    frame = make_customers()
    frame.loc[frame.index[:3], "churn"] = "maybe"
    assert rules(frame, None)["rows_per_class"] == ["label 'maybe' has 3 rows (min 5)"]
    frame["churn"] = "yes"
    assert "only one label value" in rules(frame, None)["labels"][0]


def test_empty_data_fails(reference: dict) -> None:
    assert rules(make_customers().iloc[:0], reference) == {"empty": ["the data has no rows"]}


def test_on_large_data_drift_warns_then_fails_by_its_size() -> None:
    reference = profile_frame(make_customers(20_000, seed=1), "churn", "classification")
    frame = make_customers(20_000, seed=2)
    frame["age"] = frame["age"] + 2  # a sixth of a standard deviation: above drift_warn, below drift_alert
    (warning,) = rules(frame, reference, severity="warning")["drift"]
    assert warning.startswith("column 'age' drifts: wasserstein: drift 0.1")
    assert "drift" not in rules(frame, reference)
    frame["age"] = frame["age"] + 10
    (error,) = rules(frame, reference)["drift"]
    assert error.startswith("column 'age' drifted: wasserstein: drift 0.9")  # 12 years: about 1 sd


def test_on_small_data_a_test_decides(reference: dict) -> None:
    frame = make_customers(seed=2)
    assert "drift" not in rules(frame, reference, severity="warning")
    frame["age"] = frame["age"] + 12  # one standard deviation
    (error,) = rules(frame, reference)["drift"]
    assert error.startswith("column 'age' drifted: ks p=") and "< 0.005" in error


def write_splits(work_dir: Path, frame: pd.DataFrame) -> None:
    out = work_dir / SPLITS
    out.mkdir(parents=True)
    for part in ("train", "validation", "test"):
        frame.to_parquet(out / f"{part}.parquet", index=False)


def test_the_step_reports_every_violation_at_once_and_fails(tmp_path: Path, tracking_uri: str) -> None:
    import mlflow

    run = mlflow.MlflowClient().create_run(mlflow.create_experiment("v"))
    frame = make_customers()
    frame.loc[frame.index[:200], "plan"] = None
    frame.loc[7, "income"] = np.inf
    write_splits(tmp_path, frame)
    params = PipelineStepParams(config=GATED.model_dump_json(), run_id=run.info.run_id)
    with pytest.raises(BadInputError, match=r"data validation failed: .* \(and 1 more, see .*report.txt\)"):
        validate(params, tmp_path)
    report = json.loads((tmp_path / VALIDATION / "report.json").read_text())
    assert report["status"] == "fail"
    assert {f["rule"] for f in report["findings"]} == {"nulls", "inf"}
    assert "Data validation FAILED: 2 error(s)" in (tmp_path / VALIDATION / "report.txt").read_text()
