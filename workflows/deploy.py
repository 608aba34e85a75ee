"""WorkflowTemplate `modelyard-deploy`: ship a registered version to its serving Rollout and follow
it; promoted, it becomes champion."""

from __future__ import annotations

from typing import Final

from hera.workflows import WorkflowTemplate

from modelyard.contract import STEPS, StepName
from workflows.common import champion_move_template

NAME: Final = "modelyard-deploy"
STEP: Final = STEPS[StepName.DEPLOY]


def build() -> WorkflowTemplate:
    return champion_move_template(NAME, STEP, STEP.deadline + 5 * 60)
