"""What a learning task is: classification or regression, its metrics, estimators and defaults.

Everything that differs between the two tasks is stated here once; the config, the model, the
gates and monitoring read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Task = Literal["classification", "regression"]
Metric = Literal["accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2"]
Estimator = Literal[
    "logistic_regression", "ridge", "random_forest", "gradient_boosting", "hist_gradient_boosting"
]
TASKS: Final[tuple[Task, ...]] = get_args(Task)

# A numeric label with non-integer values or more distinct values than this is a regression target.
MAX_CLASSES: Final = 20


@dataclass(frozen=True)
class MetricSpec:
    name: Metric
    task: Task
    higher_is_better: bool
    gate: str  # the threshold that gates it: min_accuracy, max_rmse, ...
    relative: bool = False  # in the label's units: amounts are compared as shares of the larger value


METRICS: Final[dict[str, MetricSpec]] = {
    s.name: s
    for s in (
        MetricSpec("accuracy", "classification", True, "min_accuracy"),
        MetricSpec("f1_macro", "classification", True, "min_f1_macro"),
        MetricSpec("roc_auc", "classification", True, "min_roc_auc"),
        MetricSpec("rmse", "regression", False, "max_rmse", relative=True),
        MetricSpec("mae", "regression", False, "max_mae", relative=True),
        MetricSpec("r2", "regression", True, "min_r2"),
    )
}
PRIMARY_METRIC: Final[dict[Task, Metric]] = {"classification": "f1_macro", "regression": "rmse"}

ESTIMATOR_TASKS: Final[dict[Estimator, tuple[Task, ...]]] = {
    "logistic_regression": ("classification",),
    "ridge": ("regression",),
    "random_forest": TASKS,
    "gradient_boosting": TASKS,
    "hist_gradient_boosting": TASKS,
}


class _Grid(BaseModel):
    """The parameters a search space may vary for one estimator, each value bounded: a typo or an
    absurd value (n_estimators: 1e8) fails when the config is read, not hours into training."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Count = Annotated[list[Annotated[int, Field(ge=1, le=2000)]], Field(min_length=1)]
Share = Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)]
Depth = Annotated[list[Annotated[int, Field(ge=1, le=100)] | None], Field(min_length=1)]
Leaf = Annotated[list[Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=1)]
Penalty = Annotated[list[Annotated[float, Field(ge=0, le=1e6)]], Field(min_length=1)]
Weighting = Annotated[list[Literal["balanced"] | None], Field(min_length=1)]
Features = Annotated[
    list[Literal["sqrt", "log2"] | Annotated[float, Field(gt=0, le=1)] | None], Field(min_length=1)
]


class LogisticRegressionGrid(_Grid):
    C: Penalty | None = None
    class_weight: Weighting | None = None


class RidgeGrid(_Grid):
    alpha: Penalty | None = None


class RandomForestGrid(_Grid):
    n_estimators: Count | None = None
    max_depth: Depth | None = None
    min_samples_leaf: Leaf | None = None
    max_features: Features | None = None
    max_samples: Share | None = None  # share of the rows each tree is grown on


class GradientBoostingGrid(_Grid):
    n_estimators: Count | None = None
    learning_rate: Share | None = None
    max_depth: Depth | None = None
    min_samples_leaf: Leaf | None = None
    subsample: Share | None = None


class HistGradientBoostingGrid(_Grid):
    max_iter: Count | None = None
    learning_rate: Share | None = None
    max_leaf_nodes: (
        Annotated[list[Annotated[int, Field(ge=2, le=4096)] | None], Field(min_length=1)] | None
    ) = None
    max_depth: Depth | None = None
    min_samples_leaf: Leaf | None = None
    l2_regularization: Penalty | None = None
    class_weight: Weighting | None = None  # classification only


GRIDS: Final[dict[Estimator, type[_Grid]]] = {
    "logistic_regression": LogisticRegressionGrid,
    "ridge": RidgeGrid,
    "random_forest": RandomForestGrid,
    "gradient_boosting": GradientBoostingGrid,
    "hist_gradient_boosting": HistGradientBoostingGrid,
}

# Histogram boosting at its defaults is the baseline to beat at any size: listed first, another
# candidate wins only by more than the noise of the validation score (steps/select.py). Class weighting gives each
# class the same total weight, what a minority class of a few percent needs to be predicted at all;
# the default space tries it (beside no weighting) when some class has less than IMBALANCED_SHARE of
# the rows. On balanced classes it only adds candidates that trade accuracy for noise.
IMBALANCED_SHARE: Final = 0.3
WEIGHTED_ESTIMATORS: Final = ("logistic_regression", "hist_gradient_boosting")
_WEIGHTED: Final[list[Any]] = [None, "balanced"]
DEFAULT_SEARCH_SPACE: Final[dict[Task, dict[str, dict[str, list[Any]]]]] = {
    "classification": {
        "hist_gradient_boosting": {"max_iter": [100]},
        "logistic_regression": {"C": [0.1, 1.0, 10.0]},
        "random_forest": {"n_estimators": [100], "max_depth": [None, 5]},
        "gradient_boosting": {"learning_rate": [0.05, 0.1], "n_estimators": [50]},
    },
    "regression": {
        "hist_gradient_boosting": {"max_iter": [100]},
        "ridge": {"alpha": [0.1, 1.0, 10.0]},
        "random_forest": {"n_estimators": [100], "max_depth": [None, 5]},
        "gradient_boosting": {"learning_rate": [0.05, 0.1], "n_estimators": [100]},
    },
}
# From this many rows on (config large_table_rows), a table gets LARGE_SEARCH_SPACE: histogram
# boosting instead of exact gradient boosting, and forests grown on a share of the rows to a bounded
# depth. Exact boosting and unbounded forests take hours on a million rows.
LARGE_TABLE_ROWS: Final = 100_000
_BOUNDED_FOREST: Final[dict[str, list[Any]]] = {
    "n_estimators": [100],
    "max_depth": [14],
    "max_samples": [0.1],
}
_LARGE_BOOSTING: Final[dict[str, list[Any]]] = {
    "learning_rate": [0.1],
    "max_iter": [200],
    "max_leaf_nodes": [31, 63],
}
LARGE_SEARCH_SPACE: Final[dict[Task, dict[str, dict[str, list[Any]]]]] = {
    "classification": {
        "hist_gradient_boosting": _LARGE_BOOSTING,
        "logistic_regression": {"C": [1.0]},
        "random_forest": _BOUNDED_FOREST,
    },
    "regression": {
        "hist_gradient_boosting": _LARGE_BOOSTING,
        "ridge": {"alpha": [1.0]},
        "random_forest": _BOUNDED_FOREST,
    },
}


def default_search_space(
    task: Task,
    rows: int | None,
    large_table_rows: int = LARGE_TABLE_ROWS,
    minority_share: float | None = None,
) -> dict[str, dict[str, list[Any]]]:
    """The search space a table gets when the config names none: sized to its rows, class weighting
    tried when its rarest class has under IMBALANCED_SHARE of them (None: unknown)."""
    large = rows is not None and rows >= large_table_rows
    space = (LARGE_SEARCH_SPACE if large else DEFAULT_SEARCH_SPACE)[task]
    if task != "classification" or minority_share is None or minority_share >= IMBALANCED_SHARE:
        return space
    return {
        name: grid | {"class_weight": _WEIGHTED} if name in WEIGHTED_ESTIMATORS else grid
        for name, grid in space.items()
    }


def minority_share(labels: pd.Series) -> float | None:
    """The rarest class's share of the labelled rows (None: no labels)."""
    shares = labels.dropna().astype(str).value_counts(normalize=True)
    return float(shares.min()) if len(shares) else None


# Thresholds that only one task has, with the value a run of that task gets when they are unset.
TASK_THRESHOLDS: Final[dict[Task, dict[str, float | None]]] = {
    "classification": {
        "min_accuracy": 0.7,
        "min_f1_macro": 0.7,
        "min_roc_auc": 0.75,
        "min_rows_per_class": 5,
    },
    "regression": {"max_rmse": None, "max_mae": None, "min_r2": 0.0},
}


def task_metrics(task: Task) -> list[MetricSpec]:
    return [spec for spec in METRICS.values() if spec.task == task]


def other(task: Task) -> Task:
    return "regression" if task == "classification" else "classification"


def scale(spec: MetricSpec, a: float, b: float) -> float:
    """What an amount of this metric is measured against: 1, or the larger of two error values."""
    return max(abs(a), abs(b), 1e-12) if spec.relative else 1.0


def worse_by(spec: MetricSpec, reference: float, value: float) -> float:
    """How much worse `value` is than `reference` (negative: better), in `scale` units."""
    difference = reference - value if spec.higher_is_better else value - reference
    return difference / scale(spec, reference, value)


def overfit_gap(spec: MetricSpec, train: Mapping[str, float], validation: Mapping[str, float]) -> float:
    """How much worse a model does on unseen rows than on its training rows, compared with
    `overfit_gap`. Classifying: the primary score's difference. Regression: the R² difference
    (the share of the label's variance explained on the training rows but not on the validation
    rows), whatever the primary metric: an error's growth as a share of itself (RMSE 1 then 2: 0.5)
    flags nearly every tree ensemble, however well it predicts."""
    measured = METRICS["r2"] if spec.task == "regression" else spec
    return worse_by(measured, train[measured.name], validation[measured.name])


def better_first(spec: MetricSpec, value: float) -> float:
    """A sort key: larger is better whatever the metric's direction; NaN sorts last."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if spec.higher_is_better else -value


def infer_task(labels: pd.Series) -> tuple[Task, str]:
    """The task a label column asks for, with the reason in words (printed and recorded on the run)."""
    values = labels.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    distinct = int(values.nunique())
    if not numeric:
        return "classification", f"the label is not numeric ({distinct} distinct values)"
    as_float = values.to_numpy(dtype=float)
    if not np.all(np.mod(as_float[np.isfinite(as_float)], 1) == 0):
        return "regression", "the label is numeric with non-integer values"
    if distinct > MAX_CLASSES:
        return "regression", f"the label is numeric with {distinct} distinct values (> {MAX_CLASSES})"
    return "classification", f"the label has {distinct} distinct integer values (<= {MAX_CLASSES})"
