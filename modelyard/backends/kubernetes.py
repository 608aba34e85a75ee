"""The serving Rollouts of the chart, through the Kubernetes API: the kubeconfig (its current
context's namespace), or inside a pod its ServiceAccount and namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from lightkube import ApiError, Client, ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.types import PatchType

from modelyard.contract.serving import MODEL_LABEL, MODEL_VERSION_ANNOTATION, SERVING_COMPONENT
from modelyard.core.errors import BadInputError, TransientError

Rollout = create_namespaced_resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")
POD_TEMPLATE_HASH: Final = "rollouts-pod-template-hash"  # Argo Rollouts' label on its ReplicaSets
REVISION: Final = "rollout.argoproj.io/revision"  # and its annotation numbering them


@dataclass(frozen=True)
class RolloutState:
    """What a model's Rollout serves and where its update stands."""

    name: str
    template_version: str  # the pod template's annotation; "" means the alias at pod start
    stable_version: str | None  # the stable pods' annotation ("" as above); None: no stable pod ready
    phase: str  # Argo Rollouts' phase: Progressing, Paused, Healthy, Degraded
    message: str
    aborted: bool

    @property
    def settled(self) -> bool:
        """The template's version is the stable one and nothing is under way."""
        return self.phase == "Healthy" and self.stable_version == self.template_version


class NoCluster(BadInputError):
    """No kubeconfig and not in a pod."""


class Cluster:
    """One namespace of the cluster the kubeconfig (or, inside a pod, its ServiceAccount) points at."""

    def __init__(self, namespace: str = "") -> None:
        try:
            self.client = Client(namespace=namespace or None, field_manager="modelyard")
        except ConfigError as exc:
            raise NoCluster(
                f"no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or a pod): {exc}"
            ) from exc
        self.namespace = str(self.client.namespace)

    def rollout(self, model: str) -> dict[str, Any]:
        """The Rollout serving the model (the chart labels it), or exit 2 saying how to serve it."""
        found = self.find_rollout(model)
        if found is None:
            raise BadInputError(
                f"model {model!r} is not served in namespace {self.namespace!r}: add it to the chart's "
                f"serving.models (no Rollout labelled {MODEL_LABEL}={model})"
            )
        return found

    def find_rollout(self, model: str) -> dict[str, Any] | None:
        """The Rollout serving the model; None when there is none, no Argo Rollouts at all, or no
        right to read Rollouts (a chart installed without serving gives its workflows none)."""
        labels: dict[str, Any] = {"app.kubernetes.io/component": SERVING_COMPONENT, MODEL_LABEL: model}
        try:
            found = self._call(
                lambda: list(self.client.list(Rollout, namespace=self.namespace, labels=labels))
            )
        except BadInputError as exc:
            if isinstance(exc.__cause__, ApiError) and exc.__cause__.status.code in (403, 404):
                return None
            raise
        return dict(found[0]) if found else None

    def state(self, model: str) -> RolloutState:
        rollout = self.rollout(model)
        status = rollout.get("status") or {}
        by_hash = self._replica_sets(rollout)
        stable = by_hash.get(status.get("stableRS", ""))
        template = _version_of(rollout["spec"]["template"])
        return RolloutState(
            name=rollout["metadata"]["name"],
            template_version=template,
            stable_version=_version_of(stable.spec.template)
            if stable and stable.status.readyReplicas
            else None,
            phase=status.get("phase", ""),
            message=status.get("message", ""),
            aborted=bool(status.get("abort")),
        )

    def earlier_template_version(self, model: str, version: str) -> str | None:
        """What to set the template to so that it serves `version` again: the value of the newest
        earlier ReplicaSet that served it (None: one that served the alias, which names `version`
        again), so Argo Rollouts sees a rollback to a known revision and skips the canary steps,
        and its pods, kept for serving.keepPreviousSeconds, take the traffic at once."""
        rollout = self.rollout(model)
        stable = (rollout.get("status") or {}).get("stableRS", "")
        earlier = sorted(
            (rs for hash_, rs in self._replica_sets(rollout).items() if hash_ != stable),
            key=lambda rs: int((rs.metadata.annotations or {}).get(REVISION, "0")),
            reverse=True,
        )
        for rs in earlier:
            served = _version_of(rs.spec.template)
            if served in (version, ""):
                return served or None
        return version

    def serve_version(self, rollout: str, version: str | None) -> None:
        """Set the version the pod template serves (None: the alias); a change rolls out as a canary."""
        patch = {"spec": {"template": {"metadata": {"annotations": {MODEL_VERSION_ANNOTATION: version}}}}}
        self._call(
            lambda: self.client.patch(
                Rollout, rollout, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        )

    def promote_full(self, rollout: str) -> None:
        """Skip the remaining canary steps (`kubectl argo rollouts promote --full`)."""
        self._patch_status(rollout, {"promoteFull": True})

    def abort(self, rollout: str) -> None:
        """All traffic back to the stable pods (`kubectl argo rollouts abort`)."""
        self._patch_status(rollout, {"abort": True})

    def _patch_status(self, rollout: str, status: dict[str, Any]) -> None:
        self._call(
            lambda: self.client.patch(
                Rollout.Status,
                rollout,
                {"status": status},
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        )

    def _replica_sets(self, rollout: dict[str, Any]) -> dict[str, Any]:
        uid = rollout["metadata"]["uid"]
        listed = self._call(
            lambda: list(
                self.client.list(ReplicaSet, namespace=self.namespace, labels={POD_TEMPLATE_HASH: None})
            )
        )
        owned = [rs for rs in listed if any(o.uid == uid for o in rs.metadata.ownerReferences or [])]
        return {rs.metadata.labels[POD_TEMPLATE_HASH]: rs for rs in owned}

    def _call(self, request: Callable[[], Any]) -> Any:
        with _api_errors(self.namespace):
            return request()


def _version_of(template: Any) -> str:
    """The version a pod template serves: a dict (a Rollout's) or a lightkube model (a ReplicaSet's)."""
    metadata = template["metadata"] if isinstance(template, dict) else template.metadata
    annotations = (metadata.get("annotations") if isinstance(metadata, dict) else metadata.annotations) or {}
    return str(annotations.get(MODEL_VERSION_ANNOTATION) or "")


@contextmanager
def _api_errors(namespace: str) -> Iterator[None]:
    """An unreachable API server or its 5xx: exit 75; refused access: exit 2 naming what is missing."""
    try:
        yield
    except ApiError as exc:
        code = exc.status.code or 0
        if code >= 500 or code == 429:
            raise TransientError(
                f"the Kubernetes API server failed ({code} {exc.status.message}), retry later"
            ) from exc
        if code in (401, 403):
            raise BadInputError(
                f"the Kubernetes API refused access in namespace {namespace!r} ({code}: {exc.status.message}); "
                "deploy reads and patches Rollouts and lists ReplicaSets there"
            ) from exc
        if code == 404:
            raise BadInputError(
                f"not found on the cluster: {exc.status.message} (is Argo Rollouts installed?)"
            ) from exc
        raise
    except httpx2.TransportError as exc:
        raise TransientError(f"the Kubernetes API server is unreachable, retry later: {exc!r}") from exc
