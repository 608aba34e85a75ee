"""`modelyard serve`: one registered model version over HTTP, with MLflow's own scoring server."""

from __future__ import annotations

import click

from modelyard.cli.options import tracking_option
from modelyard.contract.config import MODEL_NAME
from modelyard.contract.records import CHAMPION
from modelyard.contract.serving import MODEL_VERSION_ENV, SERVING_PORT
from modelyard.core.errors import BadInputError
from modelyard.core.signals import Interrupted


@click.command()
@click.option("--model-name", required=True, help="Registered model to serve.")
@click.option(
    "--version",
    default="",
    envvar=MODEL_VERSION_ENV,
    show_envvar=True,
    help="Version to serve; empty or unset: the version --alias points at when the server starts.",
)
@click.option("--alias", default=CHAMPION, show_default=True, help="Alias to serve when --version is empty.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 in a pod)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=SERVING_PORT, show_default=True)
@tracking_option
def serve(model_name: str, version: str, alias: str, host: str, port: int, tracking_uri: str | None) -> None:
    """Serve one registered model version over HTTP with MLflow's scoring server.

    POST rows to /invocations; GET /ping answers once the model is loaded. Every response names
    the version in the modelyard-model-version header. Exit codes: 0 stopped (SIGTERM, Ctrl-C) once
    the requests in flight were answered; 2 an unknown model, version or alias, before the server
    starts; 75 the tracking server is unreachable."""
    from mlflow import MlflowClient

    from modelyard.backends.registry import existing_version
    from modelyard.backends.tracking import configure, quick_requests

    if not MODEL_NAME.fullmatch(model_name):
        raise BadInputError(
            f"--model-name {model_name!r} is not a valid model name: use up to 200 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    version = version.strip()
    if not version and not alias:
        raise BadInputError("--version and --alias are both empty: give one")
    with quick_requests():  # before the server starts: an unreachable MLflow exits 75 in seconds
        configure(tracking_uri)
        found = existing_version(MlflowClient(), model_name, version, alias)
    served = str(found.version)
    import uvicorn

    from modelyard.serving.app import scoring_app

    app = scoring_app(f"models:/{model_name}/{served}", served)
    how = "" if version else f" (@{alias})"
    click.echo(f"serving {model_name} v{served}{how} on http://{host}:{port}", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except Interrupted as exc:  # uvicorn raises the stop signal again once it has shut down
        click.echo(f"stopped serving {model_name} v{served}: {exc}", err=True)
