#!/usr/bin/env bash
# Build every binary `make cluster-up` runs, from upstream source through the Go module proxy,
# into .cluster/bin (CNI plugins into .cluster/bin/cni).
#
# One `go build` of scripts/cluster/go.mod builds Kubernetes, kubeadm, etcd, Argo Workflows, Argo
# Rollouts, CoreDNS (coredns/main.go: only the plugins our Corefile uses) and the CNI plugins on one
# shared dependency graph (Rollouts' own go.mod pins client-go v0.34: on v0.35 it compiles ~6
# core-minutes less); local-path-provisioner is a second `go build` of the same graph (it imports
# github.com/Sirupsen/logrus, which one build cannot hold beside github.com/sirupsen/logrus), so
# it compiles little but itself; the pause binary is a static gcc build of Kubernetes' own
# pause.c. Traefik is built inside a patched copy of its own module (its k8s.io pins, v0.36, are
# newer than Kubernetes' own).
# Cached: while versions.env, go.mod, go.sum, this script and the Go version are unchanged,
# nothing is rebuilt.
#
# Usage: scripts/cluster/build.sh            everything
#        scripts/cluster/build.sh argo-cli   only .cluster/bin/argo (for `argo lint` in make test)
#        scripts/cluster/build.sh traefik    only Traefik
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

# No DWARF: -ldflags -w drops it at the link anyway, and not writing it saves 13% of the compile's CPU.
export GOFLAGS="-buildvcs=false -gcflags=all=-dwarf=false" GOTOOLCHAIN=local CGO_ENABLED=0
# go.mod's tools and the binary names `go build` gives them.
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm
    etcd argo argoexec workflow-controller rollouts-controller coredns local-path-provisioner pause)
CNI_PLUGINS=(bridge host-local loopback portmap)
SRC_DIR="${CLUSTER_DIR}/src"
ARGO_SRC="${SRC_DIR}/argo-workflows"

# Module path and the versions.env variable that pins it.
PINS=(
    "k8s.io/kubernetes KUBERNETES_VERSION"
    "go.etcd.io/etcd/server/v3 ETCD_VERSION"
    "github.com/argoproj/argo-workflows/v4 ARGO_WORKFLOWS_VERSION"
    "github.com/coredns/coredns COREDNS_VERSION"
    "github.com/containernetworking/plugins CNI_PLUGINS_VERSION"
    "github.com/rancher/local-path-provisioner LOCAL_PATH_PROVISIONER_VERSION"
    "github.com/argoproj/argo-rollouts ARGO_ROLLOUTS_VERSION"
)
LOCAL_PATH_PROVISIONER=github.com/rancher/local-path-provisioner

# The oldest Go that builds them: go.mod's `go` line (the CNI plugins' own minimum).
check_go() {
    local need have
    need=go$(awk '$1 == "go" {print $2; exit}' "${CLUSTER_SCRIPTS}/go.mod")
    need_command go "${need#go} or newer: https://go.dev/dl/"
    have=$(go env GOVERSION)
    printf '%s\n' "${need}" "${have}" | sort -V -C || die "Go ${have} is too old: the CNI plugins ${CNI_PLUGINS_VERSION} need ${need}"
}

# copy_module MODULE@VERSION DIR: DIR becomes a writable copy of the module. Downloaded outside
# any module, so the download is checked against the checksum database.
copy_module() {
    (cd /tmp && GOFLAGS=-mod=mod go mod download "$1")
    rm -rf "$2"
    mkdir -p "$(dirname "$2")"
    cp -r "$(go env GOMODCACHE)/$1" "$2"
    chmod -R u+w "$2"
}

# staged DIR VERSION: DIR holds the copy of VERSION, patched (its .version is written last).
staged() { [[ -f $1/.version && $(<"$1/.version") == "$2" ]]; }

# Argo is built from a copy of its module (go.mod replaces the module by it) restored to what a
# git checkout has: the module has no ui/dist (yarn builds the UI), so the copy gets the
# placeholder upstream's Makefile makes when STATIC_FILES=false.
stage_argo_source() {
    staged "${ARGO_SRC}" "${ARGO_WORKFLOWS_VERSION}" && return
    copy_module "github.com/argoproj/argo-workflows/v4@${ARGO_WORKFLOWS_VERSION}" "${ARGO_SRC}"
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
    pkg=github.com/argoproj/argo-rollouts/utils/version
    flags+=" -X ${pkg}.version=${ARGO_ROLLOUTS_VERSION#v} -X ${pkg}.gitTag=${ARGO_ROLLOUTS_VERSION}"
    flags+=" -X ${pkg}.gitCommit=${ARGO_ROLLOUTS_VERSION} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
    echo "${flags}"
}

build_go_tools() {
    log "go build: Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, Argo ${ARGO_WORKFLOWS_VERSION}, CoreDNS ${COREDNS_VERSION}, CNI plugins ${CNI_PLUGINS_VERSION}"
    local tools
    # go.mod's tool block (`go list tool` loads them all at once, and so fails on the collision)
    tools=$(awk '/^tool \(/ {on = 1; next} on && /^\)/ {on = 0} on {print $1}' "${CLUSTER_SCRIPTS}/go.mod" |
        grep -vxF "${LOCAL_PATH_PROVISIONER}")
    # shellcheck disable=SC2086  # one package path per word
    (cd "${CLUSTER_SCRIPTS}" && go build -trimpath -ldflags "$(version_ldflags)" -o "${BIN_DIR}/" ${tools} ./coredns)
    mv "${BIN_DIR}/server" "${BIN_DIR}/etcd" # go.etcd.io/etcd/server/v3
    mkdir -p "${CNI_BIN_DIR}"
    local plugin
    for plugin in "${CNI_PLUGINS[@]}"; do mv "${BIN_DIR}/${plugin}" "${CNI_BIN_DIR}/"; done
}

build_local_path_provisioner() {
    log "go build: local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}"
    (cd "${CLUSTER_SCRIPTS}" && go build -trimpath -o "${BIN_DIR}/" \
        -ldflags "-s -w -X main.VERSION=${LOCAL_PATH_PROVISIONER_VERSION}" "${LOCAL_PATH_PROVISIONER}")
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

# go-http-auth: Traefik replaces it by a containous fork at a pseudo-version the proxy refuses;
# upstream's last commit has all of it but the fork's stale-nonce answer (see patch_traefik_source).
GO_HTTP_AUTH=github.com/abbot/go-http-auth@v0.4.1-0.20181019201920-860ed7f246ff

# lego's registry of DNS-01 challenge providers with none in it (modelyard's Traefik serves plain
# HTTP inside the cluster: no ACME); the error is lego's own for a provider it does not know.
lego_without_dns_providers() {
    cat <<'GO'
// Code generated by modelyard's scripts/cluster/build.sh: no DNS-01 providers.

package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName Factory for DNS providers.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("unrecognized DNS provider: %s", name)
}
GO
}

# Traefik builds in a copy of its module, patched where the Go proxy does not serve what it needs;
# each patch is in a feature modelyard does not use (ACME DNS challenges, digest auth):
# 1. pkg/config/dynamic/ext is a nested module upstream, so the module zip lacks it: its
#    open-source content (two empty structs) comes from scripts/cluster/traefik-ext/;
# 2. lego without its DNS-01 providers replaces lego: the proxy refuses six of their SDKs (403:
#    Akamai EdgeDNS, Huawei, Oracle, Sakura, UCloud, Yandex clouds), and the ~170 of them were a
#    third of Traefik's packages (lego_without_dns_providers);
# 3. GO_HTTP_AUTH replaces the fork; a stale digest nonce gets the plain digest challenge.
stage_traefik_source() {
    local src="${SRC_DIR}/traefik" lego="${SRC_DIR}/lego" lego_version stamp
    stamp="${TRAEFIK_VERSION} $(sha256sum "$0" | cut -c1-12)"  # the patches below are in this file
    staged "${src}" "${stamp}" && return
    copy_module "github.com/traefik/traefik/v3@${TRAEFIK_VERSION}" "${src}"
    cp -r "${CLUSTER_SCRIPTS}/traefik-ext" "${src}/pkg/config/dynamic/ext"
    lego_version=$(awk '$1 == "github.com/go-acme/lego/v5" {print $2; exit}' "${src}/go.mod")
    copy_module "github.com/go-acme/lego/v5@${lego_version}" "${lego}"
    lego_without_dns_providers >"${lego}/providers/dns/zz_gen_dns_providers.go"
    rm -f "${lego}/providers/dns/dns_providers_test.go"
    (cd "${src}" && go mod edit -replace "github.com/go-acme/lego/v5=${lego}" \
        -replace "github.com/abbot/go-http-auth=${GO_HTTP_AUTH}")
    sed -i 's/d\.auth\.RequireAuthStale(rw, req)/d.auth.RequireAuth(rw, req)/' "${src}/pkg/middlewares/auth/digest_auth.go"
    echo "${stamp}" >"${src}/.version"
}

# Argo Rollouts builds on go.mod's graph; its manifests (addons/argo-rollouts) come from its module.
stage_rollouts_source() {
    local src="${SRC_DIR}/argo-rollouts"
    staged "${src}" "${ARGO_ROLLOUTS_VERSION}" && return
    copy_module "github.com/argoproj/argo-rollouts@${ARGO_ROLLOUTS_VERSION}" "${src}"
    echo "${ARGO_ROLLOUTS_VERSION}" >"${src}/.version"
}

# Traefik: go build of the patched module copy, with its own go.mod (-mod=mod: go.sum gains the
# replacements' sums, checked against the checksum database).
build_traefik() {
    local hash marker="${BIN_DIR}/.traefik-inputs" pkg=github.com/traefik/traefik/v3/pkg/version
    hash=$({ grep -E '^TRAEFIK_VERSION=' "${CLUSTER_SCRIPTS}/versions.env"
        cat "$0" "${CLUSTER_SCRIPTS}"/traefik-ext/*; go env GOVERSION; } | sha256sum | cut -c1-16)
    [[ -f ${marker} && $(<"${marker}") == "${hash}" && -x ${BIN_DIR}/traefik ]] && return
    mkdir -p "${BIN_DIR}"
    rm -f "${marker}"
    stage_traefik_source
    log "go build: Traefik ${TRAEFIK_VERSION} (in its module, patched: see stage_traefik_source)"
    (cd "${SRC_DIR}/traefik" && GOFLAGS="${GOFLAGS} -mod=mod" go build -trimpath -o "${BIN_DIR}/traefik" \
        -ldflags "-s -w -X ${pkg}.Version=${TRAEFIK_VERSION} -X ${pkg}.BuildDate=2000-01-01T00:00:00Z" ./cmd/traefik)
    echo "${hash}" >"${marker}"
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
    case ${1:-all} in
        argo-cli) build_argo_cli; return ;;
        traefik) build_traefik; return ;;
        all) ;;
        *) die "usage: $0 [argo-cli|traefik]" ;;
    esac
    apt_install gcc libc6-dev binutils
    stage_rollouts_source
    local hash
    hash=$(inputs_hash)
    if up_to_date "${hash}"; then
        log "binaries in ${BIN_DIR} are up to date"
        build_traefik
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
    build_traefik
    log "built: ${BINARIES[*]} and CNI plugins ${CNI_PLUGINS[*]}"
}

main "$@"
