"""Monitoring: how far a batch of recent data moved from the champion's training data, whether the
champion decayed on it, and the verdict a scheduler branches on (`ok`, `warn`, `retrain`).

Pure computation over a DataFrame and the champion's data profile; loading data, scoring the model
and MLflow logging live in `modelyard.steps.monitor`.

Drift per feature is the shared engine's (`modelyard.quality.drift`): a test on small batches, a distance
on large ones. A feature's share of missing values and of never-seen categories are graded too,
the missing share beyond its sampling noise. Decay likewise: the tolerance applies to the drop
beyond two standard errors of the difference between the batch score (bootstrapped) and the
recorded test score (scaled to the test set's size).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from modelyard.contract.config import MonitorThresholds
from modelyard.contract.records import (
    OK,
    RETRAIN,
    WARN,
    CategoricalProfile,
    ColumnDrift,
    ColumnProfile,
    DataProfile,
    DatetimeProfile,
    FeatureDrift,
    Level,
    MetricDecay,
    MonitorReport,
    NumericProfile,
)
from modelyard.contract.tasks import METRICS, Task, scale, task_metrics, worse_by
from modelyard.core.errors import BadInputError
from modelyard.dates import parse_dates
from modelyard.ml.columns import is_numeric, non_numbers
from modelyard.ml.model import standard_errors
from modelyard.quality.drift import compare, grade, power_note, worst
from modelyard.quality.profile import unseen_share


def check_batch(frame: pd.DataFrame, reference: DataProfile, limits: MonitorThresholds) -> None:
    """Refuse a batch the check cannot judge: too few rows, missing columns, text in numeric columns."""
    if len(frame) < limits.min_rows:
        raise BadInputError(
            f"the batch has {len(frame)} rows; a drift check needs at least {limits.min_rows} (--min-rows)"
        )
    expected = reference.columns
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"the batch lacks {len(missing)} column(s) the champion was trained on: {', '.join(missing)}"
        )
    for column, profile in expected.items():
        series = frame[column]
        if isinstance(profile, NumericProfile) and not is_numeric(series) and series.notna().any():
            bad = non_numbers(series)
            raise BadInputError(f"column {column!r} was numeric in the training data but holds text: {bad}")


def drift(frame: pd.DataFrame, reference: DataProfile, limits: MonitorThresholds) -> list[FeatureDrift]:
    """Per feature: the drift engine's verdict, the change of the missing share, unseen categories."""
    results = compare(frame, reference, limits)
    # The missing-share check is held to the same false-alarm rate as the drift tests.
    z = float(stats.norm.isf(limits.drift_alpha / (2 * max(len(results), 1))))
    rows = float(reference.rows)
    return [
        feature_drift(
            r, reference.columns[r.column], _as_profiled(frame[r.column], reference), rows, z, limits
        )
        for r in results
    ]


def _as_profiled(series: pd.Series, reference: DataProfile) -> pd.Series:
    """A date column's values as dates: one that does not parse counts as missing, as in the profile."""
    return parse_dates(series) if isinstance(reference.columns[str(series.name)], DatetimeProfile) else series


def feature_drift(
    result: ColumnDrift,
    profile: ColumnProfile,
    series: pd.Series,
    reference_rows: float,
    z: float,
    limits: MonitorThresholds,
) -> FeatureDrift:
    feature = FeatureDrift(drift=result, null_reference=profile.null_fraction)
    feature.null_current = float(series.isna().mean()) if len(series) else 0.0
    feature.null_noise = _share_noise(
        feature.null_reference, reference_rows, feature.null_current, len(series), z
    )
    if isinstance(profile, CategoricalProfile) and result.actual and result.actual[-1] > 0:
        feature.unseen_share, feature.unseen_examples = unseen_share(profile, series)
    null_beyond = max(abs(feature.null_change) - feature.null_noise, 0.0)
    grades = [
        (result.level, result.describe()),
        (
            grade(null_beyond, limits.null_warn, limits.null_alert),
            f"missing share {feature.null_reference:.1%} -> {feature.null_current:.1%}",
        ),
        (
            grade(feature.unseen_share, limits.unseen_warn, limits.unseen_alert),
            f"{feature.unseen_share:.1%} unseen categories, e.g. {feature.unseen_examples}",
        ),
    ]
    for level, reason in grades:
        if level != OK:
            feature.reasons.append(f"{result.column}: {reason}")
    feature.level = worst([level for level, _ in grades])
    return feature


def _share_noise(reference: float, reference_rows: float, current: float, rows: int, z: float) -> float:
    """z standard errors of the difference of two shares (pooled), from samples of these sizes."""
    if rows == 0 or reference_rows <= 0:
        return 0.0
    pooled = (reference * reference_rows + current * rows) / (reference_rows + rows)
    return z * math.sqrt(pooled * (1 - pooled) * (1 / rows + 1 / reference_rows))


def decay(
    task: Task,
    recorded: dict[str, float],
    current: dict[str, float],
    noise: dict[str, float],
    tolerance: float,
) -> list[MetricDecay]:
    """Each metric both sides know; `alert` when the batch score is worse by more than noise + tolerance."""
    result = []
    for spec in task_metrics(task):
        before, now = recorded.get(spec.name, math.nan), current.get(spec.name, math.nan)
        if math.isnan(before) or math.isnan(now):
            continue
        drop = worse_by(spec, before, now)
        spread = noise.get(spec.name, 0.0) / scale(spec, before, now)
        level: Level = "alert" if drop - spread > tolerance else "ok"
        result.append(
            MetricDecay(metric=spec.name, recorded=before, current=now, drop=drop, noise=spread, level=level)
        )
    return result


def decay_noise(
    task: Task,
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
    test_rows: int | None,
    *,
    rounds: int = 100,
    cap: int = 10_000,
) -> dict[str, float]:
    """Two standard errors of (test score - batch score) per metric.

    The batch's standard error is bootstrapped (on at most `cap` rows, rescaled by sqrt(cap/n)); the
    test score's is taken as the same spread scaled to the test set's size (unknown: the batch's).
    """
    batch = standard_errors(task, truth, predicted, proba, classes, rounds=rounds, cap=cap)
    rows = len(truth)
    spread: dict[str, float] = {}
    for spec in task_metrics(task):
        batch_se = batch[spec.name]
        test_se = batch_se * math.sqrt(rows / (test_rows or rows))
        spread[spec.name] = 2 * math.hypot(batch_se, test_se)
    return spread


def conclude(report: MonitorReport, limits: MonitorThresholds) -> MonitorReport:
    """The verdict: `retrain` on any alert, `warn` on any warning, else `ok`; with the reasons."""
    reasons = [reason for f in report.features for reason in f.reasons]
    reasons += [_decay_reason(d, limits.decay_tolerance) for d in report.decay if d.level != OK]
    levels = [f.level for f in report.features] + [d.level for d in report.decay]
    report.verdict = RETRAIN if "alert" in levels else WARN if WARN in levels else OK
    report.reasons = reasons
    report.power = power_note([f.drift for f in report.features])
    return report


def _decay_reason(d: MetricDecay, tolerance: float) -> str:
    share = METRICS[d.metric].relative
    amount = (lambda x: f"{x:.1%}") if share else (lambda x: f"{x:.3f}")
    return (
        f"champion {d.metric} worse by {amount(d.drop)} ({d.recorded:.3f} -> {d.current:.3f}; "
        f"noise {amount(d.noise)} + tolerance {amount(tolerance) if share else tolerance})"
    )


def render(report: MonitorReport, title: str) -> str:
    """The readable table: one line per feature, one per metric, then the reasons."""
    lines = [f"{title}: {report.verdict.upper()} ({report.rows:,} rows)"]
    width = max([len(f.column) for f in report.features] + [7])
    lines.append(
        f"  {'feature':<{width}}  {'kind':<11}  {'test':<11}  {'drift':>6}  {'p':>7}  {'null Δ':>7}  {'unseen':>6}  status"
    )
    for f in report.features:
        d = f.drift
        size = "-" if d.size is None else f"{d.size:.3f}"
        p_value = "-" if d.p_value is None else f"{d.p_value:.1e}"
        lines.append(
            f"  {f.column:<{width}}  {f.kind:<11}  {d.method or '-':<11}  {size:>6}  {p_value:>7}  "
            f"{f.null_change:>+7.3f}  {f.unseen_share:>6.1%}  {f.level.upper() if f.level != OK else OK}"
        )
    if report.decay:
        lines.append(f"  {'metric':<{width}}  {'recorded':>11}  {'batch':>11}  {'worse by':>8}  {'noise':>6}")
        for m in report.decay:
            status = m.level.upper() if m.level != OK else OK
            lines.append(
                f"  {m.metric:<{width}}  {m.recorded:>11.4f}  {m.current:>11.4f}  {m.drop:>+8.3f}  {m.noise:>6.3f}  {status}"
            )
    lines.append(f"  decay: {report.decay_note}")
    if report.power:
        lines.append(f"  {report.power}")
    lines += [f"  - {reason}" for reason in report.reasons]
    return "\n".join(lines)


def plot(feature: FeatureDrift, path: Path) -> None:
    """Reference vs current shares over the reference bins (numeric) or categories (categorical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = feature.drift
    positions = np.arange(len(d.bins))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(d.bins)), 4))
    axes.bar(positions - 0.2, d.expected, width=0.4, label="reference (champion's training data)")
    axes.bar(positions + 0.2, d.actual, width=0.4, label="current batch")
    axes.set_xticks(positions, d.bins, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("share of non-missing values")
    axes.set_title(f"{feature.column}: {feature.level.upper()}, {d.describe()}", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
