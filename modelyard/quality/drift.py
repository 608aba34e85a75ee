"""The one drift engine `validate` and `monitor` share: how far a column moved from the reference.

Each column gets the measure that suits its kind and sample size. The effective size is
n·m/(n+m), with n the values compared and m the reference's values.
- Up to 1,000 (`TEST_UP_TO`), a two-sample test decides: Kolmogorov-Smirnov for numeric columns
  and chi-square for categorical ones. The false-alarm rate per batch is `drift_alpha`, split
  (Bonferroni) over the columns tested. A detection then warns, or alerts when the drift size
  exceeds `drift_alert`.
- Above that, any test finds trivial differences significant, so the drift size alone decides
  against `drift_warn` and `drift_alert`.
The drift size is the Wasserstein distance in reference standard deviations (numeric) or the PSI
(categorical), each minus its expected sampling noise. The reference is the champion's data
profile (`modelyard.quality.profile`): its quantile sketch and its category shares.
"""

from __future__ import annotations

import itertools
import math
from typing import Final, Literal

import numpy as np
import pandas as pd
from scipy import stats

from modelyard.contract.config import DriftLimits
from modelyard.contract.records import (
    CategoricalProfile,
    ColumnDrift,
    ColumnProfile,
    DataProfile,
    DatetimeProfile,
    Level,
    NumericProfile,
)
from modelyard.ml.columns import is_numeric
from modelyard.quality.profile import bin_fractions, sorted_quantiles

LEVELS: Final[tuple[Level, ...]] = ("ok", "warn", "alert")
FLOOR: Final = 20  # fewest values a column is judged on (a batch has at least 30 rows)
TEST_UP_TO: Final = 1000  # effective sample size up to which a test decides
MIN_EXPECTED: Final = 5  # chi-square pools categories expected fewer times than this
EPSILON: Final = 1e-4  # keeps PSI finite when a category is empty on one side
UNSEEN: Final = "(unseen)"  # the bin of categories the reference never saw
LOW_POWER_SHIFT: Final = 0.5  # standard deviations: a test that cannot see this shift says so


def compare(frame: pd.DataFrame, reference: DataProfile, limits: DriftLimits) -> list[ColumnDrift]:
    """Drift of every reference column the frame has."""
    columns = [c for c in reference.columns if c in frame.columns]
    alpha = limits.drift_alpha / max(len(columns), 1)
    rows = float(reference.rows)
    return [column_drift(c, reference.columns[c], frame[c], rows, alpha, limits) for c in columns]


def column_drift(
    column: str,
    profile: ColumnProfile,
    series: pd.Series,
    reference_rows: float,
    alpha: float,
    limits: DriftLimits,
) -> ColumnDrift:
    reference_values = reference_rows * (1 - profile.null_fraction)
    if isinstance(profile, DatetimeProfile):  # new data has later dates: drift in time is expected
        note = "dates: not tested for drift"
        return ColumnDrift(column=column, kind="datetime", rows=int(series.notna().sum()), note=note)
    if isinstance(profile, NumericProfile):
        result = _numeric(column, profile, series, reference_values)
    else:
        result = _categorical(column, profile, series, reference_values)
    if result.size is None:
        return result
    if result.p_value is not None:
        result.alpha = alpha
        detected = result.p_value < alpha
        result.level = ("alert" if result.size > limits.drift_alert else "warn") if detected else "ok"
    else:
        result.level = grade(result.size, limits.drift_warn, limits.drift_alert)
    return result


def grade(value: float, warn: float, alert: float) -> Level:
    return "alert" if value > alert else "warn" if value > warn else "ok"


def worst(levels: list[Level]) -> Level:
    return max(levels, key=LEVELS.index, default="ok")


def effective_size(rows: float, reference_rows: float) -> float:
    return rows * reference_rows / (rows + reference_rows) if rows + reference_rows > 0 else 0.0


def _numeric(column: str, profile: NumericProfile, series: pd.Series, reference_rows: float) -> ColumnDrift:
    sketch = np.asarray(profile.sketch, dtype=float)
    if not is_numeric(series) or sketch.size < 2:
        values = int(series.notna().sum())
        why = "no quantile sketch in the champion's profile: retrain it" if sketch.size < 2 else "not numeric"
        return ColumnDrift(column=column, kind="numeric", rows=values, note=why)
    ordered = np.sort(series.to_numpy(dtype=float))
    ordered = ordered[np.isfinite(ordered)]
    edges = np.asarray(profile.bins, dtype=float)
    result = ColumnDrift(column=column, kind="numeric", rows=int(ordered.size), bins=_bin_labels(edges))
    result.expected = list(profile.bin_fractions)
    result.actual = bin_fractions(ordered, edges).tolist()
    if ordered.size < FLOOR:
        result.note = f"{ordered.size} values, fewer than {FLOOR}: not judged"
        return result
    n_eff = result.effective_rows = effective_size(ordered.size, reference_rows)
    unit = profile.std or max(abs(profile.mean or 0.0), 1.0)  # constant column: its value
    raw = wasserstein(sketch, ordered) / unit
    result.noise = wasserstein_noise(sketch, n_eff) / unit
    result.size = max(raw - result.noise, 0.0)
    if n_eff <= TEST_UP_TO:
        result.method, result.p_value = "ks", ks_p_value(sketch, ordered, n_eff)
    else:
        result.method = "wasserstein"
    return result


def _categorical(
    column: str, profile: CategoricalProfile, series: pd.Series, reference_rows: float
) -> ColumnDrift:
    counts = series.value_counts(dropna=True)
    counts.index = counts.index.astype(str)
    counts = counts.groupby(level=0).sum()
    categories = profile.categories
    seen = np.array([float(counts.get(k, 0)) for k in categories])
    current = np.append(seen, float(counts.sum() - seen.sum()))
    expected = np.array([*categories.values(), 0.0])
    rows = int(current.sum())
    actual = current / max(rows, 1)
    result = ColumnDrift(column=column, kind="categorical", rows=rows, bins=[*categories, UNSEEN])
    result.expected, result.actual = expected.tolist(), actual.tolist()
    if rows < FLOOR:
        result.note = f"{rows} values, fewer than {FLOOR}: not judged"
        return result
    n_eff = result.effective_rows = effective_size(rows, reference_rows)
    result.noise = psi_noise(expected, rows, reference_rows)
    result.size = max(psi(expected, actual) - result.noise, 0.0)
    if n_eff <= TEST_UP_TO:
        result.method, result.p_value = "chi2", chi2_p_value(expected * reference_rows, current)
    else:
        result.method = "psi"
    return result


def _bin_labels(edges: np.ndarray) -> list[str]:
    if not edges.size:
        return ["all"]
    inner = [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]
    return [f"< {edges[0]:.4g}", *inner, f">= {edges[-1]:.4g}"]


def reference_cdf(sketch: np.ndarray, x: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """The reference CDF at x (side="left": just below x), read off its quantile sketch.

    Linear between sketch points, with a jump where points tie (a value many rows share)."""
    steps = sketch.size - 1
    k = np.searchsorted(sketch, x, side=side) - 1
    inside = (k >= 0) & (k < steps)
    ki = np.clip(k, 0, steps - 1)
    low, high = sketch[ki], sketch[ki + 1]
    width = np.where(high > low, high - low, 1.0)
    fraction = np.clip(np.where(high > low, (x - low) / width, 0.0), 0.0, 1.0)
    return np.where(inside, (ki + fraction) / steps, np.where(k < 0, 0.0, 1.0))


def significant(values: np.ndarray, digits: int = 12) -> np.ndarray:
    """Values rounded to `digits` significant digits: a value written to CSV and read back ties
    with the original again (the last bits differ, which would break ties in a discrete column)."""
    magnitude = np.floor(np.log10(np.abs(values), out=np.zeros_like(values), where=values != 0))
    factor = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * factor) / factor


def ks_p_value(sketch: np.ndarray, ordered: np.ndarray, n_eff: float) -> float:
    """Two-sample Kolmogorov-Smirnov: the largest CDF gap, judged at the effective sample size."""
    sketch, ordered = significant(sketch), significant(ordered)
    n = ordered.size
    distinct = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))  # last index of each value
    values = ordered[distinct]
    upto = (distinct + 1) / n
    below = np.append(0, distinct[:-1] + 1) / n
    gap = max(
        float(np.max(np.abs(upto - reference_cdf(sketch, values, "right")))),
        float(np.max(np.abs(below - reference_cdf(sketch, values, "left")))),
    )
    return float(stats.kstwo.sf(gap, max(round(n_eff), 1)))


def chi2_p_value(reference_counts: np.ndarray, counts: np.ndarray) -> float:
    """Chi-square test of two samples' category counts, rare categories pooled first."""
    table = _pool_rare(np.vstack([reference_counts, counts]))
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _pool_rare(table: np.ndarray) -> np.ndarray:
    """Merge the rarest categories until each is expected at least MIN_EXPECTED times in both rows."""
    table = table[:, table.sum(axis=0) > 0]
    order = np.argsort(table.sum(axis=0))
    table = table[:, order]
    while table.shape[1] > 2:
        totals = table.sum(axis=0)
        expected = np.outer(table.sum(axis=1), totals) / totals.sum()
        if expected[:, 0].min() >= MIN_EXPECTED:
            break
        table = np.column_stack([table[:, 0] + table[:, 1], table[:, 2:]])
        table = table[:, np.argsort(table.sum(axis=0))]
    return table


def wasserstein(sketch: np.ndarray, ordered: np.ndarray) -> float:
    """Earth mover's distance between the reference and the values, over the sketch's inner quantiles."""
    grid = np.linspace(0, 1, sketch.size)[1:-1]
    return float(np.mean(np.abs(sorted_quantiles(ordered, grid) - sketch[1:-1])))


def wasserstein_noise(sketch: np.ndarray, n_eff: float) -> float:
    """Expected Wasserstein distance between two samples of one distribution:
    sqrt(2 / (pi n_eff)) * integral of sqrt(F (1 - F)) dx, from the empirical process's limit."""
    middle = (np.arange(sketch.size - 1) + 0.5) / (sketch.size - 1)
    spread = float(np.sum(np.sqrt(middle * (1 - middle)) * np.diff(sketch)))
    return math.sqrt(2 / (math.pi * max(n_eff, 1.0))) * spread


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same categories."""
    expected = np.clip(expected, EPSILON, None)
    actual = np.clip(actual, EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_noise(expected: np.ndarray, rows: int, reference_rows: float) -> float:
    """Expected PSI between two samples of one distribution: (categories - 1) * (1/rows + 1/reference_rows).

    PSI is close to a chi-square statistic divided by the sample size, so sampling noise alone
    averages (k - 1)/n per sample; small batches look drifted unless this is subtracted."""
    degrees = max(int(np.count_nonzero(expected > 0)) - 1, 0)
    return degrees * (1 / max(rows, 1) + (1 / reference_rows if reference_rows > 0 else 0.0))


def detectable_shift(n_eff: float, alpha: float) -> float:
    """The mean shift, in standard deviations of a normal column, that KS detects half the time."""
    gap = float(stats.kstwo.isf(alpha, max(round(n_eff), 1)))
    return 2 * float(stats.norm.ppf((1 + min(gap, 0.999999)) / 2))


def power_note(results: list[ColumnDrift]) -> str:
    """A warning when the batch is too small for the tests to see a half-sd shift; else ""."""
    tested = [r for r in results if r.method == "ks" and r.alpha]
    if not tested:
        return ""
    smallest = min(tested, key=lambda r: r.effective_rows)
    shift = detectable_shift(smallest.effective_rows, smallest.alpha or 0.05)
    if shift <= LOW_POWER_SHIFT:
        return ""
    return (
        f"low power: with {smallest.rows} values per column the tests miss most shifts smaller than "
        f"{shift:.2f} standard deviations"
    )
