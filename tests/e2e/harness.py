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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import kube
from kubernetes import client, watch

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

    def __init__(self, namespace: str, service: str, port: int) -> None:
        self.namespace, self.service, self.port = namespace, service, port
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
            try:
                with socket.create_connection(("127.0.0.1", self.local), timeout=2):
                    return self.address
            except OSError:
                time.sleep(1)
        raise AssertionError(f"port-forward to {self.namespace}/{self.service}:{self.port} did not come up")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


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
        """The workflow once it has ended (whatever its phase)."""
        self("wait", name, timeout=timeout)
        return self.get(name)

    def workflows(self, selector: str) -> list[dict[str, Any]]:
        listed = json.loads(self("list", "--selector", selector, "--output", "json") or "[]")
        return listed or []


def pod_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]


def exit_code(node: dict[str, Any]) -> str | None:
    return (node.get("outputs") or {}).get("exitCode")


@dataclass
class PodRecord:
    name: str
    template: str
    workflow: str
    limit_mib: float | None = None
    scheduled: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    endings: set[str] = field(default_factory=set)  # container terminated reasons (OOMKilled, ...)
    peak_mib: float = 0.0


class Observer:
    """Watches the namespace's pods and samples the kubelet's memory figures of each."""

    def __init__(self, api: client.ApiClient, namespace: str, interval: float = 2.0) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.interval = namespace, interval
        self.pods: dict[str, PodRecord] = {}
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
        annotations = pod.metadata.annotations or {}
        record = self.pods.setdefault(
            pod.metadata.name,
            PodRecord(
                pod.metadata.name,
                annotations.get("workflows.argoproj.io/node-name", "").split(".")[-1].split("(")[0]
                or labels.get("app.kubernetes.io/component", pod.metadata.name),
                labels.get("workflows.argoproj.io/workflow", ""),
            ),
        )
        limits = [c.resources.limits or {} for c in pod.spec.containers if c.resources]
        record.limit_mib = record.limit_mib or _mib(
            next((lim["memory"] for lim in limits if "memory" in lim), None)
        )
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "True":
                record.scheduled = condition.last_transition_time
        for status in pod.status.container_statuses or []:
            if status.name != "main" and "workflows.argoproj.io/workflow" in labels:
                continue
            state = status.state
            if state.running:
                record.started = record.started or state.running.started_at
            if state.terminated:
                record.started = record.started or state.terminated.started_at
                record.finished = state.terminated.finished_at
                record.endings.add(state.terminated.reason or "")
            if status.last_state and status.last_state.terminated:
                record.endings.add(status.last_state.terminated.reason or "")

    def _sample(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                for node in self.core.list_node().items:
                    summary = json.loads(
                        self.core.connect_get_node_proxy_with_path(node.metadata.name, "stats/summary")
                    )
                    for pod in summary.get("pods", []):
                        ref = pod["podRef"]
                        if ref["namespace"] != self.namespace or ref["name"] not in self.pods:
                            continue
                        used = sum(
                            c.get("memory", {}).get("workingSetBytes", 0) for c in pod.get("containers", [])
                        )
                        record = self.pods[ref["name"]]
                        record.peak_mib = max(record.peak_mib, used / 2**20)
            except Exception:  # a sample lost while the API server or kubelet is busy
                continue

    def report(self) -> list[dict[str, Any]]:
        return [
            {
                "pod": r.name,
                "template": r.template,
                "workflow": r.workflow,
                "limit_mib": r.limit_mib,
                "peak_mib": round(r.peak_mib, 1),
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
