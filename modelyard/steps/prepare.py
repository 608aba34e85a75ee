from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import mlflow

from modelyard.backends.tracking import experiment_id, lineage_tags, run_url
from modelyard.contract import PrepareOutputs, PrepareParams
from modelyard.contract.config import CANARY, PipelineConfig, for_task, load_config
from modelyard.contract.records import CONFIG_FILE, Tags
from modelyard.contract.tasks import infer_task, minority_share
from modelyard.ml.datasets import load_column
from modelyard.ml.model import expand_candidates
from modelyard.quality.checks import require_label_values


def prepare(params: PrepareParams, work_dir: Path) -> PrepareOutputs:
    overrides = params.model_dump(exclude={"config"})
    config, why = resolve_task(load_config(params.config, overrides))
    if config.promotion == CANARY:
        require_serving(config.model_name)
    print(f"task: {config.task} ({why})", file=sys.stderr)
    candidates = expand_candidates(config)
    config_json = config.model_dump_json()
    tags = lineage_tags() | {
        Tags.MODEL_NAME: config.model_name,
        Tags.DATASET: config.dataset,
        Tags.TASK: str(config.task),
        Tags.TASK_REASON: why,
        Tags.CONFIG_HASH: hashlib.sha256(config_json.encode()).hexdigest()[:16],
    }
    run = mlflow.MlflowClient().create_run(
        experiment_id(config.experiment), tags=tags, run_name=f"{config.model_name}-pipeline"
    )
    client = mlflow.MlflowClient()
    client.log_dict(run.info.run_id, config.model_dump(mode="json"), CONFIG_FILE)
    client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in overrides.items() if v is not None])
    return PrepareOutputs(
        run_id=run.info.run_id,
        run_url=run_url(run.info.run_id, run.info.experiment_id),
        config=config_json,
        candidates=json.dumps([c.model_dump() for c in candidates]),
        model_name=config.model_name,
    )


def require_serving(model_name: str) -> None:
    """promotion: canary ships through the model's serving Rollout: without one, exit 2 before any
    training rather than after registering."""
    from modelyard.backends.kubernetes import Cluster

    Cluster().rollout(model_name)
    print(f"promotion: canary through the serving Rollout of {model_name}", file=sys.stderr)


def resolve_task(config: PipelineConfig) -> tuple[PipelineConfig, str]:
    """The config for its task, set or inferred from the label column; and why that task. The
    label column's length sizes the default search space (only that column is read)."""
    if config.task is not None and config.search_space is not None:
        return for_task(config, config.task), "set in the config"
    labels = load_column(config.dataset, config.label)
    require_label_values(labels, config.label, config.dataset)
    share = minority_share(labels)
    if config.task is not None:
        return for_task(config, config.task, len(labels), share), "set in the config"
    inferred, why = infer_task(labels)
    return for_task(config, inferred, len(labels), share), f"inferred: {why}; set task to override"


def _param(key: str, value: object) -> mlflow.entities.Param:
    return mlflow.entities.Param(key, str(value))
