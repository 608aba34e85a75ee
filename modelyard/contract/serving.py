"""What a model server and its Kubernetes objects agree on: the port, the header and annotation that
name the served model version, the variable a pod gets it from, and the ingress route."""

from __future__ import annotations

from typing import Final

MODEL_VERSION_HEADER: Final = "modelyard-model-version"  # on every response of `modelyard serve`
SERVING_PORT: Final = 8080
# On a serving pod's template: the registered version it serves (a new value rolls the pods).
MODEL_VERSION_ANNOTATION: Final = "modelyard.dev/model-version"
# The version a pod serves, from its template; empty: the version the alias points at on start.
MODEL_VERSION_ENV: Final = "MODELYARD_MODEL_VERSION"


def invocations_path(model_name: str) -> str:
    """The route of a model's scoring endpoint on the cluster's ingress."""
    return f"/models/{model_name}/invocations"


# The chart's labels on a model's serving objects, which `modelyard deploy` finds its Rollout by.
SERVING_COMPONENT: Final = "serving"  # app.kubernetes.io/component
MODEL_LABEL: Final = "modelyard.dev/model"  # the registered model's name
