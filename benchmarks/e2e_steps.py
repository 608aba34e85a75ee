"""A training workflow on the cluster against the same training with `modelyard run`, and where the
workflow's time goes between one step ending and the next starting.

Reads what `make e2e` leaves in test-artifacts/: the first training workflow (e2e-training-workflow.json:
every node's start and end as the controller saw them) and every pod's container times
(e2e-report.json). Then runs the same training (the e2e dataset and config) with `modelyard run`.
Per pod step of the workflow, in order:
  start   pod scheduled -> main container running (the init container's artifact download)
  own     the main container's run (the step, with its Python start: imports, MLflow client)
  hand-in the rest of the node's time (pod creation, output upload, the controller noticing)
  gap     node marked done -> the next node created (the controller's requeue)

Usage: .venv/bin/python benchmarks/e2e_steps.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
WORKFLOW, PODS = ARTIFACTS / "e2e-training-workflow.json", ARTIFACTS / "e2e-report.json"
sys.path[:0] = [str(REPO / "tests")]


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def pod_steps(workflow: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pod node in start order, with its pod's scheduled->started and started->finished seconds
    (pods and nodes matched on the hash their names end with)."""
    containers = {
        p["pod"].rsplit("-", 1)[-1]: p for p in pods if p["workflow"] == workflow["metadata"]["name"]
    }
    steps = []
    for node in workflow["status"]["nodes"].values():
        if node["type"] != "Pod":
            continue
        pod = containers.get(node["id"].rsplit("-", 1)[-1], {})
        steps.append(
            {
                "template": node["templateName"],
                "created": when(node["startedAt"]),
                "done": when(node.get("finishedAt")),
                "start": pod.get("scheduled_to_started_s") or float("nan"),
                "own": pod.get("started_to_finished_s") or float("nan"),
            }
        )
    return sorted(steps, key=lambda s: s["created"])


def seconds(a: datetime | None, b: datetime | None) -> float:
    return (b - a).total_seconds() if a and b else float("nan")


def local_run() -> tuple[float, dict[str, float]]:
    """`modelyard run` on the e2e data and config: its wall time and the seconds per step it reports."""
    import time

    import yaml
    from conftest import make_customers
    from e2e.conftest import CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        data, config = Path(tmp) / "customers.csv", Path(tmp) / "pipeline.yaml"
        make_customers(rows=600, seed=0).to_csv(data, index=False)
        config.write_text(yaml.safe_dump(CONFIG | {"dataset": str(data), "model_name": "bench-e2e"}))
        started = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).parent / "modelyard"), "run", "--config", str(config)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    return wall, {step: float(s) for step, s in re.findall(r"(\w+) done in ([\d.]+)s", done.stderr)}


def main() -> None:
    if not WORKFLOW.exists() or not PODS.exists():
        sys.exit(f"{WORKFLOW.name} or {PODS.name} is missing in {ARTIFACTS}: run `make e2e` first")
    workflow, pods = json.loads(WORKFLOW.read_text()), json.loads(PODS.read_text())
    steps = pod_steps(workflow, pods)
    wall, local = local_run()
    total = seconds(when(workflow["status"]["startedAt"]), when(workflow["status"]["finishedAt"]))
    print(f"{'step':10} {'start':>7} {'own':>7} {'hand-in':>8} {'gap':>6} {'modelyard run':>14}")
    sums = {"start": 0.0, "own": 0.0, "hand-in": 0.0, "gap": 0.0}
    for n, step in enumerate(steps):
        later = [s["created"] for s in steps[n + 1 :] if s["created"] >= (step["done"] or step["created"])]
        row = {
            "start": step["start"],
            "own": step["own"],
            "hand-in": seconds(step["created"], step["done"]) - step["start"] - step["own"],
            "gap": seconds(step["done"], min(later)) if later else 0.0,
        }
        for key, value in row.items():
            sums[key] += value if value == value else 0.0
        print(
            f"{step['template']:10} {row['start']:6.1f}s {row['own']:6.1f}s {row['hand-in']:7.1f}s "
            f"{row['gap']:5.1f}s {local.get(step['template'], float('nan')):13.1f}s"
        )
    print(
        f"\nworkflow {workflow['metadata']['name']}: {total:.0f} s from start to end; `modelyard run` of the "
        f"same training: {wall:.0f} s ({total / wall:.1f}x)."
    )
    print(
        "summed over its pods (parallel candidates overlap): "
        + ", ".join(f"{key} {value:.0f} s" for key, value in sums.items())
    )


if __name__ == "__main__":
    main()
