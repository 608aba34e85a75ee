"""Run each step in its own container of the trainer image, the way an Argo pod runs it.

Like a pod, a container sees only its own input artifacts (read-only), its output artifact
directories and a private outputs directory under WORK_DIR; the root filesystem is read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelyard.contract import (
    ENV_FIXED,
    ENV_FROM_SECRETS,
    ENV_IMAGE,
    ENV_TRACKING_URI,
    OUTPUTS_DIR,
    STEPS,
    WORK_DIR,
    kebab,
    parse_params,
)
from modelyard.errors import BadInputError, ModelyardError, TransientError


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

    def __call__(self, step: str, args: dict[str, Any], work_dir: Path) -> BaseModel:
        spec = STEPS[step]
        parse_params(spec.params, args)  # a bad value fails here, not in a container
        with tempfile.TemporaryDirectory(dir=work_dir) as outputs:
            command = self.command(step, args, work_dir, Path(outputs))
            done = subprocess.run(command, capture_output=True, text=True)
            if done.stderr:
                print(done.stderr, end="", file=sys.stderr)
            if done.returncode != 0:
                raise _error(done.returncode, step, done.stderr)
            values = {name: (Path(outputs) / kebab(name)).read_text() for name in spec.outputs.model_fields}
        return spec.outputs(**values)

    def command(self, step: str, args: dict[str, Any], work_dir: Path, outputs: Path) -> list[str]:
        spec = STEPS[step]
        mounts = [f"{(work_dir / a).resolve()}:{WORK_DIR}/{a}:ro" for a in spec.inputs]
        for artifact in spec.produces:
            _writable(work_dir / artifact)
        mounts += [f"{(work_dir / a).resolve()}:{WORK_DIR}/{a}" for a in spec.produces]
        _writable(outputs)
        mounts.append(f"{outputs.resolve()}:{WORK_DIR}/{OUTPUTS_DIR}")
        env = {ENV_TRACKING_URI: self.tracking_uri, ENV_IMAGE: self.image} | ENV_FIXED
        env |= {name: os.environ[name] for name in ENV_FROM_SECRETS if name in os.environ}
        env |= {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP_REQUEST_")}
        flags = [f"--{kebab(k)}={'' if v is None else v}" for k, v in args.items()]
        return [
            *("docker", "run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp"),
            *(f"--volume={m}" for m in mounts),
            *(f"--env={k}={v}" for k, v in env.items()),
            *(self.image, "step", step, "--work-dir", WORK_DIR, *flags),
        ]


def _writable(directory: Path) -> None:
    # The image runs as its own non-root user, whatever the host user owning the work dir is.
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)


def _error(code: int, step: str, stderr: str) -> ModelyardError:
    last = (stderr.strip().splitlines() or [f"exit code {code}"])[-1].removeprefix("modelyard: error: ")
    message = f"step {step} failed in its container: {last}"
    for error in (TransientError, BadInputError):
        if code == error.exit_code:
            return error(message)
    return ModelyardError(message)
