"""The model: one scikit-learn Pipeline (preprocessing + estimator), its metrics and its storage."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelyard.config import PipelineConfig
from modelyard.errors import BadInputError
from modelyard.profile import is_numeric

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
}
FIXED_PARAMS: dict[str, dict[str, Any]] = {"logistic_regression": {"max_iter": 2000}}
# skops refuses to load types it does not trust; we trust only types from these packages.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


class Candidate(BaseModel):
    name: str
    estimator: str
    params: dict[str, Any]


def expand_candidates(config: PipelineConfig) -> list[Candidate]:
    """Every point of every estimator's grid, each checked to be a valid estimator now."""
    candidates = []
    for estimator, grid in config.search_space.items():
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values, strict=True))
            label = ",".join(f"{k}={v}" for k, v in params.items())
            candidate = Candidate(name=f"{estimator}[{label}]", estimator=estimator, params=params)
            make_estimator(candidate, config.seed)
            candidates.append(candidate)
    return candidates


def make_estimator(candidate: Candidate, seed: int) -> BaseEstimator:
    cls = ESTIMATORS[candidate.estimator]
    params = FIXED_PARAMS.get(candidate.estimator, {}) | {"random_state": seed} | candidate.params
    try:
        estimator = cls()
        estimator.set_params(**params)
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"search_space.{candidate.estimator}: {exc}") from exc
    return estimator


def build_pipeline(candidate: Candidate, features: pd.DataFrame, seed: int) -> Pipeline:
    numeric = [c for c in features.columns if is_numeric(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
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
        ]
    )
    return Pipeline([("preprocess", preprocess), ("estimator", make_estimator(candidate, seed))])


def features_and_label(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.Series]:
    categorical = [c for c in frame.columns if c != label and not is_numeric(frame[c])]
    # Categorical columns go in as strings with NaN for missing, the form served rows have too.
    features = frame.drop(columns=[label]).astype({c: object for c in categorical})
    return features, frame[label].astype(str)


def score(model: Pipeline, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    predicted = model.predict(features)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, average="macro")),
        "roc_auc": roc_auc(model, features, labels),
    }


def roc_auc(model: Pipeline, features: pd.DataFrame, labels: pd.Series) -> float:
    classes = list(model.classes_)
    if labels.nunique() < 2 or not set(labels) <= set(classes):
        return float("nan")
    proba = model.predict_proba(features)
    if len(classes) == 2:
        return float(roc_auc_score(labels, proba[:, 1], labels=classes))
    return float(roc_auc_score(labels, proba, multi_class="ovr", labels=classes))


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


def _only_known(types: list[str], what: str) -> list[str]:
    unexpected = [t for t in types if not t.startswith(TRUSTED_MODULES)]
    if unexpected:
        raise BadInputError(f"{what} holds types modelyard does not trust: {unexpected}")
    return types
