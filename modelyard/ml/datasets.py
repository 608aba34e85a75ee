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

from modelyard.contract.config import (
    COUNT_DEFAULTS,
    S3_RETRIES,
    S3_TIMEOUT,
    SECONDS_DEFAULTS,
    env_count,
    env_seconds,
)
from modelyard.core.errors import BadInputError, ModelyardError, TransientError
from modelyard.core.transient import unreachable

if TYPE_CHECKING:
    from minio import Minio

BUILTIN_LABEL = "target"
PARQUET = (".parquet", ".pq")
SUFFIXES = (".csv", *PARQUET)
SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "pipes"}
CSV_ENCODING = "utf-8-sig"  # a byte-order mark (Excel's UTF-8 export) is not part of the first name


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
            + _separator_hint(columns)
        )


def _separator_hint(columns: list[str]) -> str:
    """A CSV read as one column whose name holds another separator was written with that one."""
    if len(columns) != 1:
        return ""
    found = [name for sep, name in SEPARATORS.items() if sep in str(columns[0])]
    return (
        f"; the file looks separated by {found[0]}, not commas: save it as comma-separated CSV"
        if found
        else ""
    )


def _refuse_duplicates(columns: list[str], shown_as: str) -> None:
    """pandas would rename a repeated column `x.1`, a feature nobody named: refuse instead."""
    repeated = sorted({str(c) for c in columns if columns.count(c) > 1})
    if repeated:
        raise BadInputError(
            f"dataset {shown_as} has duplicate column names: {', '.join(map(repr, repeated))}; "
            "give every column a distinct name"
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
        else:
            frame = _read_csv(path, shown_as, column)
    except ModelyardError:
        raise
    except ImportError as exc:
        raise missing_module(exc, shown_as) from exc
    except Exception as exc:  # pandas raises many types for a malformed file
        raise BadInputError(f"cannot read dataset {shown_as}: {exc}") from exc
    _require(column, [str(c) for c in frame.columns], shown_as)
    return frame


def missing_module(exc: ImportError, shown_as: str) -> ModelyardError:
    """A module the installation lacks is a packaging bug (exit 1), never the user's bad input."""
    return ModelyardError(
        f"cannot read dataset {shown_as}: the Python module {exc.name or exc} is not installed "
        "(a packaging bug: install modelyard with its dependencies, or report it)"
    )


def _read_csv(path: Path, shown_as: str, column: str | None) -> pd.DataFrame:
    """The header first, as written (pandas would rename repeated names), then the rows: all of
    them, or only the one column asked for."""
    first_row = pd.read_csv(path, header=None, nrows=1, dtype=str, encoding=CSV_ENCODING)
    names = [str(name) for name in first_row.iloc[0]]
    _refuse_duplicates(names, shown_as)
    _require(column, names, shown_as)
    return pd.read_csv(path, usecols=None if column is None else [column], encoding=CSV_ENCODING)


def _read_parquet_file(path: Path, shown_as: str, column: str | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    names = list(pq.read_schema(path).names)
    _refuse_duplicates(names, shown_as)
    _require(column, names, shown_as)
    return pd.read_parquet(path, columns=None if column is None else [column])


def _has_parquet(directory: Path) -> bool:
    """Whether pyarrow finds data below: .parquet/.pq files, not `.`/`_` names (Spark's .crc, _SUCCESS)."""
    return any(
        p.suffix.lower() in PARQUET
        and not any(part.startswith((".", "_")) for part in p.relative_to(directory).parts)
        for p in directory.rglob("*")
    )


def _read_parquet_dir(path: Path, shown_as: str, column: str | None) -> pd.DataFrame:
    """A partitioned Parquet dataset as one frame; `col=value` partitions as plain, not category, columns."""
    if not _has_parquet(path):
        raise BadInputError(
            f"dataset {shown_as} is a directory without Parquet files: give a .csv/.parquet file, "
            f"a directory of Parquet files, {', '.join(BUILTINS)} or s3://bucket/key"
        )
    try:
        import pyarrow.parquet as pq

        dataset = pq.ParquetDataset(path)
        _refuse_duplicates(list(dataset.schema.names), shown_as)
        _require(column, list(dataset.schema.names), shown_as)
        frame = pd.read_parquet(path, columns=None if column is None else [column])
    except ModelyardError:
        raise
    except ImportError as exc:
        raise missing_module(exc, shown_as) from exc
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
    """An object (a .csv/.parquet key), or every object under a prefix read as a Parquet directory."""
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise BadInputError(f"dataset URI {uri!r} needs a bucket and a key: s3://bucket/path/file.csv")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = _fetch_s3(s3_client(), bucket, key, Path(tmp))
        except S3Error as exc:
            raise BadInputError(f"cannot read dataset {uri}: {exc.code} ({exc.message})") from exc
        except (HTTPError, OSError) as exc:
            raise TransientError(
                f"object store {s3_endpoint()} {unreachable(exc)} while reading {uri} "
                f"(waits are bounded by {S3_TIMEOUT}, {S3_RETRIES}): {exc}"
            ) from exc
        return _read_file(local, uri, column)


def _fetch_s3(s3: Minio, bucket: str, key: str, into: Path) -> Path:
    """Download the object `key`; when there is none, every object under `key/`, keeping the
    layout (partition folders), as a local directory. Neither: the object's NoSuchKey."""
    from minio.error import S3Error

    if not key.endswith("/"):
        try:
            s3.fget_object(bucket, key, str(into / Path(key).name))
            return into / Path(key).name
        except S3Error as missing:
            if missing.code != "NoSuchKey":
                raise
            try:  # keys that may not list (no s3:ListBucket) are told of the missing object
                found = _fetch_prefix(s3, bucket, key, into)
            except S3Error:
                raise missing from None
            if not found:
                raise
            return into / Path(key).name
    if not _fetch_prefix(s3, bucket, key, into):
        raise BadInputError(f"cannot read dataset s3://{bucket}/{key}: no objects under it")
    return into / Path(key).name


def _fetch_prefix(s3: Minio, bucket: str, key: str, into: Path) -> bool:
    """Every object under `key/` into a local directory of that name; whether there was one."""
    prefix = key.rstrip("/") + "/"
    found = False
    for item in s3.list_objects(bucket, prefix=prefix, recursive=True):
        relative = str(item.object_name).removeprefix(prefix)
        if not item.is_dir and relative:
            s3.fget_object(bucket, str(item.object_name), str(into / Path(prefix).name / relative))
            found = True
    return found
