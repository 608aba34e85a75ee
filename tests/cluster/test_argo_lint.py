"""Argo's own linter (`argo lint --offline`, the CLI make cluster-up builds) on the emitted Argo YAML
and on the chart's render: here rather than in tests/unit so that a cold CI builds Argo once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from workflows.compile import MANIFEST_DIR

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def argo() -> str:
    from argo_tools import argo_cli

    return argo_cli()  # built by make cluster-up beside the controller


def argo_lint(argo: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    """Argo's own linter, offline: references between the given files are resolved among them."""
    return subprocess.run(
        [argo, "lint", "--offline", "--output", "simple", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_argo_lint_accepts_every_emitted_manifest(argo: str) -> None:
    linted = argo_lint(argo, *sorted(MANIFEST_DIR.glob("*.yaml")))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "no linting errors found" in linted.stdout


@pytest.mark.parametrize("scenario_name", ["default", "kind"])
def test_argo_lint_accepts_the_chart_render(argo: str, scenario_name: str, tmp_path: Path) -> None:
    from chart_helpers import is_argo, scenario, write_yaml

    objs = [o for o in scenario(scenario_name) if is_argo(o)]
    assert {o["kind"] for o in objs} == {"WorkflowTemplate", "CronWorkflow"}
    linted = argo_lint(argo, write_yaml(tmp_path / "chart.yaml", objs))
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_argo_lint_rejects_a_broken_reference(argo: str, tmp_path: Path) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / "train.yaml").read_text())
    dag = doc["spec"]["templates"][0]
    task = dag["dag"]["tasks"][1]
    task["template"] = "no-such-template"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    linted = argo_lint(argo, broken)
    assert linted.returncode != 0  # argo's own exit code, not modelyard's
    problem = f"templates.{dag['name']}.tasks.{task['name']} template name 'no-such-template' undefined"
    assert problem in linted.stdout, linted.stdout + linted.stderr
