"""Alerts: a short JSON message to a webhook (Slack-compatible `text`) when something needs a human.

The URL comes from $MODELYARD_WEBHOOK_URL (in the cluster: an optional env var from a Secret).
No URL, no alert. Delivery is best effort: a failure is logged and never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Final

from modelyard.core.settings import ENV_WEBHOOK_URL, ENV_WORKFLOW_NAME

log = logging.getLogger(__name__)

TIMEOUT_SECONDS: Final = 5.0
MAX_CHARS: Final = 1000  # a chat line, not a report: details live in MLflow


def send(text: str, *, url: str | None = None, timeout: float = TIMEOUT_SECONDS) -> bool:
    """POST {"text": ...} to the webhook; True when it answered 2xx, False when unset or failed."""
    url = url if url is not None else os.environ.get(ENV_WEBHOOK_URL, "")
    if not url:
        return False
    if not url.startswith(("http://", "https://")):
        log.warning("alert not sent: %s must be an http(s) URL", ENV_WEBHOOK_URL)
        return False
    if workflow := os.environ.get(ENV_WORKFLOW_NAME):
        text = f"{text} (workflow {workflow})"
    body = json.dumps({"text": f"modelyard: {text}"[:MAX_CHARS]}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
        # The URL may embed a token (Slack's do): log the failure, never the URL.
        log.warning("alert not sent: webhook failed: %s", getattr(exc, "reason", exc))
        return False
