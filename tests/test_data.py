"""Directories of Parquet files as datasets: partitioned as pandas or Spark write them, others refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import modelyard

from modelyard.data import BUILTINS, load_column, load_dataset
from modelyard.errors import BadInputError


def iris() -> pd.DataFrame:
    frame = BUILTINS["iris"]()
    frame["batch"] = [2020 + i % 3 for i in range(len(frame))]
    return frame


def same_rows(frame: pd.DataFrame) -> pd.DataFrame:
    ordered = frame[sorted(frame.columns)]
    return ordered.sort_values(list(ordered.columns)).reset_index(drop=True)


@pytest.fixture
def partitioned(tmp_path: Path) -> Path:
    directory = tmp_path / "iris"
    iris().to_parquet(directory, partition_cols=["target", "batch"])
    assert (directory / "target=setosa" / "batch=2020").is_dir()
    return directory


def test_a_partitioned_directory_reads_as_one_dataset_with_plain_partition_columns(partitioned: Path) -> None:
    frame = load_dataset(str(partitioned))
    assert not any(isinstance(dtype, pd.CategoricalDtype) for dtype in frame.dtypes)
    assert pd.api.types.is_string_dtype(frame["target"])
    assert pd.api.types.is_integer_dtype(frame["batch"])
    pd.testing.assert_frame_equal(same_rows(frame), same_rows(iris()), check_dtype=False)


def test_load_column_reads_one_column_of_a_directory(partitioned: Path) -> None:
    label = load_column(str(partitioned), "target")
    assert sorted(label.value_counts().items()) == [("setosa", 50), ("versicolor", 50), ("virginica", 50)]
    assert list(load_column(str(partitioned), "sepal length (cm)").sort_values()) == sorted(
        iris()["sepal length (cm)"]
    )
    with pytest.raises(BadInputError, match=r"label column 'churn' not in dataset .*iris \(columns: .*batch"):
        load_column(str(partitioned), "churn")


def test_spark_side_files_are_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "spark.parquet"
    directory.mkdir()
    frame = iris()
    frame.iloc[:70].to_parquet(directory / "part-00000-c000.snappy.parquet")
    frame.iloc[70:].to_parquet(directory / "part-00001-c000.snappy.parquet")
    (directory / "_SUCCESS").touch()
    (directory / ".part-00000-c000.snappy.parquet.crc").write_bytes(b"\x00crc")
    pd.testing.assert_frame_equal(same_rows(load_dataset(str(directory))), same_rows(frame))


@pytest.mark.parametrize("contents", [[], ["a.csv", "b.csv"], ["_SUCCESS", ".x.parquet.crc"]])
def test_a_directory_without_parquet_files_is_refused(tmp_path: Path, contents: list[str]) -> None:
    directory = tmp_path / "raw"
    directory.mkdir()
    for name in contents:
        (directory / name).write_text("a,b\n1,2\n")
    with pytest.raises(
        BadInputError, match=rf"dataset {directory} is a directory without Parquet files: give"
    ):
        load_dataset(str(directory))


def test_modelyard_run_trains_on_a_partitioned_directory(tmp_path: Path, partitioned: Path) -> None:
    shutil.move(partitioned, tmp_path / "data")
    (tmp_path / "pipeline.yaml").write_text("search_space: {logistic_regression: {C: [1.0]}}\n")
    done = modelyard(
        "run", "--dataset", "data", "--label", "target", "--model-name", "iris-dir", "--config", "pipeline.yaml",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
