"""The canary analysis Argo Rollouts runs as a Job at each canary step (the chart's AnalysisTemplate):
exit 0 lets the update go on, exit 3 aborts it; the version records what was measured and why."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from modelyard.backends.registry import existing_version, stamp
from modelyard.contract import AnalyzeOutputs, AnalyzeParams
from modelyard.contract.records import CHAMPION, Tags
from modelyard.contract.serving import MODEL_VERSION_HEADER
from modelyard.core.errors import BadInputError, RejectedError, TransientError
from modelyard.ml.datasets import load_dataset
from modelyard.quality.canary import agreement, judge, traefik_counts

REQUEST_SECONDS = 30


def analyze(params: AnalyzeParams, work_dir: Path) -> AnalyzeOutputs:
    registry = MlflowClient()
    stable_url, canary_url = (f"http://{params.rollout}-{role}" for role in ("stable", "canary"))
    version = existing_version(registry, params.model_name, served_version(canary_url), CHAMPION)
    rows, labels = rows_to_compare(params, str(version.version))
    before = fetch(params.metrics_url)
    time.sleep(params.window_seconds)
    after = fetch(params.metrics_url)
    canary = traefik_counts(after, f"{params.rollout}-canary-").minus(
        traefik_counts(before, f"{params.rollout}-canary-")
    )
    stable = traefik_counts(after, f"{params.rollout}-stable-").minus(
        traefik_counts(before, f"{params.rollout}-stable-")
    )
    from_stable = predict(f"{stable_url}/invocations", rows)
    from_canary = predict(f"{canary_url}/invocations", rows)
    numeric = version.tags.get(Tags.TASK) == "regression"
    drop = score_drop(labels, from_stable, from_canary, numeric) if labels is not None else None
    failed, seen = judge(params, canary, stable, agreement(from_stable, from_canary, numeric), drop)
    measured = "; ".join(seen)
    stamp(
        registry,
        version,
        {Tags.ANALYSIS: "fail" if failed else "pass", Tags.ANALYSIS_DETAILS: "; ".join(failed) or measured},
    )
    print(f"{params.model_name} v{version.version} as a canary: {measured}", file=sys.stderr)
    if failed:
        raise RejectedError("; ".join(failed))
    return AnalyzeOutputs(measured=measured)


def rows_to_compare(params: AnalyzeParams, version: str) -> tuple[pd.DataFrame, pd.Series | None]:
    """The rows both versions get, and their labels when the rows have one column beyond the
    model's inputs."""
    import mlflow.models

    model = mlflow.models.get_model_info(f"models:/{params.model_name}/{version}")
    inputs = model.signature.inputs.input_names() if model.signature else []
    if not params.dataset:
        example = mlflow.pyfunc.load_model(f"models:/{params.model_name}/{version}").input_example
        if example is None:
            raise BadInputError(f"v{version} of {params.model_name} has no input example: give --dataset")
        return pd.DataFrame(example), None
    table = load_dataset(params.dataset)
    missing = [c for c in inputs if c not in table.columns]
    if missing:
        raise BadInputError(f"{params.dataset} lacks the model's input columns {missing}")
    extra = [c for c in table.columns if c not in inputs]
    return table[inputs], (table[extra[0]] if len(extra) == 1 else None)


def served_version(service: str) -> str:
    """The version a serving Service's pods serve: every answer of `modelyard serve` names it."""
    try:
        with urllib.request.urlopen(f"{service}/ping", timeout=REQUEST_SECONDS) as response:
            return str(response.headers[MODEL_VERSION_HEADER])
    except OSError as exc:
        raise TransientError(f"{service} did not answer: {exc}") from exc


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_SECONDS) as response:
            return str(response.read().decode())
    except OSError as exc:
        raise TransientError(f"cannot read Traefik's metrics at {url}: {exc}") from exc


def predict(url: str, rows: pd.DataFrame) -> list[Any]:
    body = json.dumps({"dataframe_records": json.loads(rows.to_json(orient="records"))}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
            return list(json.loads(response.read())["predictions"])
    except OSError as exc:
        raise TransientError(f"{url} did not answer: {exc}") from exc


def score_drop(labels: pd.Series, stable: list[Any], canary: list[Any], numeric: bool) -> float:
    """How much worse the canary scores than the stable version: accuracy points, or for
    regression the RMSE's relative increase."""
    if numeric:
        return (_rmse(labels, canary) - _rmse(labels, stable)) / max(_rmse(labels, stable), 1e-9)
    return _accuracy(labels, stable) - _accuracy(labels, canary)


def _rmse(labels: pd.Series, predicted: list[Any]) -> float:
    errors = pd.Series(predicted, dtype=float).to_numpy() - labels.to_numpy(dtype=float)
    return float((errors**2).mean() ** 0.5)


def _accuracy(labels: pd.Series, predicted: list[Any]) -> float:
    return float((pd.Series(predicted).astype(str).to_numpy() == labels.astype(str).to_numpy()).mean())
