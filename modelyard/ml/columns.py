"""Column roles (`contract.records.ColumnRoles`): which columns the model sees, and as what.

The config's `columns` section comes first (`features`: only these; `drop`; `datetime`). Then the
defaults: a datetime column, or text whose values parse as dates, becomes date features
(`modelyard.dates`); an ID-like column (a distinct value per row: text, or integers numbering the
rows) or a free-text column (long, mostly distinct strings) is left out, with one warning naming
it, because one-hot encoding it learns nothing that carries over to new rows.
"""

from __future__ import annotations

import logging
import re
from typing import Final

import pandas as pd

from modelyard.contract.config import Columns
from modelyard.contract.records import (
    CategoricalProfile,
    ColumnRoles,
    DataProfile,
    DatetimeProfile,
    Tags,
)
from modelyard.core.errors import BadInputError
from modelyard.dates import date_format, parse_dates

log = logging.getLogger(__name__)

MIN_ROWS: Final = 50  # fewer values than this say too little to call a column ID-like or free text
SAMPLE: Final = 1000  # values of a text column tried as dates
DATE_SHARE: Final = 0.9  # share of a text column's values that must parse as dates
ID_SHARE: Final = 0.95  # distinct values per row that make a text column ID-like
TEXT_SHARE: Final = 0.5  # distinct values per row of free text, which also has ...
TEXT_WORDS: Final = 3  # ... this many words on average
ID_NAME: Final = re.compile(r"(^|[_\s.-])(id|uuid|guid)$", re.IGNORECASE)
CAMEL_ID: Final = re.compile(r"[a-z](Id|ID)$")
TAG_LIMIT: Final = 5000  # characters MLflow keeps of a model version tag


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def non_numbers(series: pd.Series, limit: int = 5) -> list[str]:
    """The first `limit` distinct values (sorted, as text) that do not read as numbers."""
    values = series.dropna()
    return sorted(values[pd.to_numeric(values, errors="coerce").isna()].astype(str).unique())[:limit]


def resolve_roles(frame: pd.DataFrame, label: str, columns: Columns) -> ColumnRoles:
    """The roles of every column but the label: explicit ones first, then the defaults."""
    unknown = sorted(columns.named() - {str(c) for c in frame.columns})
    if unknown:
        raise BadInputError(
            f"columns: {', '.join(unknown)} not in the dataset (it has: {', '.join(map(str, frame.columns))})"
        )
    candidates = [str(c) for c in frame.columns if c != label]
    excluded = {c: "in columns.drop" for c in candidates if c in columns.drop}
    if columns.features is not None:
        excluded |= {c: "not in columns.features" for c in candidates if c not in columns.features}
    chosen = [c for c in candidates if c not in excluded]
    for column in columns.datetime:
        _require_dates(column, frame[column])
    datetime = [c for c in chosen if c in columns.datetime or looks_like_dates(frame[c])]
    if columns.features is None:
        guessed = {c: why for c in chosen if c not in datetime and (why := not_a_feature(c, frame[c]))}
        if guessed:
            log.warning(
                "columns left out of the model: %s; name them in columns.features to use them",
                describe_excluded(guessed),
            )
        excluded |= guessed
    features = [c for c in chosen if c not in excluded]
    if not features:
        raise BadInputError(f"no feature columns left: {describe_excluded(excluded)}")
    numeric = [c for c in features if c not in datetime and is_numeric(frame[c])]
    return ColumnRoles(
        features=features,
        numeric=numeric,
        categorical=[c for c in features if c not in datetime and c not in numeric],
        datetime=datetime,
        excluded=excluded,
    )


def looks_like_dates(series: pd.Series) -> bool:
    """A datetime column, or text whose values (at least 90% of a sample) parse as dates."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if is_numeric(series) or pd.api.types.is_bool_dtype(series):
        return False
    sample = series.dropna().iloc[:SAMPLE]
    if sample.empty or pd.to_numeric(sample, errors="coerce").notna().mean() >= 0.5:
        return False
    fmt = date_format(sample)
    return bool(fmt) and parse_dates(sample, fmt).notna().mean() >= DATE_SHARE


def not_a_feature(name: str, series: pd.Series) -> str:
    """Why a column is ID-like or free text, or "" when it is a feature."""
    values = series.dropna()
    if len(values) < MIN_ROWS or pd.api.types.is_bool_dtype(series):
        return ""
    distinct = int(values.nunique())
    counted = f"{distinct} distinct values in {len(values)} rows"
    if is_numeric(series):
        whole = bool((values == values.round()).all())
        dense = float(values.max() - values.min()) < 2 * len(values)
        named = bool(ID_NAME.search(name) or CAMEL_ID.search(name))
        return f"ID-like: {counted}" if whole and distinct == len(values) and (dense or named) else ""
    text = values.astype(str)
    if distinct >= TEXT_SHARE * len(values) and text.str.count(r"\S+").mean() >= TEXT_WORDS:
        return f"free text: {counted}"
    return f"ID-like: {counted}" if distinct >= ID_SHARE * len(values) else ""


def _require_dates(column: str, series: pd.Series) -> None:
    values = series.dropna()
    parsed = parse_dates(values, date_format(values))
    if len(values) and parsed.notna().mean() < DATE_SHARE:
        bad = sorted(values[parsed.isna()].astype(str).unique())[:5]
        raise BadInputError(f"columns.datetime: column {column!r} holds values that are not dates: {bad}")


def roles_of_profile(profile: DataProfile) -> ColumnRoles:
    """The roles a model was trained with, read off its data profile (the profile has its features)."""
    kinds = {c: p.kind for c, p in profile.columns.items()}
    return ColumnRoles(
        features=list(kinds),
        numeric=[c for c, k in kinds.items() if k == "numeric"],
        categorical=[c for c, p in profile.columns.items() if isinstance(p, CategoricalProfile)],
        datetime=[c for c, p in profile.columns.items() if isinstance(p, DatetimeProfile)],
    )


def describe_excluded(excluded: dict[str, str]) -> str:
    return "; ".join(f"{c} ({why})" for c, why in excluded.items()) or "none"


def role_tags(roles: ColumnRoles) -> dict[str, str]:
    """The roles as tags for the parent run and the model version (shortened to fit a tag)."""
    values = {
        Tags.FEATURES: ", ".join(roles.features),
        Tags.DATETIME_COLUMNS: ", ".join(roles.datetime),
        Tags.EXCLUDED_COLUMNS: describe_excluded(roles.excluded),
    }
    return {k: v if len(v) <= TAG_LIMIT else v[: TAG_LIMIT - 3] + "..." for k, v in values.items()}


def describe_roles(roles: ColumnRoles) -> str:
    kinds = f"{len(roles.numeric)} numeric, {len(roles.categorical)} categorical, {len(roles.datetime)} dates"
    dates = f" ({', '.join(roles.datetime)})" if roles.datetime else ""
    return f"{len(roles.features)} features: {kinds}{dates}; left out: {describe_excluded(roles.excluded)}"
