"""WorkflowTemplate `modelyard-rollback`: move `champion` back to the previous champion (and the
traffic of its serving Rollout, where it has one)."""

from __future__ import annotations

from typing import Final

from hera.workflows import WorkflowTemplate

from modelyard.contract import STEPS, StepName
from workflows.common import champion_move_template

NAME: Final = "modelyard-rollback"
WORKFLOW_DEADLINE: Final = 30 * 60


def build() -> WorkflowTemplate:
    return champion_move_template(NAME, STEPS[StepName.ROLLBACK], WORKFLOW_DEADLINE)
