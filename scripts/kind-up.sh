#!/usr/bin/env bash
# Bring up a local kind cluster with Argo Workflows, Argo Rollouts, Traefik and the modelyard chart,
# in one command.
# Needs Docker, kind (the version versions.env pins with its node image), helm, kubectl and the
# internet (the node, Argo, Argo Rollouts and Traefik images and charts, the Go module proxy for MinIO's sources).
# Writes the cluster's kubeconfig to .kind/kubeconfig (make e2e-kind runs the tests against it).
#
# Usage: scripts/kind-up.sh
# Env:   CLUSTER_NAME (modelyard), NAMESPACE (modelyard), ARGO_NAMESPACE (argo),
#        ARGO_CHART_VERSION, ARGO_ROLLOUTS_CHART_VERSION, TRAEFIK_CHART_VERSION,
#        SKIP_BUILD=1 to reuse images already built and loaded,
#        TIMEOUT (10m) for each wait.
# Idempotent: re-running keeps the cluster and upgrades both releases.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# Its log lines head the steps, set off from the output of kind, helm and kubectl.
LOG_PREFIX=$'\n==>'

CLUSTER_NAME="${CLUSTER_NAME:-modelyard}"
NAMESPACE="${NAMESPACE:-modelyard}"
ARGO_NAMESPACE="${ARGO_NAMESPACE:-argo}"
TIMEOUT="${TIMEOUT:-10m}"
# argo-helm chart; images.tag in argo-values.yaml pins the Argo Workflows release itself (to
# versions.env's ARGO_WORKFLOWS_VERSION: tests/test_one_source.py checks it).
ARGO_CHART_VERSION="${ARGO_CHART_VERSION:-2.0.4}"
ARGO_HELM_REPO="https://argoproj.github.io/argo-helm"
# The serving stack's charts (upstream); their values files pin the releases `make cluster-up` builds
# (versions.env ARGO_ROLLOUTS_VERSION and TRAEFIK_VERSION) as image tags, which these chart versions
# accept: argo-rollouts 2.41.0 ships v1.9.0 and traefik 41.3.0 v3.7.11 by default.
ARGO_ROLLOUTS_CHART_VERSION="${ARGO_ROLLOUTS_CHART_VERSION:-2.41.0}"
TRAEFIK_CHART_VERSION="${TRAEFIK_CHART_VERSION:-41.3.0}"
TRAEFIK_HELM_REPO="https://traefik.github.io/charts"
CHART_DIR="${REPO_ROOT}/charts/modelyard"
KUBECONFIG_FILE="${REPO_ROOT}/.kind/kubeconfig"
# shellcheck source-path=SCRIPTDIR source=cluster/versions.env
source "${REPO_ROOT}/scripts/cluster/versions.env"

for tool in docker kind helm kubectl; do
  need_command "${tool}" "see README: local cluster"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"
# A node image is built for one kind release: another kind may fail to boot it.
kind_version="$(kind version | awk '{print $2}')"
[[ "${kind_version}" == "${KIND_VERSION}" ]] \
  || die "kind ${kind_version} is installed; the pinned node image ${KIND_NODE_IMAGE} is built for kind ${KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"

log "kind cluster ${CLUSTER_NAME}"
if kind get clusters | grep -qx "${CLUSTER_NAME}"; then
  echo "cluster ${CLUSTER_NAME} exists; reusing it"
else
  kind create cluster --name "${CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" \
    --config "${REPO_ROOT}/scripts/kind-config.yaml" --wait "${TIMEOUT}"
fi
mkdir -p "$(dirname "${KUBECONFIG_FILE}")"
kind get kubeconfig --name "${CLUSTER_NAME}" >"${KUBECONFIG_FILE}"
export KUBECONFIG="${KUBECONFIG_FILE}"
kubectl create namespace "${NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The chart's pods all meet Pod Security "restricted"; enforce it so a regression shows here.
kubectl label namespace "${NAMESPACE}" --overwrite \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null

log "Argo Workflows (chart ${ARGO_CHART_VERSION}) in namespace ${ARGO_NAMESPACE}"
helm upgrade --install argo-workflows argo-workflows \
  --repo "${ARGO_HELM_REPO}" --version "${ARGO_CHART_VERSION}" \
  --namespace "${ARGO_NAMESPACE}" --create-namespace \
  --values "${REPO_ROOT}/scripts/argo-values.yaml" \
  --set "controller.workflowNamespaces={${NAMESPACE}}" \
  --wait --timeout "${TIMEOUT}"

log "Argo Rollouts ${ARGO_ROLLOUTS_VERSION} (chart ${ARGO_ROLLOUTS_CHART_VERSION}) in namespace argo-rollouts"
helm upgrade --install argo-rollouts argo-rollouts \
  --repo "${ARGO_HELM_REPO}" --version "${ARGO_ROLLOUTS_CHART_VERSION}" \
  --namespace argo-rollouts --create-namespace \
  --values "${REPO_ROOT}/scripts/argo-rollouts-values.yaml" \
  --wait --timeout "${TIMEOUT}"

log "Traefik ${TRAEFIK_VERSION} (chart ${TRAEFIK_CHART_VERSION}) in namespace traefik"
helm upgrade --install traefik traefik \
  --repo "${TRAEFIK_HELM_REPO}" --version "${TRAEFIK_CHART_VERSION}" \
  --namespace traefik --create-namespace \
  --values "${REPO_ROOT}/scripts/traefik-values.yaml" \
  --wait --timeout "${TIMEOUT}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "building images"
  # build-images.sh prints KEY=VALUE tag lines last (trainer, mlflow and minio images).
  build_output="$("${REPO_ROOT}/scripts/build-images.sh")"
else
  build_output="$("${REPO_ROOT}/scripts/build-images.sh" --print-tags)"
fi
trainer_image="$(printed_image MODELYARD_TRAINER_IMAGE "${build_output}")"
mlflow_image="$(printed_image MODELYARD_MLFLOW_IMAGE "${build_output}")"
minio_image="$(printed_image MODELYARD_MINIO_IMAGE "${build_output}")"
[[ -n "${trainer_image}" && -n "${mlflow_image}" && -n "${minio_image}" ]] || die "build-images.sh printed no image tags"

log "loading images into kind: ${trainer_image} ${mlflow_image} ${minio_image}"
kind load docker-image --name "${CLUSTER_NAME}" "${trainer_image}" "${mlflow_image}" "${minio_image}"

log "modelyard chart in namespace ${NAMESPACE}"
helm upgrade --install modelyard "${CHART_DIR}" \
  --namespace "${NAMESPACE}" \
  --values "${CHART_DIR}/values-kind.yaml" \
  --set "mlflow.image.repository=${mlflow_image%:*}" --set "mlflow.image.tag=${mlflow_image##*:}" \
  --set "pipeline.image.repository=${trainer_image%:*}" --set "pipeline.image.tag=${trainer_image##*:}" \
  --wait --wait-for-jobs --timeout "${TIMEOUT}"

log "waiting for everything to be ready"
for ns in "${ARGO_NAMESPACE}" argo-rollouts traefik "${NAMESPACE}"; do
  kubectl -n "${ns}" wait --for=condition=Available deployment --all --timeout "${TIMEOUT}"
  for sts in $(kubectl -n "${ns}" get statefulset -o name); do
    kubectl -n "${ns}" rollout status "${sts}" --timeout "${TIMEOUT}"
  done
done
helm test modelyard --namespace "${NAMESPACE}" --timeout "${TIMEOUT}"

cat <<NEXT

modelyard is up on kind cluster "${CLUSTER_NAME}".

  MLflow UI:  kubectl -n ${NAMESPACE} port-forward svc/modelyard-mlflow 5000:5000   -> http://localhost:5000
  Argo UI:    kubectl -n ${ARGO_NAMESPACE} port-forward svc/argo-workflows-server 2746:2746 -> http://localhost:2746
  Train:      argo -n ${NAMESPACE} submit --from workflowtemplate/modelyard-train --watch
  End to end: KUBECONFIG=${KUBECONFIG_FILE} make e2e
  Tear down:  scripts/kind-down.sh
NEXT
