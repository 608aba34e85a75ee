from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Final

import mlflow

from modelyard.contract import SelectOutputs, SelectParams
from modelyard.contract.config import PipelineConfig, primary_of
from modelyard.contract.records import CandidateResult, Tags, load
from modelyard.contract.tasks import MetricSpec, better_first
from modelyard.core.errors import BadInputError
from modelyard.ml import model

# Validation scores this close are a tie: the difference is noise, not a better model.
TIE: Final = 1e-4


def select(params: SelectParams, work_dir: Path) -> SelectOutputs:
    results = candidate_results(params.results)
    if not results:
        raise BadInputError("no candidate results to select from")
    config = PipelineConfig.model_validate_json(params.config)
    metric = primary_of(config)
    best = pick(in_search_space_order(results, config), metric)
    print(f"  candidates by validation {metric.name}:", file=sys.stderr)
    for r in sorted(results, key=lambda r: better_first(metric, r.score), reverse=True):
        flag = "  OVERFIT" if r.overfit else ""
        mark = "*" if r is best else " "
        line = f"  {mark} {r.name:<50} val={r.score:.4f} ±{r.noise:.4f} gap={r.gap:+.4f}{flag}"
        print(line, file=sys.stderr)
    client = mlflow.MlflowClient()
    client.set_tag(params.run_id, Tags.BEST_CANDIDATE, best.name)
    client.set_tag(params.run_id, Tags.BEST_CANDIDATE_RUN_ID, best.run_id)
    for loser in results:
        if loser.run_id != best.run_id:
            model.delete_candidate(loser.run_id)
    return SelectOutputs(candidate_run_id=best.run_id)


def pick(results: list[CandidateResult], metric: MetricSpec) -> CandidateResult:
    """The earliest candidate in the search space whose validation score is within the noise of the
    best one (its standard error, at least TIE).

    A later candidate has to beat an earlier one by more than the validation split can tell apart:
    on a few hundred rows, the order of close scores is chance, and the default spaces list the
    baseline to beat (histogram boosting at its defaults) first. Overfitting does not decide: the
    validation score already measures how a model does on unseen rows (`reject_overfit` gates it)."""
    best = max(results, key=lambda r: better_first(metric, r.score))
    band = max(TIE, _finite(best.noise, 0.0))
    top = better_first(metric, best.score)
    close = [r for r in results if top - better_first(metric, r.score) <= band]
    return close[0] if close else results[0]  # none: every score is NaN


def in_search_space_order(results: list[CandidateResult], config: PipelineConfig) -> list[CandidateResult]:
    """The results in the order the search space lists their candidates (Argo gathers them as they end)."""
    listed = {c.name: n for n, c in enumerate(model.expand_candidates(config))}
    return sorted(results, key=lambda r: listed.get(r.name, len(listed)))


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
