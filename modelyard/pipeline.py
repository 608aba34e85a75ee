"""The training DAG: which step feeds which. Runners execute it; the Argo templates describe it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from modelyard.contract import EVALUATION, SPLITS, STEPS, PrepareParams, Step


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

    def depends_on(self) -> list[str]:
        upstream = [s.task for s in self.args.values() if isinstance(s, TaskOutput | AllOutputs)]
        upstream += list(self.artifacts.values()) + list(self.after)
        if self.fan_out:
            upstream.append(self.fan_out.task)
        return list(dict.fromkeys(upstream))


RUN_CONTEXT: Final[dict[str, Source]] = {
    "config": TaskOutput("prepare", "config"),
    "run_id": TaskOutput("prepare", "run_id"),
}

TRAINING: Final[tuple[Task, ...]] = (
    Task("prepare", STEPS["prepare"], {name: PipelineInput(name) for name in PrepareParams.model_fields}),
    Task("split", STEPS["split"], RUN_CONTEXT),
    Task("validate", STEPS["validate"], RUN_CONTEXT, artifacts={SPLITS: "split"}),
    Task(
        "train",
        STEPS["train"],
        RUN_CONTEXT | {"candidate": Item()},
        artifacts={SPLITS: "split"},
        fan_out=TaskOutput("prepare", "candidates"),
        after=("validate",),
    ),
    Task("select", STEPS["select"], RUN_CONTEXT | {"results": AllOutputs("train", "result")}),
    Task(
        "evaluate",
        STEPS["evaluate"],
        RUN_CONTEXT | {"candidate_run_id": TaskOutput("select", "candidate_run_id")},
        artifacts={SPLITS: "split"},
    ),
    Task(
        "register",
        STEPS["register"],
        RUN_CONTEXT | {"model_name": TaskOutput("prepare", "model_name")},
        artifacts={SPLITS: "split", EVALUATION: "evaluate"},
    ),
)

# Runs after the DAG whatever happened (Argo: the onExit handler), to close the parent run.
EXIT_HANDLER: Final = STEPS["finish"]
