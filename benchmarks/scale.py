"""The default `modelyard run` on a large table: 1,000,000 rows x 20 columns (14 numeric, 6
categorical, missing values), as CSV and as Parquet. Prints per format the wall time, the peak memory
of the whole process tree (PSS and RSS summed over the CLI and its workers, sampled), the test score
and the winner, then the same winner fitted by a plain scikit-learn script on the same split.
Targets: within 15 minutes on 2 cores, peak under 3 GB.

Usage: .venv/bin/python benchmarks/scale.py [--rows N] [--formats csv,parquet]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 14, 6
LABEL = "target"


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical columns with 2% missing values; the label depends on both, nonlinearly."""
    rng = np.random.default_rng(seed)
    numeric = {f"x{i}": rng.normal(0, 1, rows) for i in range(NUMERIC)}
    cardinality = [3, 5, 10, 20, 50, 200]
    codes = {f"c{i}": rng.integers(0, k, rows) for i, k in enumerate(cardinality)}
    signal = (
        numeric["x0"]
        + 0.8 * numeric["x1"] * numeric["x2"]
        + np.sin(2 * numeric["x3"])
        + 0.6 * (codes["c0"] == 1)
        - 0.5 * (codes["c3"] % 3 == 0)
        + 0.3 * np.abs(numeric["x4"])
    )
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-signal)), "yes", "no")
    frame = pd.DataFrame(numeric)
    for name, values in codes.items():
        frame[name] = pd.Series(values).map(lambda v, n=name: f"{n}_{v}").astype(object)
    for name in frame.columns:
        frame.loc[rng.random(rows) < 0.02, name] = np.nan
    frame[LABEL] = label
    return frame


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            with contextlib.suppress(OSError):  # the process ended meanwhile
                pids += [int(c) for c in (task / "children").read_text().split()]
        i += 1
    return pids


def memory_kib(pids: list[int]) -> tuple[int, int, int]:
    """(PSS summed, RSS summed, largest RSS of one process) over the processes, in KiB."""
    pss = rss = largest = 0
    for pid in pids:
        try:
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
            )
        except (OSError, ValueError):
            continue
        pss += int(fields["Pss"].split()[0])
        rss += int(fields["Rss"].split()[0])
        largest = max(largest, int(fields["Rss"].split()[0]))
    return pss, rss, largest


def run_measured(command: list[str], cwd: Path) -> tuple[float, list[int], str]:
    """(seconds, peaks of memory_kib's figures, stdout) of a command and its children."""
    started = time.monotonic()
    with open(cwd / "stderr.log", "w") as err, open(cwd / "stdout.log", "w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        peaks = [0, 0, 0]
        while process.poll() is None:
            peaks = [max(pair) for pair in zip(peaks, memory_kib(tree(process.pid)), strict=True)]
            time.sleep(0.5)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(
            f"{' '.join(command)} exited {process.returncode}: {(cwd / 'stderr.log').read_text()[-3000:]}"
        )
    return seconds, peaks, (cwd / "stdout.log").read_text()


def winner(project: Path) -> tuple[str, dict[str, str], Path]:
    """The winning candidate's estimator and parameters, and the run's split directory."""
    from mlflow import MlflowClient

    from modelyard.backends.tracking import embedded_uri

    (run_dir,) = (project / ".modelyard" / "runs").iterdir()
    prepared = json.loads((run_dir / "tasks" / "prepare.json").read_text())
    client = MlflowClient(embedded_uri(project / ".modelyard"))
    best = client.get_run(prepared["run_id"]).data.tags["modelyard.best_candidate_run_id"]
    params = dict(client.get_run(best).data.params)
    return params.pop("estimator"), params, run_dir / "splits"


def plain_fit(estimator: str, params: dict[str, str], splits: Path) -> tuple[float, float]:
    """(seconds, test f1_macro) of the same estimator in a plain script, each on its own terms."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    train, test = (pd.read_parquet(splits / f"{p}.parquet") for p in ("train", "test"))
    values = {k: None if v == "None" else float(v) if "." in v else int(v) for k, v in params.items()}
    numeric = [c for c in train.columns if c.startswith("x")]
    categorical = [c for c in train.columns if c.startswith("c")]
    started = time.monotonic()
    if estimator == "hist_gradient_boosting":
        encode = make_column_transformer(
            ("passthrough", numeric),
            (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), categorical),
        )
        mask = [False] * len(numeric) + [True] * len(categorical)
        model = make_pipeline(
            encode, HistGradientBoostingClassifier(categorical_features=mask, random_state=42, **values)
        )
    else:
        encode = make_column_transformer(
            (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            ),
        )
        cls = {"random_forest": RandomForestClassifier, "logistic_regression": LogisticRegression}[estimator]
        model = make_pipeline(encode, cls(random_state=42, **values))
    model.fit(train.drop(columns=[LABEL]), train[LABEL])
    seconds = time.monotonic() - started
    return seconds, float(f1_score(test[LABEL], model.predict(test.drop(columns=[LABEL])), average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,parquet")
    args = parser.parse_args()
    modelyard = str(Path(sys.executable).parent / "modelyard")
    with tempfile.TemporaryDirectory() as tmp:
        frame = make_table(args.rows)
        print(f"table: {len(frame):,} rows x {frame.shape[1] - 1} columns + label; cores: {os.cpu_count()}")
        for fmt in args.formats.split(","):
            project = Path(tmp) / fmt
            project.mkdir()
            data = project / f"table.{fmt}"
            frame.to_csv(data, index=False) if fmt == "csv" else frame.to_parquet(data, index=False)
            command = [modelyard, "run", "--dataset", data.name, "--label", LABEL, "--model-name", "large"]
            seconds, (pss, rss, largest), stdout = run_measured(command, project)
            score = re.search(r"test f1_macro +([\d.]+)", stdout)
            estimator, params, splits = winner(project)
            plain_seconds, plain_score = plain_fit(estimator, params, splits)
            cut = re.findall(r"^train: .* cut at .*$", (project / "stderr.log").read_text(), re.MULTILINE)
            print(f"[{fmt}] modelyard run      {seconds / 60:6.1f} min (target <= 15)")
            print(
                f"[{fmt}] peak memory        PSS {pss / 2**20:5.2f} GiB, RSS {rss / 2**20:5.2f} GiB summed,"
                f" {largest / 2**20:5.2f} GiB in the largest process (target < 3 GB = 2.79 GiB)"
            )
            print(f"[{fmt}] winner             {estimator} {params}")
            print(f"[{fmt}] test f1_macro      {score.group(1) if score else '?'}")
            print(f"[{fmt}] plain script       {plain_score:.4f} in {plain_seconds:.0f} s (fit only)")
            steps = ", ".join(re.findall(r"time (\w+ +[\d.]+s)", stdout))
            print(f"[{fmt}] step times         {steps}")
            for line in cut:
                print(f"[{fmt}] {line}")


if __name__ == "__main__":
    main()
