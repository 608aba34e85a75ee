"""The cluster of `make cluster-up` does what kind does for the chart: DNS, Services, dynamic
volumes, enforced memory limits and Argo Workflows, each checked on real pods."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import kube
import pytest
import yaml
from kubernetes import client

REPO: Final = Path(__file__).resolve().parents[2]
VERSIONS: Final = REPO / "scripts" / "cluster" / "versions.env"
BUSYBOX: Final = "docker.io/library/busybox:1.35.0"
ARGO_SRC: Final = kube.CLUSTER_DIR / "src" / "argo-workflows"

pytestmark = pytest.mark.cluster


def pinned() -> dict[str, str]:
    pins = {}
    for line in VERSIONS.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            pins[key] = value.split("#")[0].strip()
    return pins


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    # These tests judge this machine's cluster, whatever KUBECONFIG says.
    return kube.api_client_or_skip(kube.DEFAULT_KUBECONFIG)


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    yield from kube.temporary_namespace(api, "cluster-test")


def pod(name: str, command: str, image: str = BUSYBOX, **spec: Any) -> dict[str, Any]:
    container = {"name": name, "image": image, "command": ["sh", "-c", command]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def run_pod(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> tuple[Any, str]:
    """Run a pod to completion; its final state and its log."""
    core = client.CoreV1Api(api)
    kube.apply(api, namespace, [manifest])
    name = manifest["metadata"]["name"]
    done = kube.finished_pod(core, namespace, name)
    return done, core.read_namespaced_pod_log(name, namespace)


def test_the_node_is_ready_at_the_pinned_versions(core: client.CoreV1Api) -> None:
    (node,) = core.list_node().items
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    info = node.status.node_info
    print(
        f"node {node.metadata.name}: Ready={ready}, kubelet {info.kubelet_version}, {info.container_runtime_version}"
    )
    assert ready == "True"
    assert info.kubelet_version == pinned()["KUBERNETES_VERSION"]
    assert info.container_runtime_version.startswith(f"containerd://{pinned()['CONTAINERD_SERIES']}.")


def test_the_node_holds_one_tag_of_each_modelyard_image(core: client.CoreV1Api) -> None:
    """Every commit tags the modelyard images anew; importing one drops the node's older tags."""
    printed = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "--print-tags"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    repositories = {"docker.io/" + line.split("=", 1)[1].split(":")[0] for line in printed.splitlines()}

    def modelyard_images() -> list[str]:
        (node,) = core.list_node().items
        names = {name for image in node.status.images for name in image.names or [] if "@" not in name}
        return sorted(n for n in names if n.split(":")[0] in repositories)

    def one_tag_each() -> list[str] | None:
        names = modelyard_images()
        return names if Counter(n.split(":")[0] for n in names) == dict.fromkeys(repositories, 1) else None

    # The kubelet reports the node's images from a cache it refreshes every 30 s or so.
    try:
        names = kube.wait_until(
            one_tag_each, "one tag of each modelyard image in the node status", timeout=120
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}; modelyard images on the node: {modelyard_images()}")
    print(f"modelyard images on the node: {names}")


def test_a_pod_resolves_the_api_service_and_reaches_another_pod_by_service_name(
    api: client.ApiClient, namespace: str
) -> None:
    web = pod("web", "mkdir -p /www && echo served-by-web > /www/index.html && httpd -f -p 8080 -h /www")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    kube.apply(api, namespace, [web, service])
    # Python's resolver is glibc's, as in any application image (busybox-static's wget crashes
    # on name lookups: static glibc cannot load its NSS modules).
    lookup = (
        "import socket, urllib.request; "
        "print('kubernetes.default.svc.cluster.local', socket.gethostbyname('kubernetes.default.svc.cluster.local')); "
        "print(urllib.request.urlopen('http://web/', timeout=5).read().decode())"
    )
    probe = pod("probe", f'until python3 -c "{lookup}"; do sleep 1; done', image=image("TRAINER"))
    done, log = run_pod(api, namespace, probe)
    print(log)
    assert done.status.phase == "Succeeded"
    assert "kubernetes.default.svc.cluster.local 10.96.0.1" in log  # the API Service's ClusterIP
    assert "served-by-web" in log


def corefile_directives() -> set[str]:
    """The plugins the Corefile of addons/coredns.yaml names: the first word of each line directly
    inside a server block."""
    text = (REPO / "scripts" / "cluster" / "addons" / "coredns.yaml").read_text()
    manifests = yaml.safe_load_all(re.sub(r"@[A-Z_]+@", "filled-by-up.sh", text))
    (corefile,) = [m["data"]["Corefile"] for m in manifests if m and m["kind"] == "ConfigMap"]
    directives, depth = set(), 0
    for line in corefile.splitlines():
        words = line.split()
        if depth == 1 and words and words[0] != "}":
            directives.add(words[0])
        depth += line.count("{") - line.count("}")
    return directives


def test_coredns_is_the_pinned_release_with_every_plugin_its_corefile_names() -> None:
    """CoreDNS is built with only these plugins (scripts/cluster/coredns/main.go); one the Corefile
    names but the binary lacks would stop DNS at the next change of either."""
    coredns = str(kube.CLUSTER_DIR / "bin" / "coredns")
    version = subprocess.run([coredns, "-version"], capture_output=True, text=True, check=True).stdout
    listed = subprocess.run([coredns, "-plugins"], capture_output=True, text=True, check=True).stdout
    registered = {line.strip().removeprefix("dns.") for line in listed.splitlines() if line.strip()}
    print(version.strip(), "; plugins:", sorted(registered))
    assert f"CoreDNS-{pinned()['COREDNS_VERSION'].lstrip('v')}" in version
    plugins = {"errors", "health", "ready", "kubernetes", "prometheus", "cache", "reload", "loadbalance"}
    assert corefile_directives() == plugins  # the parser reads the Corefile whole
    assert corefile_directives() <= registered
    assert "route53" not in registered  # the cloud providers are left out


def test_a_claim_on_the_default_storage_class_binds_and_keeps_data(
    api: client.ApiClient, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount = {"container": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}}
    kube.apply(api, namespace, [claim])
    written, _ = run_pod(api, namespace, pod("writer", "echo kept > /data/file", **volume, **mount))
    read, log = run_pod(api, namespace, pod("reader", "cat /data/file", **volume, **mount))
    bound = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("data", namespace)
    print(f"claim {bound.status.phase} on {bound.spec.storage_class_name}: {bound.spec.volume_name}")
    assert (written.status.phase, read.status.phase) == ("Succeeded", "Succeeded")
    assert bound.status.phase == "Bound"
    assert bound.spec.storage_class_name == "standard"
    assert log.strip() == "kept"


def test_a_pod_over_its_memory_limit_is_oom_killed(api: client.ApiClient, namespace: str) -> None:
    # tail keeps everything after the last newline in memory; /dev/zero has none.
    hog = pod("hog", "head -c 300m /dev/zero | tail", container={"resources": {"limits": {"memory": "64Mi"}}})
    done, _ = run_pod(api, namespace, hog)
    terminated = done.status.container_statuses[0].state.terminated
    print(f"300 MB in a 64Mi container: {terminated.reason}, exit {terminated.exit_code}")
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


def image(name: str) -> str:
    """A modelyard image (TRAINER, MLFLOW, MINIO) as scripts/build-images.sh tags it."""
    tags = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "--print-tags"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in tags.splitlines())[f"MODELYARD_{name}_IMAGE"]


def artifact_repository(api: client.ApiClient, namespace: str) -> None:
    """A MinIO with one bucket as the namespace's default artifact repository (as Argo's quick-start)."""
    server = pod(
        "minio",
        "minio server /tmp/data --address :9000 & "
        "until mc alias set local http://127.0.0.1:9000 argo argo-secret; do sleep 1; done; "
        "mc mb local/artifacts && touch /tmp/ready && wait",
        image=image("MINIO"),
        container={
            "env": [
                {"name": "MINIO_ROOT_USER", "value": "argo"},
                {"name": "MINIO_ROOT_PASSWORD", "value": "argo-secret"},
            ],
            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
        },
    )
    server["spec"]["restartPolicy"] = "Always"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "minio-cred"},
        "stringData": {"accesskey": "argo", "secretkey": "argo-secret"},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "minio"},
        "spec": {"selector": {"app": "minio"}, "ports": [{"port": 9000}]},
    }
    s3 = {
        "bucket": "artifacts",
        "endpoint": "minio:9000",
        "insecure": True,
        "accessKeySecret": {"name": "minio-cred", "key": "accesskey"},
        "secretKeySecret": {"name": "minio-cred", "key": "secretkey"},
    }
    repositories = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "artifact-repositories",
            "annotations": {"workflows.argoproj.io/default-artifact-repository": "default-v1"},
        },
        "data": {"default-v1": yaml.safe_dump({"s3": s3})},
    }
    kube.apply(api, namespace, [server, secret, service, repositories])
    core = client.CoreV1Api(api)

    def ready() -> bool:
        statuses = core.read_namespaced_pod("minio", namespace).status.container_statuses or []
        return bool(statuses) and statuses[0].ready

    kube.wait_until(ready, "MinIO to be ready", 120)


def quick_start_rbac() -> list[dict[str, Any]]:
    """The executor Role Argo's quick-start binds to a namespace's default ServiceAccount."""
    base = ARGO_SRC / "manifests" / "quick-start" / "base"
    files = (
        base / "executor" / "emissary" / "executor-role.yaml",
        base / "executor-default-rolebinding.yaml",
    )
    return [yaml.safe_load(f.read_text()) for f in files]


WORKFLOW: Final = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "hand-over-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "make", "template": "make"},
                        {
                            "name": "use",
                            "template": "use",
                            "depends": "make",
                            "arguments": {
                                "parameters": [
                                    {"name": "answer", "value": "{{tasks.make.outputs.parameters.answer}}"}
                                ],
                                "artifacts": [
                                    {"name": "note", "from": "{{tasks.make.outputs.artifacts.note}}"}
                                ],
                            },
                        },
                    ]
                },
            },
            {
                "name": "make",
                "container": {
                    "image": BUSYBOX,
                    "command": ["sh", "-c", "echo -n 42 > /tmp/answer && echo handed-over > /tmp/note"],
                },
                "outputs": {
                    "parameters": [{"name": "answer", "valueFrom": {"path": "/tmp/answer"}}],
                    "artifacts": [{"name": "note", "path": "/tmp/note"}],
                },
            },
            {
                "name": "use",
                "inputs": {
                    "parameters": [{"name": "answer"}],
                    "artifacts": [{"name": "note", "path": "/tmp/note"}],
                },
                "container": {
                    "image": BUSYBOX,
                    "command": [
                        "sh",
                        "-c",
                        'test "{{inputs.parameters.answer}}" = 42 && grep -x handed-over /tmp/note',
                    ],
                },
            },
        ],
    },
}


def argo(*args: str) -> str:
    """The argo CLI that cluster-up built, against this cluster; its stdout."""
    done = subprocess.run(
        [str(kube.CLUSTER_DIR / "bin" / "argo"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KUBECONFIG": str(kube.DEFAULT_KUBECONFIG)},
    )
    assert done.returncode == 0, f"argo {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_an_argo_workflow_passes_a_parameter_and_an_artifact_between_tasks(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kube.apply(api, namespace, quick_start_rbac())
    artifact_repository(api, namespace)
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text(yaml.safe_dump(WORKFLOW))
    name = argo("submit", "-n", namespace, str(manifest), "-o", "name").strip()
    argo("wait", "-n", namespace, name)
    workflow = json.loads(argo("get", "-n", namespace, name, "-o", "json"))
    nodes = {n["displayName"]: n for n in workflow["status"]["nodes"].values()}
    print({name: node["phase"] for name, node in nodes.items()})
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert nodes["make"]["outputs"]["parameters"][0]["value"] == "42"
    assert nodes["use"]["inputs"]["artifacts"][0]["s3"]["key"].startswith(workflow["metadata"]["name"])
