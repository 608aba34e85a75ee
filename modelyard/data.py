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
        frame[BUILTIN_LABEL] = bunch.target_names[bunch.target]
        return frame

    return load


BUILTINS: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": _builtin("load_iris"),
    "wine": _builtin("load_wine"),
    "breast_cancer": _builtin("load_breast_cancer"),
}


def load_dataset(uri: str) -> pd.DataFrame:
    """Read a dataset URI; every failure is a one-line BadInputError or TransientError."""
    if uri in BUILTINS:
        return BUILTINS[uri]()
    if uri.startswith("s3://"):
        return _read_s3(uri)
    if "://" in uri:
        raise BadInputError(f"unsupported dataset URI {uri!r}: use {', '.join(BUILTINS)}, a path or s3://")
    return _read_file(Path(uri), shown_as=uri)


def _read_file(path: Path, shown_as: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        names = ", ".join(BUILTINS)
        raise BadInputError(
            f"unknown dataset {shown_as!r}: expected one of {names}, a .csv/.parquet file or s3://bucket/key"
        )
    if not path.is_file():
        raise BadInputError(f"dataset file not found: {shown_as}")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types for a malformed file
        raise BadInputError(f"cannot read dataset {shown_as}: {exc}") from exc


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


def _read_s3(uri: str) -> pd.DataFrame:
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
        return _read_file(local, shown_as=uri)
