"""Argo Workflows itself, at the version the cluster pins, for the tests that judge our manifests:
its JSON schema (from its Go module) and its CLI's `argo lint --offline` (built from that module).
Both come through the Go module proxy, so a plain clone runs them; without Go they skip.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
from jsonschema import Draft202012Validator

REPO: Final = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPTS: Final = REPO / "scripts" / "cluster"
ARGO_CLI: Final = REPO / ".cluster" / "bin" / "argo"
NO_GO: Final = (
    "Go is not installed: it fetches and builds Argo Workflows from the Go module proxy (https://go.dev/dl/)"
)


def argo_version() -> str:
    for line in (CLUSTER_SCRIPTS / "versions.env").read_text().splitlines():
        if line.startswith("ARGO_WORKFLOWS_VERSION="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError("versions.env pins no ARGO_WORKFLOWS_VERSION")


@functools.cache
def argo_module() -> Path:
    """The Argo Workflows module source (checked against the Go checksum database on download)."""
    if shutil.which("go") is None:
        pytest.skip(NO_GO)
    module = f"github.com/argoproj/argo-workflows/v4@{argo_version()}"
    done = subprocess.run(
        ["go", "mod", "download", "-json", module], capture_output=True, text=True, cwd="/", timeout=900
    )
    assert done.returncode == 0, f"go mod download {module}: {done.stdout}{done.stderr}"
    return Path(json.loads(done.stdout)["Dir"])


def argo_schema() -> Path:
    return argo_module() / "api" / "jsonschema" / "schema.json"


@functools.cache
def argo_cli() -> str:
    """.cluster/bin/argo, built by scripts/cluster/build.sh when missing or of another version."""
    if shutil.which("go") is None:
        pytest.skip(NO_GO)
    done = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / "build.sh"), "argo-cli"], capture_output=True, text=True, timeout=3600
    )
    assert done.returncode == 0, f"scripts/cluster/build.sh argo-cli failed:\n{done.stderr[-4000:]}"
    return str(ARGO_CLI)


def strict(node: Any) -> Any:
    """Forbid unknown fields: additionalProperties false wherever properties are listed (the
    schema allows them), so typos and fields Argo v4 removed are caught."""
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


@functools.cache
def strict_definitions() -> dict[str, Any]:
    return strict(json.loads(argo_schema().read_text()))["definitions"]


@functools.cache
def argo_validator(kind: str) -> Draft202012Validator:
    """A validator for one Argo kind (Workflow, WorkflowTemplate, ...) against the strict schema."""
    schema = {
        "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
        "definitions": strict_definitions(),
    }
    return Draft202012Validator(schema)
