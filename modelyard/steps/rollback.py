from __future__ import annotations

import sys
from pathlib import Path

import mlflow

from modelyard.backends import alerts, registry
from modelyard.backends.kubernetes import Cluster, NoCluster
from modelyard.backends.tracking import file_lock, lock_path
from modelyard.contract import RollbackOutputs, RollbackParams
from modelyard.core.errors import TransientError


def rollback(params: RollbackParams, work_dir: Path) -> RollbackOutputs:
    with file_lock(lock_path(params.model_name)):  # the lock register promotes under
        restored, demoted = registry.rollback(mlflow.MlflowClient(), params.model_name, params.reason)
    print(
        f"{params.model_name}: champion moved back from v{demoted} to v{restored} ({params.reason})",
        file=sys.stderr,
    )
    alerts.send(f"{params.model_name}: champion rolled back from v{demoted} to v{restored} ({params.reason})")
    print(move_traffic(params, restored), file=sys.stderr)
    return RollbackOutputs(champion_version=restored, previous_version=demoted)


def move_traffic(params: RollbackParams, version: str) -> str:
    """Where the model is served (the chart's Rollout), all its traffic to the version at once:
    the Rollout's rollback window skips the canary steps. Says what it did."""
    try:
        cluster = Cluster(params.namespace)
    except NoCluster:
        return "traffic: no Kubernetes cluster configured, nothing served to move"
    try:
        rollout = cluster.find_rollout(params.model_name)
        if rollout is None:
            return f"traffic: {params.model_name} is not served in namespace {cluster.namespace} (or its Rollouts are not readable)"
        name = rollout["metadata"]["name"]
        cluster.serve_version(name, cluster.earlier_template_version(params.model_name, version))
        cluster.promote_full(name)
    except TransientError as exc:
        raise TransientError(
            f"champion is back on v{version} but its traffic did not move ({exc}): "
            f"run `modelyard deploy --model-name {params.model_name} --version {version}`"
        ) from exc
    return f"traffic: {cluster.namespace}/{name} serves v{version} on 100%, without canary steps"
