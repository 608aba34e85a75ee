"""CronWorkflow `modelyard-retrain`: run `modelyard-train` on a schedule.

It declares every training parameter (unset: ""), so a schedule can give its own dataset, label,
model name or config. The Helm chart overrides `spec.schedules`, `spec.timezone` and the
parameter values by parsing this manifest, so they stay plain fields here.
"""

from __future__ import annotations

from typing import Final

from hera.workflows import CronWorkflow
from hera.workflows import models as m

from modelyard.contract import PrepareParams
from modelyard.contract.config import PipelineConfig
from workflows import training
from workflows.common import LABELS, cron_policy, params_as_arguments

NAME: Final = "modelyard-retrain"
SCHEDULES: Final = ["0 3 * * 1"]  # Mondays 03:00


def build() -> CronWorkflow:
    dataset = PipelineConfig.model_fields["dataset"].default
    return CronWorkflow(
        name=NAME,
        labels=dict(LABELS),
        annotations={"workflows.argoproj.io/description": f"Scheduled retraining with {training.NAME}."},
        schedules=list(SCHEDULES),
        **cron_policy(),
        workflow_template_ref=m.WorkflowTemplateRef(name=training.NAME),
        arguments=params_as_arguments(PrepareParams, {"dataset": dataset}),
    )
