"""Dataset URIs to DataFrames: scikit-learn's bundled sets, local CSV/Parquet files, s3:// objects, and
local directories of Parquet files (partitioned as pandas or Spark write them; `col=value/` are columns)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pandas as pd

from modelyard.config import COUNT_DEFAULTS, S3_RETRIES, S3_TIMEOUT, SECONDS_DEFAULTS, env_count, env_seconds
from modelyard.errors import BadInputError, TransientError

if TYPE_CHECKING:
    from minio import Minio

BUILTIN_LABEL = "target"
PARQUET = (".parquet", ".pq")
SUFFIXES = (".csv", *PARQUET)


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
    if path.is_dir():
        return _read_parquet_dir(path, shown_as, column)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        names = ", ".join(BUILTINS)
        raise BadInputError(
            f"unknown dataset {shown_as!r}: expected one of {names}, a .csv/.parquet file, "
            "a directory of Parquet files or s3://bucket/key"
        )
    if not path.is_file():
        raise BadInputError(f"dataset file not found: {shown_as}")
    try:
        if suffix != ".csv":
            frame = _read_parquet_file(path, shown_as, column)
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


def _read_parquet_file(path: Path, shown_as: str, column: str | None) -> pd.DataFrame:
    if column is None:
        return pd.read_parquet(path)
    import pyarrow.parquet as pq

    _require(column, list(pq.read_schema(path).names), shown_as)
    return pd.read_parquet(path, columns=[column])


def _has_parquet(directory: Path) -> bool:
    """Whether pyarrow finds data below: .parquet/.pq files, not `.`/`_` names (Spark's .crc, _SUCCESS)."""
    return any(
        p.suffix.lower() in PARQUET
        and not any(part.startswith((".", "_")) for part in p.relative_to(directory).parts)
        for p in directory.rglob("*")
    )


def _read_parquet_dir(path: Path, shown_as: str, column: str | None) -> pd.DataFrame:
    """A partitioned Parquet dataset as one frame; `col=value` partitions as plain, not category, columns."""
    import pyarrow.parquet as pq

    if not _has_parquet(path):
        raise BadInputError(
            f"dataset {shown_as} is a directory without Parquet files: give a .csv/.parquet file, "
            f"a directory of Parquet files, {', '.join(BUILTINS)} or s3://bucket/key"
        )
    try:
        dataset = pq.ParquetDataset(path)
        _require(column, list(dataset.schema.names), shown_as)
        frame = pd.read_parquet(path, columns=None if column is None else [column])
    except BadInputError:
        raise
    except Exception as exc:  # pyarrow raises many types for a malformed dataset
        raise BadInputError(f"cannot read dataset {shown_as}: {exc}") from exc
    for name in dataset.partitioning.schema.names if dataset.partitioning else []:
        if name in frame and isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(frame[name].cat.categories.dtype)
    return frame


def s3_endpoint() -> str:
    """The S3 endpoint URL from AWS_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL, else AWS's."""
    return (
        os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        or "https://s3.amazonaws.com"
    )


def s3_client() -> Minio:
    """An S3 client from the standard AWS variables, with bounded waits: MinIO's own client waits
    300 s for each read and retries 5 times, so a silent endpoint would hang a run for half an hour."""
    import certifi
    import urllib3
    from minio import Minio

    seconds = env_seconds(S3_TIMEOUT, SECONDS_DEFAULTS[S3_TIMEOUT])
    retries = urllib3.Retry(
        total=env_count(S3_RETRIES, COUNT_DEFAULTS[S3_RETRIES]),
        backoff_factor=0.2,
        status_forcelist=[500, 502, 503, 504],
    )
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=seconds, read=seconds),
        retries=retries,
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )
    parsed = urlparse(s3_endpoint())
    return Minio(
        parsed.netloc,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=parsed.scheme == "https",
        region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        http_client=http,
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
            raise TransientError(
                f"object store {s3_endpoint()} did not answer while reading {uri} "
                f"(waits are bounded by {S3_TIMEOUT}, {S3_RETRIES}): {exc}"
            ) from exc
        return _read_file(local, uri, column)
