"""Every emitted Argo manifest validates against Argo's own v4.1.2 JSON schema, made strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.compile import MANIFEST_DIR, MANIFESTS

SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "argo" / "workflows-v4.1.2.schema.json"
PREFIX = "io.argoproj.workflow.v1alpha1."

pytestmark = pytest.mark.skipif(
    not SCHEMA.exists(),
    reason=f"Argo's JSON schema is not at {SCHEMA} (../shared/argo/ exists only in the dev workspace)",
)


def strict(node: Any) -> Any:
    """Forbid unknown fields: additionalProperties false wherever properties are listed."""
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    return strict(json.loads(SCHEMA.read_text()))["definitions"]


def validator(definitions: dict[str, Any], kind: str):
    from jsonschema import Draft202012Validator

    schema = {"$ref": f"#/definitions/{PREFIX}{kind}", "definitions": definitions}
    return Draft202012Validator(schema)


@pytest.mark.parametrize("filename", sorted(MANIFESTS))
def test_manifest_is_valid_against_the_strict_argo_schema(filename: str, definitions) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / filename).read_text())
    errors = sorted(validator(definitions, doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_strict_schema_rejects_fields_removed_in_argo_v4(definitions) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / "retrain-cron.yaml").read_text())
    doc["spec"]["schedule"] = "0 3 * * *"
    assert list(validator(definitions, "CronWorkflow").iter_errors(doc))
