"""Ship a registered version to its model's serving Rollout: a canary when a version already serves
(the chart's steps move Traefik's weights), all traffic at once when none does. Promoted, the
version becomes the champion; aborted, the traffic is back on the stable version and the version
records why."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from modelyard.backends.kubernetes import Cluster, RolloutState
from modelyard.backends.registry import by_alias, existing_version, promote, stamp
from modelyard.backends.tracking import file_lock, lock_path
from modelyard.contract import DeployOutputs, DeployParams
from modelyard.contract.records import CHAMPION, Tags
from modelyard.core.errors import BadInputError, RejectedError

POLL_SECONDS = 2.0


def deploy(params: DeployParams, work_dir: Path) -> DeployOutputs:
    """Start the update and follow it to its end: promoted (exit 0) or aborted (exit 3)."""
    outputs = start(params, follow_for=params.timeout)
    if outputs.outcome == "aborted":
        raise RejectedError(f"{params.model_name} v{outputs.version} was aborted: {outputs.reasons}")
    return outputs


def start(params: DeployParams, follow_for: float | None = None) -> DeployOutputs:
    """Start the update; with follow_for (seconds), follow it to its end."""
    registry = MlflowClient()
    target = existing_version(registry, params.model_name, params.version or None, params.alias)
    version = str(target.version)
    cluster = Cluster(params.namespace)
    before = cluster.state(params.model_name)
    if before.template_version == version and before.settled:
        return DeployOutputs(version=version, previous_version=version, outcome="unchanged")
    champion = by_alias(registry, params.model_name, CHAMPION)
    how = begin(cluster, params.model_name, before, version)
    print(
        f"deploying {params.model_name} v{version} as {how} ({cluster.namespace}/{before.name})",
        file=sys.stderr,
    )
    previous = before.stable_version or ""
    if follow_for is None:
        return DeployOutputs(version=version, previous_version=previous, outcome="started")
    end = follow(cluster, params.model_name, version, follow_for)
    if end.settled:
        stamp(registry, target, {Tags.ROLLOUT: "promoted", Tags.ROLLOUT_AT: _now()})
        moved = take_champion(registry, target, str(champion.version) if champion else "")
        return DeployOutputs(version=version, previous_version=previous, outcome="promoted", reasons=moved)
    reasons = end.message or f"the update ended {end.phase}"
    stamp(registry, target, {Tags.ROLLOUT: "aborted", Tags.ROLLOUT_REASONS: reasons, Tags.ROLLOUT_AT: _now()})
    # The template back to what the stable pods serve: the Rollout is Healthy again, not Degraded.
    cluster.serve_version(end.name, before.stable_version or None)
    return DeployOutputs(version=version, previous_version=previous, outcome="aborted", reasons=reasons)


def begin(cluster: Cluster, model: str, before: RolloutState, version: str) -> str:
    """Start the version's update, or find it under way (a retried deploy follows it on); how it goes out."""
    under_way = (
        before.stable_version is not None
        and before.template_version != before.stable_version
        and not before.aborted
    )
    if under_way and before.template_version != version:
        raise BadInputError(
            f"an update of {model} is under way (v{before.template_version or '?'} as a canary, "
            f"phase {before.phase}): wait for it to end, or abort it with `kubectl argo rollouts abort {before.name}`"
        )
    if under_way:
        return "a canary, already under way"
    cluster.serve_version(before.name, version)
    if before.stable_version is None:  # nothing serves yet: no stable version to compare with
        cluster.promote_full(before.name)
        return "all traffic at once (nothing served yet)"
    return "a canary"


def take_champion(registry: MlflowClient, target: ModelVersion, expected: str) -> str:
    """Move champion to the promoted version unless it moved while the version rolled out (the
    compare-and-set register does, under the same lock); "" or why it stayed."""
    with file_lock(lock_path(target.name)):
        now = by_alias(registry, target.name, CHAMPION)
        current = str(now.version) if now else ""
        if current not in (expected, str(target.version)):
            return f"{CHAMPION} moved from v{expected or '-'} to v{current} during the rollout: left there"
        promote(registry, target)
    return ""


def follow(cluster: Cluster, model: str, version: str, seconds: float) -> RolloutState:
    """The Rollout once the version is stable or its update was aborted; past the deadline the
    update is aborted too (the traffic goes back) and the state says why."""
    deadline = time.monotonic() + seconds
    while True:
        state = cluster.state(model)
        if state.template_version != version:
            raise BadInputError(
                f"{model}'s Rollout was changed to v{state.template_version} while v{version} rolled out"
            )
        if state.settled or state.aborted or state.phase == "Degraded":
            return state
        if time.monotonic() > deadline:
            cluster.abort(state.name)
            late = f"not stable within {seconds:.0f} s (phase {state.phase}: {state.message or 'no message'})"
            return replace(state, aborted=True, message=late)
        time.sleep(POLL_SECONDS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
