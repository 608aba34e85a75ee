"""Print the image sizes and the trainer's start time (container start to first log line).

Usage: env $(scripts/build-images.sh) python benchmarks/image_start.py [--runs N] [--compressed]
Needs the images built; their tags come from MODELYARD_TRAINER_IMAGE / MODELYARD_MLFLOW_IMAGE
(what scripts/build-images.sh prints) or else from `scripts/build-images.sh --print-tags`. The step timing starts an MLflow server
container on a loopback port and runs `modelyard step prepare` against it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def image_tags() -> dict[str, str]:
    """The tags from the environment (as build-images.sh prints them), else --print-tags."""
    if os.environ.get("MODELYARD_TRAINER_IMAGE") and os.environ.get("MODELYARD_MLFLOW_IMAGE"):
        return {
            "trainer": os.environ["MODELYARD_TRAINER_IMAGE"],
            "mlflow": os.environ["MODELYARD_MLFLOW_IMAGE"],
        }
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-images.sh"), "--print-tags"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tags = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"trainer": tags["MODELYARD_TRAINER_IMAGE"], "mlflow": tags["MODELYARD_MLFLOW_IMAGE"]}


def size_mb(image: str) -> float:
    out = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]["Size"] / 1e6


def compressed_mb(image: str) -> float:
    """Roughly what a registry stores and a node pulls: `docker save | gzip`."""
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
        total = 0
        compressor = gzip.compress
        while chunk := save.stdout.read(1 << 24):
            total += len(compressor(chunk, compresslevel=6))
    return total / 1e6


def first_line_seconds(cmd: list[str]) -> float:
    """Seconds from `docker run` to the first line the container prints (stdout or stderr)."""
    start = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        line = p.stdout.readline()
        elapsed = time.monotonic() - start
        p.stdout.read()
    if not line:
        raise RuntimeError(f"no output from {' '.join(cmd)}")
    return elapsed


def start_mlflow(image: str) -> tuple[str, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-e",
            "MLFLOW_HOST=127.0.0.1",
            "-e",
            f"MLFLOW_PORT={port}",
            "-e",
            "MLFLOW_WORKERS=1",
            "-e",
            "MLFLOW_BACKEND_STORE_URI=sqlite:////tmp/mlflow.db",
            "-e",
            "MLFLOW_ARTIFACTS_DESTINATION=/tmp/artifacts",
            image,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return container, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compressed", action="store_true", help="also gzip `docker save`")
    args = parser.parse_args()
    tags = image_tags()
    for name, tag in tags.items():
        extra = f", {compressed_mb(tag):.0f} MB gzipped" if args.compressed else ""
        print(f"{name:8} {tag}: {size_mb(tag):.0f} MB{extra}")

    run = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "host"]
    help_s = [first_line_seconds([*run, tags["trainer"], "--help"]) for _ in range(args.runs)]
    print(f"trainer `modelyard --help` first line: median {statistics.median(help_s):.2f} s")

    container, port = start_mlflow(tags["mlflow"])
    try:
        step = [
            *run,
            tags["trainer"],
            "step",
            "prepare",
            "--tracking-uri",
            f"http://127.0.0.1:{port}",
            "--dataset",
            "iris",
        ]
        step_s = [first_line_seconds(step) for _ in range(args.runs)]
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    print(f"trainer `modelyard step prepare` first log line: median {statistics.median(step_s):.2f} s")


if __name__ == "__main__":
    main()
