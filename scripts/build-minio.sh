#!/usr/bin/env bash
# The MinIO server the integration tests run, into .tools/bin/minio: copied out of the image
# scripts/build-images.sh built, when Docker has it, else built by the image's own recipe
# (images/minio/build-release.sh at the Dockerfile's MINIO_MODULE_VERSION) through the Go proxy.
# Idempotent: skips when that build is already there.
# Usage: scripts/build-minio.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="build-minio:"

BIN_DIR="${REPO_ROOT}/.tools/bin"
version="$(minio_module_version)"
commit="${version##*-}"
tags="$(bash "${REPO_ROOT}/scripts/build-images.sh" --print-tags)"
image="$(printed_image MODELYARD_MINIO_IMAGE "${tags}")"

if [[ -x ${BIN_DIR}/minio ]] && "${BIN_DIR}/minio" --version 2>/dev/null | grep -q "${commit}"; then
  exit 0
fi
mkdir -p "${BIN_DIR}"
if command -v docker >/dev/null && docker image inspect "${image}" >/dev/null 2>&1; then
  log "copying minio out of ${image}"
  container="$(docker create "${image}")"
  trap 'docker rm -f "${container}" >/dev/null' EXIT
  docker cp "${container}:/usr/local/bin/minio" "${BIN_DIR}/minio"
else
  need_command go "https://go.dev/dl/"
  log "building github.com/minio/minio@${version}"
  (cd /tmp && OUT="${BIN_DIR}" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    bash "${REPO_ROOT}/images/minio/build-release.sh" minio "${version}")
fi
"${BIN_DIR}/minio" --version >&2
