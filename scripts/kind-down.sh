#!/usr/bin/env bash
# Delete the local kind cluster made by scripts/kind-up.sh (and everything in it).
# Usage: scripts/kind-down.sh     Env: CLUSTER_NAME (modelyard)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="kind-down:"

CLUSTER_NAME="${CLUSTER_NAME:-modelyard}"

need_command kind
if kind get clusters | grep -qx "${CLUSTER_NAME}"; then
  kind delete cluster --name "${CLUSTER_NAME}"
else
  echo "no kind cluster named ${CLUSTER_NAME}; nothing to do (repo: ${REPO_ROOT})"
fi
