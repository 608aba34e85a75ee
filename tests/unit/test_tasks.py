"""The task: inferred from the label by the stated rule, resolved into defaults, the other task's
settings refused; metrics compared in their own direction."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd
import pytest

from modelyard.contract.config import for_task, load_config
from modelyard.contract.tasks import (
    METRICS,
    default_search_space,
    infer_task,
    minority_share,
    overfit_gap,
    worse_by,
)
from modelyard.core.errors import BadInputError
from modelyard.ml.datasets import BUILTINS
from modelyard.ml.model import expand_candidates


@pytest.mark.parametrize(
    ("labels", "task"),
    [
        (["setosa", "virginica", "setosa"], "classification"),
        (list(range(10)) * 3, "classification"),  # integer codes of ten classes
        ([0.0, 1.0, 1.0, 0.0], "classification"),  # 0/1 stored as floats
        ([True, False, True], "classification"),
        ([1.5, 2.25, 3.0, 1.5], "regression"),  # any fractional value
        (list(range(21)), "regression"),  # more than 20 distinct integers
        ([25.0, 31.0, np.nan, 151.0] * 10 + list(np.arange(100.0, 121.0)), "regression"),
    ],
)
def test_the_task_is_inferred_from_the_label(labels: list, task: str) -> None:
    inferred, why = infer_task(pd.Series(labels))
    assert inferred == task and why.startswith("the label")


def test_each_task_gets_its_own_defaults() -> None:
    classification = for_task(load_config(""), "classification")
    assert classification.primary_metric == "f1_macro"
    assert classification.thresholds.min_accuracy == 0.7 and classification.thresholds.min_r2 is None
    assert set(classification.search_space or {}) == {
        "logistic_regression",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
    }
    regression = for_task(load_config(""), "regression")
    assert regression.primary_metric == "rmse"
    assert regression.thresholds.min_r2 == 0.0 and regression.thresholds.max_rmse is None
    assert regression.thresholds.min_accuracy is None and regression.thresholds.min_rows_per_class is None
    assert set(regression.search_space or {}) == {
        "ridge",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
    }
    assert for_task(regression, "regression") == regression  # resolving twice changes nothing


@pytest.mark.parametrize(
    ("config", "task", "message"),
    [
        (
            "thresholds: {min_accuracy: 0.8}",
            "regression",
            "the task is regression, but thresholds.min_accuracy is a classification gate",
        ),
        ("primary_metric: roc_auc", "regression", "primary_metric roc_auc is a classification metric"),
        (
            "search_space: {logistic_regression: {C: [1.0]}}",
            "regression",
            "search_space.logistic_regression is not a regression estimator",
        ),
        ("expectations: {labels: [a, b]}", "regression", "expectations.labels lists classes"),
        ("thresholds: {max_rmse: 3}", "classification", "thresholds.max_rmse is a regression gate"),
        ("primary_metric: r2", "classification", "primary_metric r2 is a regression metric"),
        (
            "search_space: {ridge: {alpha: [1.0]}}",
            "classification",
            "search_space.ridge is not a classification",
        ),
    ],
)
def test_settings_of_the_other_task_are_refused(config: str, task: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        for_task(load_config(config), task)  # type: ignore[arg-type]


def test_worse_by_follows_each_metrics_direction_and_scale() -> None:
    assert worse_by(METRICS["accuracy"], 0.9, 0.8) == pytest.approx(0.1)
    assert worse_by(METRICS["accuracy"], 0.8, 0.9) == pytest.approx(-0.1)
    assert worse_by(METRICS["rmse"], 10.0, 12.0) == pytest.approx(2 / 12)  # a share of the larger error
    assert worse_by(METRICS["rmse"], 1000.0, 1200.0) == pytest.approx(2 / 12)  # whatever the label's units
    assert worse_by(METRICS["r2"], 0.6, 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize("rows", [150, 1_000_000], ids=["small", "large"])
def test_every_default_search_space_has_histogram_boosting_and_weights_a_rare_class(rows: int) -> None:
    """A few percent of positives: unweighted models predict the majority; a default
    HistGradientBoosting is the baseline any default run must match. Balanced classes get no
    weighting: it would only add candidates that trade accuracy for noise."""
    for task in ("classification", "regression"):
        assert "hist_gradient_boosting" in default_search_space(task, rows)
    rare = default_search_space("classification", rows, minority_share=0.03)
    for estimator in ("logistic_regression", "hist_gradient_boosting"):
        assert rare[estimator]["class_weight"] == [None, "balanced"]
    for share in (None, 0.45):
        grids = default_search_space("classification", rows, minority_share=share).values()
        assert not any("class_weight" in grid for grid in grids)
    assert (
        "class_weight"
        not in default_search_space("regression", rows, minority_share=0.03)["hist_gradient_boosting"]
    )


def test_the_default_run_on_a_small_table_stays_a_dozen_candidates() -> None:
    iris = for_task(
        load_config("", {"dataset": "iris"}),
        "classification",
        150,
        minority_share(BUILTINS["iris"]()["target"]),
    )
    assert len(expand_candidates(iris)) == 8
    rare = [c.name for c in expand_candidates(for_task(load_config(""), "classification", 150, 0.03))]
    assert len(rare) == 12, rare
    assert "hist_gradient_boosting[class_weight=balanced,max_iter=100]" in rare
    assert "logistic_regression[C=1.0,class_weight=balanced]" in rare


def test_the_rarest_class_share_counts_labelled_rows() -> None:
    assert minority_share(pd.Series(["a"] * 97 + ["b"] * 3 + [None] * 10)) == pytest.approx(0.03)
    assert minority_share(pd.Series([None, None])) is None


def test_class_weighting_is_a_classifiers_setting() -> None:
    weighted = "search_space: {hist_gradient_boosting: {class_weight: [balanced]}}"
    assert expand_candidates(for_task(load_config(weighted), "classification"))
    with pytest.raises(BadInputError, match=r"search_space\.hist_gradient_boosting: .*class_weight"):
        expand_candidates(for_task(load_config(weighted), "regression"))
    with pytest.raises(BadInputError, match="class_weight"):
        load_config("search_space: {hist_gradient_boosting: {class_weight: [heavy]}}")


def test_the_overfitting_gap_is_the_primary_score_classifying_and_r2_in_regression() -> None:
    train = {"f1_macro": 1.0, "rmse": 0.5, "mae": 0.4, "r2": 0.99}
    validation = {"f1_macro": 0.85, "rmse": 1.5, "mae": 1.0, "r2": 0.96}
    assert overfit_gap(METRICS["f1_macro"], train, validation) == pytest.approx(0.15)
    # The error tripled, yet the model explains 96% of the variance of unseen labels: a gap of 0.03.
    for metric in ("rmse", "mae", "r2"):
        assert overfit_gap(METRICS[metric], train, validation) == pytest.approx(0.03)


def test_the_argo_enums_of_task_and_primary_metric_follow_from_the_contract() -> None:
    import yaml

    from modelyard.contract.tasks import TASKS, Metric
    from workflows.compile import MANIFEST_DIR

    template = yaml.safe_load((MANIFEST_DIR / "train.yaml").read_text())
    enums = {p["name"]: p.get("enum") for p in template["spec"]["arguments"]["parameters"]}
    assert enums["task"] == ["", *TASKS]  # "": infer it from the label
    assert enums["primary-metric"] == ["", *get_args(Metric)]
