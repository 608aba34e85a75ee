"""The pipeline config: one validated model for the YAML file, the CLI flags and Argo parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.errors import BadInputError

Estimator = Literal["logistic_regression", "random_forest", "gradient_boosting"]
Metric = Literal["accuracy", "f1_macro", "roc_auc"]

DEFAULT_SEARCH_SPACE: dict[str, dict[str, list[Any]]] = {
    "logistic_regression": {"C": [0.1, 1.0, 10.0]},
    "random_forest": {"n_estimators": [100], "max_depth": [None, 5]},
    "gradient_boosting": {"learning_rate": [0.05, 0.1], "n_estimators": [50]},
}


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


class Thresholds(_Strict):
    """Every number a run is judged by; each one is also a CLI flag and an Argo parameter."""

    max_null_fraction: float = Field(
        0.1, ge=0, le=1, description="largest share of missing values allowed in a column"
    )
    max_out_of_range_fraction: float = Field(
        0.01, ge=0, le=1, description="largest share of numeric values outside the reference range"
    )
    min_rows_per_class: int = Field(5, ge=1, description="fewest rows allowed for any label value")
    psi_warn: float = Field(0.1, ge=0, description="population stability index that warns of drift")
    psi_fail: float = Field(0.25, ge=0, description="population stability index that fails validation")
    overfit_gap: float = Field(0.1, ge=0, description="train minus validation score that flags overfitting")
    min_accuracy: float = Field(0.7, ge=0, le=1, description="quality gate: lowest test accuracy")
    min_f1_macro: float = Field(0.7, ge=0, le=1, description="quality gate: lowest test macro F1")
    min_roc_auc: float = Field(0.75, ge=0, le=1, description="quality gate: lowest test ROC AUC")
    champion_tolerance: float = Field(
        0.01, ge=0, le=1, description="how much worse than the champion a challenger may score"
    )

    @model_validator(mode="after")
    def _warn_below_fail(self) -> Thresholds:
        if self.psi_warn > self.psi_fail:
            raise ValueError("psi_warn must not exceed psi_fail")
        return self


class MonitorThresholds(_Strict):
    """Every number a monitoring check is judged by; each one is also a `modelyard monitor` flag."""

    min_rows: int = Field(
        200, ge=1, description="fewest batch rows a check accepts: PSI on smaller samples is mostly noise"
    )
    drift_warn: float = Field(
        0.1, ge=0, description="PSI beyond sampling noise at which a feature's drift warns"
    )
    drift_alert: float = Field(
        0.25, ge=0, description="PSI beyond sampling noise at which a feature's drift calls for retraining"
    )
    null_warn: float = Field(
        0.05, ge=0, le=1, description="change in a column's share of missing values that warns"
    )
    null_alert: float = Field(
        0.1, ge=0, le=1, description="change in a column's share of missing values that calls for retraining"
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
        description="largest drop of a champion test metric on a labelled batch before retraining",
    )

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitorThresholds:
        for kind in ("drift", "null", "unseen"):
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
    allow_extra_columns: bool = False


class PipelineConfig(_Strict):
    dataset: str = Field(
        "iris", description="dataset URI: iris, wine, breast_cancer, a CSV/Parquet path or s3://bucket/key"
    )
    label: str = Field("target", description="label column")
    model_name: str = Field("modelyard-demo", min_length=1, description="registered model name")
    experiment: str = Field("modelyard", min_length=1, description="MLflow experiment")
    seed: int = Field(42, ge=0, description="random seed for the split and the estimators")
    primary_metric: Metric = Field("f1_macro", description="validation metric that picks the winner")
    fractions: Fractions = Field(default_factory=Fractions)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    expectations: Expectations = Field(default_factory=Expectations)
    search_space: dict[Estimator, dict[str, list[Any]]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SEARCH_SPACE.items()},
        min_length=1,
    )


# Top-level scalars and thresholds are the settings users change per run: CLI flags, Argo parameters.
FLAT_TOP_LEVEL = ("dataset", "label", "model_name", "experiment", "seed", "primary_metric")


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
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
