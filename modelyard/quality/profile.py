"""Data profiles (`contract.records.DataProfile`): what the data looked like, stored with a model version.

Validate and monitor compare new data with the champion's profile (`modelyard.quality.drift`).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from modelyard.contract.records import (
    CategoricalProfile,
    ColumnProfile,
    ColumnRoles,
    DataProfile,
    DatetimeProfile,
    NumericProfile,
)
from modelyard.contract.tasks import Task
from modelyard.dates import date_format, parse_dates
from modelyard.ml.columns import is_numeric

DECILES: Final = np.linspace(0.1, 0.9, 9)
QUANTILES: Final = (0.05, 0.25, 0.5, 0.75, 0.95)
# The quantile sketch the drift tests compare against: resolution 1/SKETCH of the distribution.
SKETCH: Final = 500


def profile_frame(
    frame: pd.DataFrame, label: str, task: Task, roles: ColumnRoles | None = None
) -> DataProfile:
    """The label and the features (with roles: the model's features only, its dates as dates)."""
    features = roles.features if roles else [c for c in frame.columns if c != label]
    dates = set(roles.datetime) if roles else set()
    profile = DataProfile(
        rows=len(frame),
        label=label,
        task=task,
        columns={
            str(c): profile_dates(frame[c]) if c in dates else profile_column(frame[c]) for c in features
        },
    )
    if label in frame and task == "classification":
        counts = frame[label].dropna().astype(str).value_counts().sort_index()
        profile.labels = {str(k): int(v) for k, v in counts.items()}
    elif label in frame:
        profile.target = profile_column(frame[label])
    return profile


def profile_column(series: pd.Series) -> ColumnProfile:
    null_fraction = float(series.isna().mean()) if len(series) else 0.0
    base: dict[str, Any] = {"dtype": str(series.dtype), "null_fraction": null_fraction}
    if is_numeric(series):
        return NumericProfile(**base, **_numeric_stats(series.dropna().to_numpy(dtype=float)))
    shares = series.dropna().astype(str).value_counts(normalize=True).sort_index()
    return CategoricalProfile(**base, categories={str(k): float(v) for k, v in shares.items()})


def profile_dates(series: pd.Series) -> DatetimeProfile:
    parsed = parse_dates(series, date_format(series)).dropna()
    low, high = (parsed.min().isoformat(), parsed.max().isoformat()) if len(parsed) else (None, None)
    null_fraction = 1 - len(parsed) / len(series) if len(series) else 0.0
    return DatetimeProfile(dtype=str(series.dtype), null_fraction=null_fraction, min=low, max=high)


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "quantiles": {},
            "bins": [],
            "bin_fractions": [1.0],
            "sketch": [],
        }
    values = np.sort(values)
    edges = np.unique(sorted_quantiles(values, DECILES))
    sketch = sorted_quantiles(values, np.linspace(0, 1, SKETCH + 1))
    return {
        "min": float(values[0]),
        "max": float(values[-1]),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": {
            str(q): float(v) for q, v in zip(QUANTILES, sorted_quantiles(values, QUANTILES), strict=True)
        },
        "bins": edges.tolist(),
        "bin_fractions": bin_fractions(values, edges).tolist(),
        "sketch": sketch.tolist(),
    }


def sorted_quantiles(ordered: np.ndarray, probabilities: Any) -> np.ndarray:
    """np.quantile's default (linear) quantiles of an already sorted array, without sorting it again."""
    positions = np.asarray(probabilities, dtype=float) * (ordered.size - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, ordered.size - 1)
    return ordered[low] + (positions - low) * (ordered[high] - ordered[low])


def bin_fractions(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of sorted values in the bins the edges make: (-inf, e0), [e0, e1), ..., [e_last, inf)."""
    cuts = np.searchsorted(ordered, edges, side="left")
    counts = np.diff(np.concatenate([[0], cuts, [ordered.size]]))
    return counts / max(ordered.size, 1)


def unseen_share(reference: CategoricalProfile, series: pd.Series) -> tuple[float, list[str]]:
    """Share of non-null values in categories the reference never saw, and a few examples."""
    values = series.dropna().astype(str)
    unseen = values[~values.isin(list(reference.categories))]
    return (len(unseen) / len(values) if len(values) else 0.0), sorted(unseen.unique())[:5]


def out_of_range_share(low: float | None, high: float | None, series: pd.Series) -> tuple[float, list[float]]:
    values = pd.to_numeric(series, errors="coerce").dropna()
    values = values[np.isfinite(values)]
    mask = pd.Series(False, index=values.index)
    if low is not None:
        mask |= values < low
    if high is not None:
        mask |= values > high
    return (float(mask.mean()) if len(values) else 0.0), sorted(values[mask].unique().tolist())[:5]
