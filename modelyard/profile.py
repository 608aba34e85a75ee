"""Data profiles and drift: what the data looked like, and how far new data moved from it.

A profile is plain JSON so it can be stored with a model version and read by validate and monitor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DECILES = np.linspace(0.1, 0.9, 9)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
OTHER = "__other__"
UNSEEN = "(unseen)"  # the bin of categories the reference never saw
EPSILON = 1e-4  # keeps PSI finite when a bin is empty on one side


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def profile_frame(frame: pd.DataFrame, label: str) -> dict[str, Any]:
    features = [c for c in frame.columns if c != label]
    labels = frame[label].dropna().astype(str).value_counts().sort_index() if label in frame else {}
    return {
        "rows": len(frame),
        "label": label,
        "labels": {str(k): int(v) for k, v in dict(labels).items()},
        "columns": {str(c): profile_column(frame[c]) for c in features},
    }


def profile_column(series: pd.Series) -> dict[str, Any]:
    null_fraction = float(series.isna().mean()) if len(series) else 0.0
    base = {"dtype": str(series.dtype), "null_fraction": null_fraction}
    if is_numeric(series):
        return base | {"kind": "numeric"} | _numeric_stats(series.dropna().to_numpy(dtype=float))
    shares = series.dropna().astype(str).value_counts(normalize=True).sort_index()
    return base | {"kind": "categorical", "categories": {str(k): float(v) for k, v in shares.items()}}


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
        }
    edges = np.unique(np.quantile(values, DECILES))
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": {str(q): float(np.quantile(values, q)) for q in QUANTILES},
        "bins": edges.tolist(),
        "bin_fractions": _bin_fractions(values, edges).tolist(),
    }


def _bin_fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.clip(expected, EPSILON, None)
    actual = np.clip(actual, EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(reference: dict[str, Any], series: pd.Series) -> float | None:
    """Population stability index of a column against its reference profile (None: not comparable)."""
    compared = distributions(reference, series)
    return None if compared is None else compared.psi()


@dataclass(frozen=True)
class Distributions:
    """A column's shares over its reference bins (numeric) or categories + unseen (categorical)."""

    bins: list[str]
    expected: np.ndarray
    actual: np.ndarray
    rows: int  # non-null values compared

    def psi(self) -> float:
        return _psi(self.expected, self.actual)


def distributions(reference: dict[str, Any], series: pd.Series) -> Distributions | None:
    """The reference and current shares per bin (None: no values, or the kinds differ)."""
    values = series.dropna()
    if values.empty:
        return None
    if reference["kind"] == "numeric":
        if not is_numeric(series) or reference["min"] is None:
            return None
        finite = values.to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        edges = np.asarray(reference["bins"], dtype=float)
        labels = [f"< {edges[0]:.4g}"] if edges.size else ["all"]
        labels += [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]
        labels += [f">= {edges[-1]:.4g}"] if edges.size else []
        expected = np.asarray(reference["bin_fractions"], dtype=float)
        return Distributions(labels, expected, _bin_fractions(finite, edges), int(finite.size))
    categories = reference["categories"]
    shares = values.astype(str).value_counts(normalize=True)
    expected = np.array([*categories.values(), 0.0])
    actual = np.array(
        [float(shares.get(k, 0.0)) for k in categories]
        + [float(shares.drop(list(categories), errors="ignore").sum())]
    )
    return Distributions([*categories, UNSEEN], expected, actual, len(values))


def psi_noise(expected: np.ndarray, rows: int, reference_rows: float) -> float:
    """Expected PSI between two samples of one distribution: (bins - 1) * (1/rows + 1/reference_rows).

    PSI is close to a chi-square statistic divided by the sample size, so pure sampling noise
    averages (k - 1)/n per sample; small batches look drifted unless this is subtracted.
    """
    degrees = max(int(np.count_nonzero(expected > 0)) - 1, 0)
    return degrees * (1 / max(rows, 1) + (1 / reference_rows if reference_rows > 0 else 0.0))


def unseen_share(reference: dict[str, Any], series: pd.Series) -> tuple[float, list[str]]:
    """Share of non-null values in categories the reference never saw, and a few examples."""
    values = series.dropna().astype(str)
    unseen = values[~values.isin(list(reference["categories"]))]
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
