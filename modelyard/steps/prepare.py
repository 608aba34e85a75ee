from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow

from modelyard.config import load_config
from modelyard.contract import PrepareOutputs, PrepareParams
from modelyard.model import expand_candidates
from modelyard.tracking import TAG, experiment_id, lineage_tags, run_url


def prepare(params: PrepareParams, work_dir: Path) -> PrepareOutputs:
    overrides = params.model_dump(exclude={"config"})
    config = load_config(params.config, overrides)
    candidates = expand_candidates(config)
    config_json = config.model_dump_json()
    tags = lineage_tags() | {
        f"{TAG}model_name": config.model_name,
        f"{TAG}dataset": config.dataset,
        f"{TAG}config_hash": hashlib.sha256(config_json.encode()).hexdigest()[:16],
    }
    run = mlflow.MlflowClient().create_run(
        experiment_id(config.experiment), tags=tags, run_name=f"{config.model_name}-pipeline"
    )
    client = mlflow.MlflowClient()
    client.log_dict(run.info.run_id, config.model_dump(mode="json"), "config.json")
    client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in overrides.items() if v is not None])
    return PrepareOutputs(
        run_id=run.info.run_id,
        run_url=run_url(run.info.run_id, run.info.experiment_id),
        config=config_json,
        candidates=json.dumps([c.model_dump() for c in candidates]),
        model_name=config.model_name,
    )


def _param(key: str, value: object) -> mlflow.entities.Param:
    return mlflow.entities.Param(key, str(value))
