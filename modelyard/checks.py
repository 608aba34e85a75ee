"""Data checks, like unit tests for a dataset: each rule returns findings, all are reported at once."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelyard.config import PipelineConfig
from modelyard.profile import is_numeric, out_of_range_share, psi, unseen_share

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    column: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks(
    frame: pd.DataFrame, config: PipelineConfig, reference: dict[str, Any] | None
) -> tuple[list[Finding], dict[str, float]]:
    """Every rule over the data; returns the findings and the PSI per feature (when a reference exists)."""
    if frame.empty:
        return [Finding("empty", "error", "the data has no rows")], {}
    findings = [
        *check_schema(frame, config, reference),
        *check_values(frame, config, reference),
        *check_labels(frame, config, reference),
    ]
    drift = psi_by_feature(frame, reference) if reference else {}
    findings += check_drift(drift, config)
    return findings, drift


def _expected_kinds(config: PipelineConfig, reference: dict[str, Any] | None) -> dict[str, str | None]:
    kinds: dict[str, str | None] = {c: p["kind"] for c, p in (reference or {}).get("columns", {}).items()}
    kinds |= {c: e.kind or kinds.get(c) for c, e in config.expectations.columns.items()}
    return kinds


def check_schema(
    frame: pd.DataFrame, config: PipelineConfig, reference: dict[str, Any] | None
) -> list[Finding]:
    expected = _expected_kinds(config, reference)
    actual = [c for c in frame.columns if c != config.label]
    if config.label not in frame.columns:
        return [Finding("missing_column", "error", f"label column {config.label!r} is missing", config.label)]
    missing = [c for c in expected if c not in frame.columns]
    extra = (
        [c for c in actual if c not in expected]
        if expected and not config.expectations.allow_extra_columns
        else []
    )
    findings = []
    for column in missing:
        guess = difflib.get_close_matches(column, extra, n=1, cutoff=0.6)
        hint = f" (renamed to {guess[0]!r}?)" if guess else ""
        findings.append(
            Finding("missing_column", "error", f"expected column {column!r} is missing{hint}", column)
        )
    findings += [Finding("extra_column", "error", f"unexpected column {c!r}", c) for c in extra]
    for column, kind in expected.items():
        if column in frame.columns and kind == "numeric" and not is_numeric(frame[column]):
            findings.append(_text_in_numeric(column, frame[column]))
    for column in actual:
        if expected.get(column) is None and not is_numeric(frame[column]) and _mostly_numbers(frame[column]):
            findings.append(_text_in_numeric(column, frame[column]))
    return findings


def _mostly_numbers(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) > 0 and pd.to_numeric(values, errors="coerce").notna().mean() >= 0.9


def _text_in_numeric(column: str, series: pd.Series) -> Finding:
    values = series.dropna()
    bad = sorted(values[pd.to_numeric(values, errors="coerce").isna()].astype(str).unique())[:5]
    return Finding("dtype", "error", f"column {column!r} should be numeric but holds text: {bad}", column)


def check_values(
    frame: pd.DataFrame, config: PipelineConfig, reference: dict[str, Any] | None
) -> list[Finding]:
    limits = config.thresholds
    ref_columns = (reference or {}).get("columns", {})
    findings = []
    for column in frame.columns:
        series = frame[column]
        null_share = float(series.isna().mean())
        if column == config.label:
            if null_share:
                findings.append(
                    Finding(
                        "nulls",
                        "error",
                        f"label column {column!r} has {int(series.isna().sum())} missing values",
                        column,
                    )
                )
            continue
        if null_share > limits.max_null_fraction:
            findings.append(
                Finding(
                    "nulls",
                    "error",
                    f"column {column!r} is {null_share:.1%} missing (max {limits.max_null_fraction:.1%})",
                    column,
                )
            )
        if is_numeric(series) and np.isinf(series.to_numpy(dtype=float)).any():
            findings.append(Finding("inf", "error", f"column {column!r} holds infinite values", column))
        findings += _check_range(column, series, ref_columns.get(column), config)
        findings += _check_categories(column, series, ref_columns.get(column), config)
    return findings


def _tolerated(
    rule: str, column: str, share: float, examples: list[Any], what: str, limit: float
) -> list[Finding]:
    if share == 0:
        return []
    severity: Severity = "error" if share > limit else "warning"
    return [
        Finding(
            rule,
            severity,
            f"column {column!r}: {share:.1%} of values {what} (max {limit:.1%}), e.g. {examples}",
            column,
        )
    ]


def _check_range(
    column: str, series: pd.Series, reference: dict[str, Any] | None, config: PipelineConfig
) -> list[Finding]:
    expectation = config.expectations.columns.get(column)
    low = expectation.min if expectation and expectation.min is not None else (reference or {}).get("min")
    high = expectation.max if expectation and expectation.max is not None else (reference or {}).get("max")
    if (low is None and high is None) or not is_numeric(series):
        return []
    share, examples = out_of_range_share(low, high, series)
    what = (
        f"outside the expected range [{low:g}, {high:g}]"
        if low is not None and high is not None
        else "out of range"
    )
    return _tolerated("range", column, share, examples, what, config.thresholds.max_out_of_range_fraction)


def _check_categories(
    column: str, series: pd.Series, reference: dict[str, Any] | None, config: PipelineConfig
) -> list[Finding]:
    expectation = config.expectations.columns.get(column)
    if expectation and expectation.allowed is not None:
        reference = {"categories": dict.fromkeys(expectation.allowed, 0.0)}
    if not reference or "categories" not in reference or is_numeric(series):
        return []
    share, examples = unseen_share(reference, series)
    return _tolerated(
        "categories",
        column,
        share,
        examples,
        "are categories never seen before",
        config.thresholds.max_out_of_range_fraction,
    )


def check_labels(
    frame: pd.DataFrame, config: PipelineConfig, reference: dict[str, Any] | None
) -> list[Finding]:
    labels = frame[config.label].dropna().astype(str) if config.label in frame else pd.Series(dtype=str)
    counts = labels.value_counts()
    allowed = config.expectations.labels or (list(reference["labels"]) if reference else None)
    findings = []
    if allowed is not None and (unknown := sorted(set(counts.index) - {str(a) for a in allowed})):
        findings.append(
            Finding(
                "labels",
                "error",
                f"label values not in the expected set {sorted(map(str, allowed))}: {unknown}",
                config.label,
            )
        )
    if 0 < len(counts) < 2:
        findings.append(
            Finding(
                "labels",
                "error",
                f"only one label value ({counts.index[0]!r}): a classifier needs two or more",
                config.label,
            )
        )
    minimum = config.thresholds.min_rows_per_class
    for value, count in counts[counts < minimum].items():
        findings.append(
            Finding(
                "rows_per_class", "error", f"label {value!r} has {count} rows (min {minimum})", config.label
            )
        )
    return findings


def psi_by_feature(frame: pd.DataFrame, reference: dict[str, Any]) -> dict[str, float]:
    drift = {}
    for column, ref in reference.get("columns", {}).items():
        if column in frame.columns and (value := psi(ref, frame[column])) is not None:
            drift[column] = value
    return drift


def check_drift(drift: dict[str, float], config: PipelineConfig) -> list[Finding]:
    limits = config.thresholds
    findings = []
    for column, value in drift.items():
        if value > limits.psi_fail:
            findings.append(
                Finding(
                    "drift",
                    "error",
                    f"column {column!r} drifted: PSI {value:.3f} > {limits.psi_fail}",
                    column,
                )
            )
        elif value > limits.psi_warn:
            findings.append(
                Finding(
                    "drift",
                    "warning",
                    f"column {column!r} drifts: PSI {value:.3f} > {limits.psi_warn}",
                    column,
                )
            )
    return findings


def render(findings: list[Finding], drift: dict[str, float], reference_source: str) -> str:
    """The human-readable report."""
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    verdict = "FAILED" if errors else "passed"
    lines = [
        f"Data validation {verdict}: {len(errors)} error(s), {len(warnings)} warning(s); reference: {reference_source}"
    ]
    lines += [f"  ERROR   [{f.rule}] {f.message}" for f in errors]
    lines += [f"  warning [{f.rule}] {f.message}" for f in warnings]
    if drift:
        lines.append("  drift (PSI): " + ", ".join(f"{c}={v:.3f}" for c, v in sorted(drift.items())))
    return "\n".join(lines)
