"""Print the time and peak memory of a drift check: 1 million rows x 20 features vs the reference.

Usage: python benchmarks/drift_check.py [--rows N] [--reference-rows N]
Target on the dev machine: under 2 s and under 2 GB. The batch (16 numeric columns with missing
values, 4 categorical, a few drifted) is written to Parquet; a fresh process reads it and runs the
check `modelyard monitor` runs (batch checks, per-feature drift, verdict), so the peak RSS reported
is the whole process's: interpreter, libraries, the batch and the check.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 16, 4


def make_frame(rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        values = rng.normal(i, 1 + i / 4, rows)
        if drifted and i % 5 == 0:
            values = values + 0.5 * (1 + i / 4)  # half a standard deviation
        values[rng.random(rows) < 0.02] = np.nan
        columns[f"num_{i:02d}"] = values
    names = np.array([f"level_{k}" for k in range(12)], dtype=object)
    for i in range(CATEGORICAL):
        weights = np.linspace(1, 3, 12)
        values = names[rng.choice(12, rows, p=weights / weights.sum())]
        if drifted and i == 0:
            values = np.where(rng.random(rows) < 0.05, "level_new", values)
        columns[f"cat_{i}"] = values
    columns["target"] = rng.choice(["a", "b"], rows)
    return pd.DataFrame(columns)


def child(directory: Path) -> None:
    from modelyard.contract.config import MonitorThresholds
    from modelyard.contract.records import DataProfile, MonitorReport
    from modelyard.quality.monitoring import check_batch, conclude, drift

    reference = DataProfile.model_validate_json((directory / "profile.json").read_text())
    started = time.perf_counter()
    frame = pd.read_parquet(directory / "batch.parquet")
    loaded = time.perf_counter()
    limits = MonitorThresholds()
    check_batch(frame, reference, limits)
    report = conclude(
        MonitorReport(rows=len(frame), features=drift(frame, reference, limits), decay=[], decay_note=""),
        limits,
    )
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(
        json.dumps(
            {
                "rows": len(frame),
                "features": len(reference["columns"]),
                "read_parquet_s": round(loaded - started, 2),
                "drift_check_s": round(done - loaded, 2),
                "peak_rss_mb": round(peak_mb),
                "verdict": report.verdict,
                "drifted": [f.column for f in report.drifted()],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from modelyard.quality.profile import profile_frame

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        reference = profile_frame(
            make_frame(args.reference_rows, seed=1, drifted=False), "target", "classification"
        )
        (directory / "profile.json").write_text(reference.model_dump_json())
        make_frame(args.rows, seed=2, drifted=True).to_parquet(directory / "batch.parquet")
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(directory)], capture_output=True, text=True, check=True
        ).stdout
    result = json.loads(out)
    print(f"drift check: {result['rows']:,} rows x {result['features']} features vs the reference profile")
    print(f"  read Parquet    {result['read_parquet_s']:.2f} s")
    print(f"  drift check     {result['drift_check_s']:.2f} s   (target < 2 s)")
    print(f"  peak RSS        {result['peak_rss_mb']:,} MB  (whole process; target < 2048 MB)")
    print(f"  verdict         {result['verdict']}: {', '.join(result['drifted'])}")


if __name__ == "__main__":
    main()
