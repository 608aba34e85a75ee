"""Figures of the serving stack on `make cluster-up`'s cluster, for a model the chart serves (e2e
leaves one: `make e2e`): p50/p95/p99 latency of 1-row and 100-row requests through Traefik and to a
serving pod directly, requests per second with 1 and 4 clients through Traefik, and the memory
of the stack (Traefik, the Argo Rollouts controller, the model's serving pods).

Usage (root): python benchmarks/serving.py [--model NAME] [--namespace modelyard] [--requests 300]
The clients run inside the node's network namespace (pod IPs are reachable only there), each a
process with one keep-alive connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NETNS = "/run/netns/modelyard"
TRAEFIK = "http://10.200.0.2:30080"


def client(url: str, rows: int, requests: int) -> None:
    """Inside the node: POST the same rows `requests` times; print the latencies (ms) as JSON."""
    import urllib3

    body = json.dumps({"dataframe_records": [ROW] * rows}).encode()
    pool = urllib3.PoolManager(retries=False)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        response = pool.request("POST", url, body=body, headers={"Content-Type": "application/json"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.data[:300]
    print(json.dumps(latencies))


ROW = {"age": 40.0, "income": 22000.0, "plan": "pro", "region": "eu"}  # the e2e churn table's columns


def in_node(url: str, rows: int, requests: int, clients: int = 1) -> tuple[list[float], float]:
    """Latencies of every request and the wall time, `clients` processes at once."""
    command = [
        "nsenter",
        f"--net={NETNS}",
        "--",
        sys.executable,
        __file__,
        "--client",
        url,
        str(rows),
        str(requests),
    ]
    started = time.perf_counter()
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    latencies = [ms for p in running for ms in json.loads(p.communicate()[0])]
    return latencies, time.perf_counter() - started


def percentiles(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return f"p50 {cuts[49]:6.1f}  p95 {cuts[94]:6.1f}  p99 {cuts[98]:6.1f} ms"


def stack(namespace: str, model: str) -> tuple[str, list[tuple[str, str]]]:
    """The route, and (name, namespace/pod) of the pods whose memory is the stack's."""
    from kubernetes import client as k8s
    from kubernetes import config

    config.load_kube_config(str(REPO / ".cluster" / "kubeconfig"))
    core = k8s.CoreV1Api()
    serving = core.list_namespaced_pod(namespace, label_selector=f"modelyard.dev/model={model}").items
    assert serving, f"no serving pod of {model} in {namespace}: install the chart with serving (make e2e)"
    pods = [(f"serving {p.metadata.name}", p) for p in serving]
    pods += [("traefik", p) for p in core.list_namespaced_pod("traefik").items]
    pods += [("argo-rollouts", p) for p in core.list_namespaced_pod("argo-rollouts").items]
    direct = f"http://{serving[0].status.pod_ip}:8080/invocations"
    return direct, [(name, p.metadata.uid) for name, p in pods]


def memory_mib(uid: str) -> float:
    """The pod's memory in use (cgroup v1, the kubelet's cgroupfs layout), page cache excluded."""
    for qos in ("", "burstable/", "besteffort/"):
        group = Path(f"/sys/fs/cgroup/memory/kubepods/{qos}pod{uid}")
        if group.exists():
            usage = int((group / "memory.usage_in_bytes").read_text())
            stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
            return (usage - int(stat.get("total_inactive_file", 0))) / 2**20
    return float("nan")


def latest_served_model(namespace: str) -> str:
    from kubernetes import client as k8s
    from kubernetes import config

    config.load_kube_config(str(REPO / ".cluster" / "kubeconfig"))
    rollouts: Any = k8s.CustomObjectsApi().list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "rollouts"
    )["items"]
    assert rollouts, f"no serving Rollout in {namespace}: install the chart with serving (make e2e)"
    newest = max(rollouts, key=lambda r: r["metadata"]["creationTimestamp"])
    return str(newest["metadata"]["labels"]["modelyard.dev/model"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model the chart serves (default: the newest Rollout's)")
    parser.add_argument("--namespace", default="modelyard")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    model = args.model or latest_served_model(args.namespace)
    direct, pods = stack(args.namespace, model)
    routed = f"{TRAEFIK}/models/{model}/invocations"
    in_node(routed, 1, 20)  # warm both paths
    in_node(direct, 1, 20)
    print(f"model {model}, {args.requests} requests per figure, one client with one keep-alive connection:")
    for rows in (1, 100):
        for name, url in (("through Traefik", routed), ("pod directly   ", direct)):
            latencies, _ = in_node(url, rows, args.requests)
            print(f"  {rows:3d} row(s) {name}: {percentiles(latencies)}")
    for clients in (1, 4):
        latencies, seconds = in_node(routed, 1, args.requests, clients)
        print(f"  {clients} client(s) through Traefik: {len(latencies) / seconds:6.1f} requests/s (1 row)")
    used = {name: memory_mib(uid) for name, uid in pods}
    print("memory in use (MiB): " + ", ".join(f"{n} {m:.0f}" for n, m in used.items()))
    print(f"  the stack: {sum(used.values()):.0f} MiB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
