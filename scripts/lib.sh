# Shared by every script under scripts/ (sourced, never run): where the repository is, logging,
# root, apt, Docker and waiting. After sourcing it a script may set LOG_PREFIX, the start of its
# log lines; the default is "[<script name>]", e.g. "[up]" for scripts/cluster/up.sh.
# Nothing here writes to stdout: scripts/build-images.sh's stdout is its image tags.
# shellcheck shell=bash disable=SC2034  # REPO_ROOT and LOG_PREFIX are for the scripts that source this

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX="[$(basename "$0" .sh)]"

log() { printf '%s %s\n' "${LOG_PREFIX}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need_command NAME [HINT]: die unless NAME is on PATH.
need_command() { command -v "$1" >/dev/null 2>&1 || die "$1 is required${2:+ ($2)}"; }

# as_root CMD...: run CMD as root, through sudo unless we are root.
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# apt_install PACKAGE...: install with apt-get (as root) those of the packages dpkg lacks.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f '${Status}' "${pkg}" 2>/dev/null | grep -q 'ok installed' || missing+=("${pkg}")
    done
    ((${#missing[@]})) || return 0
    log "installing with apt-get: ${missing[*]}"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD once a second until it succeeds.
wait_for() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "timed out after ${seconds}s waiting for ${what}"
}

# ensure_docker LOG_FILE [DOCKERD_ARG...]: a Docker engine that answers. When none does and no
# dockerd is starting, dockerd (docker.io from apt when missing) is started as root with
# DOCKERD_ARGs, detached with its stdio closed (a caller capturing our output must not wait for
# it), appending to LOG_FILE; its pid goes to the file DOCKERD_PIDFILE names, when set.
ensure_docker() {
    docker info >/dev/null 2>&1 && return
    local log_file=$1
    shift
    command -v dockerd >/dev/null || apt_install docker.io
    if ! pgrep -x dockerd >/dev/null; then
        log "starting dockerd${*:+ $*} (log: ${log_file})"
        mkdir -p "$(dirname "${log_file}")"
        # Not through as_root: $! must be dockerd's pid (setsid execs it), not a subshell's.
        if [[ $(id -u) == 0 ]]; then
            setsid dockerd "$@" </dev/null >>"${log_file}" 2>&1 &
        else
            # shellcheck disable=SC2024  # the log is the caller's, opened by this shell
            sudo setsid dockerd "$@" </dev/null >>"${log_file}" 2>&1 &
        fi
        if [[ -n ${DOCKERD_PIDFILE:-} ]]; then
            mkdir -p "$(dirname "${DOCKERD_PIDFILE}")"
            echo $! >"${DOCKERD_PIDFILE}"
        fi
    fi
    wait_for 60 "the Docker engine (see ${log_file})" docker info
}

# printed_image KEY OUTPUT: the image of the last KEY=IMAGE line of OUTPUT (what
# scripts/build-images.sh prints: MODELYARD_TRAINER_IMAGE, MODELYARD_MLFLOW_IMAGE, MODELYARD_MINIO_IMAGE).
printed_image() { sed -n "s/^$1=//p" <<<"$2" | tail -n1; }

# The MinIO release images/minio/Dockerfile builds: its MINIO_MODULE_VERSION (a Go pseudo-version).
minio_module_version() {
    sed -n 's/^ARG MINIO_MODULE_VERSION=//p' "${REPO_ROOT}/images/minio/Dockerfile" | head -n1
}
