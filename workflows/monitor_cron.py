"""CronWorkflow `modelyard-monitor`: check a batch for drift/decay; on `retrain`, submit `modelyard-train`.

The submit step is an Argo resource template that creates a Workflow from `workflowTemplateRef`; it
runs under its own ServiceAccount (`modelyard-submitter`), which may only create Workflows (and
report its own result), while the monitor step runs under the usual step ServiceAccount.
"""

from __future__ import annotations

import json
from typing import Final

import yaml
from hera.workflows import CronWorkflow, Parameter, Resource, Step, Steps

from modelyard.contract import STEPS, StepName, kebab
from modelyard.contract.records import RETRAIN
from workflows import training
from workflows.common import (
    IMAGE,
    LABELS,
    TRACKING_URI,
    cron_policy,
    input_param,
    params_as_arguments,
    platform_parameters,
    retry_window,
    step_template,
    workflow_param,
    workflow_spec_defaults,
)

NAME: Final = "modelyard-monitor"
ENTRYPOINT: Final = "monitor-and-retrain"
STEP: Final = STEPS[StepName.MONITOR]
# Every attempt of the check, then the submission: with concurrencyPolicy Forbid, a hung run
# must not hold back every later scheduled one.
WORKFLOW_DEADLINE: Final = retry_window(STEP) + 5 * 60
SUBMITTER: Final = "modelyard-submitter"  # may only create Workflows (the chart's submitter Role)
SCHEDULES: Final = ["0 * * * *"]  # hourly
CONFIG: Final = kebab("config")
TRIGGERED_BY: Final = "modelyard.dev/triggered-by"  # label: the monitor workflow that submitted it
INIT_TMP: Final = "init-tmp"


class _Block(str):
    """A value written as a YAML block scalar: the monitor's `config` output is one line of JSON
    (the champion's training config: model, label, search space, expectations, with the batch as
    dataset and the champion-relative checks relaxed); in a block it stays a string whatever
    quotes or colons it holds, before Argo substitutes it and after."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Block, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
)


def training_workflow() -> str:
    """The Workflow the resource template creates, as YAML text (Argo substitutes the parameters)."""
    arguments = {
        CONFIG: _Block(input_param(CONFIG)),
        IMAGE: workflow_param(IMAGE),
        TRACKING_URI: workflow_param(TRACKING_URI),
    }
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{training.NAME}-",
            "labels": {**LABELS, TRIGGERED_BY: "{{workflow.name}}"},
        },
        "spec": {
            "workflowTemplateRef": {"name": training.NAME},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in arguments.items()]},
        },
    }
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False)


def writable_tmp_for_init() -> str:
    """Argo's init container writes a resource template's manifest to /tmp/manifest.yaml, which a
    read-only root filesystem (the executor's hardened securityContext) refuses (argoproj/argo-
    workflows#10787): give it a writable /tmp of its own (the pod of a resource template gets none
    of the workflow's volumes)."""
    volume = {"name": INIT_TMP, "emptyDir": {"sizeLimit": "16Mi"}}
    mount = {"name": INIT_TMP, "mountPath": "/tmp"}
    return json.dumps({"volumes": [volume], "initContainers": [{"name": "init", "volumeMounts": [mount]}]})


def build() -> CronWorkflow:
    with CronWorkflow(
        name=NAME,
        annotations={"workflows.argoproj.io/description": f"{STEP.help} Retrain with {training.NAME}."},
        schedules=list(SCHEDULES),
        **cron_policy(),
        entrypoint=ENTRYPOINT,
        # The batch has no default: the chart (values) or the submitter sets it.
        arguments=params_as_arguments(STEP.params, {"dataset": ""}) + platform_parameters(),
        active_deadline_seconds=WORKFLOW_DEADLINE,
        **workflow_spec_defaults(),
    ) as cron:
        check = step_template(STEP)
        submit = Resource(
            name="submit-training",
            action="create",
            inputs=[Parameter(name=CONFIG)],
            manifest=training_workflow(),
            service_account_name=SUBMITTER,
            pod_spec_patch=writable_tmp_for_init(),
        )
        with Steps(name=ENTRYPOINT):
            Step(
                name="monitor",
                template=check,
                arguments=[
                    Parameter(name=kebab(n), value=workflow_param(kebab(n))) for n in STEP.params.model_fields
                ],
            )
            Step(
                name="retrain",
                template=submit,
                arguments=[
                    Parameter(name=CONFIG, value="{{steps.monitor.outputs.parameters." + CONFIG + "}}")
                ],
                when=f"{{{{steps.monitor.outputs.parameters.verdict}}}} == {RETRAIN}",
            )
    return cron
