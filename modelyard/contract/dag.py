"""The training DAG: which step feeds which. Runners execute it; the Argo templates describe it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from modelyard.contract import EVALUATION, SPLITS, STEPS, PrepareParams, Step, StepName


@dataclass(frozen=True)
class PipelineInput:
    """A value the user gives the whole pipeline (a `modelyard run` flag, an Argo parameter)."""

    name: str


@dataclass(frozen=True)
class TaskOutput:
    """An output parameter of an upstream task."""

    task: str
    output: str


@dataclass(frozen=True)
class AllOutputs:
    """The JSON list of one output over every instance of a fanned-out task."""

    task: str
    output: str


@dataclass(frozen=True)
class Item:
    """The current element of the fan-out list."""


Source = PipelineInput | TaskOutput | AllOutputs | Item


@dataclass(frozen=True)
class Task:
    name: str
    step: Step
    args: dict[str, Source]
    artifacts: dict[str, str] = field(default_factory=dict)  # input artifact -> producing task
    fan_out: TaskOutput | None = None  # one instance per element of this JSON list
    after: tuple[str, ...] = ()  # ordering without data: e.g. train only after validation passed
    when: TaskOutput | None = None  # runs only when this output is not empty; else skipped

    def depends_on(self) -> list[str]:
        upstream = [s.task for s in self.args.values() if isinstance(s, TaskOutput | AllOutputs)]
        upstream += list(self.artifacts.values()) + list(self.after)
        upstream += [source.task for source in (self.fan_out, self.when) if source]
        return list(dict.fromkeys(upstream))


RUN_CONTEXT: Final[dict[str, Source]] = {
    "config": TaskOutput(StepName.PREPARE, "config"),
    "run_id": TaskOutput(StepName.PREPARE, "run_id"),
}

TRAINING: Final[tuple[Task, ...]] = (
    Task(
        StepName.PREPARE,
        STEPS[StepName.PREPARE],
        {name: PipelineInput(name) for name in PrepareParams.model_fields},
    ),
    Task(StepName.SPLIT, STEPS[StepName.SPLIT], RUN_CONTEXT),
    Task(StepName.VALIDATE, STEPS[StepName.VALIDATE], RUN_CONTEXT, artifacts={SPLITS: StepName.SPLIT}),
    Task(
        StepName.TRAIN,
        STEPS[StepName.TRAIN],
        RUN_CONTEXT | {"candidate": Item()},
        artifacts={SPLITS: StepName.SPLIT},
        fan_out=TaskOutput(StepName.PREPARE, "candidates"),
        after=(StepName.VALIDATE,),
    ),
    Task(
        StepName.SELECT,
        STEPS[StepName.SELECT],
        RUN_CONTEXT | {"results": AllOutputs(StepName.TRAIN, "result")},
    ),
    Task(
        StepName.EVALUATE,
        STEPS[StepName.EVALUATE],
        RUN_CONTEXT | {"candidate_run_id": TaskOutput(StepName.SELECT, "candidate_run_id")},
        artifacts={SPLITS: StepName.SPLIT},
    ),
    Task(
        StepName.REGISTER,
        STEPS[StepName.REGISTER],
        RUN_CONTEXT | {"model_name": TaskOutput(StepName.PREPARE, "model_name")},
        artifacts={SPLITS: StepName.SPLIT, EVALUATION: StepName.EVALUATE},
    ),
    # promotion: canary: the version register passed goes out through the model's serving Rollout.
    Task(
        StepName.DEPLOY,
        STEPS[StepName.DEPLOY],
        {
            "model_name": TaskOutput(StepName.PREPARE, "model_name"),
            "version": TaskOutput(StepName.REGISTER, "deploy_version"),
        },
        when=TaskOutput(StepName.REGISTER, "deploy_version"),
    ),
)

# Runs after the DAG whatever happened (Argo: the onExit handler), to close the parent run.
EXIT_HANDLER: Final = STEPS[StepName.FINISH]
