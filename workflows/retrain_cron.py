"""CronWorkflow `modelyard-retrain`: run `modelyard-train` on a schedule.

The Helm chart overrides `spec.schedules`, `spec.timezone` and the parameter values by parsing this
manifest, so they stay plain fields here.
"""

from __future__ import annotations

from typing import Final

from hera.workflows import CronWorkflow, Parameter
from hera.workflows import models as m

from modelyard.config import PipelineConfig
from modelyard.contract import kebab
from workflows import training
from workflows.common import LABELS

NAME: Final = "modelyard-retrain"
SCHEDULES: Final = ["0 3 * * 1"]  # Mondays 03:00
TIMEZONE: Final = "Etc/UTC"
STARTING_DEADLINE: Final = 3600  # a run missed by more than an hour (controller down) is skipped
HISTORY: Final = 5
# Parameters the schedule sets; every other one keeps the WorkflowTemplate's default.
DATASET: Final = kebab("dataset")


def build() -> CronWorkflow:
    dataset = PipelineConfig.model_fields["dataset"].default
    return CronWorkflow(
        name=NAME,
        labels=dict(LABELS),
        annotations={"workflows.argoproj.io/description": f"Scheduled retraining with {training.NAME}."},
        schedules=list(SCHEDULES),
        timezone=TIMEZONE,
        concurrency_policy="Forbid",
        starting_deadline_seconds=STARTING_DEADLINE,
        successful_jobs_history_limit=HISTORY,
        failed_jobs_history_limit=HISTORY,
        workflow_template_ref=m.WorkflowTemplateRef(name=training.NAME),
        arguments=[Parameter(name=DATASET, value=dataset)],
    )
