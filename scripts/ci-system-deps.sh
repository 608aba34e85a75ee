#!/usr/bin/env bash
# System packages the integration tests (tests/integration) need, from Debian's archive:
#   postgresql  - initdb/pg_ctl for a throwaway cluster (/usr/lib/postgresql/<v>/bin)
#   chromium    - headless browser for the MLflow UI check
# The S3 server (MinIO, scripts/build-minio.sh) is built with Go; psycopg2-binary and boto3 come
# from PyPI with the `dev` extra.
# Idempotent: installs only what is missing; never starts the packaged PostgreSQL service.
# Usage: sudo bash scripts/ci-system-deps.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)

if ((${#missing[@]} == 0)); then
  log "all present: postgresql, chromium"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "need root to install: ${missing[*]}"

# Install the server binaries without the packaged cluster service starting on port 5432.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e ${policy} ]]; then
  printf '#!/bin/sh\nexit 101\n' >"${policy}"
  chmod +x "${policy}"
  created_policy=1
fi
trap '[[ ${created_policy} -eq 1 ]] && rm -f "${policy}"' EXIT
apt_install "${missing[@]}"
log "installed: ${missing[*]}"
