"""The serving stack of `make cluster-up` on real pods: Argo Rollouts and Traefik at the pinned
versions, a canary step of a Rollout setting Traefik's weights and Traefik splitting the traffic
by them, an abort sending it all back, and the chart's serving objects against their CRDs."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

import kube
import pytest
from chart_helpers import render_scenario
from kubernetes import client

from cluster.test_cluster import BUSYBOX, pinned

pytestmark = pytest.mark.cluster

CANARY_WEIGHT: Final = 20
REQUESTS: Final = 200
WEB: Final = "web"
SERVING_KINDS: Final = {"Rollout", "AnalysisTemplate", "TraefikService", "Middleware", "IngressRoute"}


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    return kube.api_client_or_skip(kube.DEFAULT_KUBECONFIG)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    yield from kube.temporary_namespace(api, "serving-test")


def test_the_rollouts_controller_and_traefik_run_the_pinned_builds(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    expected = {
        (
            "argo-rollouts",
            "argo-rollouts",
        ): f"quay.io/argoproj/argo-rollouts:{pinned()['ARGO_ROLLOUTS_VERSION']}",
        ("traefik", "traefik"): f"docker.io/library/traefik:{pinned()['TRAEFIK_VERSION']}",
    }
    for (namespace, name), image in expected.items():
        deployment = apps.read_namespaced_deployment(name, namespace)
        (container,) = deployment.spec.template.spec.containers
        print(f"{namespace}/{name}: {container.image}, {deployment.status.ready_replicas} ready")
        assert container.image == image
        assert deployment.status.ready_replicas == 1
    traefik = str(kube.CLUSTER_DIR / "bin" / "traefik")
    version = subprocess.run([traefik, "version"], capture_output=True, text=True, check=True).stdout
    assert pinned()["TRAEFIK_VERSION"] in version, version


def web_objects(namespace: str) -> list[dict[str, Any]]:
    """A Rollout of a web server answering its VERSION, its stable and canary Services, the weighted
    TraefikService Argo Rollouts drives and a route to it on the Host <namespace>.test."""
    labels = {"app": WEB}
    container = {
        "name": WEB,
        "image": BUSYBOX,
        "command": ["sh", "-c", 'mkdir -p /tmp/www && echo "$VERSION" >/tmp/www/index.html && httpd -f -p 8080 -h /tmp/www'],
        "env": [{"name": "VERSION", "value": "v1"}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }  # fmt: skip
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{WEB}-{role}"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        for role in ("stable", "canary")
    ]
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": WEB},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            "strategy": {
                "canary": {
                    "stableService": f"{WEB}-stable",
                    "canaryService": f"{WEB}-canary",
                    "trafficRouting": {"traefik": {"weightedTraefikServiceName": WEB}},
                    "steps": [{"setWeight": CANARY_WEIGHT}, {"pause": {}}],
                }
            },
        },
    }
    weighted = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": WEB},
        "spec": {
            "weighted": {
                "services": [
                    {"name": f"{WEB}-stable", "port": 80, "weight": 100},
                    {"name": f"{WEB}-canary", "port": 80, "weight": 0},
                ]
            }
        },
    }
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": WEB},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {
                    "match": f"Host(`{namespace}.test`)",
                    "kind": "Rule",
                    "services": [{"name": WEB, "kind": "TraefikService"}],
                }
            ],
        },
    }
    return [*services, weighted, rollout, route]


def answer(namespace: str) -> str:
    """Which version answered one request through Traefik's entry point."""
    request = urllib.request.Request(kube.traefik_url("/"), headers={"Host": f"{namespace}.test"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode().strip()
    except OSError as exc:
        return f"error: {exc}"


def weights(api: client.ApiClient, namespace: str, weighted: dict[str, Any]) -> dict[str, int]:
    services = kube.get_custom(api, namespace, weighted)["spec"]["weighted"]["services"]
    return {s["name"].removeprefix(f"{WEB}-"): s["weight"] for s in services}


def rollout_phase(api: client.ApiClient, namespace: str, rollout: dict[str, Any]) -> str:
    return str(kube.get_custom(api, namespace, rollout).get("status", {}).get("phase", ""))


def test_a_canary_step_sets_traefiks_weights_and_an_abort_takes_them_back(
    api: client.ApiClient, namespace: str
) -> None:
    objects = web_objects(namespace)
    kube.apply(api, namespace, objects)
    weighted, rollout = objects[2], objects[3]
    kube.wait_until(lambda: rollout_phase(api, namespace, rollout) == "Healthy", "the Rollout Healthy", 180)
    kube.wait_until(lambda: answer(namespace) == "v1", "v1 answering through Traefik", 60)

    # A JSON patch: a merge patch of a custom object replaces the whole container list.
    v2 = [{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "v2"}]
    kube.patch_custom(api, namespace, rollout, v2)
    split = {"stable": 100 - CANARY_WEIGHT, "canary": CANARY_WEIGHT}
    kube.wait_until(lambda: weights(api, namespace, weighted) == split, f"the weights {split}", 180)
    kube.wait_until(lambda: answer(namespace) == "v2", "the canary answering", 30, interval=0.1)
    counts = Counter(answer(namespace) for _ in range(REQUESTS))
    print(f"at the {CANARY_WEIGHT}% step, {REQUESTS} requests: {dict(counts)}")
    assert set(counts) == {"v1", "v2"}, counts
    # Traefik's weighted round robin is deterministic: the share is the weight, not a replica ratio.
    assert abs(counts["v2"] - REQUESTS * CANARY_WEIGHT / 100) <= 2, counts

    aborted = time.monotonic()
    kube.patch_custom(api, namespace, rollout, {"status": {"abort": True}}, subresource="status")
    kube.wait_until(
        lambda: all(answer(namespace) == "v1" for _ in range(50)),
        "50 answers in a row from v1",
        60,
        interval=0,
    )
    seconds = time.monotonic() - aborted
    print(f"after the abort: weights {weights(api, namespace, weighted)}, v1 only {seconds:.1f} s later")
    assert weights(api, namespace, weighted) == {"stable": 100, "canary": 0}
    assert seconds < 30


def test_the_chart_s_serving_objects_pass_their_crds_schemas(api: client.ApiClient, namespace: str) -> None:
    """What the chart renders for serving, checked by the cluster's own CRDs (server-side dry run,
    unknown fields refused): the Rollouts, AnalysisTemplate, TraefikServices, Middlewares and IngressRoutes."""
    served = [o for o in render_scenario("serving") if o["kind"] in SERVING_KINDS]
    kinds = Counter(o["kind"] for o in served)
    print(f"dry-run: {dict(kinds)}")
    assert set(kinds) == SERVING_KINDS
    for document in served:
        moved = document | {"metadata": document["metadata"] | {"namespace": namespace}}
        kube.apply_custom(api, namespace, moved, dry_run=True)
