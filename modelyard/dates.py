"""Date columns as model features: calendar parts and elapsed time, inside the scikit-learn Pipeline.

A served model gets raw rows, so the dates arrive as text (from CSV or JSON) or as datetimes (from
Parquet); `DateFeatures` parses both. This module imports only pandas, numpy and scikit-learn:
it ships with every model that uses it (`code_paths`), for model servers without modelyard.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from sklearn.base import BaseEstimator, TransformerMixin

CALENDAR: Final = ("year", "month", "day", "weekday")
DAY: Final = pd.Timedelta(days=1)
SAMPLE: Final = 1000  # values a format guess is tried on
GUESSES: Final = 20  # first values a format is guessed from


def date_format(series: pd.Series) -> str:
    """The strftime format of a text column ("" for datetimes or text that is no date): guessed
    from its first values month first and day first, the one that parses most of a sample."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return ""
    sample = series.dropna().iloc[:SAMPLE]
    with warnings.catch_warnings():  # pandas warns when a guess is ambiguous; both are tried
        warnings.simplefilter("ignore", UserWarning)
        guesses = [
            guess_datetime_format(value, dayfirst=d)
            for value in sample.iloc[:GUESSES]
            if isinstance(value, str)
            for d in (False, True)
        ]
    # Month first wins a tie, as pandas reads dates.
    shares = {fmt: _parse(sample, fmt).notna().mean() for fmt in dict.fromkeys(guesses) if fmt}
    return max(shares, key=shares.__getitem__, default="")


def parse_dates(series: pd.Series, fmt: str = "") -> pd.Series:
    """Datetimes (naive, in UTC) from text or datetimes; what does not parse is NaT. Text is read
    in the format given, else the one its values show; what fails (e.g. rows served in other
    formats) in the format those values show, then value by value (day first if `fmt` is)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return _parse(series, "")
    readable = series.notna() & ~series.map(pd.api.types.is_number).astype(bool)  # a number is no date
    fmt = fmt or date_format(series)
    if not fmt:  # no format fits them all: each value as pandas reads it
        return _parse(series.where(readable), "mixed")
    parsed = _parse(series, fmt)
    failed = parsed.isna() & readable
    if failed.any() and (other := date_format(series[failed])):  # e.g. rows in another format
        parsed = parsed.fillna(_parse(series[failed], other))
        failed = parsed.isna() & readable
    if failed.any():
        parsed = parsed.fillna(_parse(series[failed], "mixed", _day_first(fmt)))
    return parsed


def _day_first(fmt: str) -> bool:
    return "%d" in fmt and "%m" in fmt and fmt.index("%d") < fmt.index("%m")


def _parse(series: pd.Series, fmt: str, dayfirst: bool = False) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(series):
        series = series.astype(object).where(series.notna(), None)
    with warnings.catch_warnings():  # pandas warns when a mixed value is read against `dayfirst`
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(series, format=fmt or None, dayfirst=dayfirst, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None)


class DateFeatures(TransformerMixin, BaseEstimator):
    """Per date column: year, month, day, weekday, the hour when the times vary, and days since the
    earliest training date. A missing or unparseable date gives NaN (the imputer after fills it)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> DateFeatures:
        self.columns_ = [str(c) for c in X.columns]
        self.formats_ = {c: date_format(X[c]) for c in self.columns_}
        self.origins_: dict[str, float] = {}
        self.hours_: dict[str, bool] = {}
        for column in self.columns_:
            parsed = parse_dates(X[column], self.formats_[column])
            self.origins_[column] = _days(parsed.min()) if parsed.notna().any() else 0.0
            self.hours_[column] = bool((parsed.dropna().dt.hour != 0).any())
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        parts = []
        for column in self.columns_:
            parsed = parse_dates(X[column], self.formats_[column])
            parts += [getattr(parsed.dt, name).astype(float) for name in self._parts(column)[:-1]]
            parts.append((parsed - pd.Timestamp(0)) / DAY - self.origins_[column])
        return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array([f"{c}_{part}" for c in self.columns_ for part in self._parts(c)], dtype=object)

    def _parts(self, column: str) -> list[str]:
        return [*CALENDAR, *(["hour"] if self.hours_[column] else []), "days"]


def _days(timestamp: pd.Timestamp) -> float:
    return float((timestamp - pd.Timestamp(0)) / DAY)
