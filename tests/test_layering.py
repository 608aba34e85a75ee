"""The architecture's import rules, checked on the source: step knowledge lives in the contract.

- The contract (contract/, with the config, tasks and exit codes it is built from) imports nothing
  else of modelyard.
- Foundations (data, model, drift, registry, tracking, ...) never import steps, runners or the CLI.
- A step never imports another step.
- The runners and the Argo definitions read only the contract and the DAG (modelyard.pipeline).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
CONTRACT: Final = {
    "modelyard",  # __version__
    "modelyard.contract",
    "modelyard.contract.records",
    "modelyard.config",
    "modelyard.tasks",
    "modelyard.errors",
}
DAG: Final = "modelyard.pipeline"
RUNNERS: Final = {"modelyard.runner.local", "modelyard.runner.docker", "modelyard.runner.retention"}
ENTRY: Final = {"modelyard.cli", "modelyard.cli_argo", "modelyard.runner.summary"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every project module the file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in ("modelyard", "workflows") and _is_module(n)}


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def kind(module: str) -> str:
    if module in CONTRACT:
        return "contract"
    if module == DAG:
        return "dag"
    if module.startswith("modelyard.steps."):
        return "step"
    if module in RUNNERS or module.startswith("workflows"):
        return "runner"
    if module in ENTRY:
        return "entry"
    return "foundation"


ALLOWED: Final = {
    "contract": {"contract"},
    "dag": {"contract"},
    "foundation": {"contract", "foundation"},
    "step": {"contract", "foundation"},
    "runner": {"contract", "dag", "runner"},
    "entry": {"contract", "dag", "foundation", "step", "runner", "entry"},
}


@pytest.mark.parametrize(
    "path", sources("modelyard") + sources("workflows"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_imports_follow_the_layers(path: Path) -> None:
    me = module_name(path)
    wrong = sorted(
        f"{name} ({kind(name)})"
        for name in imported(path)
        if kind(name) not in ALLOWED[kind(me)] and name != me
    )
    assert not wrong, f"{me} ({kind(me)}) may import only {sorted(ALLOWED[kind(me)])}: {wrong}"


def test_the_layers_are_not_empty() -> None:
    """The rules above would pass vacuously if the module names stopped matching."""
    kinds = {kind(module_name(p)) for p in sources("modelyard") + sources("workflows")}
    assert kinds == set(ALLOWED)
    assert "modelyard.steps.train" in {module_name(p) for p in sources("modelyard")}
