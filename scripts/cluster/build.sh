#!/usr/bin/env bash
# Build every binary `make cluster-up` runs, from upstream source through the Go module proxy,
# into .cluster/bin (CNI plugins into .cluster/bin/cni).
#
# One `go build` of scripts/cluster/go.mod builds Kubernetes, kubeadm, etcd, Argo Workflows,
# CoreDNS (coredns/main.go: only the plugins our Corefile uses) and the CNI plugins on one shared
# dependency graph; local-path-provisioner (whose
# graph conflicts with it) is a second `go install`, the pause binary a static gcc build of
# Kubernetes' own pause.c. Cached: while versions.env, go.mod, go.sum, this script and the Go
# version are unchanged, nothing is rebuilt.
#
# Usage: scripts/cluster/build.sh            everything
#        scripts/cluster/build.sh argo-cli   only .cluster/bin/argo (for `argo lint` in make test)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

export GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
# go.mod's tools and the binary names `go build` gives them.
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm
    etcd argo argoexec workflow-controller coredns local-path-provisioner pause)
CNI_PLUGINS=(bridge host-local loopback portmap)
ARGO_SRC="${CLUSTER_DIR}/src/argo-workflows"

# Module path and the versions.env variable that pins it.
PINS=(
    "k8s.io/kubernetes KUBERNETES_VERSION"
    "go.etcd.io/etcd/server/v3 ETCD_VERSION"
    "github.com/argoproj/argo-workflows/v4 ARGO_WORKFLOWS_VERSION"
    "github.com/coredns/coredns COREDNS_VERSION"
    "github.com/containernetworking/plugins CNI_PLUGINS_VERSION"
)

# The oldest Go that builds them: go.mod's `go` line (the CNI plugins' own minimum).
check_go() {
    local need have
    need=go$(awk '$1 == "go" {print $2; exit}' "${CLUSTER_SCRIPTS}/go.mod")
    need_command go "${need#go} or newer: https://go.dev/dl/"
    have=$(go env GOVERSION)
    printf '%s\n' "${need}" "${have}" | sort -V -C || die "Go ${have} is too old: the CNI plugins ${CNI_PLUGINS_VERSION} need ${need}"
}

# Argo is built from a copy of its module (go.mod replaces the module by it) restored to what a
# git checkout has: the module has no ui/dist (yarn builds the UI), so the copy gets the
# placeholder upstream's Makefile makes when STATIC_FILES=false.
stage_argo_source() {
    [[ -f ${ARGO_SRC}/.version && $(<"${ARGO_SRC}/.version") == "${ARGO_WORKFLOWS_VERSION}" ]] && return
    local module=github.com/argoproj/argo-workflows/v4@${ARGO_WORKFLOWS_VERSION}
    # Outside any module, so the download is checked against the checksum database.
    (cd /tmp && GOFLAGS=-mod=mod go mod download "${module}")
    local dir
    dir="$(go env GOMODCACHE)/${module}"
    rm -rf "${ARGO_SRC}"
    mkdir -p "$(dirname "${ARGO_SRC}")"
    cp -r "${dir}" "${ARGO_SRC}"
    chmod -R u+w "${ARGO_SRC}"
    # Upstream's signal_linux.go is a symlink to signal_darwin.go; module zips drop symlinks.
    ln -s signal_darwin.go "${ARGO_SRC}/workflow/executor/osspecific/signal_linux.go"
    mkdir -p "${ARGO_SRC}/ui/dist/app"
    echo "Built without static files" >"${ARGO_SRC}/ui/dist/app/index.html"
    echo "${ARGO_WORKFLOWS_VERSION}" >"${ARGO_SRC}/.version"
}

check_pins() {
    local pin path var have
    for pin in "${PINS[@]}"; do
        read -r path var <<<"${pin}"
        have=$(cd "${CLUSTER_SCRIPTS}" && go list -m -f '{{.Version}}' "${path}")
        [[ ${have} == "${!var}" ]] || die "go.mod requires ${path} ${have} but versions.env pins ${var}=${!var}: run (cd scripts/cluster && go get ${path}@${!var} && go mod tidy)"
    done
}

version_ldflags() {
    local flags="-s -w" pkg build_date=2000-01-01T00:00:00Z
    local minor=${KUBERNETES_VERSION#v*.}
    minor=${minor%%.*}
    # What Kubernetes' hack/lib/version.sh stamps: kubelet reports it as the node's version.
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
        flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
    done
    # Argo derives its executor image tag (argoexec:<version>) from this.
    pkg=github.com/argoproj/argo-workflows/v4
    flags+=" -X ${pkg}.version=${ARGO_WORKFLOWS_VERSION} -X ${pkg}.gitTag=${ARGO_WORKFLOWS_VERSION}"
    flags+=" -X ${pkg}.gitCommit=${ARGO_WORKFLOWS_VERSION} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
    echo "${flags}"
}

build_go_tools() {
    log "go build: Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, Argo ${ARGO_WORKFLOWS_VERSION}, CoreDNS ${COREDNS_VERSION}, CNI plugins ${CNI_PLUGINS_VERSION}"
    (cd "${CLUSTER_SCRIPTS}" && go build -trimpath -ldflags "$(version_ldflags)" -o "${BIN_DIR}/" tool ./coredns)
    mv "${BIN_DIR}/server" "${BIN_DIR}/etcd" # go.etcd.io/etcd/server/v3
    mkdir -p "${CNI_BIN_DIR}"
    local plugin
    for plugin in "${CNI_PLUGINS[@]}"; do mv "${BIN_DIR}/${plugin}" "${CNI_BIN_DIR}/"; done
}

build_local_path_provisioner() {
    log "go install: local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}"
    (cd /tmp && GOFLAGS=-mod=mod GOBIN="${BIN_DIR}" go install -trimpath \
        -ldflags "-s -w -X main.VERSION=${LOCAL_PATH_PROVISIONER_VERSION}" \
        "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}")
}

build_pause() {
    local k8s
    k8s=$(cd "${CLUSTER_SCRIPTS}" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    log "gcc: pause ${PAUSE_VERSION} from ${k8s}/build/pause/linux/pause.c"
    gcc -Os -Wall -Werror -static -DVERSION="v${PAUSE_VERSION}-modelyard" \
        -o "${BIN_DIR}/pause" "${k8s}/build/pause/linux/pause.c"
    strip "${BIN_DIR}/pause"
}

inputs_hash() {
    { cat "${CLUSTER_SCRIPTS}"/{versions.env,go.mod,go.sum,coredns/main.go} "$0"; go env GOVERSION; } | sha256sum | cut -c1-16
}

up_to_date() {
    local name
    [[ -f ${BIN_DIR}/.inputs && $(<"${BIN_DIR}/.inputs") == "$1" ]] || return 1
    for name in "${BINARIES[@]}"; do [[ -x ${BIN_DIR}/${name} ]] || return 1; done
    for name in "${CNI_PLUGINS[@]}"; do [[ -x ${CNI_BIN_DIR}/${name} ]] || return 1; done
}

build_argo_cli() {
    [[ -x ${BIN_DIR}/argo && $("${BIN_DIR}/argo" version --short 2>/dev/null) == *"${ARGO_WORKFLOWS_VERSION}"* ]] && return
    stage_argo_source
    log "go build: argo CLI ${ARGO_WORKFLOWS_VERSION}"
    (cd "${CLUSTER_SCRIPTS}" && go build -trimpath -ldflags "$(version_ldflags)" -o "${BIN_DIR}/argo" \
        github.com/argoproj/argo-workflows/v4/cmd/argo)
}

main() {
    check_go
    if [[ ${1:-all} == argo-cli ]]; then
        build_argo_cli
        return
    fi
    apt_install gcc libc6-dev binutils
    local hash
    hash=$(inputs_hash)
    if up_to_date "${hash}"; then
        log "binaries in ${BIN_DIR} are up to date"
        return
    fi
    mkdir -p "${BIN_DIR}"
    rm -f "${BIN_DIR}/.inputs"
    stage_argo_source
    check_pins
    build_go_tools
    build_local_path_provisioner
    build_pause
    echo "${hash}" >"${BIN_DIR}/.inputs"
    log "built: ${BINARIES[*]} and CNI plugins ${CNI_PLUGINS[*]}"
}

main "$@"
