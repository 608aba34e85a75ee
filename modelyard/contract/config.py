"""The pipeline config: one validated model for the YAML file, the CLI flags and Argo parameters."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.contract.tasks import (
    ESTIMATOR_TASKS,
    GRIDS,
    LARGE_TABLE_ROWS,
    METRICS,
    PRIMARY_METRIC,
    TASK_THRESHOLDS,
    Estimator,
    Metric,
    MetricSpec,
    Task,
    default_search_space,
    other,
)
from modelyard.core.errors import BadInputError

Promotion = Literal["champion", "canary"]
CANARY: Final[Promotion] = "canary"

MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _model_name(value: str) -> str:
    # Registry filters and lock files are built from the name, and MLflow refuses some characters
    # only after training: check it before any work.
    if not MODEL_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid model name: use up to 200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


ModelName = Annotated[str, AfterValidator(_model_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fractions(_Strict):
    train: float = Field(0.70, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Fractions:
        if abs(self.train + self.validation + self.test - 1) > 1e-9:
            raise ValueError("train + validation + test must add up to 1")
        return self


def _for_task(task: Task, name: str, description: str, **constraints: Any) -> Any:
    default = TASK_THRESHOLDS[task][name]
    unset = "unset: no gate" if default is None else f"default {default}"
    return Field(None, description=f"{description} ({task} only; {unset})", **constraints)


class DriftLimits(_Strict):
    """How the one drift engine (`modelyard.quality.drift`) judges a column; validate and monitor both use it."""

    drift_alpha: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="chance of a false drift alarm per batch (split over the columns tested)",
    )
    drift_warn: float = Field(
        0.1,
        ge=0,
        description="drift size that warns: Wasserstein distance in standard deviations (numeric), PSI (categorical)",
    )
    drift_alert: float = Field(
        0.25,
        ge=0,
        description="drift size beyond which drift is an alert (validation fails, monitor retrains)",
    )

    @model_validator(mode="after")
    def _warn_below_alert(self) -> DriftLimits:
        if self.drift_warn > self.drift_alert:
            raise ValueError("drift_warn must not exceed drift_alert")
        return self


class Thresholds(DriftLimits):
    """Every number a run is judged by; each one is also a CLI flag and an Argo parameter."""

    max_null_fraction: float | None = Field(
        None,
        ge=0,
        le=1,
        description="gate: largest share of missing values (or non-dates in a date column) allowed in a "
        "feature column (unset: no gate; the model imputes them and validation warns)",
    )
    max_out_of_range_fraction: float = Field(
        0.01, ge=0, le=1, description="largest share of numeric values outside the reference range"
    )
    min_rows_per_class: int | None = _for_task(
        "classification", "min_rows_per_class", "fewest rows allowed for any label value", ge=1
    )
    overfit_gap: float = Field(
        0.1,
        ge=0,
        description="train minus validation score that flags overfitting (the primary metric's; for regression: train minus validation R², whatever the primary metric)",
    )
    reject_overfit: bool = Field(
        False, description="quality gate: reject a winner flagged as overfitting (default: only report it)"
    )
    min_accuracy: float | None = _for_task(
        "classification", "min_accuracy", "quality gate: lowest test accuracy", ge=0, le=1
    )
    min_f1_macro: float | None = _for_task(
        "classification", "min_f1_macro", "quality gate: lowest test macro F1", ge=0, le=1
    )
    min_roc_auc: float | None = _for_task(
        "classification", "min_roc_auc", "quality gate: lowest test ROC AUC", ge=0, le=1
    )
    max_rmse: float | None = _for_task("regression", "max_rmse", "quality gate: highest test RMSE", gt=0)
    max_mae: float | None = _for_task("regression", "max_mae", "quality gate: highest test MAE", gt=0)
    min_r2: float | None = _for_task("regression", "min_r2", "quality gate: lowest test R²", le=1)
    champion_tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="how much worse than the champion a challenger may score (for RMSE/MAE: a share)",
    )


class CanaryThresholds(_Strict):
    """What a canary is judged by against the stable version over one analysis window; each one
    is also a flag of `modelyard step analyze` (the chart's serving.canary.analysis)."""

    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="largest share of the canary's requests answered with a 5xx in the window",
    )
    max_latency_ratio: float = Field(
        2.0, ge=1, description="largest canary p95 latency as a multiple of the stable version's (plus 50 ms)"
    )
    min_requests: int = Field(
        20, ge=1, description="fewest canary requests in the window for the error-rate and latency checks"
    )
    min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        description="smallest share of the same rows the canary predicts as the stable version does (regression: within 10%)",
    )
    max_metric_drop: float = Field(
        0.05,
        ge=0,
        le=1,
        description="on labelled rows: how much worse than the stable version the canary may score",
    )


class MonitorThresholds(DriftLimits):
    """Every number a monitoring check is judged by; each one is also a `modelyard monitor` flag."""

    min_rows: int = Field(
        30,
        ge=30,
        description="fewest batch rows a check accepts; smaller batches get a verdict with less power",
    )
    null_warn: float = Field(
        0.05, ge=0, le=1, description="change in a column's share of missing values (beyond noise) that warns"
    )
    null_alert: float = Field(
        0.1,
        ge=0,
        le=1,
        description="change in a column's share of missing values (beyond noise) that calls for retraining",
    )
    unseen_warn: float = Field(
        0.01, ge=0, le=1, description="share of values in never-seen categories that warns"
    )
    unseen_alert: float = Field(
        0.05, ge=0, le=1, description="share of values in never-seen categories that calls for retraining"
    )
    decay_tolerance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="largest drop of a champion test metric on a labelled batch before retraining (RMSE/MAE: a share)",
    )

    @model_validator(mode="after")
    def _warn_below_alert_each(self) -> MonitorThresholds:
        for kind in ("null", "unseen"):
            if getattr(self, f"{kind}_warn") > getattr(self, f"{kind}_alert"):
                raise ValueError(f"{kind}_warn must not exceed {kind}_alert")
        return self


def load_monitor_thresholds(values: dict[str, Any]) -> MonitorThresholds:
    try:
        return MonitorThresholds.model_validate(values)
    except ValidationError as exc:
        raise BadInputError(f"invalid monitoring thresholds: {describe_errors(exc)}") from exc


class ColumnExpectation(_Strict):
    kind: Literal["numeric", "categorical"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None


class Expectations(_Strict):
    """Explicit data expectations; the champion's reference profile adds more when it exists."""

    columns: dict[str, ColumnExpectation] = Field(default_factory=dict)
    labels: list[str] | None = None
    # Unset: only the champion's profile makes a column unexpected; false: `columns` lists them all.
    allow_extra_columns: bool | None = None


class Columns(_Strict):
    """Which columns the model sees and how; unset, `modelyard.ml.columns` decides (see its defaults)."""

    features: list[str] | None = Field(
        None,
        min_length=1,
        description="the only columns the model sees (default: every column but the label)",
    )
    drop: list[str] = Field(default_factory=list, description="columns the model never sees")
    datetime: list[str] = Field(
        default_factory=list,
        description="columns parsed as dates (default: text that parses as dates, and datetime columns)",
    )

    @model_validator(mode="after")
    def _no_contradiction(self) -> Columns:
        problems = []
        if both := sorted(set(self.features or ()) & set(self.drop)):
            problems.append(f"features and drop both list {', '.join(both)}")
        if dropped := sorted(set(self.datetime) & set(self.drop)):
            problems.append(f"datetime lists dropped column(s) {', '.join(dropped)}")
        elif self.features is not None and (unused := sorted(set(self.datetime) - set(self.features))):
            problems.append(f"datetime lists {', '.join(unused)}, not in features")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def named(self) -> set[str]:
        return set(self.features or ()) | set(self.drop) | set(self.datetime)


class PipelineConfig(_Strict):
    dataset: str = Field(
        "iris",
        description="dataset URI: iris, wine, breast_cancer, diabetes, a CSV/Parquet file, a directory of Parquet files or s3://bucket/key",
    )
    label: str = Field("target", description="label column")
    model_name: ModelName = Field("modelyard-demo", description="registered model name")
    experiment: str = Field("modelyard", min_length=1, description="MLflow experiment")
    task: Task | None = Field(
        None,
        description="classification or regression; unset: inferred from the label (numeric with non-integer or more than 20 distinct values: regression)",
    )
    seed: int = Field(42, ge=0, description="random seed for the split and the estimators")
    primary_metric: Metric | None = Field(
        None, description="validation metric that picks the winner (default: f1_macro, regression rmse)"
    )
    fractions: Fractions = Field(default_factory=Fractions)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    expectations: Expectations = Field(default_factory=Expectations)
    columns: Columns = Field(default_factory=Columns)
    search_space: dict[Estimator, dict[str, list[Any]]] | None = Field(
        None,
        min_length=1,
        description="estimators and their grids (default: the task's, sized to the table's rows)",
    )
    large_table_rows: int = Field(
        LARGE_TABLE_ROWS,
        ge=1,
        description="rows from which the default search space is the large-table one (histogram boosting, bounded forests)",
    )
    candidate_time_budget: float = Field(
        600,
        gt=0,
        le=24 * 3600,
        description="seconds one candidate may spend fitting; a tree ensemble is cut at the trees grown by then",
    )
    promotion: Promotion = Field(
        "champion",
        description="how a challenger that passes evaluation is promoted: champion (register moves the alias) "
        "or canary (the model's serving Rollout ships it as a canary, and it takes champion when promoted)",
    )

    @field_validator("search_space")
    @classmethod
    def _bounded_grids(cls, space: dict[Estimator, dict[str, list[Any]]] | None) -> Any:
        for estimator, grid in (space or {}).items():
            try:
                GRIDS[estimator].model_validate(grid)
            except ValidationError as exc:
                allowed = ", ".join(GRIDS[estimator].model_fields)
                raise ValueError(f"{estimator}: {describe_errors(exc)} (it may vary: {allowed})") from None
        return space

    @model_validator(mode="after")
    def _label_is_no_feature(self) -> PipelineConfig:
        if self.label in self.columns.named():
            raise ValueError(f"columns lists the label {self.label!r}: the label is never a feature")
        return self


# Top-level scalars and thresholds are the settings users change per run: CLI flags, Argo parameters.
FLAT_TOP_LEVEL = (
    "dataset",
    "label",
    "model_name",
    "experiment",
    "task",
    "seed",
    "primary_metric",
    "large_table_rows",
    "candidate_time_budget",
    "promotion",
)


def flat_fields() -> dict[str, Any]:
    """Pydantic FieldInfo of every flat setting, by name (thresholds flattened)."""
    top = {name: PipelineConfig.model_fields[name] for name in FLAT_TOP_LEVEL}
    return top | dict(Thresholds.model_fields)


def load_config(text: str = "", overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Parse YAML/JSON config text, apply flat overrides (None = keep), validate everything once."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise BadInputError(f"config is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError("config must be a YAML mapping of settings")
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name in Thresholds.model_fields:
            data.setdefault("thresholds", {})[name] = value
        else:
            data[name] = value
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"invalid config: {describe_errors(exc)}") from exc


def for_task(
    config: PipelineConfig, task: Task, rows: int | None = None, minority_share: float | None = None
) -> PipelineConfig:
    """The config resolved for a task: the other task's settings refused, this one's defaults filled
    (the search space sized to `rows`, the table's row count, and weighted for a rare class, when known)."""
    wrong = other(task)
    problems = [
        f"thresholds.{name} is a {wrong} gate"
        for name in TASK_THRESHOLDS[wrong]
        if getattr(config.thresholds, name) is not None
    ]
    if config.primary_metric and METRICS[config.primary_metric].task != task:
        problems.append(f"primary_metric {config.primary_metric} is a {wrong} metric")
    problems += [
        f"search_space.{name} is not a {task} estimator"
        for name in config.search_space or {}
        if task not in ESTIMATOR_TASKS[name]
    ]
    if task == "regression" and config.expectations.labels is not None:
        problems.append("expectations.labels lists classes")
    if problems:
        raise BadInputError(f"the task is {task}, but " + "; ".join(problems))
    unset = {k: v for k, v in TASK_THRESHOLDS[task].items() if getattr(config.thresholds, k) is None}
    return config.model_copy(
        update={
            "task": task,
            "primary_metric": config.primary_metric or PRIMARY_METRIC[task],
            "search_space": config.search_space
            or default_search_space(task, rows, config.large_table_rows, minority_share),
            "thresholds": config.thresholds.model_copy(update=unset),
        }
    )


def task_of(config: PipelineConfig) -> Task:
    """The resolved task; every step after prepare gets a config that has one."""
    if config.task is None:
        raise BadInputError("the config has no task: pass a config resolved by the prepare step")
    return config.task


def primary_of(config: PipelineConfig) -> MetricSpec:
    """The resolved primary metric (prepare fills it in from the task)."""
    if config.primary_metric is None:
        raise BadInputError("the config has no primary_metric: pass a config resolved by the prepare step")
    return METRICS[config.primary_metric]


def read_config_file(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError as exc:
        raise BadInputError(f"cannot read config file {path}: {exc.strerror}") from exc


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "config"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] == "value_error":  # our own validators' words, without pydantic's prefix
            message = str(error.get("ctx", {}).get("error", message))
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# Bounded waits: each variable, its default and what reads it (README "Timeouts").
S3_TIMEOUT: Final = "MODELYARD_S3_TIMEOUT"  # seconds to connect, and to wait for each read
S3_RETRIES: Final = "MODELYARD_S3_RETRIES"  # attempts after the first
ARGO_TIMEOUT: Final = "MODELYARD_ARGO_TIMEOUT"  # seconds per Argo Server request
SECONDS_DEFAULTS: Final = {S3_TIMEOUT: 10.0, ARGO_TIMEOUT: 30.0}
COUNT_DEFAULTS: Final = {S3_RETRIES: 2}
# MLflow's own client settings; MLflow reads them as integers and crashes on anything else.
MLFLOW_TIMEOUT: Final = "MLFLOW_HTTP_REQUEST_TIMEOUT"
MLFLOW_RETRIES: Final = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
MLFLOW_BACKOFF: Final = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
# Bounded: MLflow's own defaults (120 s, 7 retries, factor 2) wait many minutes on a silent server.
MLFLOW_DEFAULTS: Final = {MLFLOW_TIMEOUT: 15, MLFLOW_RETRIES: 2, MLFLOW_BACKOFF: 1}


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment: a number above 0, else exit 2 naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BadInputError(f"{name}={text!r} is not a number of seconds above 0 (unset, it is {default:g})")
    return value


def env_count(name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number from the environment, at least `minimum`, else exit 2 naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise BadInputError(
            f"{name}={text!r} is not a whole number of at least {minimum} (unset, it is {default})"
        )
    return value


def check_timeouts() -> None:
    """Every timeout and retry setting, checked before a command creates anything."""
    for name, seconds in SECONDS_DEFAULTS.items():
        env_seconds(name, seconds)
    for name, count in COUNT_DEFAULTS.items():
        env_count(name, count)
    for name, count in MLFLOW_DEFAULTS.items():
        env_count(name, count, minimum=1 if name == MLFLOW_TIMEOUT else 0)
