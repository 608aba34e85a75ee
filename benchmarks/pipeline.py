"""Print wall time and peak memory of `modelyard run` on iris next to a single-file script doing only
load -> fit -> log -> register, their ratio, and the pipeline's per-step times. Target: within 2x.

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
    pipeline = [measure([str(Path(sys.executable).parent / "modelyard"), "run"]) for _ in range(repeat)]
    minimal = [measure([sys.executable, str(HERE / "minimal.py")]) for _ in range(repeat)]
    pipe_s = statistics.median(s for s, _, _ in pipeline)
    mini_s = statistics.median(s for s, _, _ in minimal)
    print(f"runs each: {repeat} (median)")
    print(f"modelyard run (iris)      {pipe_s:6.1f} s  peak {max(m for _, m, _ in pipeline):6.0f} MiB")
    print(f"single-file script        {mini_s:6.1f} s  peak {max(m for _, m, _ in minimal):6.0f} MiB")
    print(f"ratio                     {pipe_s / mini_s:6.2f} x   (target <= 2.0)")
    print("per-step times of the last pipeline run:")
    for step, seconds in re.findall(r"time (\w+)\s+([\d.]+)s", pipeline[-1][2]):
        print(f"  {step:<10} {float(seconds):5.1f} s")


if __name__ == "__main__":
    main()
