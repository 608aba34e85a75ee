"""WorkflowTemplate `modelyard-train`: the training DAG of `modelyard.contract.dag.TRAINING` for Argo."""

from __future__ import annotations

from typing import Final

from hera.workflows import DAG, Artifact, Parameter, Task, WorkflowTemplate

from modelyard.contract import PrepareParams, kebab
from modelyard.contract.dag import EXIT_HANDLER, TRAINING, AllOutputs, Item, PipelineInput, Source, TaskOutput
from modelyard.contract.dag import Task as PipelineTask
from workflows.common import (
    MUTEX_KEY,
    champion_mutex,
    params_as_arguments,
    platform_parameters,
    ref,
    step_template,
    workflow_param,
    workflow_spec_defaults,
)

NAME: Final = "modelyard-train"
ENTRYPOINT: Final = "pipeline"
WORKFLOW_DEADLINE: Final = 4 * 3600
# Step outputs that become workflow outputs (`argo get`, the UI, `modelyard submit --wait`).
GLOBAL_OUTPUTS: Final[dict[str, tuple[str, ...]]] = {
    "prepare": ("run_id", "run_url"),
    "register": ("decision", "version", "champion_version", "note"),
    "deploy": ("outcome", "reasons"),
}
# The steps that move `champion`; each holds the per-model mutex while it runs.
CHAMPION_MOVES: Final = ("register", "deploy")
# The exit handler takes no arguments in Argo; its inputs are fixed to workflow variables. It finds
# the parent run by the workflow uid, since prepare (and so its run-id output) may never have run.
EXIT_VALUES: Final = {
    "run_id": "",
    "status": ref("workflow.status"),
    "message": ref("workflow.failures"),
}


def source_ref(source: Source) -> str:
    """Where an argument comes from, as an Argo expression."""
    match source:
        case PipelineInput(name):
            return workflow_param(kebab(name))
        case TaskOutput(task, output) | AllOutputs(task, output):
            # Argo aggregates an output of a fanned-out task into a JSON list of every instance's value.
            return ref(f"tasks.{task}.outputs.parameters.{kebab(output)}")
        case Item():
            return ref("item")
    raise TypeError(f"unknown argument source {source!r}")


def dag_task(task: PipelineTask) -> Task:
    global_outputs = GLOBAL_OUTPUTS.get(task.name, ())
    template = step_template(
        task.step,
        defaults={n: str(f.default) for n, f in task.step.params.model_fields.items() if n not in task.args},
        global_outputs=global_outputs,
        synchronization=champion_mutex() if task.name in CHAMPION_MOVES else None,
    )
    arguments: list[Parameter | Artifact] = [
        Parameter(name=kebab(name), value=source_ref(source)) for name, source in task.args.items()
    ]
    arguments += [
        Artifact(name=kebab(art), from_=ref(f"tasks.{producer}.outputs.artifacts.{kebab(art)}"))
        for art, producer in task.artifacts.items()
    ]
    return Task(
        name=task.name,
        template=template,
        arguments=arguments,
        with_param=source_ref(task.fan_out) if task.fan_out else None,
        depends=" && ".join(task.depends_on()) or None,
        when=f"'{source_ref(task.when)}' != ''" if task.when else None,
    )


def _check() -> None:
    steps = {t.name: t.step for t in TRAINING}
    for task, outputs in GLOBAL_OUTPUTS.items():
        missing = set(outputs) - set(steps[task].outputs.model_fields)
        assert not missing, f"GLOBAL_OUTPUTS names outputs {task} does not have: {missing}"
    assert set(EXIT_VALUES) == set(EXIT_HANDLER.params.model_fields), "EXIT_VALUES must cover FinishParams"
    for task in CHAMPION_MOVES:
        assert MUTEX_KEY in steps[task].params.model_fields, f"the champion mutex is keyed by {MUTEX_KEY}"


def build() -> WorkflowTemplate:
    _check()
    with WorkflowTemplate(
        name=NAME,
        entrypoint=ENTRYPOINT,
        on_exit=kebab(EXIT_HANDLER.name),
        arguments=params_as_arguments(PrepareParams) + platform_parameters(),
        active_deadline_seconds=WORKFLOW_DEADLINE,
        annotations={
            "workflows.argoproj.io/description": "modelyard training: prepare, split, validate, "
            "train candidates, select, evaluate, register; with promotion: canary, deploy.",
        },
        **workflow_spec_defaults(),
    ) as template:
        with DAG(name=ENTRYPOINT):
            for task in TRAINING:
                dag_task(task)
        step_template(EXIT_HANDLER, values=EXIT_VALUES)
    return template
