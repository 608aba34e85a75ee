"""The model: one scikit-learn Pipeline (preprocessing + estimator), its metrics and its storage."""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from modelyard.contract.config import PipelineConfig, task_of
from modelyard.contract.records import CANDIDATE_MODEL, MODEL_FILE, Candidate, ColumnRoles
from modelyard.contract.tasks import Task
from modelyard.core.errors import BadInputError
from modelyard.dates import DateFeatures
from modelyard.ml.columns import is_numeric

ESTIMATORS: dict[tuple[Task, str], type[BaseEstimator]] = {
    ("classification", "logistic_regression"): LogisticRegression,
    ("classification", "random_forest"): RandomForestClassifier,
    ("classification", "gradient_boosting"): GradientBoostingClassifier,
    ("classification", "hist_gradient_boosting"): HistGradientBoostingClassifier,
    ("regression", "ridge"): Ridge,
    ("regression", "random_forest"): RandomForestRegressor,
    ("regression", "gradient_boosting"): GradientBoostingRegressor,
    ("regression", "hist_gradient_boosting"): HistGradientBoostingRegressor,
}
# Histogram boosting splits natively on ordinal-coded categories, at most this many per column.
MAX_CATEGORIES = 255
FIXED_PARAMS: dict[str, dict[str, Any]] = {"logistic_regression": {"max_iter": 2000}}
# skops refuses to load types it does not trust; we trust only types from these packages.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "modelyard.dates.")
# ...and these types from elsewhere: histogram boosting keeps a functools.partial of its loss.
TRUSTED_TYPES = ("functools.partial",)


def expand_candidates(config: PipelineConfig) -> list[Candidate]:
    """Every point of every estimator's grid, each checked to be a valid estimator now."""
    task, candidates = task_of(config), []
    for estimator, grid in (config.search_space or {}).items():
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values, strict=True))
            label = ",".join(f"{k}={v}" for k, v in params.items())
            candidate = Candidate(name=f"{estimator}[{label}]", estimator=estimator, params=params)
            make_estimator(candidate, task, config.seed)
            candidates.append(candidate)
    return candidates


def make_estimator(candidate: Candidate, task: Task, seed: int) -> BaseEstimator:
    cls = ESTIMATORS[(task, candidate.estimator)]
    params = FIXED_PARAMS.get(candidate.estimator, {}) | {"random_state": seed} | candidate.params
    try:  # the values were bounded by the config (tasks.GRIDS); this checks the estimator takes them
        estimator = cls().set_params(**params)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"search_space.{candidate.estimator}: {exc}") from exc
    return estimator


def build_pipeline(
    candidate: Candidate,
    task: Task,
    features: pd.DataFrame,
    seed: int,
    *,
    datetime_columns: Sequence[str] = (),
) -> Pipeline:
    dates = [c for c in features.columns if c in datetime_columns]
    numeric = [c for c in features.columns if c not in dates and is_numeric(features[c])]
    categorical = [c for c in features.columns if c not in numeric and c not in dates]
    estimator = make_estimator(candidate, task, seed)
    if candidate.estimator == "hist_gradient_boosting":
        # Dense input, missing values left to the trees, categories as codes split on natively
        # (the encoder puts them first: a date column yields a varying number of features).
        estimator.set_params(categorical_features=list(range(len(categorical))) or None)
        return Pipeline([("preprocess", _ordinal(numeric, categorical, dates)), ("estimator", estimator)])
    date_branch = Pipeline(
        [
            ("parse", DateFeatures()),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
    )
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
            *([("datetime", date_branch, dates)] if dates else []),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def _ordinal(numeric: list[str], categorical: list[str], dates: list[str]) -> ColumnTransformer:
    encode = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        max_categories=MAX_CATEGORIES,
    )
    return ColumnTransformer(
        [
            ("categorical", encode, categorical),
            ("numeric", "passthrough", numeric),
            *([("datetime", DateFeatures(), dates)] if dates else []),
        ]
    )


@dataclass(frozen=True)
class Cut:
    """A tree ensemble stopped at the time budget: `grown` of `wanted` trees (boosting iterations),
    after `seconds` of fitting."""

    grown: int
    wanted: int
    seconds: float


@dataclass
class Progress:
    """How far a candidate has come: what it is doing and, for a tree ensemble, the trees grown so
    far (updated after each chunk). Another thread reads it to report on a long fit."""

    phase: str = "fitting"
    grown: int = 0
    wanted: int = 0  # trees (boosting iterations) asked for; 0: not a tree ensemble
    started: float = field(default_factory=time.monotonic)

    def __str__(self) -> str:
        trees = f", {self.grown} of {self.wanted} trees" if self.wanted and self.phase == "fitting" else ""
        return f"{self.phase}{trees}, {time.monotonic() - self.started:.0f} s elapsed"


def fit_within(
    pipeline: Pipeline,
    features: pd.DataFrame,
    labels: pd.Series,
    budget_seconds: float,
    progress: Progress | None = None,
) -> Cut | None:
    """Fit the pipeline; a tree ensemble is grown in chunks until done or until the next chunk would
    end past the budget (None: fitted whole). Other estimators are fitted in one go. After the first
    chunk, the rest is grown at once when it is predicted to end within the budget: each warm start
    of histogram boosting bins the data again."""
    progress = progress or Progress()
    progress.phase = "fitting"
    estimator = pipeline.steps[-1][1]
    size = _size_param(estimator)
    if size is None:
        pipeline.fit(features, labels)
        return None
    started = time.monotonic()
    wanted = progress.wanted = int(estimator.get_params()[size])
    transformed = pipeline[:-1].fit_transform(features, labels)
    chunk = max(1, wanted // 20)
    grown = 0
    estimator.set_params(warm_start=True)
    while grown < wanted:
        rest = wanted - grown
        on_time = (
            grown > 0 and time.monotonic() - started + _per_tree(started, grown) * rest <= budget_seconds
        )
        estimator.set_params(**{size: wanted if on_time else min(wanted, grown + chunk)})
        estimator.fit(transformed, labels)
        done = _grown(estimator)
        stopped_early = done < estimator.get_params()[size]  # boosting's own early stopping
        grown = progress.grown = done
        too_late = time.monotonic() - started + _per_tree(started, grown) * chunk > budget_seconds
        if stopped_early or (grown < wanted and too_late):
            break
    estimator.set_params(warm_start=False, **{size: grown})
    cut = grown < wanted and not stopped_early
    return Cut(grown, wanted, time.monotonic() - started) if cut else None


def _per_tree(started: float, grown: int) -> float:
    return (time.monotonic() - started) / grown


def _size_param(estimator: BaseEstimator) -> str | None:
    params = estimator.get_params()
    if "warm_start" not in params or isinstance(estimator, LogisticRegression):
        return None
    return "max_iter" if "max_iter" in params else "n_estimators"


def _grown(estimator: BaseEstimator) -> int:
    if hasattr(estimator, "n_iter_"):
        return int(estimator.n_iter_)
    return len(estimator.estimators_)


def features_and_label(
    frame: pd.DataFrame, label: str, task: Task, roles: ColumnRoles | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """The model's input and target; with roles, only the features, dates as they came (text or datetime)."""
    columns = roles.features if roles else [c for c in frame.columns if c != label]
    dates = set(roles.datetime) if roles else set()
    categorical = [c for c in columns if c not in dates and not is_numeric(frame[c])]
    # Categorical columns go in as strings with NaN for missing, the form served rows have too.
    features = frame[columns].astype({c: object for c in categorical})
    if task == "classification":
        return features, frame[label].astype(str)
    try:
        return features, frame[label].astype(float)
    except ValueError as exc:
        raise BadInputError(f"regression label {label!r} holds values that are not numbers: {exc}") from exc


def predictions(
    task: Task, model: Any, features: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Predicted values; for a classifier also the class probabilities and the class names."""
    predicted = np.asarray(model.predict(features))
    if task == "regression":
        return predicted, None, []
    return predicted, model.predict_proba(features), [str(c) for c in model.classes_]


def metrics(
    task: Task, truth: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: Sequence[str]
) -> dict[str, float]:
    """The task's metrics (`modelyard.contract.tasks.METRICS`): the one definition evaluate and monitor share."""
    if task == "regression":
        return {
            "rmse": float(root_mean_squared_error(truth, predicted)),
            "mae": float(mean_absolute_error(truth, predicted)),
            "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else math.nan,
        }
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_macro": float(f1_score(truth, predicted, average="macro")),
        "roc_auc": _roc_auc(truth, proba, list(classes)),
    }


def _roc_auc(truth: np.ndarray, proba: np.ndarray | None, classes: list[str]) -> float:
    present = set(truth)
    if proba is None or len(present) < 2 or not present <= set(classes):
        return math.nan
    if len(classes) == 2:
        return float(roc_auc_score(truth, proba[:, 1], labels=classes))
    return float(roc_auc_score(truth, proba, multi_class="ovr", labels=classes))


def score(task: Task, model: Any, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    return metrics(task, labels.to_numpy(), *predictions(task, model, features))


def standard_errors(
    task: Task,
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: Sequence[str],
    *,
    rounds: int = 100,
    cap: int = 10_000,
) -> dict[str, float]:
    """Each metric's standard error on these rows: its spread over bootstrap resamples (of at most
    `cap` rows, rescaled by sqrt(cap / rows)); 0 where a metric is undefined on every resample."""
    rng = np.random.default_rng(0)
    rows = len(truth)
    size = min(rows, cap)
    samples = [rng.integers(0, rows, size) for _ in range(rounds)]
    draws = [
        metrics(task, truth[i], predicted[i], None if proba is None else proba[i], classes) for i in samples
    ]
    spread: dict[str, float] = {}
    for name in draws[0] if draws else ():
        values = np.array([d[name] for d in draws])
        defined = not np.isnan(values).all()
        spread[name] = float(np.nanstd(values)) * math.sqrt(size / rows) if defined else 0.0
    return spread


def trusted_types(model: Pipeline) -> list[str]:
    """The types skops must be told to trust to load this model (MLflow stores them with it)."""
    import skops.io

    return _only_known(skops.io.get_untrusted_types(data=skops.io.dumps(model)), "the model")


def save(model: Pipeline, path: Path) -> None:
    import skops.io

    skops.io.dump(model, path)


def load(path: Path) -> Pipeline:
    import skops.io

    return skops.io.load(path, trusted=_only_known(skops.io.get_untrusted_types(file=path), str(path)))


def served_code(directory: Path) -> list[str]:
    """`code_paths` for a model with date features: the package `modelyard.dates` alone, which a
    model server without modelyard then imports (it needs nothing but pandas and scikit-learn)."""
    from modelyard import dates

    package = directory / "modelyard"
    package.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(dates.__file__).with_name("__init__.py"), package)
    shutil.copy(dates.__file__, package)
    return [str(package)]


def log_candidate(model: Pipeline) -> None:
    """Store a fitted candidate with the active MLflow run, where `load_candidate` finds it."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        save(model, Path(tmp) / MODEL_FILE)
        mlflow.log_artifact(str(Path(tmp) / MODEL_FILE), Path(CANDIDATE_MODEL).parent.as_posix())


def delete_candidate(run_id: str) -> None:
    """Delete a candidate run's fitted pipeline (a losing one: only the winner's model is kept)."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(mlflow.get_run(run_id).info.artifact_uri)
    repository.delete_artifacts(Path(CANDIDATE_MODEL).parent.as_posix())


def load_candidate(run_id: str) -> Pipeline:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        return load(
            Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=CANDIDATE_MODEL, dst_path=tmp
                )
            )
        )


def _only_known(types: list[str], what: str) -> list[str]:
    unexpected = [t for t in types if not t.startswith(TRUSTED_MODULES) and t not in TRUSTED_TYPES]
    if unexpected:
        raise BadInputError(f"{what} holds types modelyard does not trust: {unexpected}")
    return types
