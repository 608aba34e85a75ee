"""Print wall time and peak memory of `modelyard run` on iris next to a single-file script doing only
load -> fit -> log -> register, their ratio, and the pipeline's per-step times. Target: within 2x.
Then the same pipeline on a regression set (diabetes: 442 rows, 10 features, 8 regressors) against
the classification one (iris: 150 rows, 4 features, 8 classifiers).

Usage: .venv/bin/python benchmarks/pipeline.py [--repeat N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB of the largest process, stdout) of one fresh run in a new directory."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", *command, *([tmp] if "minimal" in command[-1] else [])],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
    seconds, kilobytes = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kilobytes) / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    modelyard = str(Path(sys.executable).parent / "modelyard")
    pipeline = [measure([modelyard, "run"]) for _ in range(repeat)]
    regression = [measure([modelyard, "run", "--dataset", "diabetes"]) for _ in range(repeat)]
    minimal = [measure([sys.executable, str(HERE / "minimal.py")]) for _ in range(repeat)]
    pipe_s = statistics.median(s for s, _, _ in pipeline)
    mini_s = statistics.median(s for s, _, _ in minimal)
    print(f"runs each: {repeat} (median)")
    print(f"modelyard run (iris)      {pipe_s:6.1f} s  peak {max(m for _, m, _ in pipeline):6.0f} MiB")
    print(f"single-file script        {mini_s:6.1f} s  peak {max(m for _, m, _ in minimal):6.0f} MiB")
    print(f"ratio                     {pipe_s / mini_s:6.2f} x   (target <= 2.0)")
    reg_s = statistics.median(s for s, _, _ in regression)
    print(f"modelyard run (diabetes)  {reg_s:6.1f} s  peak {max(m for _, m, _ in regression):6.0f} MiB")
    print(f"regression / classification {reg_s / pipe_s:4.2f} x")
    steps = [dict(re.findall(r"time (\w+)\s+([\d.]+)s", out[-1][2])) for out in (pipeline, regression)]
    print(f"per-step times of the last runs: {'iris':>6} {'diabetes':>9}")
    for step in steps[0]:
        print(f"  {step:<10} {' ' * 21}{float(steps[0][step]):5.1f} s  {float(steps[1].get(step, 0)):6.1f} s")


if __name__ == "__main__":
    main()
