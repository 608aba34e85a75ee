#!/usr/bin/env bash
# Build the MinIO server the integration tests run, from the same source images/minio builds
# (the Dockerfile's MINIO_MODULE_VERSION), through the Go module proxy, into .tools/bin/minio.
# Idempotent: skips when that build is already there.
# Usage: scripts/build-minio.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${REPO_ROOT}/.tools/bin"
version="$(sed -n 's/^ARG MINIO_MODULE_VERSION=//p' "${REPO_ROOT}/images/minio/Dockerfile" | head -n1)"
commit="${version##*-}"

command -v go >/dev/null || { echo "build-minio: Go is required (https://go.dev/dl/)" >&2; exit 1; }
if [[ -x ${BIN_DIR}/minio ]] && "${BIN_DIR}/minio" --version 2>/dev/null | grep -q "${commit}"; then
  exit 0
fi
mkdir -p "${BIN_DIR}"
echo "build-minio: go install github.com/minio/minio@${version}" >&2
(cd /tmp && GOBIN="${BIN_DIR}" GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X github.com/minio/minio/cmd.CommitID=${commit} -X github.com/minio/minio/cmd.ShortCommitID=${commit}" \
  "github.com/minio/minio@${version}")
"${BIN_DIR}/minio" --version >&2
