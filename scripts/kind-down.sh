#!/usr/bin/env bash
# Delete the local kind cluster made by scripts/kind-up.sh (and everything in it).
# Usage: scripts/kind-down.sh     Env: CLUSTER_NAME (modelyard)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-modelyard}"

command -v kind >/dev/null 2>&1 || { echo "kind-down: kind is required" >&2; exit 1; }
if kind get clusters | grep -qx "${CLUSTER_NAME}"; then
  kind delete cluster --name "${CLUSTER_NAME}"
else
  echo "no kind cluster named ${CLUSTER_NAME}; nothing to do (repo: ${REPO_ROOT})"
fi
