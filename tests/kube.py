"""The tests that run on a real cluster (tests/cluster, tests/e2e): its kubeconfig, and small
waits over the `kubernetes` client. A machine without a cluster skips them, saying how to get one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, utils
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO / ".cluster"
DEFAULT_KUBECONFIG = CLUSTER_DIR / "kubeconfig"
NODE_IP = "10.200.0.2"  # cluster-up's node, from the host (scripts/cluster/lib.sh)
TRAEFIK_NODE_PORT = 30080  # Traefik's entry point web (scripts/cluster/addons/traefik)
NO_CLUSTER = (
    "no Kubernetes cluster at {where}: run `make cluster-up` as root (builds and starts one on this "
    "machine, see README 'A cluster on this machine'), or `make kind-up`, or set KUBECONFIG"
)
T = TypeVar("T")


def kubeconfig() -> Path:
    return Path(os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)


def api_client_or_skip(path: Path | None = None) -> client.ApiClient:
    """An API client for the cluster `path` (default: what KUBECONFIG names, else
    .cluster/kubeconfig) points at, or skip."""
    path = path or kubeconfig()
    if not path.exists():
        pytest.skip(NO_CLUSTER.format(where=path))
    api = config.new_client_from_config(config_file=str(path))
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # any failure to reach it means: no usable cluster here
        pytest.skip(NO_CLUSTER.format(where=f"{path} ({type(exc).__name__})"))
    return api


def wait_until(check: Callable[[], T | None], what: str, timeout: float, interval: float = 1.0) -> T:
    """Poll `check` until it returns something other than None/False; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def finished_pod(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 180) -> Any:
    """The pod once it has Succeeded or Failed."""

    def done() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    try:
        return wait_until(done, f"pod {namespace}/{name} to finish", timeout)
    except AssertionError as exc:  # say where the pod was stuck: its phase, its waiting reason, its log
        raise AssertionError(f"{exc}; {pod_state(core, namespace, name)}") from None


def pod_state(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """A pod's phase, each container's waiting reason and the tail of its log, in one line."""
    pod = core.read_namespaced_pod(name, namespace)
    waiting = [
        f"{c.name}: {c.state.waiting.reason}"
        for c in pod.status.container_statuses or []
        if c.state and c.state.waiting
    ]
    try:
        log = core.read_namespaced_pod_log(name, namespace, tail_lines=10)
    except ApiException as exc:
        log = f"(no log: {exc.reason})"
    return f"phase {pod.status.phase}, waiting {waiting or 'none'}, log tail: {log!r}"


def apply(api: client.ApiClient, namespace: str, documents: list[dict[str, Any]]) -> None:
    for document in documents:
        if is_custom(document):
            apply_custom(api, namespace, document)
        else:
            utils.create_from_dict(api, document, namespace=namespace)


def is_custom(document: dict[str, Any]) -> bool:
    """An object of a CRD (Argo Rollouts', Traefik's), which utils.create_from_dict cannot create."""
    return document["apiVersion"].split("/")[0] in ("argoproj.io", "traefik.io")


def custom_path(document: dict[str, Any]) -> tuple[str, str, str]:
    """(group, version, plural) of a custom object: the plural of these CRDs is the lower-case kind + s."""
    group, version = document["apiVersion"].split("/")
    return group, version, document["kind"].lower() + "s"


def apply_custom(
    api: client.ApiClient, namespace: str, document: dict[str, Any], dry_run: bool = False
) -> Any:
    """Create a custom object; the server checks it against its CRD's schema and refuses an unknown
    field (Strict), so a dry run validates what a chart renders."""
    group, version, plural = custom_path(document)
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, plural, document,
        dry_run="All" if dry_run else None, field_validation="Strict",
    )  # fmt: skip


def patch_custom(api: client.ApiClient, namespace: str, document: dict[str, Any], patch: dict[str, Any] | list[Any],
                 subresource: str = "") -> Any:  # fmt: skip
    """Patch a custom object (its status with subresource="status"): a merge patch, or a JSON patch
    when given a list of operations."""
    group, version, plural = custom_path(document)
    objects = client.CustomObjectsApi(api)
    name = document["metadata"]["name"]
    if subresource == "status":
        return objects.patch_namespaced_custom_object_status(group, version, namespace, plural, name, patch)
    kind = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
    return objects.patch_namespaced_custom_object(
        group, version, namespace, plural, name, patch, _content_type=kind
    )


def get_custom(api: client.ApiClient, namespace: str, document: dict[str, Any]) -> Any:
    group, version, plural = custom_path(document)
    name = document["metadata"]["name"]
    return client.CustomObjectsApi(api).get_namespaced_custom_object(group, version, namespace, plural, name)


def traefik_url(path: str) -> str:
    """A path on Traefik's entry point web as the host reaches it: NodePort 30080 of cluster-up's node."""
    return f"http://{NODE_IP}:{TRAEFIK_NODE_PORT}{path}"


def temporary_namespace(api: client.ApiClient, prefix: str) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (without waiting for it to go)."""
    core = client.CoreV1Api(api)
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
