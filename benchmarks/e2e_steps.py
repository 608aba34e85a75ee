"""Per step, what a pod on the cluster costs against the same step in `modelyard run`.

Reads the report `make e2e` writes (test-artifacts/e2e-report.json: every pod's scheduled ->
started -> finished and memory peak), then runs the same training (the e2e dataset and config)
with `modelyard run` on the embedded store, and prints both side by side.

Usage: .venv/bin/python benchmarks/e2e_steps.py
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "test-artifacts" / "e2e-report.json"
sys.path[:0] = [str(REPO / "tests")]


def cluster_steps() -> dict[str, dict[str, list[float]]]:
    """Per template: seconds from scheduled to started, from started to finished, memory peaks."""
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for pod in json.loads(REPORT.read_text()):
        if not pod["workflow"].startswith("modelyard-train") or pod["started_to_finished_s"] is None:
            continue
        figures = steps[pod["template"]]
        figures["start"].append(pod["scheduled_to_started_s"] or 0.0)
        figures["run"].append(pod["started_to_finished_s"])
        figures["peak"].append(pod["peak_mib"])
    return steps


def local_steps() -> dict[str, float]:
    """`modelyard run` on the e2e data and config: seconds per step as it reports them."""
    import yaml
    from conftest import make_customers
    from e2e.conftest import CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        data, config = Path(tmp) / "customers.csv", Path(tmp) / "pipeline.yaml"
        make_customers(rows=600, seed=0).to_csv(data, index=False)
        config.write_text(yaml.safe_dump(CONFIG | {"dataset": str(data), "model_name": "bench-e2e"}))
        done = subprocess.run(
            [str(Path(sys.executable).parent / "modelyard"), "run", "--config", str(config)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
    return {step: float(s) for step, s in re.findall(r"(\w+) done in ([\d.]+)s", done.stderr)}


def _median(figures: dict[str, list[float]], key: str) -> float:
    return statistics.median(figures[key]) if figures.get(key) else float("nan")


def main() -> None:
    if not REPORT.exists():
        sys.exit(f"{REPORT} is missing: run `make e2e` first")
    cluster, local = cluster_steps(), local_steps()
    print(
        f"{'step':10} {'pods':>4} {'scheduled->started':>19} {'started->finished':>18} {'peak MiB':>9} {'modelyard run':>14}"
    )
    for step in ("prepare", "split", "validate", "train", "select", "evaluate", "register", "finish"):
        figures = cluster.get(step, {})
        mine = local.get(step, float("nan"))
        print(
            f"{step:10} {len(figures.get('run', [])):4} {_median(figures, 'start'):18.1f}s "
            f"{_median(figures, 'run'):17.1f}s {max(figures.get('peak', [0])):9.0f} {mine:13.1f}s"
        )
    print(
        "(cluster: medians over every training pod of the e2e run; train: per candidate pod, locally all candidates)"
    )


if __name__ == "__main__":
    main()
