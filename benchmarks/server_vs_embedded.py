"""How much a real tracking server costs: the same pipeline against `mlflow server` (PostgreSQL, proxied
artifacts on S3) and against the embedded SQLite default, and a 200 MB artifact uploaded through the
MLflow proxy versus straight to S3.

Usage: .venv/bin/python benchmarks/server_vs_embedded.py [--runs 3] [--megabytes 200]
Starts its own servers on free 127.0.0.1 ports (see tests/integration/stack.py) and stops them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from integration.stack import BUCKET, Stack, base_env, modelyard


def timed_run(home: Path, env: dict[str, str], model: str) -> float:
    started = time.perf_counter()
    done = modelyard("run", "--model-name", model, cwd=home, env=env)
    if done.returncode != 0:
        raise SystemExit(f"modelyard run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def pipeline_times(stack: Stack, root: Path, runs: int) -> dict[str, list[float]]:
    """Each store's runs in one project dir: the first also creates the store (SQLite migrations)."""
    assert stack.mlflow is not None
    embedded, served = root / "embedded", root / "served"
    embedded.mkdir()
    served.mkdir()
    env = {k: v for k, v in base_env().items() if not k.startswith("MLFLOW_")} | {"HOME": str(embedded)}
    times: dict[str, list[float]] = {"embedded SQLite": [], "mlflow server": []}
    for _ in range(runs):  # interleaved, so both see the same machine load
        times["embedded SQLite"].append(timed_run(embedded, env, "bench"))
        times["mlflow server"].append(timed_run(served, stack.mlflow.client_env(served), "bench"))
    return times


def upload_rates(stack: Stack, root: Path, megabytes: int) -> dict[str, float]:
    assert stack.mlflow is not None and stack.s3 is not None
    blob = root / "artifact.bin"
    with blob.open("wb") as out:  # random bytes: nothing along the way can compress them
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    size = blob.stat().st_size / (1 << 20)

    from mlflow import MlflowClient

    client = MlflowClient(stack.mlflow.url)
    experiment = client.create_experiment(f"bench-upload-{time.time_ns()}")
    run = client.create_run(experiment)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        os.environ.pop(name, None)  # the proxy path must not fall back to direct S3
    started = time.perf_counter()
    client.log_artifact(run.info.run_id, str(blob), "blob")
    proxied = time.perf_counter() - started

    started = time.perf_counter()
    stack.s3.client().fput_object(BUCKET, "bench/direct/artifact.bin", str(blob))
    direct = time.perf_counter() - started
    return {"MLflow proxy": size / proxied, "direct S3": size / direct, "_size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="pipeline runs per store")
    parser.add_argument("--megabytes", type=int, default=200, help="artifact size for the upload test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        root = Path(tmp)
        stack = Stack(root / "stack")
        started = time.perf_counter()
        stack.start()
        print(f"servers up in {time.perf_counter() - started:.1f}s (S3, PostgreSQL, mlflow server)")
        try:
            times = pipeline_times(stack, root, args.runs)
            rates = upload_rates(stack, root, args.megabytes)
        finally:
            stack.stop()
    print(f"\n`modelyard run` (iris, default search space, 7 candidates), {args.runs} runs each:")
    for store, values in times.items():
        warm = statistics.median(values[1:] or values)
        runs = ", ".join(f"{v:.1f}s" for v in values)
        print(f"  {store:<16} first {values[0]:5.1f}s  then median {warm:5.1f}s  ({runs})")
    ratio = statistics.median(times["mlflow server"][1:] or times["mlflow server"]) / statistics.median(
        times["embedded SQLite"][1:] or times["embedded SQLite"]
    )
    print(f"  server / embedded (after the first run): {ratio:.2f}x")
    print(f"\nupload of a {rates['_size']:.0f} MB artifact:")
    for path in ("MLflow proxy", "direct S3"):
        print(f"  {path:<16} {rates[path]:6.1f} MB/s  ({rates['_size'] / rates[path]:.1f}s)")
    print(f"  proxy / direct: {rates['MLflow proxy'] / rates['direct S3']:.2f}x")


if __name__ == "__main__":
    main()
