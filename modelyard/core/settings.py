"""The environment variables modelyard reads: every runner sets the same ones for a step (a pod gets
them from its template)."""

from __future__ import annotations

from typing import Final

# Environment a step reads; every runner sets the same variables (a pod gets them from its template).
ENV_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
ENV_IMAGE: Final = "MODELYARD_IMAGE"
ENV_WORKFLOW_NAME: Final = "MODELYARD_WORKFLOW_NAME"
ENV_WORKFLOW_UID: Final = "MODELYARD_WORKFLOW_UID"
ENV_WEBHOOK_URL: Final = "MODELYARD_WEBHOOK_URL"
# Variables a pod gets from optional Secrets (s3:// datasets, alerts); local containers inherit them.
ENV_FROM_SECRETS: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", ENV_WEBHOOK_URL)
# Set in every step container: the root filesystem is read-only and libraries write caches under HOME.
ENV_FIXED: Final = {"HOME": "/tmp"}
