"""Helpers for tests/unit/test_chart.py: find the chart tools, render the chart, load the Argo schema.

The tools are real binaries installed by `bash scripts/install-tools.sh` into `.tools/bin`
(helm, kubernetes-validate, checkov, hadolint); a test that needs a missing one skips and says
how to get it.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CHART_DIR: Final = REPO_ROOT / "charts" / "modelyard"
TOOLS_BIN: Final = REPO_ROOT / ".tools" / "bin"
INSTALL_HINT: Final = "run `bash scripts/install-tools.sh` (installs it into .tools/bin)"

RELEASE: Final = "modelyard"
NAMESPACE: Final = "modelyard"
KUBERNETES_VERSION: Final = "1.33.0"

# Scenario name -> values files (relative to the chart) rendered by the tests.
SCENARIOS: Final = {
    "default": [],
    "kind": ["values-kind.yaml"],
    "external": ["ci/external-values.yaml"],
    "sqlite": ["ci/sqlite-values.yaml"],
    "minimal": ["ci/minimal-values.yaml"],
    "overrides": ["ci/overrides-values.yaml"],
    "existing-secrets": ["ci/existing-secrets-values.yaml"],
    "serving": ["ci/serving-values.yaml"],
}

POD_TEMPLATE_KINDS: Final = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Rollout"}

# Argo Workflows' kinds: Argo Rollouts' Rollout and AnalysisTemplate share their argoproj.io group.
ARGO_WORKFLOWS_KINDS: Final = {
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
    "WorkflowEventBinding",
    "WorkflowTaskSet",
    "WorkflowTaskResult",
    "WorkflowArtifactGCTask",
}
# API groups of the custom resources the chart renders: Argo Workflows and Argo Rollouts, Traefik.
CUSTOM_API_GROUPS: Final = ("argoproj.io/", "traefik.io/")


def tool(name: str) -> str:
    """Path of a chart tool: .tools/bin first, then PATH; skips the test when absent."""
    local = TOOLS_BIN / name
    if local.exists() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    pytest.skip(f"{name} is not installed; {INSTALL_HINT}")


def run(args: list[str], *, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; on failure with check=True, fail with its output.

    .tools/bin leads PATH, so tools that shell out (checkov's helm framework runs helm) find ours.
    """
    env = {**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-8000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


def helm_template_args(values_files: Iterable[str] = (), sets: Iterable[str] = ()) -> list[str]:
    """Arguments of `helm template` for the chart with values files (chart-relative) and --set pairs."""
    args = [tool("helm"), "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
    for values_file in values_files:
        args += ["--values", str(CHART_DIR / values_file)]
    for pair in sets:
        args += ["--set", pair]
    return args


def render_text(values_files: Iterable[str] = (), sets: Iterable[str] = ()) -> str:
    """The chart rendered by the real helm binary, as YAML text."""
    return run(helm_template_args(values_files, sets)).stdout


def render(values_files: Iterable[str] = (), sets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The chart rendered by the real helm binary, as a list of objects."""
    return [doc for doc in yaml.safe_load_all(render_text(values_files, sets)) if doc]


@functools.cache
def render_scenario(name: str) -> tuple[dict[str, Any], ...]:
    """Rendered objects of a named scenario (cached; tests get deep copies via `scenario`)."""
    return tuple(render(SCENARIOS[name]))


def scenario(name: str) -> list[dict[str, Any]]:
    """A private copy of a scenario's rendered objects."""
    return copy.deepcopy(list(render_scenario(name)))


def is_argo(obj: dict[str, Any]) -> bool:
    """An Argo Workflows object (checked against Argo's schema), not an Argo Rollouts one."""
    return (
        str(obj.get("apiVersion", "")).startswith("argoproj.io/") and obj.get("kind") in ARGO_WORKFLOWS_KINDS
    )


def is_custom(obj: dict[str, Any]) -> bool:
    """A custom resource (Argo Workflows, Argo Rollouts, Traefik): kubernetes-validate has no schema for it."""
    return str(obj.get("apiVersion", "")).startswith(CUSTOM_API_GROUPS)


def builtin_objects(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of built-in kinds, with each Rollout as the Deployment it stands for.

    kubernetes-validate has no schema for custom resources and checkov skips them; a Rollout's
    replicas, selector and pod template are a Deployment's, so both check them in that form.
    """
    builtin = []
    for obj in objs:
        if obj["kind"] == "Rollout" and str(obj["apiVersion"]).startswith("argoproj.io/"):
            spec = {
                key: obj["spec"][key] for key in ("replicas", "selector", "template") if key in obj["spec"]
            }
            builtin.append(
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": obj["metadata"], "spec": spec}
            )
        elif not is_custom(obj):
            builtin.append(obj)
    return builtin


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of a kind (and name)."""
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod spec) of every Pod and every workload's pod template."""
    for obj in objs:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Pod":
            yield label, obj["spec"]
        elif obj["kind"] in POD_TEMPLATE_KINDS:
            yield label, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield label, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


# Fields that name a Secret and a key in it: env valueFrom, Argo's artifact repository.
_SECRET_KEY_FIELDS: Final = ("secretKeyRef", "accessKeySecret", "secretKeySecret")


def secret_references(objs: list[dict[str, Any]]) -> set[tuple[str, str, str, str | None]]:
    """Every reference to a Secret in rendered objects, as (object, path, Secret name, key or None).

    Covers env `secretKeyRef`, `envFrom` `secretRef`, `secret` volumes, Argo templates (the same fields
    inside WorkflowTemplates/CronWorkflows) and the artifact-repositories ConfigMap's S3 Secrets.
    """
    refs: set[tuple[str, str, str, str | None]] = set()
    for obj in objs:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        _collect_secret_references(obj, label, "", refs)
        if label == "ConfigMap/artifact-repositories":
            for key, text in obj["data"].items():
                _collect_secret_references(yaml.safe_load(text), label, f"data.{key}", refs)
    return refs


def _collect_secret_references(node: Any, label: str, path: str, refs: set) -> None:
    if isinstance(node, dict):
        for field in _SECRET_KEY_FIELDS:
            if isinstance(node.get(field), dict):
                refs.add((label, f"{path}.{field}", node[field]["name"], node[field]["key"]))
        if isinstance(node.get("secretRef"), dict):
            refs.add((label, f"{path}.secretRef", node["secretRef"]["name"], None))
        if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
            refs.add((label, f"{path}.secret", node["secret"]["secretName"], None))
        for key, value in node.items():
            _collect_secret_references(value, label, f"{path}.{key}", refs)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            name = item.get("name") if isinstance(item, dict) else None
            _collect_secret_references(
                item, label, f"{path}[{name if isinstance(name, str) else index}]", refs
            )


def decoded_secret(obj: dict[str, Any]) -> dict[str, str]:
    """A Secret's data, base64-decoded, merged with its stringData."""
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data


def write_yaml(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
    return path
