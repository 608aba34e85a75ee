#!/usr/bin/env bash
# End-to-end check on the kind cluster from scripts/kind-up.sh: train through Argo, assert
# MLflow has a `champion` version, run the CronWorkflow once, then the rollback template.
# Needs kubectl, the argo CLI (v4.1.2), curl and jq.
#
# Usage: scripts/e2e-kind.sh
# Env:   NAMESPACE (modelyard), TIMEOUT_SECONDS (1200, per run), DATASET (iris: a dataset
#        modelyard ships; or an s3:// URI in the datasets bucket), MODEL_NAME (modelyard-demo,
#        modelyard's default registered model), MLFLOW_LOCAL_PORT (15000)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NAMESPACE="${NAMESPACE:-modelyard}"
TIMEOUT_SECONDS="${TIMEOUT_SECONDS:-1200}"
MLFLOW_LOCAL_PORT="${MLFLOW_LOCAL_PORT:-15000}"
MLFLOW_SERVICE="svc/modelyard-mlflow"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e-kind: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in kubectl argo curl jq timeout; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is required"
done
kubectl -n "${NAMESPACE}" get workflowtemplate modelyard-train >/dev/null \
  || die "modelyard is not installed in ${NAMESPACE}; run ${REPO_ROOT}/scripts/kind-up.sh first"

DATASET="${DATASET:-iris}"
MODEL_NAME="${MODEL_NAME:-modelyard-demo}"

# submit_and_wait FROM [ARGS...]: submit a workflow from FROM, wait, require Succeeded.
submit_and_wait() {
  local from="$1" name phase
  shift
  name="$(argo -n "${NAMESPACE}" submit --from "${from}" "$@" --output name)"
  log "${from}: workflow ${name}"
  timeout "${TIMEOUT_SECONDS}" argo -n "${NAMESPACE}" wait "${name}" >/dev/null || true
  phase="$(kubectl -n "${NAMESPACE}" get "workflow/${name}" -o jsonpath='{.status.phase}')"
  if [[ "${phase}" != Succeeded ]]; then
    argo -n "${NAMESPACE}" get "${name}" || true
    argo -n "${NAMESPACE}" logs "${name}" --tail 50 || true
    die "${from} ended ${phase:-without a phase} (workflow ${name})"
  fi
  echo "${name} Succeeded"
}

# mlflow_get PATH: GET an MLflow REST path through a port-forward.
mlflow_get() {
  curl --silent --show-error --fail --max-time 30 "http://localhost:${MLFLOW_LOCAL_PORT}$1"
}

model_name="${MODEL_NAME}"
log "training through Argo (dataset ${DATASET}, model ${model_name})"
submit_and_wait workflowtemplate/modelyard-train \
  --parameter "dataset=${DATASET}" --parameter "model-name=${model_name}"

log "checking MLflow for a champion version of ${model_name}"
kubectl -n "${NAMESPACE}" port-forward "${MLFLOW_SERVICE}" "${MLFLOW_LOCAL_PORT}:5000" >/dev/null 2>&1 &
port_forward_pid=$!
trap 'kill "${port_forward_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 30); do mlflow_get /health >/dev/null 2>&1 && break; sleep 1; done
champion="$(mlflow_get "/api/2.0/mlflow/registered-models/alias?name=${model_name}&alias=champion" \
  | jq -r '.model_version.version // empty')" || true
[[ -n "${champion}" ]] || die "MLflow has no champion version of ${model_name}"
echo "champion: ${model_name} version ${champion}"

log "running the CronWorkflow once"
submit_and_wait cronwf/modelyard-retrain

log "rolling back"
submit_and_wait workflowtemplate/modelyard-rollback --parameter "model-name=${model_name}"

echo
echo "e2e-kind: all checks passed (champion was version ${champion})"
