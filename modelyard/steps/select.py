from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Final

import mlflow

from modelyard import model
from modelyard.config import PipelineConfig, primary_of
from modelyard.contract import SelectOutputs, SelectParams
from modelyard.contract.records import CandidateResult, Tags, load
from modelyard.errors import BadInputError
from modelyard.tasks import MetricSpec, better_first

# Validation scores this close are a tie: the difference is noise, not a better model.
TIE: Final = 1e-4


def select(params: SelectParams, work_dir: Path) -> SelectOutputs:
    results = candidate_results(params.results)
    if not results:
        raise BadInputError("no candidate results to select from")
    metric = primary_of(PipelineConfig.model_validate_json(params.config))
    best = pick(results, metric)
    print(f"  candidates by validation {metric.name}:", file=sys.stderr)
    for r in sorted(results, key=lambda r: better_first(metric, r.score), reverse=True):
        flag = "  OVERFIT" if r.overfit else ""
        mark = "*" if r is best else " "
        print(f"  {mark} {r.name:<50} val={r.score:.4f} gap={r.gap:+.4f}{flag}", file=sys.stderr)
    client = mlflow.MlflowClient()
    client.set_tag(params.run_id, Tags.BEST_CANDIDATE, best.name)
    client.set_tag(params.run_id, Tags.BEST_CANDIDATE_RUN_ID, best.run_id)
    for loser in results:
        if loser.run_id != best.run_id:
            model.delete_candidate(loser.run_id)
    return SelectOutputs(candidate_run_id=best.run_id)


def pick(results: list[CandidateResult], metric: MetricSpec) -> CandidateResult:
    """The best validation score; among scores within TIE of it, one that does not overfit, then the
    better score, the smaller train-validation gap, the earlier in the search space (the default
    spaces list the simpler estimators first)."""
    top = max(better_first(metric, r.score) for r in results)
    tied = [(n, r) for n, r in enumerate(results) if top - better_first(metric, r.score) <= TIE]

    def order(item: tuple[int, CandidateResult]) -> tuple[bool, float, float, int]:
        number, r = item
        return r.overfit, -better_first(metric, r.score), _finite(r.gap, 1e9), number

    return min(tied, key=order)[1]


def candidate_results(text: str) -> list[CandidateResult]:
    """The JSON list of train results; Argo gives each element as JSON text, the local runner too."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"--results is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise BadInputError("--results is not a JSON list of candidate results")
    return [load(CandidateResult, i if isinstance(i, str) else json.dumps(i), "--results") for i in items]


def _finite(value: float, default: float) -> float:
    return default if math.isnan(value) else value
