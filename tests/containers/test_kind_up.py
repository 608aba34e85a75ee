"""scripts/kind-up.sh against a real kind binary and a running Docker engine (the containers tier:
make cluster-up starts dockerd)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    text = (REPO / "scripts" / "cluster" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_0-9]+)=(\S+)", text, re.MULTILINE))


def test_kind_up_refuses_a_kind_other_than_the_one_its_node_image_is_built_for(tmp_path: Path) -> None:
    """With a real kind binary of another release (built from the Go module proxy)."""
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine running (make cluster-up starts dockerd)")
    for needed in ("go", "helm", "kubectl"):
        if shutil.which(needed) is None and not (REPO / ".tools" / "bin" / needed).exists():
            pytest.skip(f"{needed} is not installed (make tools installs helm and kubectl)")
    other = "v0.32.0"
    assert other != pins()["KIND_VERSION"]
    built = subprocess.run(
        ["go", "install", f"sigs.k8s.io/kind@{other}"],
        env={**os.environ, "GOBIN": str(tmp_path), "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
        cwd="/",
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr
    path = os.pathsep.join([str(tmp_path), str(REPO / ".tools" / "bin"), os.environ["PATH"]])
    up = subprocess.run(
        ["bash", str(REPO / "scripts" / "kind-up.sh")],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
    )
    assert up.returncode == 1, up.stderr
    assert f"kind {other} is installed" in up.stderr and pins()["KIND_VERSION"] in up.stderr
