#!/usr/bin/env bash
# `make cluster-down`: stop everything scripts/cluster/up.sh started and remove what it made:
# the daemons, every pod's processes and cgroups, the mounts under .cluster/, the network
# namespace (with its veth pair, bridge and iptables rules) and the cluster's state. The build
# caches (.cluster/bin, images, src, downloads) and the logs stay. Idempotent.
# Usage: scripts/cluster/down.sh        (root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

# stop NAME: SIGTERM the daemon, SIGKILL it after 15 s.
stop() {
    local pid
    [[ -f ${RUN_DIR}/$1.pid ]] || return 0
    pid=$(<"${RUN_DIR}/$1.pid")
    if kill -0 "${pid}" 2>/dev/null; then
        log "stopping $1 (pid ${pid})"
        kill "${pid}" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.5; done
        kill -9 "${pid}" 2>/dev/null || true
    fi
    rm -f "${RUN_DIR}/$1.pid"
}

# Container processes: everything in the pods' cgroups, and the containerd shims of this node.
kill_pods() {
    local pids
    pids=$( { cat "${CGROUP_ROOT}"/*/"${KUBEPODS_CGROUP}"/cgroup.procs 2>/dev/null
        find "${CGROUP_ROOT}"/*/"${KUBEPODS_CGROUP}" -mindepth 2 -name cgroup.procs -exec cat {} + 2>/dev/null
        pgrep -f "containerd-shim.*${CONTAINERD_SOCKET}" || true; } | sort -u)
    [[ -z ${pids} ]] && return
    log "killing $(wc -w <<<"${pids}") container processes"
    # shellcheck disable=SC2086
    kill -9 ${pids} 2>/dev/null || true
    sleep 1
}

remove_cgroups() {
    local dir
    for dir in "${CGROUP_ROOT}"/*/"${KUBEPODS_CGROUP}"; do
        [[ -d ${dir} ]] && find "${dir}" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    return 0
}

unmount_all() {
    local target
    # Deepest first; lazily if something still holds one.
    while read -r target; do
        umount "${target}" 2>/dev/null || umount -l "${target}"
    done < <(findmnt -rn -o TARGET | awk -v dir="${CLUSTER_DIR}/" 'index($0, dir) == 1' | sort -r)
}

# What a stopped dockerd leaves: its network namespace mount and empty cgroups.
remove_docker_leftovers() {
    local target
    while read -r target; do umount "${target}"; done < <(findmnt -rn -o TARGET | grep '^/run/docker/netns/' || true)
    rmdir "${CGROUP_ROOT}"/*/docker 2>/dev/null || true
}

remove_network() {
    if [[ -e /run/netns/${NETNS} ]]; then
        log "deleting network namespace ${NETNS} (veth, bridge, iptables rules)"
        ip netns delete "${NETNS}"
    fi
    if ip link show "${HOST_VETH}" >/dev/null 2>&1; then ip link delete "${HOST_VETH}"; fi
}

check_clean() {
    local left=()
    for name in "${DAEMONS[@]}" dockerd; do running "${name}" && left+=("process ${name}"); done
    pgrep -f "containerd-shim.*${CONTAINERD_SOCKET}" >/dev/null && left+=("containerd shims")
    findmnt -rn -o TARGET | grep -q "^${CLUSTER_DIR}/" && left+=("mounts under ${CLUSTER_DIR}")
    [[ -e /run/netns/${NETNS} ]] && left+=("network namespace ${NETNS}")
    ip link show "${HOST_VETH}" >/dev/null 2>&1 && left+=("interface ${HOST_VETH}")
    compgen -G "${CGROUP_ROOT}/*/${KUBEPODS_CGROUP}" >/dev/null && left+=("cgroups ${KUBEPODS_CGROUP}")
    ((${#left[@]} == 0)) || die "left behind: ${left[*]}"
}

main() {
    need_root
    stop kubelet
    stop kube-proxy
    kill_pods
    stop containerd
    kill_pods
    local name ours_docker=false
    for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "${name}"; done
    if [[ -f ${RUN_DIR}/dockerd.pid ]]; then
        ours_docker=true
        stop dockerd
    fi
    unmount_all
    remove_cgroups
    remove_network
    [[ ${ours_docker} == false ]] || remove_docker_leftovers
    rm -rf "${VAR_DIR}" "${RUN_DIR}" "${ETC_DIR}" "${KUBECONFIG_FILE}"
    check_clean
    log "cluster removed; nothing of it is running"
}

main "$@"
