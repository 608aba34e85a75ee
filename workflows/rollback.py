"""WorkflowTemplate `modelyard-rollback`: move `champion` back to the previous champion."""

from __future__ import annotations

from typing import Final

from hera.workflows import WorkflowTemplate

from modelyard.contract import STEPS, RollbackParams, StepName, kebab
from workflows.common import (
    MUTEX_KEY,
    champion_mutex,
    params_as_arguments,
    platform_parameters,
    step_template,
    workflow_spec_defaults,
)

NAME: Final = "modelyard-rollback"
STEP: Final = STEPS[StepName.ROLLBACK]
WORKFLOW_DEADLINE: Final = 30 * 60


def build() -> WorkflowTemplate:
    assert MUTEX_KEY in RollbackParams.model_fields, f"the champion mutex is keyed by {MUTEX_KEY}"
    with WorkflowTemplate(
        name=NAME,
        entrypoint=kebab(STEP.name),
        arguments=params_as_arguments(STEP.params) + platform_parameters(),
        active_deadline_seconds=WORKFLOW_DEADLINE,
        annotations={"workflows.argoproj.io/description": STEP.help},
        **workflow_spec_defaults(),
    ) as template:
        # The same mutex as the training template's register step: one champion move at a time.
        step_template(STEP, global_outputs=tuple(STEP.outputs.model_fields), synchronization=champion_mutex())
    return template
