"""Print how long `modelyard run` takes to exit after SIGTERM (what `docker stop`, the kubelet and a
cancelled CI job send) while its candidates train, and how long until its MLflow parent run is
closed, at 10k and 200k rows. Target: seconds, whatever the size (it was 386 s on 1M rows).

Usage: .venv/bin/python benchmarks/sigterm_exit.py [--rows 10000 200000] [--repeat N]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

MODELYARD = str(Path(sys.executable).parent / "modelyard")


def table(rows: int) -> pd.DataFrame:
    """A churn-like table: numeric and categorical columns, a label that depends on them."""
    rng = np.random.default_rng(0)
    plan = rng.choice(["basic", "pro", "enterprise"], rows)
    age = rng.normal(40, 12, rows).round()
    income = rng.lognormal(10, 0.4, rows).round(2)
    odds = 0.08 * (age - 40) + 0.9 * (plan == "basic") - 1.2 * (plan == "enterprise")
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-odds)), "yes", "no")
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "churn": churn})


def stop_while_training(rows: int) -> tuple[float, float, int]:
    """(seconds from SIGTERM to exit, seconds from SIGTERM to the parent run closed, exit code)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table(rows).to_csv(root / "data.csv", index=False)
        command = [MODELYARD, "run", "--dataset", "data.csv", "--label", "churn", "--parallel", "2"]
        proc = subprocess.Popen(
            command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        training = threading.Event()

        def watch() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith("train: started 2/"):
                    training.set()

        threading.Thread(target=watch, daemon=True).start()
        if not training.wait(timeout=1800):
            proc.kill()
            raise SystemExit("training never started")
        time.sleep(2)  # both workers are fitting
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait()
        exited = time.time() - sent
        client = MlflowClient(f"sqlite:///{root / '.modelyard' / 'mlflow.db'}")
        (parent,) = client.search_runs(
            [client.get_experiment_by_name("modelyard").experiment_id], "tags.`modelyard.step` IS NULL"
        )
        assert parent.info.status == "KILLED", parent.info.status
        return exited, parent.info.end_time / 1000 - sent, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"{'rows':>9}  {'SIGTERM -> exit':>16}  {'SIGTERM -> parent run KILLED':>29}  exit code")
    for rows in args.rows:
        measured = [stop_while_training(rows) for _ in range(args.repeat)]
        exited = statistics.median(m[0] for m in measured)
        closed = statistics.median(m[1] for m in measured)
        codes = sorted({m[2] for m in measured})
        print(f"{rows:>9,}  {exited:>14.2f} s  {closed:>27.2f} s  {codes}")


if __name__ == "__main__":
    main()
