#!/usr/bin/env bash
# MinIO's server and client (`minio`, `mc`) built once on this machine, into .tools/bin, by the
# image's own recipe (images/minio/build-release.sh at the Dockerfile's MINIO_MODULE_VERSION and
# MC_MODULE_VERSION) through the Go proxy, with this machine's Go caches. The integration tests run
# this `minio`; scripts/build-images.sh puts both into the image instead of building them again
# inside Docker. Idempotent, and safe to run twice at once (a lock): the second waits and skips.
# Usage: scripts/build-minio.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="build-minio:"

BIN_DIR="${REPO_ROOT}/.tools/bin"

dockerfile_arg() { sed -n "s/^ARG $1=//p" "${REPO_ROOT}/images/minio/Dockerfile" | head -n1; }

build() {
    log "github.com/minio/$1@$2"
    (cd /tmp && OUT="${BIN_DIR}" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
        bash "${REPO_ROOT}/images/minio/build-release.sh" "$1" "$2") >&2
}

need_command go "https://go.dev/dl/"
mkdir -p "${BIN_DIR}"
exec 9>"${BIN_DIR}/.minio.lock"
flock 9
build minio "$(minio_module_version)"
build mc "$(dockerfile_arg MC_MODULE_VERSION)"
