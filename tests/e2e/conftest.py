"""The README's Kubernetes path on whatever cluster KUBECONFIG names (default: `make cluster-up`'s):
the chart installed and tested with helm, datasets in its MinIO, an alert receiver, port-forwards to
MLflow and the Argo Server, and an observer of every pod for the report printed at the end."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import kube
import pytest
import yaml
from conftest import make_customers
from kubernetes import client
from minio import Minio

from e2e.harness import REPO, Argo, Observer, PortForward, sh, tool

NAMESPACE: Final = "modelyard"
RELEASE: Final = "modelyard"
ARGO_NAMESPACE: Final = "argo"
CHART: Final = REPO / "charts" / "modelyard"
REPORT: Final = REPO / "test-artifacts" / "e2e-report.json"
RECEIVER: Final = "alert-receiver"
LABEL: Final = "churn"  # not `target`: the label is a setting, not a convention
# A search space of its own: three candidates, small enough for two cores.
CONFIG: Final = {
    "label": LABEL,
    "search_space": {
        "logistic_regression": {"C": [0.5, 2.0]},
        "random_forest": {"n_estimators": [40], "max_depth": [4]},
    },
}
# For the scenarios about something other than the search (the promotion lock, Parquet, the Argo
# Server, the monitor's retraining): one candidate, one train pod, on a cluster whose CPU is the limit.
ONE_CANDIDATE: Final = {"label": LABEL, "search_space": {"logistic_regression": {"C": [1.0]}}}

pytestmark = pytest.mark.e2e


def image_tags() -> dict[str, str]:
    printed = sh("bash", str(REPO / "scripts" / "build-images.sh"), "--print-tags")
    return dict(line.split("=", 1) for line in printed.split())


@pytest.fixture(scope="session")
def api() -> client.ApiClient:
    return kube.api_client_or_skip()


@pytest.fixture(scope="session")
def images(api: client.ApiClient) -> dict[str, str]:
    """modelyard's images at this commit, in the cluster: imported here on `make cluster-up`'s
    cluster; `make kind-up` loads them into kind."""
    if kube.kubeconfig() == kube.DEFAULT_KUBECONFIG:
        subprocess.run(
            ["bash", str(REPO / "scripts" / "cluster" / "images.sh"), "load"], check=True, timeout=3600
        )
    return image_tags()


class Release:
    """`helm upgrade --install` with the README's values, plus what a scenario sets."""

    def __init__(self, tags: dict[str, str], tmp: Path) -> None:
        self.tags, self.tmp = tags, tmp

    def values(self, extra: dict[str, Any] | None = None) -> list[str]:
        tag = lambda ref: ref.rsplit(":", 1)[1]  # noqa: E731
        sets = [f"mlflow.image.tag={tag(self.tags['MODELYARD_MLFLOW_IMAGE'])}"]
        sets.append(f"pipeline.image.tag={tag(self.tags['MODELYARD_TRAINER_IMAGE'])}")
        args = ["--values", str(CHART / "values-kind.yaml")]
        if extra:
            path = self.tmp / f"values-{len(list(self.tmp.iterdir()))}.yaml"
            path.write_text(yaml.safe_dump(extra))
            args += ["--values", str(path)]
        return args + [arg for s in sets for arg in ("--set", s)]

    def install(self, extra: dict[str, Any] | None = None, wait: str = "watcher") -> None:
        """wait="legacy" with serving: Helm 4's default waiter (kstatus) never sees an Argo Rollout as
        ready (helm/helm#32615); the legacy one waits for what it knows and leaves Rollouts alone."""
        sh(
            tool("helm"), "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE,
            *self.values(extra), f"--wait={wait}", "--wait-for-jobs", "--timeout", "10m", timeout=900,
        )  # fmt: skip

    def test(self) -> str:
        return sh(tool("helm"), "test", RELEASE, "--namespace", NAMESPACE, "--logs", "--timeout", "5m")

    def uninstall(self) -> None:
        sh(tool("helm"), "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "5m")


def restricted_namespace(core: client.CoreV1Api) -> None:
    """The namespace as the README creates it: Pod Security "restricted" enforced."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE, labels=labels))
    try:
        core.create_namespace(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.patch_namespace(NAMESPACE, {"metadata": {"labels": labels}})


@pytest.fixture(scope="session")
def observer(api: client.ApiClient) -> Iterator[Observer]:
    """Every pod of the namespace through all scenarios; the report (and the memory check) at the end."""
    watching = Observer(api, NAMESPACE).start()
    yield watching
    watching.stop()
    REPORT.parent.mkdir(exist_ok=True)
    report = watching.report()
    REPORT.write_text(json.dumps(report, indent=2, default=str))
    print(f"\npod memory peaks and timings ({REPORT}):")
    for row in sorted(report, key=lambda r: (r["workflow"], r["pod"])):
        print(
            f"  {row['pod'][:60]:60} {row['template'][:14]:14} peak {row['peak_mib']:7.1f} MiB"
            f" of {row['limit_mib'] or 0:6.0f}  run {row['started_to_finished_s'] or 0:6.1f}s {','.join(row['endings'])}"
        )
    # The kubelet enforces the limits: a pod over its limit is OOMKilled, and one close to it is a warning.
    killed = [r["pod"] for r in report if "OOMKilled" in r["endings"]]
    over = [f"{r['pod']} ({', '.join(r['over_90_percent'])})" for r in report if r["over_90_percent"]]
    assert not killed, f"pods OOMKilled: {killed}"
    assert not over, f"pods above 90% of their memory limit: {over}"


@pytest.fixture(scope="session")
def release(
    api: client.ApiClient,
    images: dict[str, str],
    observer: Observer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Release:
    restricted_namespace(client.CoreV1Api(api))
    installed = Release(images, tmp_path_factory.mktemp("values"))
    alert_receiver(api)
    installed.install()
    print(installed.test())
    return installed


def alert_receiver(api: client.ApiClient) -> None:
    """A webhook receiver in the cluster (it logs each alert), and the Secret the templates read."""
    server = textwrap.dedent(
        """
        import http.server, sys
        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                print("ALERT", body, flush=True)
                self.send_response(200)
                self.end_headers()
        http.server.HTTPServer(("", 8080), Receiver).serve_forever()
        """
    )
    restricted = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": RECEIVER, "labels": {"app": RECEIVER}},
        "spec": {
            "containers": [
                {
                    "name": "receiver",
                    "image": image_tags()["MODELYARD_TRAINER_IMAGE"],
                    "command": ["python3", "-c", server],
                    "securityContext": restricted,
                    "resources": {
                        "limits": {"cpu": "100m", "memory": "96Mi"},
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                    },
                }
            ]
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": RECEIVER},
        "spec": {"selector": {"app": RECEIVER}, "ports": [{"port": 8080}]},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "modelyard-alerts"},
        "stringData": {"MODELYARD_WEBHOOK_URL": f"http://{RECEIVER}.{NAMESPACE}.svc:8080/modelyard"},
    }
    core = client.CoreV1Api(api)
    for name, delete in (
        (RECEIVER, core.delete_namespaced_pod),
        (RECEIVER, core.delete_namespaced_service),
        ("modelyard-alerts", core.delete_namespaced_secret),
    ):
        try:
            delete(name, NAMESPACE, grace_period_seconds=0)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    kube.wait_until(lambda: _gone(core, RECEIVER), "the old alert receiver to go", 60)
    kube.apply(api, NAMESPACE, [pod, service, secret])


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NAMESPACE)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def alerts(api: client.ApiClient) -> list[str]:
    log = client.CoreV1Api(api).read_namespaced_pod_log(RECEIVER, NAMESPACE)
    return [
        json.loads(line.removeprefix("ALERT "))["text"]
        for line in log.splitlines()
        if line.startswith("ALERT ")
    ]


@pytest.fixture(scope="session")
def argo(release: Release) -> Argo:
    return Argo(NAMESPACE)


@pytest.fixture(scope="session")
def mlflow_forward(release: Release) -> Iterator[PortForward]:
    forward = PortForward(NAMESPACE, "modelyard-mlflow", 5000, health="/health")
    yield forward
    forward.stop()


@pytest.fixture(scope="session")
def mlflow_client(mlflow_forward: PortForward) -> Any:
    """An MLflow client of the cluster's server, reached as a user reaches it (port-forward)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"http://{mlflow_forward.ensure()}")


@pytest.fixture(scope="session")
def bucket(api: client.ApiClient, release: Release) -> Iterator[Minio]:
    """The chart's MinIO with its root credentials (the README's upload path)."""
    forward = PortForward(NAMESPACE, "modelyard-minio", 9000, health="/minio/health/ready")
    secret = client.CoreV1Api(api).read_namespaced_secret("modelyard-minio-root", NAMESPACE)
    decode = lambda key: __import__("base64").b64decode(secret.data[key]).decode()  # noqa: E731
    user, password = decode("MINIO_ROOT_USER"), decode("MINIO_ROOT_PASSWORD")
    yield Minio(endpoint=forward.ensure(), access_key=user, secret_key=password, secure=False)
    forward.stop()


def upload(bucket: Minio, key: str, rows: Any) -> str:
    """A DataFrame as CSV in the datasets bucket; its s3:// URI."""
    data = rows.to_csv(index=False).encode()
    bucket.put_object("datasets", key, __import__("io").BytesIO(data), len(data), content_type="text/csv")
    return f"s3://datasets/{key}"


@pytest.fixture(scope="session")
def datasets(bucket: Minio) -> dict[str, str]:
    customers = make_customers(rows=600, seed=0)
    fresh = make_customers(rows=300, seed=11)
    drifted = make_customers(rows=300, seed=12)
    drifted["age"] = drifted["age"] + 35
    drifted["income"] = drifted["income"] * 4
    bad = make_customers(rows=300, seed=13)
    bad.loc[bad.index[: int(0.7 * len(bad))], "income"] = (
        None  # 70% missing: refused where max_null_fraction is set
    )
    # The same customers with every label the other way round: a model that passes no canary.
    flipped = customers.assign(churn=customers["churn"].map({"yes": "no", "no": "yes"}))
    tables = {"customers": customers, "fresh": fresh, "drifted": drifted, "bad": bad, "flipped": flipped}
    return {name: upload(bucket, f"e2e/{name}.csv", rows) for name, rows in tables.items()}


@pytest.fixture(scope="session")
def config_text() -> str:
    return yaml.safe_dump(CONFIG)
