"""Lint of the emitted Argo YAML, semantic checks (Argo's own `argo lint` is in tests/cluster): references
resolve, the DAG is sound, every pod runs a real `modelyard step` command with limits, deadlines and a locked-down security context."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from modelyard.contract import RETRYABLE, STEPS, WORK_DIR, kebab
from modelyard.core.settings import ENV_IMAGE, ENV_TRACKING_URI, ENV_WORKFLOW_NAME, ENV_WORKFLOW_UID
from workflows.common import input_param, retry_expression
from workflows.compile import MANIFEST_DIR, MANIFESTS

REF = re.compile(r"{{\s*(.*?)\s*}}")
WORKFLOW_VARS = {
    "workflow.name",
    "workflow.uid",
    "workflow.namespace",
    "workflow.status",
    "workflow.failures",
}
ENV_NAMES = {ENV_TRACKING_URI, ENV_IMAGE, ENV_WORKFLOW_NAME, ENV_WORKFLOW_UID, "HOME"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFEST_DIR / name).read_text())


def workflow_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec a workflow runs: a CronWorkflow's `workflowSpec`, a WorkflowTemplate's `spec`."""
    return doc["spec"]["workflowSpec"] if doc["kind"] == "CronWorkflow" else doc["spec"]


# Every emitted manifest that defines templates of its own goes through every check below; the
# others only reference a WorkflowTemplate (test_every_manifest_defines_its_templates_or_references_one).
TEMPLATES = tuple(name for name in sorted(MANIFESTS) if "templates" in workflow_spec(load(name)))


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def refs(node: Any) -> list[str]:
    return [match for text in strings(node) for match in REF.findall(text)]


def by_name(items: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items or []}


def depends_on(task: dict[str, Any]) -> set[str]:
    """Task names in a `depends` expression (or the older `dependencies` list)."""
    names = re.findall(r"[A-Za-z0-9-]+(?:\.[A-Za-z]+)?", task.get("depends", ""))
    return {name.split(".")[0] for name in names} | set(task.get("dependencies", []))


def ancestors(tasks: dict[str, dict[str, Any]], name: str) -> set[str]:
    seen: set[str] = set()
    stack = list(depends_on(tasks[name]))
    while stack:
        upstream = stack.pop()
        if upstream == name:
            raise AssertionError(f"DAG cycle through {name}")
        if upstream not in seen:
            seen.add(upstream)
            stack.extend(depends_on(tasks[upstream]))
    return seen


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in workflow_spec(doc)["templates"] if "container" in t]


def invocations(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks of a DAG template or the steps of a steps template (its groups flattened)."""
    return template.get("dag", {}).get("tasks", []) + [
        step for group in template.get("steps", []) for step in group
    ]


def steps_before(template: dict[str, Any]) -> dict[str, set[str]]:
    """For each step of a steps template, the steps of the groups before its own (whose outputs it may read)."""
    before: dict[str, set[str]] = {}
    done: set[str] = set()
    for group in template.get("steps", []):
        for step in group:
            before[step["name"]] = set(done)
        done |= {step["name"] for step in group}
    return before


def cli_step(name: str) -> click.Command:
    from modelyard.cli.main import main

    step_group = main.commands["step"]
    assert isinstance(step_group, click.Group)
    assert name in step_group.commands, f"`modelyard step {name}` does not exist in the CLI"
    return step_group.commands[name]


@pytest.mark.parametrize("filename", TEMPLATES)
def test_every_referenced_template_exists(filename: str) -> None:
    spec = workflow_spec(load(filename))
    templates = by_name(spec["templates"])
    assert spec["entrypoint"] in templates
    assert spec.get("onExit", spec["entrypoint"]) in templates
    for template in templates.values():
        for task in invocations(template):
            assert task["template"] in templates, f"task {task['name']} -> missing {task['template']}"


@pytest.mark.parametrize("filename", TEMPLATES)
def test_dag_names_existing_tasks_and_has_no_cycles(filename: str) -> None:
    for template in workflow_spec(load(filename))["templates"]:
        names = [task["name"] for task in invocations(template)]
        assert len(names) == len(set(names)), f"{template['name']}: a task or step name repeats: {names}"
        tasks = by_name(template.get("dag", {}).get("tasks"))
        for name, task in tasks.items():
            assert depends_on(task) <= set(tasks), f"{name} depends on an unknown task"
            ancestors(tasks, name)


@pytest.mark.parametrize("filename", TEMPLATES)
def test_every_reference_resolves(filename: str) -> None:
    spec = workflow_spec(load(filename))
    params = {p["name"] for p in spec["arguments"]["parameters"]}
    templates = by_name(spec["templates"])
    global_outputs = {
        p["globalName"]
        for t in templates.values()
        for p in t.get("outputs", {}).get("parameters", [])
        if "globalName" in p
    }

    def check_global(ref: str, where: str) -> bool:
        if ref.startswith("workflow.parameters."):
            assert ref.removeprefix("workflow.parameters.") in params, f"{where}: {ref}"
        elif ref.startswith("workflow.outputs.parameters."):
            assert ref.removeprefix("workflow.outputs.parameters.") in global_outputs, f"{where}: {ref}"
        else:
            return ref in WORKFLOW_VARS
        return True

    for tname, template in templates.items():
        tasks = by_name(invocations(template))
        earlier = steps_before(template)
        for name, task in tasks.items():
            upstream = earlier[name] if "steps" in template else ancestors(tasks, name)
            for ref in refs(task):
                where = f"{tname}.{name}"
                if check_global(ref, where):
                    continue
                if ref == "item":
                    assert "withParam" in task or "withItems" in task, f"{where}: item outside a loop"
                    continue
                kind_of_call = "steps" if "steps" in template else "tasks"
                match = re.fullmatch(
                    rf"{kind_of_call}\.([\w-]+)\.outputs\.(parameters|artifacts)\.([\w-]+)", ref
                )
                assert match, f"{where}: unknown reference {ref}"
                producer, kind, output = match.groups()
                assert producer in upstream, f"{where}: reads {producer} without depending on it"
                produced = templates[tasks[producer]["template"]].get("outputs", {}).get(kind, [])
                assert output in by_name(produced), f"{where}: {producer} has no output {output}"
            # Arguments match the callee's inputs: every input without a value or default given,
            # nothing extra (an input with a fixed value takes none).
            inputs = templates[task["template"]].get("inputs", {})
            for kind in ("parameters", "artifacts"):
                given = set(by_name(task.get("arguments", {}).get(kind)))
                open_ = {i["name"] for i in inputs.get(kind, []) if "value" not in i}
                needed = {i for i in open_ if "default" not in by_name(inputs.get(kind, []))[i]}
                assert needed <= given <= open_, f"{tname}.{name} {kind}: given {given}, needs {needed}"
        own = {
            kind: set(by_name(template.get("inputs", {}).get(kind))) for kind in ("parameters", "artifacts")
        }
        body = {k: v for k, v in template.items() if k not in ("dag", "steps", "inputs")}
        for ref in refs(body) + refs(template.get("inputs", {})):
            if check_global(ref, tname):
                continue
            match = re.fullmatch(r"inputs\.(parameters|artifacts)\.([\w-]+)", ref)
            assert match and match.group(2) in own[match.group(1)], f"{tname}: unknown reference {ref}"


@pytest.mark.parametrize("filename", TEMPLATES)
def test_every_container_runs_the_image_parameter_and_a_real_modelyard_step(filename: str) -> None:
    for template in containers(load(filename)):
        container = template["container"]
        assert container["image"] == "{{workflow.parameters.image}}"
        assert container["command"] == ["modelyard"]
        args = container["args"]
        assert args[0] == "step" and args[1] in {kebab(s) for s in STEPS}, args[:2]
        command = cli_step(args[1])
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        flags = dict(zip(args[2::2], args[3::2], strict=True))
        assert set(flags) <= options, f"{args[1]}: flags the CLI lacks: {set(flags) - options}"
        required = {p.opts[0] for p in command.params if getattr(p, "required", False)}
        assert required <= set(flags), f"{args[1]}: required flags missing: {required - set(flags)}"
        step = STEPS[args[1]]
        assert set(flags) == {"--work-dir"} | {f"--{kebab(f)}" for f in step.params.model_fields}
        assert flags.pop("--work-dir") == WORK_DIR
        for flag, value in flags.items():
            assert value == input_param(flag.removeprefix("--")), (flag, value)


@pytest.mark.parametrize("filename", TEMPLATES)
def test_every_step_has_limits_deadline_retry_and_security_context(filename: str) -> None:
    for template in containers(load(filename)):
        name, container = template["name"], template["container"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"
        assert int(template["activeDeadlineSeconds"]) > 0, name
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["runAsNonRoot"] is True, name
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}, name
        retry = template["retryStrategy"]
        assert retry["expression"] == retry_expression(RETRYABLE), name
        assert int(retry["limit"]) > 0 and retry["backoff"]["duration"], name
        assert {e["name"] for e in container["env"]} == ENV_NAMES, name


def seconds(duration: str) -> int:
    """An Argo duration as the templates write it: 900s, 10m, 1h."""
    number, unit = int(duration[:-1]), duration[-1]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


@pytest.mark.parametrize("filename", TEMPLATES)
def test_every_attempt_of_a_step_may_run_its_whole_deadline_before_retries_run_out(filename: str) -> None:
    # Argo counts backoff.maxDuration from the first attempt and caps each retried pod's deadline
    # at what is left: a 10m window let a train step (deadline 3600 s) that exits 75 at minute 10
    # never be retried.
    for template in containers(load(filename)):
        retry, deadline = template["retryStrategy"], int(template["activeDeadlineSeconds"])
        window = seconds(retry["backoff"]["maxDuration"])
        assert window >= (int(retry["limit"]) + 1) * deadline, (template["name"], window, deadline)


@pytest.mark.parametrize("filename", TEMPLATES)
def test_workflow_has_a_deadline(filename: str) -> None:
    spec = workflow_spec(load(filename))
    assert int(spec.get("activeDeadlineSeconds", 0)) > 0, f"{filename}: no activeDeadlineSeconds"


@pytest.mark.parametrize("filename", TEMPLATES)
def test_workflow_spec_is_reliable_and_locked_down(filename: str) -> None:
    spec = workflow_spec(load(filename))
    assert spec["podGC"]["strategy"]
    assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0
    assert spec["serviceAccountName"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert any("emptyDir" in v for v in spec["volumes"] if v["name"] == "tmp")


def test_champion_moves_hold_the_same_per_model_mutex() -> None:
    train = by_name(load("train.yaml")["spec"]["templates"])
    rollback = by_name(load("rollback.yaml")["spec"]["templates"])
    register_lock = train["register"]["synchronization"]["mutexes"]
    rollback_lock = rollback["rollback"]["synchronization"]["mutexes"]
    assert register_lock == rollback_lock
    # Keyed on the template's own input: the model name as resolved, not a raw workflow parameter.
    assert register_lock[0]["name"] == "modelyard-champion-{{inputs.parameters.model-name}}"
    dag = by_name(train["pipeline"]["dag"]["tasks"])
    register_args = {p["name"]: p["value"] for p in dag["register"]["arguments"]["parameters"]}
    assert register_args["model-name"] == "{{tasks.prepare.outputs.parameters.model-name}}"
    assert "model-name" in {p["name"] for p in rollback["rollback"]["inputs"]["parameters"]}
    # promotion: canary: the training's deploy step moves champion too, under the same lock.
    assert train["deploy"]["synchronization"]["mutexes"] == register_lock
    unlocked = [n for n, t in train.items() if n not in ("register", "deploy") and "synchronization" in t]
    assert not unlocked


def test_training_exposes_decision_version_and_run_url_and_closes_the_run_on_exit() -> None:
    spec = load("train.yaml")["spec"]
    templates = by_name(spec["templates"])
    exported = {
        p.get("globalName") for t in templates.values() for p in t.get("outputs", {}).get("parameters", [])
    }
    assert {"decision", "version", "note", "run-url", "run-id"} <= exported
    finish = templates[spec["onExit"]]
    assert finish["container"]["args"][:2] == ["step", "finish"]
    values = {p["name"]: p.get("value") for p in finish["inputs"]["parameters"]}
    assert values["status"] == "{{workflow.status}}"
    # prepare may never have run: finish finds the parent run by the workflow uid in its env instead.
    assert values["run-id"] == ""
    env = {e["name"]: e.get("value") for e in finish["container"]["env"]}
    assert env["MODELYARD_WORKFLOW_UID"] == "{{workflow.uid}}"


def test_fan_out_runs_one_train_pod_per_candidate_and_select_reads_them_all() -> None:
    tasks = by_name(load("train.yaml")["spec"]["templates"][0]["dag"]["tasks"])
    assert tasks["train"]["withParam"] == "{{tasks.prepare.outputs.parameters.candidates}}"
    select = by_name(tasks["select"]["arguments"]["parameters"])
    assert select["results"]["value"] == "{{tasks.train.outputs.parameters.result}}"


def test_no_secrets_or_artifact_credentials_in_the_yaml() -> None:
    for path in sorted(Path(MANIFEST_DIR).glob("*.yaml")):
        text = path.read_text()
        for word in ("accessKeySecret", "secretKeySecret", "secretKeyRef", "password", "token"):
            assert word not in text, f"{path.name} mentions {word}"
        doc = yaml.safe_load(text)
        for template in workflow_spec(doc).get("templates", []):
            for source in template.get("container", {}).get("envFrom", []):
                assert source["secretRef"]["optional"] is True
            # Artifacts name no bucket or keys: the cluster's default artifact repository holds them.
            for artifact in artifacts(template):
                assert set(artifact) <= {"name", "path", "from"}, f"{path.name}: {artifact}"


def artifacts(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for io in ("inputs", "outputs"):
        yield from template.get(io, {}).get("artifacts", [])
    for task in template.get("dag", {}).get("tasks", []):
        yield from task.get("arguments", {}).get("artifacts", [])


def test_every_manifest_defines_its_templates_or_references_one() -> None:
    """No emitted manifest escapes the checks above: the ones without templates of their own run
    a WorkflowTemplate that is itself emitted (and so checked)."""
    assert {"train.yaml", "rollback.yaml", "monitor-cron.yaml"} <= set(TEMPLATES)
    emitted = {load(name)["metadata"]["name"] for name in MANIFESTS}
    for name in sorted(set(MANIFESTS) - set(TEMPLATES)):
        assert workflow_spec(load(name))["workflowTemplateRef"]["name"] in emitted, name


def test_cron_runs_the_training_template_with_known_parameters() -> None:
    cron, train = load("retrain-cron.yaml"), load("train.yaml")
    spec = cron["spec"]
    assert spec["workflowSpec"]["workflowTemplateRef"]["name"] == train["metadata"]["name"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["schedules"] and spec["timezone"]
    assert spec["startingDeadlineSeconds"] > 0
    known = {p["name"] for p in train["spec"]["arguments"]["parameters"]}
    assert {p["name"] for p in spec["workflowSpec"]["arguments"]["parameters"]} <= known


def test_the_monitor_s_submit_step_gives_argo_s_init_container_a_writable_tmp() -> None:
    """The executor runs with a read-only root filesystem; a resource template's init container
    writes the manifest to /tmp (on the cluster: `open /tmp/manifest.yaml: read-only file system`)."""
    cron = load("monitor-cron.yaml")
    templates = by_name(cron["spec"]["workflowSpec"]["templates"])
    patch = json.loads(templates["submit-training"]["podSpecPatch"])
    (init,) = patch["initContainers"]
    (volume,) = patch["volumes"]  # its own: a resource template's pod gets none of the workflow's
    assert init["name"] == "init"
    assert {"name": volume["name"], "mountPath": "/tmp"} in init["volumeMounts"]
    assert "emptyDir" in volume
