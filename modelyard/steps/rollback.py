from __future__ import annotations

import sys
from pathlib import Path

import mlflow

from modelyard.backends import alerts, registry
from modelyard.backends.tracking import file_lock, lock_path
from modelyard.contract import RollbackOutputs, RollbackParams


def rollback(params: RollbackParams, work_dir: Path) -> RollbackOutputs:
    with file_lock(lock_path(params.model_name)):  # the lock register promotes under
        restored, demoted = registry.rollback(mlflow.MlflowClient(), params.model_name, params.reason)
    print(
        f"{params.model_name}: champion moved back from v{demoted} to v{restored} ({params.reason})",
        file=sys.stderr,
    )
    alerts.send(f"{params.model_name}: champion rolled back from v{demoted} to v{restored} ({params.reason})")
    return RollbackOutputs(champion_version=restored, previous_version=demoted)
