"""The MLflow Model Registry: versions, aliases, lineage tags, promotion and rollback."""

from __future__ import annotations

import getpass
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from modelyard.contract.records import CHAMPION, REFERENCE_PROFILE, DataProfile, Tags, read_record
from modelyard.core.errors import BadInputError, TransientError
from modelyard.core.transient import failed_address, unreachable


def _missing(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise


def existing_version(client: MlflowClient, name: str, version: str | None, alias: str) -> ModelVersion:
    """The given version of a registered model, else (version empty or None) the one the alias
    points at. A model, version or alias that does not exist is the caller's input error (exit 2);
    a server that cannot be reached raises as it is (the CLI exits 75)."""
    try:
        return (
            client.get_model_version(name, version)
            if version
            else client.get_model_version_by_alias(name, alias)
        )
    except MlflowException as exc:
        if not _missing(exc):
            raise
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _missing(exc):
            raise BadInputError(
                f"model {name!r} is not registered: train one first (modelyard run --model-name {name})"
            ) from exc
        raise
    if version:
        raise BadInputError(f"model {name!r} has no version {version}")
    aliases = ", ".join(f"{a} (v{v})" for a, v in sorted(model.aliases.items())) or "none"
    raise BadInputError(f"model {name!r} has no alias {alias!r} (its aliases: {aliases})")


def reference_profile(client: MlflowClient, name: str) -> DataProfile | None:
    """The data profile recorded with the current champion; None when there is no champion or it
    was registered without one. Failing to read it is an outage (exit 75), never "no champion":
    that would skip every check against the champion's data."""
    champion = by_alias(client, name, CHAMPION)
    if champion is None or not champion.run_id:
        return None
    folder = Path(REFERENCE_PROFILE).parent.as_posix()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if REFERENCE_PROFILE not in {f.path for f in client.list_artifacts(champion.run_id, folder)}:
                return None
            path = client.download_artifacts(champion.run_id, REFERENCE_PROFILE, tmp)
            return read_record(DataProfile, Path(path))
        except (MlflowException, OSError) as exc:
            address = failed_address(exc)
            where = f" ({address} {unreachable(exc)})" if address else ""
            raise TransientError(
                f"cannot read the data profile of {name} v{champion.version} ({CHAMPION}){where}: {exc}"
            ) from exc


def version_for_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered from this training run, so registering twice is a no-op.

    The filter is formatted, not bound: the config allows no quote in a model name, and run ids are hex."""
    try:
        versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise
    ready = sorted(versions, key=lambda v: int(v.version))
    return ready[0] if ready else None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point an alias at a version. The server inserts a new alias row without a lock, so two
    pipelines setting one alias at once can collide on its key; the second try is an update."""
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        if "registered_model_alias_pk" not in str(exc):
            raise
        client.set_registered_model_alias(name, alias, version)


def stamp(client: MlflowClient, version: ModelVersion, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)


def promote(client: MlflowClient, version: ModelVersion) -> str:
    """Move champion to the version, remembering the one it replaces; returns that one or ''."""
    current = by_alias(client, version.name, CHAMPION)
    previous = str(current.version) if current and current.version != version.version else ""
    if previous:
        stamp(client, version, {Tags.PREVIOUS_CHAMPION: previous})
    stamp(client, version, {Tags.PROMOTED_AT: _now()})
    set_alias(client, version.name, CHAMPION, version.version)
    return previous


def rollback(client: MlflowClient, name: str, reason: str) -> tuple[str, str]:
    """Move champion back to the version it replaced; returns (new champion, rolled-back version)."""
    current = by_alias(client, name, CHAMPION)
    if current is None:
        raise BadInputError(f"model {name!r} has no champion to roll back")
    previous = current.tags.get(Tags.PREVIOUS_CHAMPION, "")
    if not previous:
        raise BadInputError(f"champion {name} v{current.version} has no previous champion to roll back to")
    who, when = getpass.getuser(), _now()
    stamp(
        client,
        current,
        {Tags.ROLLED_BACK_AT: when, Tags.ROLLED_BACK_BY: who, Tags.ROLLBACK_REASON: reason},
    )
    restored = client.get_model_version(name, previous)
    stamp(
        client,
        restored,
        {Tags.RESTORED_AT: when, Tags.RESTORED_BY: who, Tags.RESTORE_REASON: reason},
    )
    set_alias(client, name, CHAMPION, previous)
    return previous, str(current.version)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
