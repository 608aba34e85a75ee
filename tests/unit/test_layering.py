"""The architecture's import rules, one per directory, checked on the source.

Each layer imports only the layers below it: core (exit codes, errors, signals, settings) imports
nothing of modelyard; the contract builds on core; backends (MLflow, alerts) and ml (datasets,
columns, the model) on the contract; quality (profiles, drift, checks) on ml; the steps on all of
those but never on another step; serving (MLflow's scoring server for one model version) on
backends. The runners and the Argo definitions read only core and the contract; the CLI may import
anything. No module imports itself through a cycle.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
BELOW: Final[dict[str, set[str]]] = {
    "core": set(),
    "contract": {"core"},
    "backends": {"core", "contract"},
    "ml": {"core", "contract"},
    "quality": {"core", "contract", "ml"},
    "steps": {"core", "contract", "backends", "ml", "quality"},
    "serving": {"core", "contract", "backends"},
    "runner": {"core", "contract"},
    "workflows": {"core", "contract"},
    "cli": {"core", "contract", "backends", "ml", "quality", "steps", "serving", "runner", "workflows"},
}
# Modules outside the layer directories, and the layer they belong to.
LOOSE: Final = {
    "modelyard": "core",  # __version__
    "modelyard.dates": "ml",  # at the top because registered models name its classes
    "modelyard.__main__": "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> list[Path]:
    return sorted((ROOT / "modelyard").rglob("*.py")) + sorted((ROOT / "workflows").rglob("*.py"))


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(path: Path) -> set[str]:
    """Every project module the file imports, at the top or inside a function: `from a import b`
    counts as importing a.b when b is a module, else as importing a."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                names.add(child if _is_module(child) else node.module)
    return {n for n in names if n.split(".")[0] in ("modelyard", "workflows") and _is_module(n)}


def layer(module: str) -> str:
    if module in LOOSE:
        return LOOSE[module]
    top, _, rest = module.partition(".")
    return "workflows" if top == "workflows" else rest.split(".")[0]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    me = module_name(path)
    allowed = BELOW[layer(me)] | {layer(me)}
    wrong = sorted(f"{name} ({layer(name)})" for name in imported(path) if layer(name) not in allowed)
    assert not wrong, f"{me} ({layer(me)}) may import only {sorted(allowed)}: {wrong}"
    if layer(me) == "steps":
        steps = sorted(n for n in imported(path) if layer(n) == "steps" and n not in (me, "modelyard.steps"))
        assert not steps, f"{me} imports other steps: {steps}"


def test_every_module_belongs_to_a_layer_and_every_layer_has_modules() -> None:
    """The rules above would pass vacuously if the directories and the rules drifted apart."""
    layers = {layer(module_name(p)) for p in sources()}
    assert layers == set(BELOW)
    assert {"modelyard.steps.train", "modelyard.core.errors", "modelyard.dates"} <= {
        module_name(p) for p in sources()
    }


def test_no_import_cycle() -> None:
    graph = {module_name(p): imported(p) - {module_name(p)} for p in sources()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
