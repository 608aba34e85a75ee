"""Figures of `make cluster-up`: start time (warm: everything cached; cold: Go caches, .cluster/ and
the Docker images removed first), the disk .cluster/ takes, and the memory of the node at rest.

Usage (root): python benchmarks/cluster.py [--cold]
--cold deletes the Go build cache, .cluster/ and every Docker image: the next builds start from
nothing (about 35 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / ".cluster"
DAEMONS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)
KUBEPODS = Path("/sys/fs/cgroup/memory/kubepods")


def timed(*command: str) -> float:
    start = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def disk_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def forget_everything() -> None:
    subprocess.run(["go", "clean", "-cache"], check=True)
    subprocess.run(["docker", "system", "prune", "--all", "--force"], check=False, stdout=subprocess.DEVNULL)
    shutil.rmtree(CLUSTER, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="start from no caches at all (slow)")
    args = parser.parse_args()

    subprocess.run(["make", "cluster-down"], cwd=REPO, check=False, stdout=subprocess.DEVNULL)
    if args.cold:
        forget_everything()
    seconds = timed("make", "cluster-up")
    print(
        f"cluster-up ({'cold' if args.cold else 'warm'}): {seconds:.0f} s to a Ready node with CoreDNS, storage and Argo"
    )

    time.sleep(60)  # at rest: nothing scheduled but the add-ons
    total = 0.0
    for name in DAEMONS:
        mib = rss_mib(int((CLUSTER / "run" / f"{name}.pid").read_text()))
        total += mib
        print(f"  {name:24} {mib:7.0f} MiB RSS")
    pods = int((KUBEPODS / "memory.usage_in_bytes").read_text()) / 2**20
    print(f"  {'pods (CoreDNS, storage, Argo)':24} {pods:7.0f} MiB (cgroup usage)")
    print(f"node at rest: {total + pods:.0f} MiB")

    for part in sorted(CLUSTER.iterdir()):
        print(f"  .cluster/{part.name:12} {disk_mib(part):7.0f} MiB")
    print(
        f".cluster/: {disk_mib(CLUSTER):.0f} MiB; Go caches: {disk_mib(Path.home() / '.cache' / 'go-build'):.0f} MiB build, "
        f"{disk_mib(Path.home() / 'go' / 'pkg' / 'mod'):.0f} MiB modules"
    )


if __name__ == "__main__":
    main()
