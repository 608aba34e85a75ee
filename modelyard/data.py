"""Dataset URIs to DataFrames: scikit-learn's bundled sets, local CSV/Parquet files, s3:// objects."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from modelyard.errors import BadInputError, TransientError

BUILTIN_LABEL = "target"
SUFFIXES = (".csv", ".parquet", ".pq")


def _builtin(loader_name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)(as_frame=True)
        frame = bunch.frame.copy()
        if "target_names" in bunch:  # a classification set: class names, not codes
            frame[BUILTIN_LABEL] = bunch.target_names[bunch.target]
        return frame

    return load


BUILTINS: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": _builtin("load_iris"),
    "wine": _builtin("load_wine"),
    "breast_cancer": _builtin("load_breast_cancer"),
    "diabetes": _builtin("load_diabetes"),  # regression: disease progression after one year
}


def load_dataset(uri: str) -> pd.DataFrame:
    """Read a dataset URI; every failure is a one-line BadInputError or TransientError."""
    return _load(uri, None)


def load_column(uri: str, column: str) -> pd.Series:
    """One column of a dataset (a CSV reads only that column); a missing one is named with the others."""
    return _load(uri, column)[column]


def _load(uri: str, column: str | None) -> pd.DataFrame:
    if uri in BUILTINS:
        frame = BUILTINS[uri]()
        _require(column, list(frame.columns), uri)
        return frame
    if uri.startswith("s3://"):
        return _read_s3(uri, column)
    if "://" in uri:
        raise BadInputError(f"unsupported dataset URI {uri!r}: use {', '.join(BUILTINS)}, a path or s3://")
    return _read_file(Path(uri), uri, column)


def _require(column: str | None, columns: list[str], shown_as: str) -> None:
    if column is not None and column not in columns:
        raise BadInputError(
            f"label column {column!r} not in dataset {shown_as} (columns: {', '.join(map(str, columns))})"
        )


def _read_file(path: Path, shown_as: str, column: str | None = None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        names = ", ".join(BUILTINS)
        raise BadInputError(
            f"unknown dataset {shown_as!r}: expected one of {names}, a .csv/.parquet file or s3://bucket/key"
        )
    if not path.is_file():
        raise BadInputError(f"dataset file not found: {shown_as}")
    try:
        if suffix != ".csv":
            frame = pd.read_parquet(path)
        elif column is not None:  # only the header, then only that column
            _require(column, [str(c) for c in pd.read_csv(path, nrows=0).columns], shown_as)
            frame = pd.read_csv(path, usecols=[column])
        else:
            frame = pd.read_csv(path)
    except BadInputError:
        raise
    except Exception as exc:  # pandas raises many types for a malformed file
        raise BadInputError(f"cannot read dataset {shown_as}: {exc}") from exc
    _require(column, [str(c) for c in frame.columns], shown_as)
    return frame


def s3_client():  # -> minio.Minio
    """An S3 client from the standard AWS variables (AWS_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL)."""
    from minio import Minio

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    parsed = urlparse(endpoint or "https://s3.amazonaws.com")
    return Minio(
        parsed.netloc,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=parsed.scheme == "https",
        region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
    )


def _read_s3(uri: str, column: str | None) -> pd.DataFrame:
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise BadInputError(f"dataset URI {uri!r} needs a bucket and a key: s3://bucket/path/file.csv")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(key).name
        try:
            s3_client().fget_object(bucket, key, str(local))
        except S3Error as exc:
            raise BadInputError(f"cannot read dataset {uri}: {exc.code} ({exc.message})") from exc
        except (HTTPError, OSError) as exc:
            raise TransientError(f"object store unreachable while reading {uri}: {exc}") from exc
        return _read_file(local, uri, column)
