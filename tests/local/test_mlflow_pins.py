"""What modelyard relies on in MLflow beyond its documented client API, checked against the installed
MLflow: an upgrade that moves or renames any of it fails here, not in a user's pipeline."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modelyard.backends.registry import by_alias, set_alias
from modelyard.contract.records import CHAMPION


def test_the_artifact_repository_registry_deletes_a_candidates_files(tmp_path: Path) -> None:
    """ml.model.delete_candidate: the private registry of artifact repositories, by URI."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.skops").write_bytes(b"fitted")
    (tmp_path / "keep.txt").write_text("kept")
    get_artifact_repository(tmp_path.as_uri()).delete_artifacts("model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_the_alias_key_a_collision_names_is_registered_model_alias_pk() -> None:
    """backends.registry.set_alias retries when the database reports this constraint (PostgreSQL and
    MySQL name it in the error); MLflow's schema must still call the alias key by that name."""
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias

    key = SqlRegisteredModelAlias.__table__.primary_key
    assert key.name == "registered_model_alias_pk", mlflow.__version__
    assert {c.name for c in key.columns} >= {"name", "alias"}


def test_a_missing_model_or_alias_has_an_error_code_the_registry_reads_as_absent(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    assert by_alias(client, "never-registered", CHAMPION) is None
    client.create_registered_model("m")
    assert by_alias(client, "m", CHAMPION) is None
    with pytest.raises(MlflowException) as raised:
        set_alias(client, "m", CHAMPION, "1")  # no version 1: not the alias-key collision
    assert "registered_model_alias_pk" not in str(raised.value)
