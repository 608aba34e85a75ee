from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import mlflow

from modelyard.contract import SelectOutputs, SelectParams
from modelyard.errors import BadInputError
from modelyard.tracking import TAG


def select(params: SelectParams, work_dir: Path) -> SelectOutputs:
    results = [json.loads(r) if isinstance(r, str) else r for r in json.loads(params.results)]
    if not results:
        raise BadInputError("no candidate results to select from")
    # Best validation score wins; a smaller train-validation gap breaks ties, then the name.
    best = max(results, key=lambda r: (_finite(r["score"]), -_finite(r["gap"], 1e9), r["name"]))
    for r in sorted(results, key=lambda r: -_finite(r["score"])):
        flag = "  OVERFIT" if r["overfit"] else ""
        mark = "*" if r is best else " "
        print(f"  {mark} {r['name']:<50} val={r['score']:.4f} gap={r['gap']:+.4f}{flag}", file=sys.stderr)
    client = mlflow.MlflowClient()
    client.set_tag(params.run_id, f"{TAG}best_candidate", best["name"])
    client.set_tag(params.run_id, f"{TAG}best_candidate_run_id", best["run_id"])
    return SelectOutputs(candidate_run_id=best["run_id"])


def _finite(value: float, default: float = -1.0) -> float:
    return default if value is None or math.isnan(value) else value
