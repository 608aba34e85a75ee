from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from modelyard.contract import SPLITS, PipelineStepParams, PrepareParams
from modelyard.contract.config import for_task, load_config
from modelyard.core.errors import BadInputError
from modelyard.steps.prepare import prepare
from modelyard.steps.split import canonical, fingerprint, split


def run_split(work_dir: Path, **settings: object) -> Path:
    prepared = prepare(PrepareParams(**settings), work_dir)
    split(PipelineStepParams(config=prepared.config, run_id=prepared.run_id), work_dir)
    return work_dir / SPLITS


def test_same_seed_and_data_give_byte_identical_splits(
    tmp_path: Path, tracking_uri: str, customers_csv: Path
) -> None:
    first = run_split(tmp_path / "a", dataset=str(customers_csv), label="churn", seed=7)
    second = run_split(tmp_path / "b", dataset=str(customers_csv), label="churn", seed=7)
    for name in ("train.parquet", "validation.parquet", "test.parquet", "profile.json", "split.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_different_seed_gives_a_different_split(tmp_path: Path, tracking_uri: str) -> None:
    first = run_split(tmp_path / "a", seed=1)
    second = run_split(tmp_path / "b", seed=2)
    assert (first / "train.parquet").read_bytes() != (second / "train.parquet").read_bytes()


def test_split_is_70_15_15_and_stratified(tmp_path: Path, tracking_uri: str) -> None:
    out = run_split(tmp_path)
    parts = {name: pd.read_parquet(out / f"{name}.parquet") for name in ("train", "validation", "test")}
    assert [len(p) for p in parts.values()] == [105, 22, 23]
    for part in parts.values():
        shares = part["target"].value_counts(normalize=True)
        assert shares.max() - shares.min() < 0.1  # iris is balanced, so each split is too
    summary = json.loads((out / "split.json").read_text())
    assert summary["stratified"] is True and summary["rows"] == 150


def test_fingerprint_ignores_row_order_but_not_values(customers_csv: Path) -> None:
    frame = pd.read_csv(customers_csv)
    shuffled = frame.sample(frac=1, random_state=3)
    assert fingerprint(canonical(frame)) == fingerprint(canonical(shuffled))
    changed = frame.copy()
    changed.loc[0, "age"] += 1
    assert fingerprint(canonical(frame)) != fingerprint(canonical(changed))


def test_a_class_too_small_to_stratify_falls_back_with_a_warning(
    tmp_path: Path, tracking_uri: str, customers_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.read_csv(customers_csv)
    frame.loc[0, "churn"] = "maybe"  # a class of one row cannot be stratified
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        out = run_split(tmp_path / "w", dataset=str(path), label="churn")
    assert "cannot stratify" in caplog.text and "'maybe'" in caplog.text
    assert json.loads((out / "split.json").read_text())["stratified"] is False


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dataset": "no-such-set"}, "unknown dataset 'no-such-set'"),
        ({"dataset": "missing.csv"}, "dataset file not found: missing.csv"),
        ({"dataset": "iris", "label": "species"}, "label column 'species' not in dataset iris"),
        ({"dataset": "ftp://host/x.csv"}, "unsupported dataset URI"),
    ],
)
def test_bad_datasets_fail_with_a_specific_message(
    tmp_path: Path, tracking_uri: str, settings: dict[str, str], message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        run_split(tmp_path, **settings)


def test_an_unreadable_or_empty_file_is_bad_input(tmp_path: Path, tracking_uri: str) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(BadInputError, match="cannot read dataset"):
        run_split(tmp_path / "g", dataset=str(garbage))
    empty = tmp_path / "empty.csv"
    empty.write_text("a,target\n")
    with pytest.raises(BadInputError, match="has no rows"):
        run_split(tmp_path / "e", dataset=str(empty))


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(BadInputError, match=r"thresholds.min_acuracy: unknown key"):
        load_config("thresholds:\n  min_acuracy: 0.9\n")
    with pytest.raises(BadInputError, match="fractions: train \\+ validation \\+ test must add up to 1"):
        load_config("fractions: {train: 0.5, validation: 0.1, test: 0.1}")
    with pytest.raises(BadInputError, match=r"search_space: random_forest: max_dept: unknown key"):
        from modelyard.ml.model import expand_candidates

        expand_candidates(
            for_task(load_config("search_space: {random_forest: {max_dept: [3]}}"), "regression")
        )
    assert load_config("", {"min_accuracy": 0.9, "seed": None}).thresholds.min_accuracy == 0.9


@pytest.mark.parametrize("name", ["", "a/b", "it's", "-lead", "x" * 201])
def test_a_model_name_mlflow_or_a_registry_filter_would_choke_on_is_refused_up_front(name: str) -> None:
    with pytest.raises(BadInputError, match=r"model_name: .*is not a valid model name: use up to 200"):
        load_config("", {"model_name": name})


def test_search_space_values_are_bounded_when_the_config_is_read() -> None:
    with pytest.raises(BadInputError, match=r"random_forest: n_estimators.0: .*less than or equal to 2000"):
        load_config("search_space: {random_forest: {n_estimators: [100000000]}}")
    with pytest.raises(BadInputError, match=r"ridge: alpha: .*at least 1 item"):
        load_config("search_space: {ridge: {alpha: []}}")
    assert load_config("search_space: {random_forest: {max_depth: [null, 5]}}").search_space


def test_a_label_without_values_is_bad_input_before_any_run_and_in_split(
    tmp_path: Path, tracking_uri: str
) -> None:
    import mlflow

    path = tmp_path / "unlabelled.csv"
    pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 10, "y": [None] * 40}).to_csv(path, index=False)
    no_values = "label column 'y' in dataset .*unlabelled.csv has no values: all 40 rows are missing"
    for task in (None, "regression"):
        with pytest.raises(BadInputError, match=no_values):
            prepare(PrepareParams(dataset=str(path), label="y", task=task), tmp_path / "p")
    assert mlflow.search_runs(search_all_experiments=True).empty  # refused before any run was opened
    # Task and search space both set: prepare does not read the label, split refuses it.
    config = "search_space: {ridge: {alpha: [1.0]}}"
    with pytest.raises(BadInputError, match=no_values):
        run_split(tmp_path / "s", dataset=str(path), label="y", task="regression", config=config)


def test_a_small_test_split_is_recorded_and_warned(
    tmp_path: Path, tracking_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "small.csv"
    pd.DataFrame({"x": range(40), "y": ["a"] * 30 + ["b"] * 10}).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        out = run_split(tmp_path / "w", dataset=str(path), label="y")
    note = json.loads((out / "split.json").read_text())["small_test"]
    assert note.startswith("small test split: 6 rows (fewer than 30); fewer than 5 rows of class 'b': 1;")
    assert note in caplog.text
    big = run_split(tmp_path / "big", dataset="breast_cancer")  # 86 test rows, each class 30 or more
    assert json.loads((big / "split.json").read_text())["small_test"] is None
