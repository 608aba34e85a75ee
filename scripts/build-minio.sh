#!/usr/bin/env bash
# The MinIO server the integration tests run, into .tools/bin/minio: copied out of the image
# scripts/build-images.sh built, when Docker has it, else built by the image's own recipe
# (images/minio/build-release.sh at the Dockerfile's MINIO_MODULE_VERSION) through the Go proxy.
# Idempotent: skips when that build is already there.
# Usage: scripts/build-minio.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${REPO_ROOT}/.tools/bin"
version="$(sed -n 's/^ARG MINIO_MODULE_VERSION=//p' "${REPO_ROOT}/images/minio/Dockerfile" | head -n1)"
commit="${version##*-}"
image="$(bash "${REPO_ROOT}/scripts/build-images.sh" --print-tags | sed -n 's/^MODELYARD_MINIO_IMAGE=//p')"

if [[ -x ${BIN_DIR}/minio ]] && "${BIN_DIR}/minio" --version 2>/dev/null | grep -q "${commit}"; then
  exit 0
fi
mkdir -p "${BIN_DIR}"
if command -v docker >/dev/null && docker image inspect "${image}" >/dev/null 2>&1; then
  echo "build-minio: copying minio out of ${image}" >&2
  container="$(docker create "${image}")"
  trap 'docker rm -f "${container}" >/dev/null' EXIT
  docker cp "${container}:/usr/local/bin/minio" "${BIN_DIR}/minio"
else
  command -v go >/dev/null || { echo "build-minio: Go is required (https://go.dev/dl/)" >&2; exit 1; }
  echo "build-minio: building github.com/minio/minio@${version}" >&2
  (cd /tmp && OUT="${BIN_DIR}" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    bash "${REPO_ROOT}/images/minio/build-release.sh" minio "${version}")
fi
"${BIN_DIR}/minio" --version >&2
