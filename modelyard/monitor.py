"""Monitoring: how far a batch of recent data moved from the champion's training data, whether the
champion decayed on it, and the verdict a scheduler branches on (`ok`, `warn`, `retrain`).

Pure computation over a DataFrame and the champion's data profile (`modelyard.profile`); loading
data, scoring the model and MLflow logging live in `modelyard.steps.monitor`.

Small batches: PSI between two samples of one distribution is about chi-square / n, so noise alone
averages (bins - 1) * (1/n + 1/reference rows). The drift thresholds apply to PSI minus that
expected noise (`psi_adjusted`), and batches under `min_rows` are refused rather than judged.
Decay likewise: the tolerance applies to the drop beyond two standard errors of the difference
between the batch score (bootstrapped) and the recorded test score (scaled to the test set's size).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from modelyard.config import MonitorThresholds
from modelyard.errors import BadInputError
from modelyard.profile import distributions, is_numeric, psi_noise, unseen_share

Level = Literal["ok", "warn", "alert"]
OK: Final = "ok"
WARN: Final = "warn"
RETRAIN: Final = "retrain"
VERDICTS: Final = (OK, WARN, RETRAIN)  # by severity; also the numeric `verdict` metric (0, 1, 2)
DECAY_METRICS: Final = ("accuracy", "f1_macro", "roc_auc")


@dataclass
class FeatureDrift:
    column: str
    kind: str
    level: Level = "ok"
    reasons: list[str] = field(default_factory=list)
    psi: float | None = None
    psi_noise: float = 0.0
    psi_adjusted: float | None = None  # PSI minus its expected sampling noise, at least 0
    null_reference: float = 0.0
    null_current: float = 0.0
    unseen_share: float = 0.0
    unseen_examples: list[str] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)  # for the picture: reference vs current shares
    expected: list[float] = field(default_factory=list)
    actual: list[float] = field(default_factory=list)

    @property
    def null_change(self) -> float:
        return self.null_current - self.null_reference


@dataclass
class MetricDecay:
    metric: str
    recorded: float  # the champion's test score when it was registered
    current: float  # its score on the labelled rows of the batch
    noise: float  # two standard errors of (recorded - current): drops this small are chance
    level: Level

    @property
    def drop(self) -> float:
        return self.recorded - self.current


@dataclass
class Report:
    rows: int
    features: list[FeatureDrift]
    decay: list[MetricDecay]
    decay_note: str
    verdict: str = OK
    reasons: list[str] = field(default_factory=list)

    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.level != OK]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for feature, item in zip(self.features, data["features"], strict=True):
            item["null_change"] = feature.null_change
        for metric, item in zip(self.decay, data["decay"], strict=True):
            item["drop"] = metric.drop
        return data


def check_batch(frame: pd.DataFrame, reference: dict[str, Any], limits: MonitorThresholds) -> None:
    """Refuse a batch the check cannot judge: too few rows, missing columns, text in numeric columns."""
    if len(frame) < limits.min_rows:
        raise BadInputError(
            f"the batch has {len(frame)} rows; a drift check needs at least {limits.min_rows} (--min-rows), smaller samples are mostly noise"
        )
    expected = reference["columns"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"the batch lacks {len(missing)} column(s) the champion was trained on: {', '.join(missing)}"
        )
    for column, profile in expected.items():
        series = frame[column]
        if profile["kind"] == "numeric" and not is_numeric(series) and series.notna().any():
            values = series.dropna()
            bad = sorted(values[pd.to_numeric(values, errors="coerce").isna()].astype(str).unique())[:5]
            raise BadInputError(f"column {column!r} was numeric in the training data but holds text: {bad}")


def drift(frame: pd.DataFrame, reference: dict[str, Any], limits: MonitorThresholds) -> list[FeatureDrift]:
    """Per feature: PSI (noise-corrected), change of the null share, share of unseen categories."""
    reference_rows = float(reference.get("rows", 0))
    return [
        feature_drift(column, profile, frame[column], reference_rows, limits)
        for column, profile in reference["columns"].items()
    ]


def feature_drift(
    column: str, profile: dict[str, Any], series: pd.Series, reference_rows: float, limits: MonitorThresholds
) -> FeatureDrift:
    result = FeatureDrift(column, profile["kind"], null_reference=float(profile["null_fraction"]))
    result.null_current = float(series.isna().mean())
    compared = distributions(profile, series)
    if compared is not None:
        result.bins, result.expected, result.actual = (
            compared.bins,
            compared.expected.tolist(),
            compared.actual.tolist(),
        )
        result.psi = compared.psi()
        rows = reference_rows * (1 - result.null_reference)
        result.psi_noise = psi_noise(compared.expected, compared.rows, rows)
        result.psi_adjusted = max(result.psi - result.psi_noise, 0.0)
        if result.kind == "categorical" and compared.actual[-1] > 0:
            result.unseen_share, result.unseen_examples = unseen_share(profile, series)
    grades = [
        _grade(
            result.psi_adjusted,
            limits.drift_warn,
            limits.drift_alert,
            f"PSI {result.psi_adjusted or 0:.3f} beyond noise",
        ),
        _grade(
            abs(result.null_change),
            limits.null_warn,
            limits.null_alert,
            f"missing share {result.null_reference:.1%} -> {result.null_current:.1%}",
        ),
        _grade(
            result.unseen_share,
            limits.unseen_warn,
            limits.unseen_alert,
            f"{result.unseen_share:.1%} unseen categories, e.g. {result.unseen_examples}",
        ),
    ]
    for level, reason in grades:
        if level != OK:
            result.reasons.append(f"{column}: {reason}")
            result.level = _worst(result.level, level)
    return result


def decay(
    recorded: dict[str, float], current: dict[str, float], noise: dict[str, float], tolerance: float
) -> list[MetricDecay]:
    """Each metric both sides know; `alert` when the batch score fell more than noise + tolerance."""
    result = []
    for metric in DECAY_METRICS:
        before, now = recorded.get(metric, math.nan), current.get(metric, math.nan)
        if math.isnan(before) or math.isnan(now):
            continue
        spread = noise.get(metric, 0.0)
        level: Level = "alert" if before - now - spread > tolerance else OK
        result.append(MetricDecay(metric, before, now, spread, level))
    return result


def scores(
    labels: np.ndarray, predicted: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """accuracy, macro F1 and one-vs-rest ROC AUC, as `modelyard.model.score` defines them."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    result = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, average="macro")),
        "roc_auc": math.nan,
    }
    if len(set(labels)) >= 2 and set(labels) <= set(classes):
        if len(classes) == 2:
            result["roc_auc"] = float(roc_auc_score(labels, proba[:, 1], labels=classes))
        else:
            result["roc_auc"] = float(roc_auc_score(labels, proba, multi_class="ovr", labels=classes))
    return result


def decay_noise(
    labels: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray,
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
    rng = np.random.default_rng(0)
    rows = len(labels)
    size = min(rows, cap)
    samples = [rng.integers(0, rows, size) for _ in range(rounds)]
    spread = {}
    for metric in DECAY_METRICS:
        values = [scores(labels[i], predicted[i], proba[i], classes)[metric] for i in samples]
        batch_se = float(np.nanstd(values)) * math.sqrt(size / rows) if not np.isnan(values).all() else 0.0
        test_se = batch_se * math.sqrt(rows / (test_rows or rows))
        spread[metric] = 2 * math.hypot(batch_se, test_se)
    return spread


def conclude(report: Report, limits: MonitorThresholds) -> Report:
    """The verdict: `retrain` on any alert, `warn` on any warning, else `ok`; with the reasons."""
    reasons = [reason for f in report.features for reason in f.reasons]
    reasons += [
        f"champion {d.metric} fell {d.drop:.3f} ({d.recorded:.3f} -> {d.current:.3f}; noise {d.noise:.3f} + tolerance {limits.decay_tolerance})"
        for d in report.decay
        if d.level != OK
    ]
    levels = [f.level for f in report.features] + [d.level for d in report.decay]
    report.verdict = RETRAIN if "alert" in levels else WARN if WARN in levels else OK
    report.reasons = reasons
    return report


def _grade(value: float | None, warn: float, alert: float, reason: str) -> tuple[Level, str]:
    if value is None or value <= warn:
        return OK, reason
    return ("alert" if value > alert else WARN), reason


def _worst(a: Level, b: Level) -> Level:
    order = ("ok", "warn", "alert")
    return a if order.index(a) >= order.index(b) else b


def render(report: Report, title: str) -> str:
    """The readable table: one line per feature, one per metric, then the reasons."""
    lines = [f"{title}: {report.verdict.upper()} ({report.rows:,} rows)"]
    width = max([len(f.column) for f in report.features] + [7])
    lines.append(
        f"  {'feature':<{width}}  {'kind':<11}  {'PSI':>6}  {'noise':>6}  {'null Δ':>7}  {'unseen':>6}  status"
    )
    for f in report.features:
        psi_text = "-" if f.psi is None else f"{f.psi:.3f}"
        lines.append(
            f"  {f.column:<{width}}  {f.kind:<11}  {psi_text:>6}  {f.psi_noise:>6.3f}  "
            f"{f.null_change:>+7.3f}  {f.unseen_share:>6.1%}  {f.level.upper() if f.level != OK else OK}"
        )
    if report.decay:
        lines.append(f"  {'metric':<{width}}  {'recorded':>11}  {'batch':>6}  {'drop':>6}  {'noise':>6}")
        for d in report.decay:
            status = d.level.upper() if d.level != OK else OK
            lines.append(
                f"  {d.metric:<{width}}  {d.recorded:>11.4f}  {d.current:>6.4f}  {d.drop:>+6.3f}  {d.noise:>6.3f}  {status}"
            )
    lines.append(f"  decay: {report.decay_note}")
    lines += [f"  - {reason}" for reason in report.reasons]
    return "\n".join(lines)


def plot(feature: FeatureDrift, path: Path) -> None:
    """Reference vs current shares over the reference bins (numeric) or categories (categorical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = np.arange(len(feature.bins))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(feature.bins)), 4))
    axes.bar(positions - 0.2, feature.expected, width=0.4, label="reference (champion's training data)")
    axes.bar(positions + 0.2, feature.actual, width=0.4, label="current batch")
    axes.set_xticks(positions, feature.bins, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("share of non-missing values")
    psi_text = "-" if feature.psi is None else f"{feature.psi:.3f}"
    axes.set_title(f"{feature.column}: {feature.level.upper()}, PSI {psi_text}", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
