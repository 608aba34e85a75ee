"""The step contract: every step's parameters, artifacts, output parameters, exit codes and
run-time limits; `records` types what the artifacts and JSON outputs hold.

This is the one place step knowledge lives. The CLI (`modelyard step ...`), the local runner, the
Docker runner and the Argo templates are all derived from `STEPS`; none of them repeats a name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from modelyard.contract.config import (
    CanaryThresholds,
    ModelName,
    MonitorThresholds,
    PipelineConfig,
    describe_errors,
    flat_fields,
)
from modelyard.contract.records import (
    CHALLENGER,
    Decision,
    RolloutOutcome,
    RunStatus,
    ValidationStatus,
    Verdict,
)
from modelyard.core.errors import BadInputError, ExitCode

# Where a container keeps its artifacts; Argo mounts each artifact at WORK_DIR/<artifact name>.
WORK_DIR: Final = "/tmp/modelyard"
# Output parameters are also written as files, WORK_DIR/outputs/<name>, for Argo's valueFrom.path.
OUTPUTS_DIR: Final = "outputs"


# Artifacts: directories passed between steps.
SPLITS: Final = "splits"
VALIDATION: Final = "validation"
EVALUATION: Final = "evaluation"
ARTIFACTS: Final[dict[str, str]] = {
    SPLITS: "train/validation/test Parquet files, the data profile and the dataset fingerprint",
    VALIDATION: "validation report (report.json, report.txt)",
    EVALUATION: "test metrics, gate results, the decision and plots",
}

RETRYABLE: Final = (ExitCode.TRANSIENT,)
# Every step: a stop signal ends any of them with 130/143 (never retried: someone stopped it).
STANDARD_EXITS: Final = (
    ExitCode.OK,
    ExitCode.BAD_INPUT,
    ExitCode.TRANSIENT,
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
)
# An MLflow run id (hex); checked because registry and run searches are filters built from it.
RunId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


@dataclass(frozen=True)
class Resources:
    """What a step's container asks for and may use: Argo's requests/limits, `docker run --cpus/--memory`."""

    cpu: float
    cpu_limit: float
    memory_mib: int
    memory_limit_mib: int


SMALL: Final = Resources(cpu=0.1, cpu_limit=1, memory_mib=256, memory_limit_mib=1024)
LARGE: Final = Resources(cpu=0.5, cpu_limit=2, memory_mib=1024, memory_limit_mib=4096)
DEADLINE: Final = 15 * 60  # seconds a step may run, unless it says otherwise
RETRIES: Final = 3  # attempts after the first, on a retryable exit code only


def kebab(name: str) -> str:
    """The outside name of a Python name: CLI flags, Argo parameters, output files."""
    return name.replace("_", "-")


P = TypeVar("P", bound=BaseModel)


def parse_params(model: type[P], values: dict[str, Any]) -> P:
    """Validate step parameters; a bad value is the caller's input error, not a crash."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise BadInputError(f"invalid parameters: {describe_errors(exc)}") from exc


def _empty_is_none(value: Any) -> Any:
    # Argo passes an unset optional parameter as "", which means "keep the configured value".
    return None if value == "" else value


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineStepParams(StepParams):
    config: str = Field(description="resolved pipeline config as JSON (the prepare step's output)")
    run_id: RunId = Field(description="MLflow parent run id (the prepare step's output)")


class PrepareParams(StepParams):
    """The config text, plus one optional flag per flat pipeline setting (added below from the config)."""

    config: str = Field("", description="pipeline config as YAML text; flags below override it")


def _override_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in flat_fields().items():
        optional = Annotated[info.annotation | None, BeforeValidator(_empty_is_none)]  # type: ignore[name-defined]
        fields[name] = (optional, Field(None, description=f"{info.description} (default from config)"))
    return fields


if not TYPE_CHECKING:  # the overrides' names and types are the config's own; steps read them as a dict
    PrepareParams = create_model("PrepareParams", __base__=PrepareParams, **_override_fields())


class TrainParams(PipelineStepParams):
    candidate: str = Field(description="one candidate as JSON (records.Candidate)")


class SelectParams(PipelineStepParams):
    results: str = Field(description="JSON list of every train instance's result (records.CandidateResult)")


class EvaluateParams(PipelineStepParams):
    candidate_run_id: RunId = Field(description="MLflow run of the selected candidate")


class RegisterParams(PipelineStepParams):
    model_name: ModelName = Field(
        description="registered model name as prepare resolved it (the key of the per-model promotion lock)"
    )


class FinishParams(StepParams):
    run_id: str = Field(
        "",
        pattern=r"^([0-9a-f]{32})?$",
        description="MLflow parent run id; empty when the pipeline failed before it existed",
    )
    status: RunStatus = Field(description="pipeline status")
    message: str = Field("", description="why the pipeline failed, if it did")


class RollbackParams(StepParams):
    model_name: ModelName = Field(description="registered model name")
    reason: str = Field("manual rollback", description="why, recorded on the versions")
    namespace: str = Field(
        "",
        description="namespace of the model's serving Rollout, whose traffic moves too; empty: the kubeconfig context's, in a pod its own",
    )


DEPLOY_TIMEOUT: Final = 15 * 60  # seconds: every canary step and pod start of a model's update


class DeployParams(StepParams):
    model_name: ModelName = Field(description="registered model to serve (one of the chart's serving.models)")
    version: str = Field(
        "", pattern=r"^([0-9]+)?$", description="version to deploy; empty: the one --alias names"
    )
    alias: str = Field(
        CHALLENGER, min_length=1, description="alias whose version is deployed when --version is empty"
    )
    namespace: str = Field(
        "", description="namespace of the serving Rollouts; empty: the kubeconfig context's, in a pod its own"
    )
    timeout: int = Field(
        DEPLOY_TIMEOUT, ge=1, description="seconds an update may take to finish before it is aborted"
    )


class _CanaryTarget(StepParams):
    model_name: ModelName = Field(description="registered model being rolled out")
    rollout: str = Field(
        min_length=1, description="its serving Rollout: the Services <rollout>-stable and -canary"
    )
    window_seconds: int = Field(30, ge=1, description="how long Traefik's metrics are watched")
    dataset: str = Field(
        "",
        description="rows sent to both versions (with the label: scored too); empty: the version's input example",
    )
    metrics_url: str = Field(
        "http://traefik.traefik.svc:9100/metrics",
        description="Traefik's Prometheus metrics (per-service labels)",
    )


class AnalyzeParams(CanaryThresholds, _CanaryTarget):
    """What is analysed, then every canary threshold."""


MONITOR_EXPERIMENT: Final = "modelyard-monitoring"


class _MonitorTarget(StepParams):
    dataset: str = Field(
        description="batch of recent data: a dataset URI; with the label column, decay is checked too"
    )
    model_name: ModelName = Field(
        PipelineConfig.model_fields["model_name"].default,
        description="registered model whose champion is watched",
    )
    experiment: str = Field(MONITOR_EXPERIMENT, description="MLflow experiment of the monitoring runs")


class MonitorParams(MonitorThresholds, _MonitorTarget):
    """What to watch, then every monitoring threshold (the params are the thresholds)."""


class PrepareOutputs(BaseModel):
    run_id: str
    run_url: str
    config: str
    candidates: str
    model_name: str  # resolved from flags and config: what the promotion lock is keyed on


class SplitOutputs(BaseModel):
    fingerprint: str
    rows: int


class ValidateOutputs(BaseModel):
    status: ValidationStatus


class TrainOutputs(BaseModel):
    result: str  # records.CandidateResult as JSON


class SelectOutputs(BaseModel):
    candidate_run_id: str


class EvaluateOutputs(BaseModel):
    decision: Decision


class RegisterOutputs(BaseModel):
    version: str
    champion_version: str  # the champion when this run's register step finished
    decision: Decision  # what was done: a promotion refused because the champion moved is "reject"
    note: str = ""  # what was done and why, in words
    deploy_version: str = ""  # the version the deploy step ships as a canary (promotion: canary), else ""


class FinishOutputs(BaseModel):
    status: str  # the MLflow status the parent run was closed with, or why none was


class RollbackOutputs(BaseModel):
    champion_version: str
    previous_version: str


class DeployOutputs(BaseModel):
    version: str  # the version deployed
    previous_version: (
        str  # the version the stable pods served before ("" : none, or the alias at their start)
    )
    outcome: RolloutOutcome
    reasons: str = ""  # why an update was aborted, in Argo Rollouts' words


class AnalyzeOutputs(BaseModel):
    measured: str  # what was measured, in words


class MonitorOutputs(BaseModel):
    verdict: Verdict  # what a scheduler branches on
    run_id: str
    dataset: str  # the batch, for a retraining run
    config: str  # the champion's training config with the batch as dataset, for a retraining run


class StepName(StrEnum):
    """Every step's name: its CLI subcommand, its DAG task and Argo template, its MLflow run."""

    PREPARE = "prepare"
    SPLIT = "split"
    VALIDATE = "validate"
    TRAIN = "train"
    SELECT = "select"
    EVALUATE = "evaluate"
    REGISTER = "register"
    FINISH = "finish"
    MONITOR = "monitor"
    ROLLBACK = "rollback"
    DEPLOY = "deploy"
    ANALYZE = "analyze"


@dataclass(frozen=True)
class Step:
    """One pipeline step: what it takes, what it makes, how it exits."""

    name: str
    help: str
    function: str  # "module:function", imported on use so the CLI starts fast
    params: type[StepParams]
    outputs: type[BaseModel]
    inputs: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    exit_codes: tuple[ExitCode, ...] = STANDARD_EXITS
    resources: Resources = SMALL
    deadline: int = DEADLINE  # seconds: Argo's activeDeadlineSeconds, the Docker runner's timeout
    retries: int = RETRIES

    def load(self) -> Callable[[Any, Path], BaseModel]:
        module, attr = self.function.split(":")
        return getattr(importlib.import_module(module), attr)

    def run(self, params: StepParams, work_dir: Path) -> BaseModel:
        return self.load()(params, work_dir)


def _step(name: str, help: str, params: type[StepParams], outputs: type[BaseModel], **kw: Any) -> Step:
    return Step(name, help, f"modelyard.steps.{name}:{name}", params, outputs, **kw)


STEPS: Final[dict[str, Step]] = {
    s.name: s
    for s in (
        _step(
            StepName.PREPARE,
            "Resolve the config, open the MLflow parent run, list the candidates.",
            PrepareParams,
            PrepareOutputs,
        ),
        _step(
            StepName.SPLIT,
            "Load the dataset; write stratified, seeded train/validation/test splits, profile and fingerprint.",
            PipelineStepParams,
            SplitOutputs,
            produces=(SPLITS,),
            resources=LARGE,
        ),
        _step(
            StepName.VALIDATE,
            "Check the data like unit tests: schema, nulls, ranges, labels, drift against the champion.",
            PipelineStepParams,
            ValidateOutputs,
            inputs=(SPLITS,),
            produces=(VALIDATION,),
            resources=LARGE,
        ),
        _step(
            StepName.TRAIN,
            "Fit one candidate pipeline; log params, train/validation metrics and the gap.",
            TrainParams,
            TrainOutputs,
            inputs=(SPLITS,),
            resources=LARGE,
            deadline=60 * 60,
        ),
        _step(
            StepName.SELECT, "Pick the candidate with the best validation score.", SelectParams, SelectOutputs
        ),
        _step(
            StepName.EVALUATE,
            "Score the winner and the champion on the test set; apply the quality gates.",
            EvaluateParams,
            EvaluateOutputs,
            inputs=(SPLITS,),
            produces=(EVALUATION,),
            resources=LARGE,
            deadline=30 * 60,
        ),
        _step(
            StepName.REGISTER,
            "Register the model with lineage; alias challenger, and champion when promoted.",
            RegisterParams,
            RegisterOutputs,
            inputs=(SPLITS, EVALUATION),
        ),
        _step(
            StepName.FINISH,
            "Close the MLflow parent run with the pipeline's status.",
            FinishParams,
            FinishOutputs,
        ),
        _step(
            StepName.ROLLBACK,
            "Move the champion alias back to the previous champion.",
            RollbackParams,
            RollbackOutputs,
        ),
        _step(
            StepName.MONITOR,
            "Check a batch for drift against the champion's data and for decay; verdict ok, warn or retrain.",
            MonitorParams,
            MonitorOutputs,
        ),
        _step(
            StepName.DEPLOY,
            "Ship a registered version to its model's serving Rollout (a canary when one serves) and follow it: promoted, it becomes champion; aborted, the traffic stays on the stable version.",
            DeployParams,
            DeployOutputs,
            exit_codes=(*STANDARD_EXITS, ExitCode.REJECTED),
            deadline=DEPLOY_TIMEOUT + 5 * 60,
        ),
        _step(
            StepName.ANALYZE,
            "Judge a canary against the stable version: Traefik's error rate and p95 latency over a window, agreement on the same rows, the score on labelled rows; exit 3 to abort it.",
            AnalyzeParams,
            AnalyzeOutputs,
            exit_codes=(*STANDARD_EXITS, ExitCode.REJECTED),
            retries=0,
        ),
    )
}
