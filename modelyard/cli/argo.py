"""`modelyard compile` and `modelyard submit`: the Argo Workflows commands (need `modelyard[argo]`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import click
import requests

from modelyard.contract import PrepareParams, kebab
from modelyard.core.errors import BadInputError, ModelyardError, TransientError

TEMPLATE: Final = "modelyard-train"
DONE: Final = ("Succeeded", "Failed", "Error")


def _workflows(module: str) -> ModuleType:
    """Import workflows.<module>, the Hera definitions installed beside the package."""
    try:
        importlib.import_module("hera")
    except ModuleNotFoundError as exc:
        raise BadInputError("Argo support needs Hera: pip install 'modelyard[argo]'") from exc
    return importlib.import_module(f"workflows.{module}")


@click.command("compile")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write here instead of charts/modelyard/files/workflows/.",
)
@click.option("--check", is_flag=True, help="Write nothing; fail if the committed YAML is out of date.")
def compile_command(out: Path | None, check: bool) -> None:
    """Write the Argo manifests (WorkflowTemplates, CronWorkflow) generated from the contract."""
    compile_ = _workflows("compile")
    dirs = [out] if out else list(compile_.DEFAULT_DIRS)
    if check:
        stale = compile_.stale(dirs)
        if stale:
            names = ", ".join(str(p) for p in stale)
            raise ModelyardError(f"manifests are out of date: {names}; run `make manifests` and commit")
        click.echo("manifests are up to date")
        return
    for path in compile_.write(dirs):
        click.echo(path)


def _param_options(command: Any) -> Any:
    """One string option per pipeline setting, like `modelyard run`; validated before submitting."""
    for name, info in reversed(list(PrepareParams.model_fields.items())):
        if name != "config":
            command = click.option(f"--{kebab(name)}", name, help=info.description)(command)
    return command


def _server_url(server: str, secure: bool) -> str:
    if server.startswith(("http://", "https://")):
        return server
    return f"{'https' if secure else 'http'}://{server}"


@click.command("submit")
@click.option(
    "--argo-server", "-s", envvar="ARGO_SERVER", required=True, help="Argo Server host:port or URL."
)
@click.option("--token", envvar="ARGO_TOKEN", help="Bearer token (argo auth token).")
@click.option("--namespace", "-n", envvar="ARGO_NAMESPACE", default="default", show_default=True)
@click.option(
    "--secure/--plaintext",
    envvar="ARGO_SECURE",
    default=False,
    help="https, or http (default: what the chart's Argo Server serves behind kubectl port-forward); "
    "an http:// or https:// URL says it itself.",
)
@click.option("--insecure-skip-verify", "-k", envvar="ARGO_INSECURE_SKIP_VERIFY", is_flag=True)
@click.option("--template", default=TEMPLATE, show_default=True, help="WorkflowTemplate to submit.")
@click.option("--service-account", help="Run the pods as this ServiceAccount [default: the template's].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML config file.")
@_param_options
@click.option("--image", help="Trainer image [default: the template's].")
@click.option("--tracking-uri", help="MLflow URL as seen from the pods [default: the template's].")
@click.option("--wait", is_flag=True, help="Wait until the workflow ends; show its status and outputs.")
@click.option("--poll-seconds", type=click.IntRange(1), default=5, show_default=True)
def submit_command(
    argo_server: str,
    token: str | None,
    namespace: str,
    secure: bool,
    insecure_skip_verify: bool,
    template: str,
    service_account: str | None,
    config_file: Path | None,
    image: str | None,
    tracking_uri: str | None,
    wait: bool,
    poll_seconds: int,
    **overrides: str | None,
) -> None:
    """Create a Workflow from the training WorkflowTemplate (like `argo submit --from`)."""
    from hera.workflows import WorkflowsService
    from hera.workflows.models import SubmitOpts, WorkflowSubmitRequest

    from modelyard.contract.config import ARGO_TIMEOUT, SECONDS_DEFAULTS, env_seconds, read_config_file

    seconds = env_seconds(ARGO_TIMEOUT, SECONDS_DEFAULTS[ARGO_TIMEOUT])
    _workflows("common")  # fails early, with the install hint, when Hera is missing
    parameters = _parameters(read_config_file(config_file), overrides)
    parameters |= {k: v for k, v in (("image", image), ("tracking-uri", tracking_uri)) if v}
    host = _server_url(argo_server, secure)
    service = WorkflowsService(
        host=host,
        token=token,
        namespace=namespace,
        verify_ssl=not insecure_skip_verify,
        session=TimeoutSession(seconds),
    )
    request = WorkflowSubmitRequest(
        namespace=namespace,
        resource_kind="WorkflowTemplate",
        resource_name=template,
        submit_options=SubmitOpts(
            parameters=[f"{k}={v}" for k, v in parameters.items()], service_account=service_account
        ),
    )
    workflow = _call(lambda: service.submit_workflow(request), template, namespace, host)
    name = workflow.metadata.name
    click.echo(f"submitted {namespace}/{name}")
    if wait:
        _wait(service, name, namespace, poll_seconds, host)


class TimeoutSession(requests.Session):
    """A requests session whose calls wait at most `seconds` to connect and for each read:
    Hera sets no timeout, so a silent Argo Server would hang `submit` forever."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.seconds)
        return super().request(*args, **kwargs)


def _parameters(config_text: str, overrides: dict[str, str | None]) -> dict[str, str]:
    """Only what the user set, validated by the same model the prepare step uses."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        params = PrepareParams(config=config_text, **given)
    except ValueError as exc:
        raise BadInputError(f"invalid setting: {exc}") from exc
    out = {kebab(k): str(getattr(params, k)) for k in given}
    if config_text:
        out["config"] = config_text
    return out


def _call(request: Any, template: str, namespace: str, host: str) -> Any:
    """Run a WorkflowsService call; turn its failures into modelyard errors with the fix."""
    import requests
    from hera.exceptions import Forbidden, NotFound, Unauthorized

    try:
        return request()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(
            f"cannot reach the Argo Server at {host} (each request waits at most MODELYARD_ARGO_TIMEOUT): {exc}"
        ) from exc
    except (Unauthorized, Forbidden) as exc:
        raise BadInputError(f"the Argo Server refused the token (--token/ARGO_TOKEN): {exc}") from exc
    except NotFound as exc:
        raise BadInputError(
            f"{template} not found in namespace {namespace}: "
            f"argo template create -n {namespace} charts/modelyard/files/workflows/train.yaml (or install the chart)"
        ) from exc


def _wait(service: Any, name: str, namespace: str, poll_seconds: int, host: str) -> None:
    from hera.workflows import Workflow

    click.echo(f"waiting for {name} ...")
    watched = Workflow(name=name, namespace=namespace, workflows_service=service)
    workflow = _call(lambda: _until_done(watched, poll_seconds), name, namespace, host)
    status = workflow.status
    click.echo(f"{name}: {status.phase} {status.progress or ''}".rstrip())
    for param in (status.outputs.parameters if status.outputs else None) or []:
        click.echo(f"  {param.name}: {param.value}")
    if status.phase != "Succeeded":
        raise ModelyardError(
            f"workflow {name} {status.phase}: {status.message or 'see argo get -n ' + namespace}"
        )


def _until_done(watched: Any, poll_seconds: int) -> Any:
    """Hera's Workflow.wait, called again when it returns early: it polls only while the phase is
    Running (a queued workflow is Pending) and asserts a phase is set (none before the controller
    has seen the workflow, hera#721)."""
    while True:
        try:
            workflow = watched.wait(poll_interval=poll_seconds)
        except (AssertionError, KeyError):  # no phase yet (KeyError under python -O)
            continue
        if workflow.status.phase in DONE:
            return workflow
