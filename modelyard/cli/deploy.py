"""`modelyard deploy`: a registered version to its model's serving Rollout on the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelyard.cli.options import options_from, tracking_option
from modelyard.contract import DeployParams, parse_params


@click.command()
@options_from(DeployParams)
@tracking_option
@click.option("--wait", is_flag=True, help="Follow the update to its end: exit 0 promoted, 3 aborted.")
def deploy(tracking_uri: str | None, wait: bool, **params: Any) -> None:
    """Serve a registered version on the cluster: a canary beside the version that serves (the
    chart's serving.canary steps), or all traffic at once when none does. Promoted, it becomes the
    champion; aborted, the traffic is back on the stable version and the version records why.

    Exit codes: 0 started (promoted with --wait), 2 unknown model or version or a model the chart does
    not serve (nothing changes), 3 aborted, 75 the cluster or MLflow unreachable."""
    from modelyard.backends.tracking import configure
    from modelyard.steps import deploy as steps

    inputs = parse_params(DeployParams, params)
    configure(tracking_uri)
    outputs = steps.deploy(inputs, Path(".")) if wait else steps.start(inputs)
    click.echo(outputs.model_dump_json())
