"""What the end-to-end tests drive: the user's own tools (helm, kubectl port-forward, the argo CLI,
`modelyard`) against a real cluster, and an observer of the namespace's pods (kubernetes client):
when each was scheduled, started and finished, how it ended, and its memory peak."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import kube
import urllib3
from kubernetes import client, watch

from modelyard.contract.serving import MODEL_VERSION_HEADER

REPO: Final = Path(__file__).resolve().parents[2]
CLUSTER_BIN: Final = REPO / ".cluster" / "bin"
TOOLS_BIN: Final = REPO / ".tools" / "bin"


def tool(name: str) -> str:
    """A CLI the README tells users to have: the cluster's build, .tools, or PATH."""
    for candidate in (CLUSTER_BIN / name, TOOLS_BIN / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} is not installed (make cluster-up builds it into .cluster/bin)"
    return found


def sh(*args: str, timeout: float = 900, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run a command with the cluster's KUBECONFIG; its stdout (stderr too when it fails)."""
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig()), **(env or {})},
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortForward:
    """`kubectl port-forward` to a Service, as the README tells users; restarted when it drops
    (it follows one pod, so it ends when that pod is deleted)."""

    def __init__(self, namespace: str, service: str, port: int, health: str | None = None) -> None:
        self.namespace, self.service, self.port = namespace, service, port
        self.health = health  # an HTTP path that answers 200 when the pod behind is serving
        self.local = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.local}"

    def ensure(self, timeout: float = 120) -> str:
        """The local address, once something answers behind it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen(
                    [
                        tool("kubectl"),
                        "-n",
                        self.namespace,
                        "port-forward",
                        f"svc/{self.service}",
                        f"{self.local}:{self.port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "KUBECONFIG": str(kube.kubeconfig())},
                )
            if self._answers():
                return self.address
            # kubectl keeps listening after the pod it forwards to is gone: start a new one.
            self.stop()
            time.sleep(1)
        raise AssertionError(f"port-forward to {self.namespace}/{self.service}:{self.port} did not come up")

    def _answers(self) -> bool:
        time.sleep(0.5)
        try:
            if self.health is None:
                with socket.create_connection(("127.0.0.1", self.local), timeout=2):
                    return True
            with urllib.request.urlopen(f"http://{self.address}{self.health}", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


STEADY_PAUSE: Final = 0.02  # seconds between a steady client's requests: about 30 a second


def traefik_entry() -> tuple[str, PortForward | None]:
    """Traefik's entry point web as a client outside the cluster reaches it: NodePort 30080 of
    `make cluster-up`'s node, or a port-forward to its Service elsewhere (kind publishes no NodePort)."""
    if kube.kubeconfig() == kube.DEFAULT_KUBECONFIG:
        return kube.traefik_url(""), None
    forward = PortForward("traefik", "traefik", 80)
    return f"http://{forward.ensure()}", forward


class Traffic:
    """A client of one model's route: POSTs rows and counts every answer by (status, the
    modelyard-model-version header), 0 and the exception's name when no answer came. Either
    request by request (`send`) or steadily from a thread between `start` and `stop`."""

    def __init__(self, url: str, rows: list[dict[str, Any]]) -> None:
        self.url, self.body = url, json.dumps({"dataframe_records": rows}).encode()
        self.counts: Counter[tuple[int, str]] = Counter()
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=10))
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, body: bytes | None = None) -> tuple[int, str, bytes]:
        try:
            response = self._pool.request(
                "POST", self.url, body=body or self.body, headers={"Content-Type": "application/json"}
            )
            status, version, data = (
                response.status,
                response.headers.get(MODEL_VERSION_HEADER, ""),
                response.data,
            )
        except urllib3.exceptions.HTTPError as exc:
            status, version, data = 0, type(exc).__name__, str(exc).encode()
        self.counts[status, version] += 1
        return status, version, data

    def start(self) -> Traffic:
        self._running.set()
        self._thread = threading.Thread(target=self._send_until_stopped, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Counter[tuple[int, str]]:
        self._running.clear()
        if self._thread:
            self._thread.join(30)
        return self.counts

    def _send_until_stopped(self) -> None:
        while self._running.is_set():
            self.send()
            time.sleep(STEADY_PAUSE)


class Argo:
    """The argo CLI in the release namespace: what the README has users type."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return sh(tool("argo"), "-n", self.namespace, *args, timeout=timeout)

    def submit(self, source: str, **parameters: str) -> str:
        args = [f"--parameter={k.replace('_', '-')}={v}" for k, v in parameters.items()]
        return self("submit", "--from", source, *args, "--output", "name").strip()

    def get(self, name: str) -> dict[str, Any]:
        return json.loads(self("get", name, "--output", "json"))

    def wait(self, name: str, timeout: float = 1200) -> dict[str, Any]:
        """The workflow once it has ended, whatever its phase (`argo wait` exits 1 unless it Succeeded)."""
        sh(tool("argo"), "-n", self.namespace, "wait", name, timeout=timeout, check=False)
        return self.get(name)

    def workflows(self, selector: str) -> list[dict[str, Any]]:
        listed = json.loads(self("list", "--selector", selector, "--output", "json") or "[]")
        return listed or []


def pod_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in workflow.get("status", {}).get("nodes", {}).values() if n["type"] == "Pod"]


def exit_code(node: dict[str, Any]) -> str | None:
    return (node.get("outputs") or {}).get("exitCode")


@dataclass
class PodRecord:
    name: str
    template: str
    workflow: str
    uid: str
    limits_mib: dict[str, float] = field(default_factory=dict)  # container -> memory limit
    containers: dict[str, str] = field(default_factory=dict)  # container -> container id
    peaks_mib: dict[str, float] = field(default_factory=dict)
    scheduled: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    endings: set[str] = field(default_factory=set)  # container terminated reasons (OOMKilled, ...)

    @property
    def main(self) -> str:
        """The container that does the work: `main` in a workflow pod."""
        return "main" if "main" in self.limits_mib else next(iter(self.limits_mib), "")


# On `make cluster-up`'s node the pods' cgroups are this host's: their own peak (max_usage) is
# exact. Elsewhere (kind) the kubelet's working-set samples, which miss the shortest pods.
HOST_CGROUPS: Final = Path("/sys/fs/cgroup/memory/kubepods")


class Observer:
    """Watches the namespace's pods and records each container's memory peak."""

    def __init__(self, api: client.ApiClient, namespace: str, interval: float = 0.5) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.interval = namespace, interval
        self.pods: dict[str, PodRecord] = {}
        self.host = HOST_CGROUPS.is_dir() and kube.kubeconfig() == kube.DEFAULT_KUBECONFIG
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._watch, self._sample)]

    def start(self) -> Observer:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _watch(self) -> None:
        while not self.stopping.is_set():
            stream = watch.Watch().stream(
                self.core.list_namespaced_pod, self.namespace, timeout_seconds=60, _request_timeout=90
            )
            try:
                for event in stream:
                    self._record(event["object"])
                    if self.stopping.is_set():
                        return
            except Exception:  # the API server may drop a watch; start another
                time.sleep(1)

    def _record(self, pod: Any) -> None:
        labels = pod.metadata.labels or {}
        workflow = labels.get("workflows.argoproj.io/workflow", "")
        name = pod.metadata.name
        # Workflow pods are named <workflow>-<template>-<hash>.
        template = (
            name[len(workflow) + 1 :].rsplit("-", 1)[0]
            if workflow
            else labels.get("app.kubernetes.io/component", name)
        )
        record = self.pods.setdefault(name, PodRecord(name, template, workflow, pod.metadata.uid))
        for container in pod.spec.containers:
            limit = _mib(((container.resources and container.resources.limits) or {}).get("memory"))
            if limit:
                record.limits_mib[container.name] = limit
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "True":
                record.scheduled = condition.last_transition_time
        for status in pod.status.container_statuses or []:
            if status.container_id:
                record.containers[status.name] = status.container_id.split("://")[-1]
            for state in (status.state, status.last_state):
                if state and state.terminated:
                    record.endings.add(state.terminated.reason or "")
            if status.name != record.main:
                continue
            state = status.state
            if state.running:
                record.started = record.started or state.running.started_at
            if state.terminated:
                record.started = record.started or state.terminated.started_at
                record.finished = state.terminated.finished_at

    def _sample(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self._sample_host() if self.host else self._sample_kubelet()
            except Exception:  # a sample lost while the API server or kubelet is busy
                continue

    def _sample_host(self) -> None:
        for record in list(self.pods.values()):
            for pod_dir in HOST_CGROUPS.glob(f"**/pod{record.uid}"):
                for container, cid in record.containers.items():
                    peak = pod_dir / cid / "memory.max_usage_in_bytes"
                    if peak.exists():
                        used = int(peak.read_text()) / 2**20
                        record.peaks_mib[container] = max(record.peaks_mib.get(container, 0.0), used)

    def _sample_kubelet(self) -> None:
        for node in self.core.list_node().items:
            raw = self.core.connect_get_node_proxy_with_path(
                node.metadata.name, "stats/summary", _preload_content=False
            )
            for pod in json.loads(raw.data).get("pods", []):
                record = self.pods.get(pod["podRef"]["name"])
                if pod["podRef"]["namespace"] != self.namespace or record is None:
                    continue
                for container in pod.get("containers", []):
                    used = container.get("memory", {}).get("workingSetBytes", 0) / 2**20
                    name = container["name"]
                    record.peaks_mib[name] = max(record.peaks_mib.get(name, 0.0), used)

    def report(self) -> list[dict[str, Any]]:
        return [
            {
                "pod": r.name,
                "template": r.template,
                "workflow": r.workflow,
                "container": r.main,
                "limit_mib": r.limits_mib.get(r.main),
                "peak_mib": round(r.peaks_mib.get(r.main, 0.0), 1),
                "over_90_percent": sorted(
                    c for c, p in r.peaks_mib.items() if c in r.limits_mib and p > 0.9 * r.limits_mib[c]
                ),
                "endings": sorted(r.endings - {""}),
                "scheduled_to_started_s": _seconds(r.scheduled, r.started),
                "started_to_finished_s": _seconds(r.started, r.finished),
            }
            for r in self.pods.values()
        ]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _mib(quantity: str | None) -> float | None:
    if not quantity:
        return None
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20
