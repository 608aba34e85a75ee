"""Directories of Parquet files as datasets: partitioned as pandas or Spark write them, others refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import modelyard

from modelyard.core.errors import BadInputError
from modelyard.ml.datasets import BUILTINS, load_column, load_dataset


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


def test_duplicate_column_names_exit_2_naming_them(tmp_path: Path) -> None:
    (tmp_path / "dupes.csv").write_text("age,plan,age,churn\n30,basic,31,yes\n40,pro,41,no\n")
    with pytest.raises(BadInputError, match=r"dupes.csv has duplicate column names: 'age'; give every"):
        load_dataset(str(tmp_path / "dupes.csv"))
    with pytest.raises(BadInputError, match="duplicate column names: 'age'"):
        load_column(str(tmp_path / "dupes.csv"), "churn")
    done = modelyard("run", "--dataset", "dupes.csv", "--label", "churn", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "duplicate column names: 'age'" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / ".modelyard" / "artifacts").exists()  # nothing logged, nothing registered


def test_duplicate_column_names_in_parquet_exit_2(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table([[1, 2], [3, 4], ["a", "b"]], names=["x", "x", "label"])
    pq.write_table(table, tmp_path / "dupes.parquet")
    with pytest.raises(BadInputError, match="duplicate column names: 'x'"):
        load_dataset(str(tmp_path / "dupes.parquet"))


def test_a_semicolon_file_with_a_byte_order_mark_gets_a_separator_hint(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("age;plan;churn\n30;basic;yes\n", encoding="utf-8-sig")
    with pytest.raises(BadInputError) as error:
        load_column(str(path), "churn")
    assert str(error.value).endswith(
        "(columns: age;plan;churn); the file looks separated by semicolons, not commas: save it as comma-separated CSV"
    )
    path.write_text("age\tchurn\n30\tyes\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="separated by tabs, not commas"):
        load_column(str(path), "churn")


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("churn,age\nyes,30\n", encoding="utf-8-sig")
    assert list(load_dataset(str(path)).columns) == ["churn", "age"]
    assert list(load_column(str(path), "churn")) == ["yes"]


def test_a_missing_parquet_module_is_a_bug_naming_it_not_bad_input(tmp_path: Path) -> None:
    iris().to_parquet(tmp_path / "iris.parquet")
    hide_pyarrow = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None; "
        "from modelyard.ml.datasets import load_dataset; from modelyard.cli.main import main; "
        "sys.argv = ['modelyard', 'run', '--dataset', 'iris.parquet', '--label', 'target']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_pyarrow], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "cannot read dataset iris.parquet: the Python module pyarrow" in line, line
    assert "packaging bug" in line
