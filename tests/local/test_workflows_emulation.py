"""Emulate Argo runs of the emitted `modelyard-train` and `modelyard-monitor` YAML on this machine.

A wiring check, not Argo: the YAML (not the Hera objects) is walked in DAG order, or step group by
step group; parameters, task/step outputs and `{{item}}` are substituted the way the controller
does, fan-out outputs are aggregated into a JSON list, each pod's `args` run as a `modelyard step`
subprocess in its own work directory, and artifacts are copied from the producing pod's directory.
A step's or task's `when` is evaluated after substitution; a resource template is not applied, its manifest is
substituted and kept. Then the exit handler.
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
    else [sys.executable, "-c", "import sys; from modelyard.cli.main import main; sys.exit(main())"]
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


def condition(expression: str) -> bool:
    """A substituted `when` of the one form the workflows use: `<a> == <b>` or `<a> != <b>`."""
    match = re.fullmatch(r"\s*'?([^'=!]*?)'?\s*(==|!=)\s*'?([^'=!]*?)'?\s*", expression)
    assert match, f"unsupported when expression: {expression!r}"
    left, op, right = match.groups()
    return (left == right) is (op == "==")


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
    # Steps templates: each step's outputs (`steps.<name>.outputs.parameters.<output>`), each
    # `when` as evaluated, and each resource template's manifest after substitution.
    scope: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    # The pod that failed the run: its name, exit code and last stderr line (the CLI's one-line error).
    failure: PodFailed | None = None

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

    def inputs(self, name: str, tname: str, args: dict[str, str]) -> dict[str, str]:
        """The scope inside a template: workflow globals and its input parameters."""
        local = dict(self.globals)
        for p in self.templates[tname].get("inputs", {}).get("parameters", []):
            value = args.get(p["name"], p.get("value", p.get("default")))
            assert value is not None, f"{name}: inputs.parameters.{p['name']} was not supplied"
            local[f"inputs.parameters.{p['name']}"] = substitute(value, self.globals, name)
        return local

    def run_pod(self, name: str, tname: str, args: dict[str, str], arts: dict[str, Path]) -> Pod:
        template = self.templates[tname]
        local = self.inputs(name, tname, args)
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
            lines = done.stderr.strip().splitlines()
            raise PodFailed(name, done.returncode, lines[-1] if lines else "")
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
            if "when" in task:
                self.conditions[name] = condition(substitute(task["when"], self.globals | scope, name))
                if not self.conditions[name]:
                    continue
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

    def run_steps(self, tname: str) -> None:
        """Step groups in order (a group's steps one after another: only the wiring is checked)."""
        for group in self.templates[tname]["steps"]:
            for step in group:
                name = step["name"]
                if "when" in step:
                    self.conditions[name] = condition(
                        substitute(step["when"], self.globals | self.scope, name)
                    )
                    if not self.conditions[name]:
                        continue
                args = {
                    p["name"]: substitute(p["value"], self.globals | self.scope, name)
                    for p in step.get("arguments", {}).get("parameters", [])
                }
                template = self.templates[step["template"]]
                if "resource" in template:
                    local = self.inputs(name, step["template"], args)
                    self.resources[name] = substitute(template["resource"]["manifest"], local, name)
                    continue
                pod = self.run_pod(name, step["template"], args, {})
                for output, value in pod.params.items():
                    self.scope[f"steps.{name}.outputs.parameters.{output}"] = value

    def run(self, parameters: dict[str, str]) -> str:
        self.start(parameters)
        spec = self.doc["spec"]
        status, failures = "Succeeded", []
        try:
            template = self.templates[spec["entrypoint"]]
            (self.run_steps if "steps" in template else self.run_dag)(spec["entrypoint"])
        except PodFailed as exc:
            self.failure = exc
            status, failures = "Failed", [{"displayName": exc.pod, "message": f"exit code {exc.exit_code}"}]
        self.globals |= {"workflow.status": status, "workflow.failures": json.dumps(failures)}
        if "onExit" in spec:
            self.run_pod(spec["onExit"], spec["onExit"], {}, {})
        return status


class PodFailed(Exception):
    def __init__(self, pod: str, exit_code: int, last_line: str) -> None:
        super().__init__(pod, exit_code, last_line)
        self.pod, self.exit_code, self.last_line = pod, exit_code, last_line


SMALL_SEARCH = """\
search_space:
  logistic_regression: {C: [1.0]}
  random_forest: {n_estimators: [20], max_depth: [3]}
"""


def migrated_store(directory: Path) -> str:
    """An MLflow store whose schema exists, so the parallel train pods do not race in migrations."""
    uri = f"sqlite:///{directory / 'mlflow.db'}"
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


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return migrated_store(tmp_path)


@dataclass
class EmulatedTraining:
    emulator: Emulator
    status: str
    tracking_uri: str
    model: str


@pytest.fixture(scope="module")
def emulated_training(tmp_path_factory: pytest.TempPathFactory) -> EmulatedTraining:
    """One emulated training run, shared: test_one_... checks it, the monitor test monitors its champion."""
    root = tmp_path_factory.mktemp("emulated-training")
    uri = migrated_store(root)
    emulator, status = emulate_training(root / "pods", uri, "emulated-model")
    return EmulatedTraining(emulator, status, uri, "emulated-model")


def emulate(doc: dict[str, Any], root: Path, params: dict[str, str]) -> tuple[Emulator, str]:
    """One emulated run of a Workflow(Template) document, its pods' logs printed on the way out."""
    emulator = Emulator(doc, root)
    try:
        status = emulator.run(params)
    finally:
        print("\n".join(emulator.log))
    return emulator, status


def emulate_training(root: Path, tracking_uri: str, model_name: str) -> tuple[Emulator, str]:
    doc = yaml.safe_load((MANIFEST_DIR / "train.yaml").read_text())
    params = {
        "config": SMALL_SEARCH,  # YAML text with newlines, passed as one argument like Argo does
        "dataset": "iris",
        "model-name": model_name,
        "tracking-uri": tracking_uri,
    }
    return emulate(doc, root, params)


def test_one_emulated_argo_run_registers_a_champion(emulated_training: EmulatedTraining) -> None:
    from mlflow import MlflowClient

    emulator, tracking_uri = emulated_training.emulator, emulated_training.tracking_uri
    assert emulated_training.status == "Succeeded"

    outputs = {k.rsplit(".", 1)[-1]: v for k, v in emulator.globals.items() if ".outputs." in k}
    assert {"decision", "version", "note", "run-url", "run-id"} <= set(outputs)
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(emulated_training.model, "champion")
    assert str(champion.version) == outputs["version"]
    assert outputs["note"] == client.get_run(outputs["run-id"]).data.tags["modelyard.note"] != ""
    assert client.get_run(outputs["run-id"]).info.status == "FINISHED"
    train_pods = [line for line in emulator.log if line.startswith("--- train-")]
    assert len(train_pods) == 2, "one train pod per candidate"
    # promotion: champion (the default): register moved the alias; the deploy task is skipped.
    assert emulator.conditions == {"deploy": False}
    assert not [line for line in emulator.log if line.startswith("--- deploy")]


def test_the_exit_handler_closes_the_parent_run_as_failed_when_a_step_fails(
    tmp_path: Path, tracking_uri: str
) -> None:
    from mlflow import MlflowClient

    from modelyard.ml.datasets import load_dataset

    one_class = tmp_path / "one-class.csv"  # the parent run exists; validation then fails
    load_dataset("iris").assign(target="setosa").to_csv(one_class, index=False)
    doc = yaml.safe_load((MANIFEST_DIR / "train.yaml").read_text())
    params = {"config": SMALL_SEARCH, "dataset": str(one_class), "tracking-uri": tracking_uri}
    emulator, status = emulate(doc, tmp_path / "pods", params)
    assert status == "Failed"
    failure = emulator.failure
    assert failure is not None
    # Bad input (exit 2, not retried), said in one line; a crash (exit 1) would fail here.
    assert (failure.pod, failure.exit_code) == ("validate", 2), failure.args
    assert failure.last_line.startswith("modelyard: error: data validation failed: "), failure.last_line
    uid = emulator.globals["workflow.uid"]
    (run,) = MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()],
        f"tags.`modelyard.workflow_uid` = '{uid}'",
    )
    assert run.info.status == "FAILED"
    assert "validate" in run.data.tags["modelyard.failure"]


def test_an_emulated_monitor_run_submits_modelyard_train_with_a_drifted_batch_only(
    tmp_path: Path, emulated_training: EmulatedTraining
) -> None:
    from modelyard.ml.datasets import load_dataset

    model, tracking_uri = emulated_training.model, emulated_training.tracking_uri
    assert emulated_training.status == "Succeeded", "the monitor needs a champion"
    cron = yaml.safe_load((MANIFEST_DIR / "monitor-cron.yaml").read_text())
    assert cron["kind"] == "CronWorkflow"
    workflow = {"spec": cron["spec"]["workflowSpec"]}  # what the controller runs on schedule
    min_rows = int(
        next(p["value"] for p in workflow["spec"]["arguments"]["parameters"] if p["name"] == "min-rows")
    )

    iris = load_dataset("iris")
    fresh = iris.sample(2 * min_rows, replace=True, random_state=1)
    features = [c for c in iris.columns if c != "target"]
    drifted = iris.sample(2 * min_rows, replace=True, random_state=2)
    drifted[features] = drifted[features] * 1.5 + 2.0  # every feature moved well beyond its range
    batches = {"fresh": tmp_path / "fresh.csv", "drifted": tmp_path / "drifted.csv"}
    fresh.to_csv(batches["fresh"], index=False)
    drifted.to_csv(batches["drifted"], index=False)

    runs = {}
    for name, batch in batches.items():
        params = {"dataset": str(batch), "model-name": model, "tracking-uri": tracking_uri}
        runs[name], status = emulate(workflow, tmp_path / name, params)
        assert status == "Succeeded", name

    verdict = "steps.monitor.outputs.parameters.verdict"
    run = runs["drifted"]
    assert run.scope[verdict] == "retrain"
    assert run.conditions == {"retrain": True}
    submitted = yaml.safe_load(run.resources["retrain"])
    assert submitted["apiVersion"] == "argoproj.io/v1alpha1" and submitted["kind"] == "Workflow"
    assert submitted["metadata"]["generateName"] == "modelyard-train-"
    assert submitted["spec"]["workflowTemplateRef"] == {"name": "modelyard-train"}
    arguments = {p["name"]: p["value"] for p in submitted["spec"]["arguments"]["parameters"]}
    config = json.loads(arguments["config"])  # the champion's training config, on the batch
    assert config["dataset"] == str(batches["drifted"])
    assert config["model_name"] == model
    assert config["label"] == "target"

    run = runs["fresh"]
    assert run.scope[verdict] != "retrain"
    assert run.conditions == {"retrain": False}
    assert run.resources == {}, "no Workflow is submitted"
