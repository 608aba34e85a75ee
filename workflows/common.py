"""One container template per step, projected from the step contract.

Everything step-specific (flags, inputs, outputs, artifacts, retry codes, env names) comes from
`modelyard.contract`; this module only adds what Kubernetes needs: image, resources, deadlines,
security context and the writable /tmp volume.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

from hera.workflows import Artifact, Container, Env, Parameter, Resources, RetryStrategy, WorkflowTemplate
from hera.workflows import models as m
from hera.workflows.env_from import SecretEnvFrom

from modelyard.contract import OUTPUTS_DIR, RETRYABLE, WORK_DIR, Step, StepParams, kebab
from modelyard.core.errors import ExitCode
from modelyard.core.settings import (
    ENV_FIXED,
    ENV_IMAGE,
    ENV_TRACKING_URI,
    ENV_WORKFLOW_NAME,
    ENV_WORKFLOW_UID,
)

ROOT: Final = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """The modelyard version, the same whether or not the source tree is installed."""
    pyproject = ROOT / "pyproject.toml"
    if pyproject.exists():
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    try:
        return version("modelyard")
    except PackageNotFoundError:
        return "0.0.0"


# Workflow parameters every template reads, besides the step parameters.
IMAGE: Final = "image"
TRACKING_URI: Final = "tracking-uri"
DEFAULT_IMAGE: Final = f"modelyard/trainer:{package_version()}"  # as scripts/build-images.sh tags it
DEFAULT_TRACKING_URI: Final = "http://modelyard-mlflow:5000"  # the chart's in-cluster MLflow Service
SERVICE_ACCOUNT: Final = "modelyard-workflow"
DATASET_SECRET: Final = "modelyard-dataset-s3"  # optional: AWS_* keys for s3:// datasets
ALERTS_SECRET: Final = "modelyard-alerts"  # optional: key MODELYARD_WEBHOOK_URL (modelyard.backends.alerts)
LABELS: Final = {"app.kubernetes.io/part-of": "modelyard"}

UID: Final = 10001  # the trainer image's non-root user
TMP_VOLUME: Final = "tmp"


def ref(expression: str) -> str:
    """An Argo template tag: ref("item") == "{{item}}"."""
    return "{{" + expression + "}}"


def workflow_param(name: str) -> str:
    return ref(f"workflow.parameters.{name}")


def input_param(name: str) -> str:
    return ref(f"inputs.parameters.{name}")


def output_path(output: str) -> str:
    return f"{WORK_DIR}/{OUTPUTS_DIR}/{kebab(output)}"


def artifact_path(artifact: str) -> str:
    return f"{WORK_DIR}/{artifact}"


def retry_expression(codes: Iterable[ExitCode] = RETRYABLE) -> str:
    """Argo retries a failed pod only when this is true: transient exit codes, never bad input."""
    return " || ".join(f"asInt(lastRetry.exitCode) == {int(code)}" for code in codes)


BACKOFF_SECONDS: Final = 15
BACKOFF_FACTOR: Final = 2


def resources(step: Step) -> Resources:
    """The step's requests and limits from the contract, as Kubernetes quantities."""
    r = step.resources
    return Resources(
        cpu_request=_cpu(r.cpu),
        cpu_limit=_cpu(r.cpu_limit),
        memory_request=_memory(r.memory_mib),
        memory_limit=_memory(r.memory_limit_mib),
    )


def _cpu(cores: float) -> str:
    return f"{cores:g}" if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _memory(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def retry_window(step: Step) -> int:
    """Seconds from a step's first attempt within which Argo may still retry it: every attempt may
    run its whole deadline, plus the backoff waits between them. Argo counts backoff.maxDuration from
    the first attempt and caps each retried pod's deadline at what is left of it."""
    waits = sum(BACKOFF_SECONDS * BACKOFF_FACTOR**attempt for attempt in range(step.retries))
    return (step.retries + 1) * step.deadline + waits


def platform_parameters(image: str = DEFAULT_IMAGE) -> list[Parameter]:
    return [
        Parameter(name=IMAGE, value=image, description="trainer image every step runs"),
        Parameter(name=TRACKING_URI, value=DEFAULT_TRACKING_URI, description="MLflow tracking server URL"),
    ]


def params_as_arguments(model: type[StepParams], defaults: dict[str, Any] | None = None) -> list[Parameter]:
    """Workflow parameters for every field of a params model; unset optional fields become ""."""
    out = []
    for name, info in model.model_fields.items():
        param = Parameter(name=kebab(name), description=info.description, enum=_enum(info.annotation))
        if name in (defaults or {}):
            param.value = str((defaults or {})[name])
        elif not info.is_required():  # a required field has no value: Argo asks for it at submit
            param.value = "" if info.default is None else str(info.default)
        out.append(param)
    return out


def _enum(annotation: Any) -> list[str] | None:
    """Choices of a Literal (or Optional Literal) field, with "" for "keep the configured value"."""
    for arg in (annotation, *get_args(annotation)):
        if get_origin(arg) is Literal:
            return ["", *map(str, get_args(arg))]
    return None


def pod_security_context() -> m.PodSecurityContext:
    return m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        fs_group=UID,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> m.SecurityContext:
    return m.SecurityContext(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=m.Capabilities(drop=["ALL"]),
    )


def tmp_volume() -> m.Volume:
    """The only writable path of a read-only root filesystem: artifacts, outputs, HOME."""
    return m.Volume(name=TMP_VOLUME, empty_dir=m.EmptyDirVolumeSource(size_limit=m.Quantity("2Gi")))


def step_env() -> list[Env]:
    return [
        Env(name=ENV_TRACKING_URI, value=workflow_param(TRACKING_URI)),
        Env(name=ENV_IMAGE, value=workflow_param(IMAGE)),
        Env(name=ENV_WORKFLOW_NAME, value=ref("workflow.name")),
        Env(name=ENV_WORKFLOW_UID, value=ref("workflow.uid")),
        *(Env(name=name, value=value) for name, value in ENV_FIXED.items()),
    ]


def step_template(
    step: Step,
    *,
    values: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
    global_outputs: Collection[str] = (),
    synchronization: m.Synchronization | None = None,
) -> Container:
    """The container template that runs `modelyard step <name>` with every parameter as a flag.

    values: fixed input values (the exit handler cannot be given arguments).
    defaults: input values used when the caller passes none.
    global_outputs: outputs also exported as workflow outputs, defaulting to "" when never written.
    """
    fields = list(step.params.model_fields)
    args = ["step", kebab(step.name), "--work-dir", WORK_DIR]
    for name in fields:
        args += [f"--{kebab(name)}", input_param(kebab(name))]
    inputs: list[Parameter | Artifact] = [_input(n, values or {}, defaults or {}) for n in fields]
    inputs += [Artifact(name=kebab(a), path=artifact_path(a)) for a in step.inputs]
    outputs: list[Parameter | Artifact] = [
        Parameter(
            name=kebab(o),
            value_from=m.ValueFrom(path=output_path(o), default="" if o in global_outputs else None),
            global_name=kebab(o) if o in global_outputs else None,
        )
        for o in step.outputs.model_fields
    ]
    outputs += [Artifact(name=kebab(a), path=artifact_path(a)) for a in step.produces]
    retryable = [code for code in RETRYABLE if code in step.exit_codes]
    return Container(
        name=kebab(step.name),
        image=workflow_param(IMAGE),
        command=["modelyard"],
        args=args,
        inputs=inputs,
        outputs=outputs,
        env=step_env(),
        env_from=[SecretEnvFrom(name=s, optional=True) for s in (DATASET_SECRET, ALERTS_SECRET)],
        resources=resources(step),
        # IntOrString fields are written as strings: Argo's JSON schema types them as strings.
        active_deadline_seconds=str(step.deadline),
        retry_strategy=RetryStrategy(
            limit=str(step.retries),
            retry_policy="Always",
            expression=retry_expression(retryable),
            backoff=m.Backoff(
                duration=f"{BACKOFF_SECONDS}s",
                factor=m.IntOrString(root=str(BACKOFF_FACTOR)),
                max_duration=f"{retry_window(step)}s",
            ),
        )
        if retryable
        else None,
        security_context=container_security_context(),
        volume_mounts=[m.VolumeMount(name=TMP_VOLUME, mount_path="/tmp")],
        synchronization=synchronization,
    )


def _input(name: str, values: dict[str, str], defaults: dict[str, str]) -> Parameter:
    if name in values:
        return Parameter(name=kebab(name), value=values[name])
    if name in defaults:
        return Parameter(name=kebab(name), default=defaults[name])
    return Parameter(name=kebab(name))


MUTEX_KEY: Final = "model_name"  # the input of every template that moves `champion`


def champion_mutex() -> m.Synchronization:
    """One lock per model: registering and rolling back both move the `champion` alias. Keyed on the
    template's own model-name input, the name as resolved (flags and config), not a raw parameter."""
    name = "modelyard-champion-" + input_param(kebab(MUTEX_KEY))
    return m.Synchronization(mutexes=[m.Mutex(name=name)])


def workflow_spec_defaults() -> dict[str, Any]:
    """Spec fields every modelyard WorkflowTemplate shares (keyword arguments for Hera)."""
    return {
        "service_account_name": SERVICE_ACCOUNT,
        "security_context": pod_security_context(),
        "volumes": [tmp_volume()],
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(seconds_after_success=24 * 3600, seconds_after_failure=7 * 24 * 3600),
        "labels": dict(LABELS),
    }


def cron_policy() -> dict[str, Any]:
    """What every modelyard CronWorkflow shares: UTC, one run at a time, skip long-missed runs."""
    return {
        "timezone": "Etc/UTC",
        "concurrency_policy": "Forbid",
        "starting_deadline_seconds": 3600,  # a run missed by over an hour (controller down) is skipped
        "successful_jobs_history_limit": 5,
        "failed_jobs_history_limit": 5,
    }


def champion_move_template(name: str, step: Step, deadline: int) -> WorkflowTemplate:
    """A WorkflowTemplate of one step that may move `champion` (rollback, deploy): it holds the
    mutex of the training template's register step, so one champion move happens at a time."""
    assert MUTEX_KEY in step.params.model_fields, f"the champion mutex is keyed by {MUTEX_KEY}"
    with WorkflowTemplate(
        name=name,
        entrypoint=kebab(step.name),
        arguments=params_as_arguments(step.params) + platform_parameters(),
        active_deadline_seconds=deadline,
        annotations={"workflows.argoproj.io/description": step.help},
        **workflow_spec_defaults(),
    ) as template:
        step_template(step, global_outputs=tuple(step.outputs.model_fields), synchronization=champion_mutex())
    return template
