"""Emulate one Argo run of the emitted `modelyard-train` YAML on this machine.

A wiring check, not Argo: the YAML (not the Hera objects) is walked in DAG order; parameters,
task outputs and `{{item}}` are substituted the way the controller does, fan-out outputs are
aggregated into a JSON list, each pod's `args` run as a `modelyard step` subprocess in its own
work directory, and artifacts are copied from the producing pod's directory. Then the exit handler.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.contract import WORK_DIR
from workflows.compile import MANIFEST_DIR

REF = re.compile(r"{{\s*(.*?)\s*}}")
EXECUTABLE = Path(sys.executable).parent / "modelyard"
MODELYARD = (
    [str(EXECUTABLE)]
    if EXECUTABLE.exists()
    else [sys.executable, "-c", "import sys; from modelyard.cli import main; sys.exit(main())"]
)


def substitute(text: str, scope: dict[str, str], where: str) -> str:
    def lookup(match: re.Match[str]) -> str:
        if match.group(1) not in scope:
            raise AssertionError(f"{where}: failed to resolve {{{{{match.group(1)}}}}}")
        return scope[match.group(1)]

    return REF.sub(lookup, text)


def item_text(item: Any) -> str:
    """`{{item}}` as Argo renders it: maps and lists as compact JSON with sorted keys."""
    if isinstance(item, dict | list):
        return json.dumps(item, separators=(",", ":"), sort_keys=True)
    return str(item)


def aggregate(values: list[str]) -> str:
    """Argo >= 3.6: a JSON list of the parsed values if each is a JSON object/array, else of strings."""
    try:
        if all(v.strip()[:1] in "{[" and v.strip() for v in values):
            return json.dumps([json.loads(v) for v in values])
    except json.JSONDecodeError:
        pass
    return json.dumps(values)


def dag_order(tasks: dict[str, dict[str, Any]]) -> list[str]:
    order: list[str] = []
    while len(order) < len(tasks):
        ready = [
            n
            for n, t in tasks.items()
            if n not in order and set(re.findall(r"[\w-]+", t.get("depends", ""))) <= set(order)
        ]
        assert ready, "DAG cycle"
        order += ready
    return order


@dataclass
class Pod:
    params: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)


@dataclass
class Emulator:
    doc: dict[str, Any]
    root: Path
    globals: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.templates = {t["name"]: t for t in self.doc["spec"]["templates"]}

    def start(self, parameters: dict[str, str]) -> None:
        spec_params = {p["name"]: p.get("value", "") for p in self.doc["spec"]["arguments"]["parameters"]}
        assert set(parameters) <= set(spec_params), "unknown workflow parameter"
        spec_params |= parameters
        self.globals = {f"workflow.parameters.{k}": v for k, v in spec_params.items()}
        self.globals |= {
            "workflow.name": "emulated",
            "workflow.uid": str(uuid.uuid4()),
            "workflow.namespace": "default",
        }

    def run_pod(self, name: str, tname: str, args: dict[str, str], arts: dict[str, Path]) -> Pod:
        template = self.templates[tname]
        local = dict(self.globals)
        for p in template.get("inputs", {}).get("parameters", []):
            value = args.get(p["name"], p.get("value", p.get("default")))
            assert value is not None, f"{name}: inputs.parameters.{p['name']} was not supplied"
            local[f"inputs.parameters.{p['name']}"] = substitute(value, self.globals, name)
        workdir = self.root / name
        for art in template.get("inputs", {}).get("artifacts", []):
            shutil.copytree(arts[art["name"]], self.local_path(workdir, art["path"]))
        container = template["container"]
        for lock in template.get("synchronization", {}).get("mutexes", []):
            substitute(lock["name"], local, name)  # the lock name must resolve too
        argv = [substitute(a, local, name) for a in container["args"]]
        argv = [str(self.local_path(workdir, a)) if a.startswith(WORK_DIR) else a for a in argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELYARD_"))}
        env |= {e["name"]: substitute(e["value"], local, name) for e in container.get("env", [])}
        assert container["command"] == ["modelyard"]
        done = subprocess.run([*MODELYARD, *argv], env=env, capture_output=True, text=True, timeout=600)
        self.log.append(f"--- {name}: exit {done.returncode}\n{done.stderr[-3000:]}")
        pod = Pod()
        # Argo saves output parameters of a failed pod too; a missing file takes the default.
        for p in template.get("outputs", {}).get("parameters", []):
            path = self.local_path(workdir, p["valueFrom"]["path"])
            value = path.read_text() if path.exists() else p["valueFrom"].get("default")
            if value is None and done.returncode == 0:
                raise AssertionError(f"{name}: output {p['name']} not written to {path}")
            if value is not None:
                pod.params[p["name"]] = value
            if value is not None and "globalName" in p:
                self.globals[f"workflow.outputs.parameters.{p['globalName']}"] = value
        if done.returncode != 0:
            raise PodFailed(name, done.returncode)
        for a in template.get("outputs", {}).get("artifacts", []):
            pod.artifacts[a["name"]] = self.local_path(workdir, a["path"])
            assert pod.artifacts[a["name"]].is_dir(), f"{name}: artifact {a['name']} missing"
        return pod

    @staticmethod
    def local_path(workdir: Path, path: str) -> Path:
        assert path.startswith(WORK_DIR), path
        return workdir / path.removeprefix(WORK_DIR).lstrip("/")

    def run_dag(self, tname: str) -> None:
        tasks = {t["name"]: t for t in self.templates[tname]["dag"]["tasks"]}
        scope: dict[str, str] = {}
        artifacts: dict[str, Path] = {}
        for name in dag_order(tasks):
            task = tasks[name]
            items: list[Any] = [None]
            if "withParam" in task:
                items = json.loads(substitute(task["withParam"], self.globals | scope, name))
            jobs = []
            for index, item in enumerate(items):
                extra = {} if item is None else {"item": item_text(item)}
                arguments = task.get("arguments", {})
                args = {
                    p["name"]: substitute(p["value"], self.globals | scope | extra, name)
                    for p in arguments.get("parameters", [])
                }
                arts = {
                    a["name"]: artifacts[REF.fullmatch(a["from"]).group(1)]
                    for a in arguments.get("artifacts", [])
                }
                pod_name = name if item is None else f"{name}-{index}"
                jobs.append((pod_name, task["template"], args, arts))
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                pods = list(pool.map(lambda job: self.run_pod(*job), jobs))
            for output in pods[0].params:
                values = [pod.params[output] for pod in pods]
                scope[f"tasks.{name}.outputs.parameters.{output}"] = (
                    aggregate(values) if "withParam" in task else values[0]
                )
            for art, path in pods[0].artifacts.items():
                artifacts[f"tasks.{name}.outputs.artifacts.{art}"] = path

    def run(self, parameters: dict[str, str]) -> str:
        self.start(parameters)
        spec = self.doc["spec"]
        status, failures = "Succeeded", []
        try:
            self.run_dag(spec["entrypoint"])
        except PodFailed as exc:
            status, failures = "Failed", [{"displayName": exc.args[0], "message": f"exit code {exc.args[1]}"}]
        self.globals |= {"workflow.status": status, "workflow.failures": json.dumps(failures)}
        if "onExit" in spec:
            self.run_pod(spec["onExit"], spec["onExit"], {}, {})
        return status


class PodFailed(Exception):
    pass


SMALL_SEARCH = """\
search_space:
  logistic_regression: {C: [1.0]}
  random_forest: {n_estimators: [20], max_depth: [3]}
"""


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Create the schema once, so the parallel train pods do not race in migrations.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import mlflow; mlflow.set_tracking_uri({uri!r}); mlflow.search_experiments()",
        ],
        check=True,
        capture_output=True,
    )
    return uri


def test_one_emulated_argo_run_registers_a_champion(tmp_path: Path, tracking_uri: str) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    doc = yaml.safe_load((MANIFEST_DIR / "train.yaml").read_text())
    emulator = Emulator(doc, tmp_path / "pods")
    params = {
        "config": SMALL_SEARCH,  # YAML text with newlines, passed as one argument like Argo does
        "dataset": "iris",
        "model-name": "emulated-model",
        "tracking-uri": tracking_uri,
    }
    try:
        status = emulator.run(params)
    finally:
        print("\n".join(emulator.log))
    assert status == "Succeeded"

    outputs = {k.rsplit(".", 1)[-1]: v for k, v in emulator.globals.items() if ".outputs." in k}
    assert {"decision", "version", "run-url", "run-id"} <= set(outputs)
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias("emulated-model", "champion")
    assert champion.version == outputs["version"]
    assert client.get_run(outputs["run-id"]).info.status == "FINISHED"
    train_pods = [line for line in emulator.log if line.startswith("--- train-")]
    assert len(train_pods) == 2, "one train pod per candidate"
