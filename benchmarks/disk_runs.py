"""Disk used by `.modelyard/` after N default runs on a small churn table (default 50), without and
with `--keep-runs 10` (--keep): MiB of the run directories, of the MLflow artifacts, and the candidate models
kept (one per run: only the winner's).

Usage: .venv/bin/python benchmarks/disk_runs.py [--runs N] [--rows N] [--keep N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_customers


def mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def runs(project: Path, count: int, keep: list[str]) -> None:
    modelyard = str(Path(sys.executable).parent / "modelyard")
    for _ in range(count):
        command = [modelyard, "run", "--dataset", "customers.csv", "--label", "churn", *keep]
        subprocess.run(command, cwd=project, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--keep", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.runs} runs of `modelyard run` on a {args.rows:,}-row churn table")
    print(f"{'':<16} {'.modelyard':>10} {'runs/':>8} {'artifacts/':>10} {'mlflow.db':>9} {'models':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        keep_runs = ["--keep-runs", str(args.keep)]
        for label, keep in (("keep all", []), (" ".join(keep_runs), keep_runs)):
            project = Path(tmp) / label.replace(" ", "_")
            project.mkdir()
            make_customers(args.rows).to_csv(project / "customers.csv", index=False)
            runs(project, args.runs, keep)
            local = project / ".modelyard"
            models = len(list((local / "artifacts").rglob("*.skops")))
            print(
                f"{label:<16} {mib(local):8.1f} MiB {mib(local / 'runs'):6.1f} MiB {mib(local / 'artifacts'):8.1f} MiB"
                f" {mib(local / 'mlflow.db'):7.1f} MiB {models:>6}"
            )


if __name__ == "__main__":
    main()
