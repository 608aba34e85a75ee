"""Print the drift engine's false-alarm rate per batch size and its power curve.

Usage: python benchmarks/drift_power.py [--batches N]
Same data and measure as tests/unit/test_drift.py (a 20,000-row table of numeric, skewed, count, flag
and categorical columns), with more batches:
- false alarms: batches bootstrapped from the reference data itself, and batches drawn fresh from
  the same source (a new reference sample each time), at 50 to 1,000,000 rows;
- power: the share of 150-row (and 50-, 1,000-row) batches in which a mean shift of one numeric
  feature is detected, by shift size in standard deviations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))
from test_drift import LIMITS, POOL_ROWS, alarm_rate, make_pool

from modelyard.quality.drift import compare, worst
from modelyard.quality.profile import profile_frame

SIZES = (50, 150, 1_000, 100_000, 1_000_000)
SHIFTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def fresh_alarm_rate(rows: int, batches: int) -> float:
    """Reference and batch drawn independently from the same source each time."""
    alarms = 0
    for trial in range(batches):
        reference = profile_frame(make_pool(POOL_ROWS, seed=1000 + trial), "label", "classification")
        batch = make_pool(rows, seed=5000 + trial)
        alarms += worst([r.level for r in compare(batch, reference, LIMITS)]) != "ok"
    return alarms / batches


def power(pool, reference, rows: int, shift: float, batches: int) -> float:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(batches):
        batch = pool.iloc[rng.integers(0, len(pool), rows)].copy()
        batch["normal"] += shift * 10
        hits += any(r.column == "normal" and r.level != "ok" for r in compare(batch, reference, LIMITS))
    return hits / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    args = parser.parse_args()
    pool = make_pool(POOL_ROWS, seed=0)
    reference = profile_frame(pool, "label", "classification")
    print(
        f"false alarms per batch (drift_alpha {LIMITS.drift_alpha}, 6 features, reference {POOL_ROWS:,} rows)"
    )
    print(f"  {'rows':>9}  {'bootstrap':>9}  {'fresh':>7}  batches")
    for rows in SIZES:
        batches = max(args.batches // max(rows // 1000, 1), 10)
        fresh = fresh_alarm_rate(rows, min(batches, 200))
        boot = alarm_rate(pool, reference, rows, batches, seed=rows)
        print(f"  {rows:>9,}  {boot:>9.1%}  {fresh:>7.1%}  {batches}")
    print("power: share of batches in which a shift of one feature is detected")
    print(f"  {'shift (sd)':>10}  " + "  ".join(f"{rows:>6,}" for rows in (50, 150, 1000)))
    for shift in SHIFTS:
        cells = [power(pool, reference, rows, shift, max(args.batches // 5, 20)) for rows in (50, 150, 1000)]
        print(f"  {shift:>10.2f}  " + "  ".join(f"{c:>6.0%}" for c in cells))


if __name__ == "__main__":
    main()
