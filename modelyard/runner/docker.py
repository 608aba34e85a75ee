"""Run each step in its own container of the trainer image, the way an Argo pod runs it.

Like a pod, a container sees only its own input artifacts (read-only), its output artifact
directories and a private outputs directory under WORK_DIR; the root filesystem is read-only.
It gets the step's CPU and memory limits and deadline from the contract, as Argo does, and its
log lines are shown as they come.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from modelyard.contract import OUTPUTS_DIR, STEPS, WORK_DIR, Step, kebab, parse_params
from modelyard.contract.config import S3_RETRIES, S3_TIMEOUT
from modelyard.core.errors import BadInputError, DeadlineError, ModelyardError, TransientError
from modelyard.core.settings import ENV_FIXED, ENV_FROM_SECRETS, ENV_IMAGE, ENV_TRACKING_URI
from modelyard.core.signals import Interrupted

KEPT_LINES: Final = 20  # of a failed step's log, for its error message
RUN_LABEL: Final = "modelyard.run"  # on every container of one `modelyard run`, to stop them all at once
IMAGE_WORKDIR: Final = "/tmp"  # the trainer image's WORKDIR, where a relative dataset path starts
STOP_SECONDS: Final = 10  # `docker stop -t`: the step's grace between SIGTERM and SIGKILL


class DockerExecutor:
    """A StepExecutor for modelyard.runner.local.run_pipeline: `docker run IMAGE step NAME ...`."""

    def __init__(self, image: str, tracking_uri: str) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise BadInputError("--image needs an MLflow server: pass --tracking-uri http://HOST:PORT")
        if shutil.which("docker") is None:
            raise BadInputError(
                "--image needs Docker: install it (e.g. apt-get install docker.io) and start dockerd"
            )
        self.image, self.tracking_uri = image, tracking_uri
        self.label = f"{RUN_LABEL}={uuid.uuid4().hex}"

    def stop(self) -> None:
        """`docker stop` every container of this run still going (SIGTERM, SIGKILL after STOP_SECONDS)."""
        listed = subprocess.run(
            ["docker", "ps", "--quiet", "--filter", f"label={self.label}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if ids := listed.stdout.split():
            docker_stop(*ids)

    def __call__(self, step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
        spec = STEPS[step]
        parse_params(spec.params, args)  # a bad value fails here, not in a container
        with tempfile.TemporaryDirectory(dir=work_dir) as outputs:
            name = f"modelyard-{kebab(step)}-{uuid.uuid4().hex[:8]}"
            command = self.command(step, args, work_dir, Path(outputs), name)
            code, tail, timed_out = stream(command, name, spec.deadline)
            if timed_out:
                raise DeadlineError(f"step {step} ran past its deadline of {spec.deadline} s and was stopped")
            if code != 0:
                raise _error(code, step, tail)
            values = {n: (Path(outputs) / kebab(n)).read_text() for n in spec.outputs.model_fields}
        return spec.outputs(**values)

    def command(self, step: str, args: dict[str, Any], work_dir: Path, outputs: Path, name: str) -> list[str]:
        spec = STEPS[step]
        mounts = [f"{(work_dir / a).resolve()}:{WORK_DIR}/{a}:ro" for a in spec.inputs]
        for artifact in spec.produces:
            _writable(work_dir / artifact)
        mounts += [f"{(work_dir / a).resolve()}:{WORK_DIR}/{a}" for a in spec.produces]
        _writable(outputs)
        mounts.append(f"{outputs.resolve()}:{WORK_DIR}/{OUTPUTS_DIR}")
        if dataset := dataset_mount(args):
            mounts.append(dataset)
        env = {ENV_TRACKING_URI: self.tracking_uri, ENV_IMAGE: self.image} | ENV_FIXED
        env |= {name: os.environ[name] for name in ENV_FROM_SECRETS if name in os.environ}
        env |= {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP_REQUEST_")}
        env |= {k: os.environ[k] for k in (S3_TIMEOUT, S3_RETRIES) if k in os.environ}
        flags = [f"--{kebab(k)}={'' if v is None else v}" for k, v in args.items()]
        return [
            *("docker", "run", "--rm", "--name", name, "--label", self.label, "--network", "host"),
            # --init: an init process is PID 1 and passes SIGTERM on; Python as PID 1 would ignore it
            *("--init", "--read-only", "--tmpfs", "/tmp"),
            *limits(spec),
            *(f"--volume={m}" for m in mounts),
            *(f"--env={k}={v}" for k, v in env.items()),
            *(self.image, "step", step, "--work-dir", WORK_DIR, *flags),
        ]


def dataset_mount(args: dict[str, Any]) -> str | None:
    """A read-only mount of the step's dataset when it is a file or directory on this machine, where
    the container reads it: an absolute path as it is, a relative one from the image's WORKDIR."""
    config = yaml.safe_load(args.get("config") or "") or {}  # YAML text (prepare) or JSON (the others)
    dataset = args.get("dataset") or (config.get("dataset") if isinstance(config, dict) else None)
    if not isinstance(dataset, str) or "://" in dataset or not Path(dataset).exists():
        return None
    return f"{Path(dataset).resolve()}:{os.path.normpath(Path(IMAGE_WORKDIR) / dataset)}:ro"


def limits(step: Step) -> list[str]:
    """The step's limits from the contract, as a pod's resources.limits would set them."""
    r = step.resources
    return [f"--cpus={r.cpu_limit:g}", f"--memory={r.memory_limit_mib}m"]


def stream(command: list[str], container: str, deadline: int) -> tuple[int, list[str], bool]:
    """Run `docker run`, echoing the step's log lines as they come; stop the container at the deadline.

    Returns the exit code, the last lines of the log and whether the deadline stopped it."""
    tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        subprocess.run(["docker", "kill", container], capture_output=True, check=False)

    timer = threading.Timer(deadline, stop)
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        timer.start()
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                print(line, end="", file=sys.stderr, flush=True)
                tail.append(line)
            code = proc.wait()
        except Interrupted:  # `docker run` does not stop its container when we are stopped
            docker_stop(container)
            raise
        finally:
            timer.cancel()
    return code, list(tail), expired.is_set()


def docker_stop(*containers: str) -> None:
    subprocess.run(
        ["docker", "stop", "--time", str(STOP_SECONDS), *containers],
        capture_output=True,
        check=False,
        timeout=STOP_SECONDS + 30,
    )


def _writable(directory: Path) -> None:
    # The image runs as its own non-root user, whatever the host user owning the work dir is.
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)


def _error(code: int, step: str, tail: list[str]) -> BaseException:
    if code - 128 in (signal.SIGINT, signal.SIGTERM):  # stopped by Docker or the kubelet, not failed
        return Interrupted(code - 128)
    lines = [line.strip() for line in tail if line.strip()] or [f"exit code {code}"]
    message = f"step {step} failed in its container: {lines[-1].removeprefix('modelyard: error: ')}"
    for error in (TransientError, BadInputError):
        if code == error.exit_code:
            return error(message)
    return ModelyardError(message)
