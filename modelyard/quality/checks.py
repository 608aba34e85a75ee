"""Data checks, like unit tests for a dataset: each rule returns findings, all are reported at once."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from modelyard.contract.config import PipelineConfig, task_of
from modelyard.contract.records import (
    CategoricalProfile,
    ColumnDrift,
    ColumnProfile,
    ColumnRoles,
    DataProfile,
    Finding,
    NumericProfile,
    Severity,
)
from modelyard.core.errors import BadInputError
from modelyard.dates import parse_dates
from modelyard.ml.columns import is_numeric, non_numbers
from modelyard.quality.drift import compare, power_note
from modelyard.quality.profile import out_of_range_share, unseen_share


def run_checks(
    frame: pd.DataFrame,
    config: PipelineConfig,
    reference: DataProfile | None,
    roles: ColumnRoles | None = None,
) -> tuple[list[Finding], list[ColumnDrift]]:
    """Every rule over the data; returns the findings and each feature's drift (when a reference exists).

    With roles, the columns the model leaves out are not checked, nor expected by the reference."""
    if roles is not None:
        frame = frame.drop(columns=[c for c in roles.excluded if c in frame.columns])
        if reference is not None:
            kept = {c: p for c, p in reference.columns.items() if c not in roles.excluded}
            reference = reference.model_copy(update={"columns": kept})
    if frame.empty:
        return [Finding("empty", "error", "the data has no rows")], []
    findings = [
        *check_schema(frame, config, reference),
        *check_values(frame, config, reference),
        *check_labels(frame, config, reference),
        *check_dates(frame, config, roles.datetime if roles else []),
    ]
    drift = compare(frame, reference, config.thresholds) if reference else []
    findings += check_drift(drift)
    return findings, drift


def _expected_kinds(config: PipelineConfig, reference: DataProfile | None) -> dict[str, str | None]:
    kinds: dict[str, str | None] = {c: p.kind for c, p in (reference.columns if reference else {}).items()}
    kinds |= {c: e.kind or kinds.get(c) for c, e in config.expectations.columns.items()}
    return kinds


def check_schema(frame: pd.DataFrame, config: PipelineConfig, reference: DataProfile | None) -> list[Finding]:
    expected = _expected_kinds(config, reference)
    actual = [c for c in frame.columns if c != config.label]
    if config.label not in frame.columns:
        return [Finding("missing_column", "error", f"label column {config.label!r} is missing", config.label)]
    missing = [c for c in expected if c not in frame.columns]
    extra = _unexpected_columns(actual, config, reference)
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


def _unexpected_columns(
    actual: list[str], config: PipelineConfig, reference: DataProfile | None
) -> list[str]:
    """Columns beyond the champion's and the declared ones. Unset `allow_extra_columns` lets a partial
    `expectations.columns` check only what it names; `false` makes it the whole schema."""
    allow = config.expectations.allow_extra_columns
    if allow or (allow is None and reference is None):
        return []
    expected = _expected_kinds(config, reference)
    return [c for c in actual if c not in expected] if expected else []


def _mostly_numbers(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):  # datetimes convert to numbers, yet hold no text
        return False
    values = series.dropna()
    return len(values) > 0 and pd.to_numeric(values, errors="coerce").notna().mean() >= 0.9


def _text_in_numeric(column: str, series: pd.Series) -> Finding:
    bad = non_numbers(series)
    return Finding("dtype", "error", f"column {column!r} should be numeric but holds text: {bad}", column)


def check_values(frame: pd.DataFrame, config: PipelineConfig, reference: DataProfile | None) -> list[Finding]:
    limits = config.thresholds
    ref_columns = reference.columns if reference else {}
    findings = []
    for column in frame.columns:
        series = frame[column]
        if column == config.label:
            if series.isna().any():
                findings.append(
                    Finding(
                        "nulls",
                        "error",
                        f"label column {column!r} has {int(series.isna().sum())} missing values",
                        column,
                    )
                )
            continue
        findings += _check_nulls(column, series, limits.max_null_fraction)
        if is_numeric(series) and np.isinf(series.to_numpy(dtype=float)).any():
            findings.append(Finding("inf", "error", f"column {column!r} holds infinite values", column))
        findings += _check_range(column, series, ref_columns.get(column), config)
        findings += _check_categories(column, series, ref_columns.get(column), config)
    return findings


def _check_nulls(column: str, series: pd.Series, limit: float | None) -> list[Finding]:
    """Missing feature values are imputed: a warning, and an error only above a set gate."""
    share = float(series.isna().mean())
    if share == 0:
        return []
    if limit is not None and share > limit:
        return [
            Finding("nulls", "error", f"column {column!r} is {share:.1%} missing (max {limit:.1%})", column)
        ]
    if share == 1:
        return [
            Finding(
                "nulls",
                "warning",
                f"column {column!r} is entirely missing: the model learns nothing from it",
                column,
            )
        ]
    return [Finding("nulls", "warning", f"column {column!r} is {share:.1%} missing (imputed)", column)]


def _tolerated(
    rule: str, column: str, share: float, examples: list[Any], what: str, limit: float | None
) -> list[Finding]:
    """A finding for a share of bad values: a warning, an error above `limit` (None: never)."""
    if share == 0:
        return []
    severity: Severity = "error" if limit is not None and share > limit else "warning"
    bound = f" (max {limit:.1%})" if limit is not None else ""
    return [
        Finding(
            rule, severity, f"column {column!r}: {share:.1%} of values {what}{bound}, e.g. {examples}", column
        )
    ]


def _check_range(
    column: str, series: pd.Series, reference: ColumnProfile | None, config: PipelineConfig
) -> list[Finding]:
    expectation = config.expectations.columns.get(column)
    numeric = reference if isinstance(reference, NumericProfile) else None
    low = (
        expectation.min if expectation and expectation.min is not None else (numeric.min if numeric else None)
    )
    high = (
        expectation.max if expectation and expectation.max is not None else (numeric.max if numeric else None)
    )
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
    column: str, series: pd.Series, reference: ColumnProfile | None, config: PipelineConfig
) -> list[Finding]:
    expectation = config.expectations.columns.get(column)
    if expectation and expectation.allowed is not None:
        categories = dict.fromkeys(expectation.allowed, 0.0)
        reference = CategoricalProfile(dtype="object", null_fraction=0.0, categories=categories)
    if not isinstance(reference, CategoricalProfile) or is_numeric(series):
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


def check_dates(frame: pd.DataFrame, config: PipelineConfig, dates: list[str]) -> list[Finding]:
    """Values of date columns that are no dates: the model sees them as missing dates."""
    findings = []
    for column in dates:
        values = frame[column].dropna()
        wrong = values[parse_dates(values).isna()] if len(values) else values
        share = len(wrong) / len(values) if len(values) else 0.0
        examples = sorted(wrong.astype(str).unique())[:5]
        limit = config.thresholds.max_null_fraction
        findings += _tolerated("dates", column, share, examples, "are not dates", limit)
    return findings


def require_label_values(labels: pd.Series, label: str, dataset: str) -> None:
    """A label column without a single value leaves nothing to learn: bad input, named up front."""
    if labels.empty:
        raise BadInputError(f"dataset {dataset} has no rows")
    if labels.isna().all():
        raise BadInputError(
            f"label column {label!r} in dataset {dataset} has no values: all {len(labels)} rows are missing"
        )


def check_labels(frame: pd.DataFrame, config: PipelineConfig, reference: DataProfile | None) -> list[Finding]:
    task = task_of(config)
    if config.label not in frame:
        return []
    findings = []
    if reference and (trained := reference.task) != task:
        findings.append(
            Finding(
                "task",
                "error",
                f"the champion of {config.model_name} is a {trained} model; this run is {task}: "
                "use another model name",
                config.label,
            )
        )
    if task == "regression":
        return findings + _check_numeric_label(frame[config.label], config.label)
    return findings + _check_classes(frame[config.label].dropna().astype(str), config, reference)


def _check_numeric_label(labels: pd.Series, label: str) -> list[Finding]:
    if is_numeric(labels):
        return []
    bad = non_numbers(labels)
    return [
        Finding(
            "labels", "error", f"regression label {label!r} holds values that are not numbers: {bad}", label
        )
    ]


def _check_classes(labels: pd.Series, config: PipelineConfig, reference: DataProfile | None) -> list[Finding]:
    counts = labels.value_counts()
    allowed = config.expectations.labels or (list(reference.labels or {}) if reference else None)
    findings = []
    if allowed and (unknown := sorted(set(counts.index) - {str(a) for a in allowed})):
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
    minimum = config.thresholds.min_rows_per_class or 1
    for value, count in counts[counts < minimum].items():
        findings.append(
            Finding(
                "rows_per_class", "error", f"label {value!r} has {count} rows (min {minimum})", config.label
            )
        )
    return findings


def check_drift(drift: list[ColumnDrift]) -> list[Finding]:
    """An alert fails validation; a warning is reported."""
    findings = []
    for result in drift:
        if result.level == "alert":
            message = f"column {result.column!r} drifted: {result.describe()}"
            findings.append(Finding("drift", "error", message, result.column))
        elif result.level == "warn":
            message = f"column {result.column!r} drifts: {result.describe()}"
            findings.append(Finding("drift", "warning", message, result.column))
    return findings


def render(findings: list[Finding], drift: list[ColumnDrift], reference_source: str) -> str:
    """The human-readable report."""
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    verdict = "FAILED" if errors else "passed"
    lines = [
        f"Data validation {verdict}: {len(errors)} error(s), {len(warnings)} warning(s); reference: {reference_source}"
    ]
    lines += [f"  ERROR   [{f.rule}] {f.message}" for f in errors]
    lines += [f"  warning [{f.rule}] {f.message}" for f in warnings]
    judged = sorted((r for r in drift if r.size is not None), key=lambda r: r.column)
    if judged:
        lines.append("  drift size: " + ", ".join(f"{r.column}={r.size:.3f}" for r in judged))
    if note := power_note(drift):
        lines.append(f"  {note}")
    return "\n".join(lines)
