#!/usr/bin/env bash
# Build the modelyard container images (trainer, mlflow, minio) with version tags, never `latest`.
#
# Usage: scripts/build-images.sh [--offline] [--only trainer|mlflow|minio] [--print-tags] [--base] [--lock]
#   --print-tags  print the image tags (KEY=VALUE lines, the one source of the tags) and exit
#   --offline     build on a local Debian bookworm base made with debootstrap (no registry
#                 needed); implied when CI=true or when the default base cannot be pulled
#   --only NAME   build one image
#   --base        print the base image (making the debootstrap one if needed) and exit
#   --lock        regenerate requirements/*.lock with `uv pip compile` and exit
# Env: MODELYARD_BASE_IMAGE (base image; default python:3.12-slim-bookworm),
#      MODELYARD_IMAGE_PREFIX (default "modelyard/"), MODELYARD_IMAGE_TAG (default VERSION-SHA;
#      the minio image is tagged by the MinIO source it builds: <commit time>-<commit>).
# Prints the built tags last, as --print-tags does. Idempotent: the base image is cached by a
# hash of its inputs and image layers by Docker's build cache.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="build-images:"

DEFAULT_BASE=python:3.12-slim-bookworm
DEBIAN_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates

version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/pyproject.toml" | head -n1; }
revision() {
    local rev
    rev=$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
    [[ -z $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] || rev+=-dirty
    echo "$rev"
}

print_tags() {
    local prefix=${MODELYARD_IMAGE_PREFIX-modelyard/} sha tag
    sha=$(git -C "$REPO_ROOT" rev-parse --short=7 HEAD 2>/dev/null || echo nogit)
    tag=${MODELYARD_IMAGE_TAG:-$(version)-$sha}
    [[ $tag != latest ]] || die "refusing to tag images 'latest'"
    echo "MODELYARD_TRAINER_IMAGE=${prefix}trainer:$tag"
    echo "MODELYARD_MLFLOW_IMAGE=${prefix}mlflow:$tag"
    echo "MODELYARD_MINIO_IMAGE=${prefix}minio:$(minio_tag)"
}

# v0.0.0-20260212201848-7aac2a2c5b7c (the Dockerfile's MINIO_MODULE_VERSION) -> 20260212201848-7aac2a2c5b7c
minio_tag() {
    local version
    version=$(minio_module_version)
    echo "${version#v0.0.0-}"
}

lock() {
    local uv=${UV:-$(command -v uv || echo "$REPO_ROOT/.venv/bin/uv")}
    local args=(pip compile --universal --python-version 3.11 --generate-hashes --no-strip-extras
        --custom-compile-command "scripts/build-images.sh --lock")
    (cd "$REPO_ROOT" &&
        "$uv" "${args[@]}" -o requirements/trainer.lock pyproject.toml &&
        "$uv" "${args[@]}" -o requirements/mlflow-server.lock requirements/mlflow-server.in)
}

# The first Debian mirror the host's apt uses (deb822 or one-line format).
host_debian_mirror() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\/\?\)$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Host files that let builds inside the base reach the registries the way the host does:
# CA bundle and extra CAs (TLS-intercepting egress), pip's global config (index, cert).
host_trust_files() {
    local f
    for f in /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates/* /etc/pip.conf; do
        [[ -f $f ]] && echo "$f"
    done
    return 0
}

# Debian bookworm + python3 made with debootstrap and `docker import`; cached by input hash.
make_base_image() {
    local mirror hash tag rootfs proxy
    mirror=$(host_debian_mirror)
    proxy=$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p')
    hash=$( { declare -f make_base_image; echo "$BASE_PACKAGES $mirror $proxy"; host_trust_files | xargs -r cat; } |
        sha256sum | cut -c1-12)
    tag=modelyard/debian-base:$DEBIAN_SUITE-$hash
    if docker image inspect "$tag" >/dev/null 2>&1; then
        log "base image $tag exists, skipping debootstrap"
        echo "$tag"
        return
    fi
    command -v debootstrap >/dev/null || apt_install debootstrap
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/modelyard-rootfs.XXXXXX")
    log "debootstrap $DEBIAN_SUITE from $mirror into $rootfs"
    as_root env ${proxy:+http_proxy=$proxy} debootstrap --variant=minbase \
        --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$mirror" >&2
    as_root mkdir -p "$rootfs/usr/local/share/ca-certificates"
    while read -r f; do as_root cp "$f" "$rootfs$f"; done < <(host_trust_files)
    [[ -z $proxy ]] || echo "Acquire::http::Proxy \"$proxy\";" |
        as_root tee "$rootfs/etc/apt/apt.conf.d/01proxy" >/dev/null
    # Docs, man pages and translations: ~50 MB no container reads.
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/usr/share/{doc,man,info,locale}/*
    as_root tar -C "$rootfs" -c . | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$tag" >&2
    as_root rm -rf "$rootfs"
    echo "$tag"
}

# A Go toolchain image for offline builds: the base plus this host's GOROOT (`golang:*` stand-in).
make_go_image() {
    local base=$1 goroot version tag ctx
    goroot=$(go env GOROOT) version=$(go env GOVERSION)
    tag=modelyard/golang:$version-${base##*:}
    if ! docker image inspect "$tag" >/dev/null 2>&1; then
        ctx=$(mktemp -d "${TMPDIR:-/tmp}/modelyard-go.XXXXXX")
        cp -a "$goroot" "$ctx/go"
        log "making $tag from $goroot"
        # shellcheck disable=SC2016 # $PATH is for the Dockerfile, not this shell
        printf 'FROM %s\nCOPY go /usr/local/go\nENV PATH=/usr/local/go/bin:$PATH GOPATH=/go\n' "$base" |
            DOCKER_BUILDKIT=0 docker build -q -t "$tag" -f - "$ctx" >&2
        rm -rf "$ctx"
    fi
    echo "$tag"
}

# The base image: MODELYARD_BASE_IMAGE, else the official slim image, else (offline, CI, or
# the official one not pullable) a debootstrap base.
pick_base_image() {
    local offline=$1
    if [[ -n ${MODELYARD_BASE_IMAGE:-} ]]; then
        echo "$MODELYARD_BASE_IMAGE"
    elif [[ $offline == true || ${CI:-} == true ]]; then
        make_base_image
    elif docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1 || docker pull "$DEFAULT_BASE" >&2; then
        echo "$DEFAULT_BASE"
    else
        log "$DEFAULT_BASE is not reachable; making a local base image"
        make_base_image
    fi
}

build_image() {
    local name=$1 tag=$2 base=$3 builder=(docker build) args=() v
    shift 3
    args+=("$@")
    # Docker's legacy builder when the buildx plugin is missing (docker.io on bookworm). With
    # buildx, no attestations: `kind load docker-image` cannot load images that carry them under
    # Docker's containerd image store (kubernetes-sigs/kind#3795).
    if docker buildx version >/dev/null 2>&1; then
        args+=(--provenance=false --sbom=false)
    else
        builder=(env DOCKER_BUILDKIT=0 docker build)
    fi
    # Forward the host's proxy and pip index settings, if any, to RUN steps.
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL GOPROXY; do
        [[ -z ${!v:-} ]] || args+=(--build-arg "$v=${!v}")
    done
    log "building $tag on $base"
    "${builder[@]}" --network host -f "$REPO_ROOT/images/$name/Dockerfile" \
        --build-arg "BASE_IMAGE=$base" \
        --build-arg "VERSION=$(version)" \
        --build-arg "REVISION=$(revision)" \
        --build-arg "SOURCE=$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || echo unknown)" \
        "${args[@]}" -t "$tag" "$REPO_ROOT" >&2
}

# MinIO builds in a Go image and runs on a Debian one: the official ones, or offline the base.
# With Go here, the binaries are built on this machine (scripts/build-minio.sh: its Go caches, one
# build shared with the integration tests) and the image build uses them.
build_minio() {
    local tag=$1 base=$2 args=() prebuilt="$REPO_ROOT/images/minio/prebuilt"
    if command -v go >/dev/null; then
        bash "$REPO_ROOT/scripts/build-minio.sh"
        cp -f "$REPO_ROOT/.tools/bin/minio" "$REPO_ROOT/.tools/bin/mc" "$prebuilt/"
    fi
    if [[ $base == modelyard/debian-base:* ]]; then
        args=(--build-arg "GO_IMAGE=$(make_go_image "$base")" --build-arg "RUNTIME_IMAGE=$base")
    fi
    GOPROXY=${GOPROXY:-$(go env GOPROXY 2>/dev/null || true)} build_image minio "$tag" "$base" "${args[@]}"
}

main() {
    local offline=${MODELYARD_OFFLINE:-false} only="" base
    while [[ $# -gt 0 ]]; do
        case $1 in
            --print-tags) print_tags; return ;;
            --lock) lock; return ;;
            --offline) offline=true ;;
            --only) only=${2:?--only needs trainer, mlflow or minio}; shift ;;
            --base) ensure_docker "${TMPDIR:-/tmp}/dockerd.log"; pick_base_image "$offline"; return ;;
            -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
            *) die "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
    ensure_docker "${TMPDIR:-/tmp}/dockerd.log"
    base=$(pick_base_image "$offline")
    local tags
    tags=$(print_tags)
    local trainer mlflow
    trainer=$(printed_image MODELYARD_TRAINER_IMAGE "$tags")
    mlflow=$(printed_image MODELYARD_MLFLOW_IMAGE "$tags")
    # Also tagged with the bare version, the chart's default (its appVersion).
    [[ $only == "" || $only == trainer ]] && build_image trainer "$trainer" "$base" -t "${trainer%:*}:$(version)"
    [[ $only == "" || $only == mlflow ]] && build_image mlflow "$mlflow" "$base" -t "${mlflow%:*}:$(version)"
    [[ $only == "" || $only == minio ]] && build_minio "$(printed_image MODELYARD_MINIO_IMAGE "$tags")" "$base"
    echo "$tags"
}

main "$@"
