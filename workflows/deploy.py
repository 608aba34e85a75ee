"""WorkflowTemplate `modelyard-deploy`: ship a registered version to its serving Rollout and follow it."""

from __future__ import annotations

from typing import Final

from hera.workflows import WorkflowTemplate

from modelyard.contract import STEPS, DeployParams, StepName, kebab
from workflows.common import (
    MUTEX_KEY,
    champion_mutex,
    params_as_arguments,
    platform_parameters,
    step_template,
    workflow_spec_defaults,
)

NAME: Final = "modelyard-deploy"
STEP: Final = STEPS[StepName.DEPLOY]


def build() -> WorkflowTemplate:
    assert MUTEX_KEY in DeployParams.model_fields, f"the champion mutex is keyed by {MUTEX_KEY}"
    with WorkflowTemplate(
        name=NAME,
        entrypoint=kebab(STEP.name),
        arguments=params_as_arguments(STEP.params) + platform_parameters(),
        active_deadline_seconds=STEP.deadline + 5 * 60,
        annotations={"workflows.argoproj.io/description": STEP.help},
        **workflow_spec_defaults(),
    ) as template:
        # The champion mutex, as register and rollback take it: a promoted canary moves champion.
        step_template(STEP, global_outputs=tuple(STEP.outputs.model_fields), synchronization=champion_mutex())
    return template
