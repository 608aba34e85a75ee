#!/usr/bin/env bash
# `make cluster-up`: a single-node Kubernetes cluster of host processes built from upstream
# source (as Kubernetes' hack/local-up-cluster.sh runs one), with CoreDNS, a default
# StorageClass (local-path-provisioner), Argo Workflows, and the serving stack (Argo Rollouts,
# Traefik on NodePort 30080), every image built and imported.
#
# The node's daemons (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# + runc, kubelet, kube-proxy) run inside the network namespace "modelyard", reached from the
# host at 10.200.0.2 over a veth pair: its iptables rules, bridge and pod interfaces stay in
# that namespace, away from the host's (a Docker engine's FORWARD policy there drops bridge
# traffic). Everything it writes is under .cluster/; scripts/cluster/down.sh removes it all.
#
# Usage: scripts/cluster/up.sh          (root; idempotent: a running cluster is left as it is)
# Then:  export KUBECONFIG=$PWD/.cluster/kubeconfig PATH=$PWD/.cluster/bin:$PATH
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

SYSTEM_PACKAGES=(containerd runc iptables conntrack iproute2 util-linux curl ca-certificates
    media-types busybox-static debootstrap docker.io)
# start NAME CMD...: run CMD in the node's network namespace, detached, logging to logs/NAME.log.
start() {
    local name=$1
    shift
    running "${name}" && return
    log "starting ${name}"
    setsid nsenter --net="/run/netns/${NETNS}" -- "$@" </dev/null >>"${LOG_DIR}/${name}.log" 2>&1 &
    echo $! >"${RUN_DIR}/${name}.pid"
}

check_host() {
    need_root
    [[ -d ${CGROUP_ROOT}/memory && ! -f ${CGROUP_ROOT}/cgroup.controllers ]] ||
        die "expected cgroup v1 (memory hierarchy at ${CGROUP_ROOT}/memory); this setup configures the kubelet for it"
    apt_install "${SYSTEM_PACKAGES[@]}"
    local have
    have=$(containerd --version | awk '{print $3}')
    [[ ${have} == "${CONTAINERD_SERIES}".* ]] || die "containerd ${have} is not the ${CONTAINERD_SERIES} series this cluster is configured for"
    have=$(runc --version | awk 'NR==1 {print $3}')
    [[ ${have} == "${RUNC_SERIES}".* ]] || die "runc ${have} is not the ${RUNC_SERIES} series"
    # The kubelet, containerd and CoreDNS watch many files; the default 128 instances run out.
    sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=524288
}

# A Docker engine for the image builds; when none runs, one without bridge or iptables rules
# (builds use the host network), stopped again by down.sh (through its pid file).
start_docker() {
    DOCKERD_PIDFILE="${RUN_DIR}/dockerd.pid" \
        ensure_docker "${LOG_DIR}/dockerd.log" --bridge=none --iptables=false --ip-masq=false
}

setup_network() {
    mkdir -p /run/netns
    [[ -e /run/netns/${NETNS} ]] || ip netns add "${NETNS}"
    if ! ip link show "${HOST_VETH}" >/dev/null 2>&1; then
        ip link add "${HOST_VETH}" type veth peer name eth0 netns "${NETNS}"
        ip addr add "${HOST_IP}/${NODE_PREFIX}" dev "${HOST_VETH}"
        ip link set "${HOST_VETH}" up
        in_node ip addr add "${NODE_IP}/${NODE_PREFIX}" dev eth0
        in_node ip link set eth0 up
        in_node ip link set lo up
        in_node ip route add default via "${HOST_IP}"
    fi
    # Per namespace: routing between pods and services, and bridged pod traffic seen by iptables.
    in_node sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
        net.bridge.bridge-nf-call-ip6tables=1
}

write_pki() {
    [[ -f ${ETC_DIR}/admin.conf ]] && return
    log "certificates and kubeconfigs (kubeadm init phase certs/kubeconfig)"
    mkdir -p "${PKI_DIR}"
    cat >"${ETC_DIR}/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: ${NODE_IP}, bindPort: 6443}
nodeRegistration: {name: ${NODE_NAME}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: modelyard
kubernetesVersion: ${KUBERNETES_VERSION}
certificatesDir: ${PKI_DIR}
controlPlaneEndpoint: ${NODE_IP}:6443
networking: {serviceSubnet: ${SERVICE_CIDR}, podSubnet: ${POD_CIDR}, dnsDomain: ${CLUSTER_DOMAIN}}
apiServer: {certSANs: [localhost, 127.0.0.1, ${NODE_IP}]}
etcd: {external: {endpoints: ["http://127.0.0.1:2379"]}}
EOF
    "${BIN_DIR}/kubeadm" init phase certs all --config "${ETC_DIR}/kubeadm.yaml" >/dev/null
    "${BIN_DIR}/kubeadm" init phase kubeconfig all --config "${ETC_DIR}/kubeadm.yaml" \
        --kubeconfig-dir "${ETC_DIR}" >/dev/null
    "${BIN_DIR}/kubeadm" kubeconfig user --config "${ETC_DIR}/kubeadm.yaml" \
        --client-name system:kube-proxy >"${ETC_DIR}/kube-proxy.conf"
}

# put FILE: write stdin to FILE unless FILE already holds it. The kubelet and kube-proxy watch their
# configs: rewriting one unchanged on a second cluster-up restarted kube-proxy under running pods.
put() {
    local content
    content=$(cat)
    [[ -f $1 && $(<"$1") == "${content}" ]] && return
    printf '%s\n' "${content}" >"$1"
}

write_node_configs() {
    mkdir -p "${ETC_DIR}/cni" "${VAR_DIR}/cni" "${VAR_DIR}/local-path"
    put "${ETC_DIR}/containerd.toml" <<EOF
version = 2
root = "${VAR_DIR}/containerd"
state = "${RUN_DIR}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "${CONTAINERD_SOCKET}"
[ttrpc]
  address = "${CONTAINERD_SOCKET}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${VAR_DIR}/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:${PAUSE_VERSION}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under .cluster/run, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${ETC_DIR}/cni"
EOF
    put "${ETC_DIR}/cni/10-modelyard.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelyard",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "${NODE_POD_CIDR}"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "${VAR_DIR}/cni"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    # The node's resolver for pods with dnsPolicy Default (CoreDNS itself): no upstream is
    # reachable from the node, so only cluster names resolve.
    echo "nameserver ${DNS_SERVICE_IP}" | put "${ETC_DIR}/resolv.conf"
    put "${ETC_DIR}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 host: allowed explicitly from v1.35, with the cgroupfs driver (no systemd here).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${CONTAINERD_SOCKET}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI_DIR}/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [${DNS_SERVICE_IP}]
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: ${ETC_DIR}/resolv.conf
podLogsDir: ${VAR_DIR}/log/pods
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
failSwapOn: false
serializeImagePulls: false
# Images are imported, never pulled: garbage-collecting one would break the pods that use it.
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
EOF
    put "${ETC_DIR}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${ETC_DIR}/kube-proxy.conf}
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${POD_CIDR}
# nf_conntrack_max is read-only outside the initial network namespace: leave it alone.
conntrack: {maxPerCore: 0, min: 0}
metricsBindAddress: 127.0.0.1:10249
EOF
}

start_control_plane() {
    start etcd "${BIN_DIR}/etcd" --name "${NODE_NAME}" --data-dir "${VAR_DIR}/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster "${NODE_NAME}=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381
    wait_for 60 etcd in_node curl -fsS http://127.0.0.1:2381/health
    start kube-apiserver "${BIN_DIR}/kube-apiserver" \
        --etcd-servers http://127.0.0.1:2379 \
        --advertise-address "${NODE_IP}" --secure-port 6443 \
        --service-cluster-ip-range "${SERVICE_CIDR}" --allow-privileged=true \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --client-ca-file "${PKI_DIR}/ca.crt" \
        --tls-cert-file "${PKI_DIR}/apiserver.crt" --tls-private-key-file "${PKI_DIR}/apiserver.key" \
        --kubelet-client-certificate "${PKI_DIR}/apiserver-kubelet-client.crt" \
        --kubelet-client-key "${PKI_DIR}/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer "https://kubernetes.default.svc.${CLUSTER_DOMAIN}" \
        --service-account-key-file "${PKI_DIR}/sa.pub" \
        --service-account-signing-key-file "${PKI_DIR}/sa.key" \
        --requestheader-client-ca-file "${PKI_DIR}/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "${PKI_DIR}/front-proxy-client.crt" \
        --proxy-client-key-file "${PKI_DIR}/front-proxy-client.key"
    wait_for 120 kube-apiserver "${BIN_DIR}/kubectl" --kubeconfig "${ETC_DIR}/super-admin.conf" get --raw /readyz
    # What `kubeadm init` binds: admin.conf's group gets cluster-admin.
    "${BIN_DIR}/kubectl" --kubeconfig "${ETC_DIR}/super-admin.conf" create clusterrolebinding \
        kubeadm:cluster-admins --clusterrole cluster-admin --group kubeadm:cluster-admins \
        --dry-run=client -o yaml | "${BIN_DIR}/kubectl" --kubeconfig "${ETC_DIR}/super-admin.conf" apply -f - >/dev/null
    cp "${ETC_DIR}/admin.conf" "${KUBECONFIG_FILE}"
    start kube-controller-manager "${BIN_DIR}/kube-controller-manager" \
        --kubeconfig "${ETC_DIR}/controller-manager.conf" \
        --authentication-kubeconfig "${ETC_DIR}/controller-manager.conf" \
        --authorization-kubeconfig "${ETC_DIR}/controller-manager.conf" \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
        --cluster-signing-cert-file "${PKI_DIR}/ca.crt" --cluster-signing-key-file "${PKI_DIR}/ca.key" \
        --root-ca-file "${PKI_DIR}/ca.crt" --service-account-private-key-file "${PKI_DIR}/sa.key" \
        --allocate-node-cidrs --cluster-cidr "${POD_CIDR}" --node-cidr-mask-size 24 \
        --service-cluster-ip-range "${SERVICE_CIDR}"
    start kube-scheduler "${BIN_DIR}/kube-scheduler" \
        --kubeconfig "${ETC_DIR}/scheduler.conf" \
        --authentication-kubeconfig "${ETC_DIR}/scheduler.conf" \
        --authorization-kubeconfig "${ETC_DIR}/scheduler.conf" \
        --bind-address 127.0.0.1 --leader-elect=false
}

start_node() {
    mkdir -p "${VAR_DIR}/kubelet" "${VAR_DIR}/log/pods"
    start containerd containerd --config "${ETC_DIR}/containerd.toml"
    wait_for 60 containerd ctr --address "${CONTAINERD_SOCKET}" version
    "${CLUSTER_SCRIPTS}/images.sh" import
    start kubelet "${BIN_DIR}/kubelet" --config "${ETC_DIR}/kubelet.yaml" \
        --kubeconfig "${ETC_DIR}/kubelet.conf" --root-dir "${VAR_DIR}/kubelet" \
        --cert-dir "${VAR_DIR}/kubelet/pki" --hostname-override "${NODE_NAME}" --node-ip "${NODE_IP}"
    start kube-proxy "${BIN_DIR}/kube-proxy" --config "${ETC_DIR}/kube-proxy.yaml"
    wait_for 120 "node ${NODE_NAME} Ready" kubectl_ wait --for condition=Ready "node/${NODE_NAME}" --timeout 5s
}

# apply_addon PATH: apply an addon manifest (a file, or a kustomization directory) with its
# @PLACEHOLDERS@ filled in: @NAME@ for every pin NAME of versions.env, and the node's settings.
apply_addon() {
    local path=$1 render=(cat "$1") fill=() pin
    # The addons' kustomizations name files inside the module copies under .cluster/src.
    [[ -d ${path} ]] && render=(kubectl_ kustomize --load-restrictor LoadRestrictionsNone "${path}")
    while read -r pin; do
        fill+=(-e "s|@${pin}@|${!pin}|g")
    done < <(sed -n 's/^\([A-Z_0-9]*\)=.*/\1/p' "${CLUSTER_SCRIPTS}/versions.env")
    "${render[@]}" | sed -e "s|@LOCAL_PATH_DIR@|${VAR_DIR}/local-path|g" \
        -e "s|@DNS_SERVICE_IP@|${DNS_SERVICE_IP}|g" \
        -e "s|@CLUSTER_DOMAIN@|${CLUSTER_DOMAIN}|g" \
        "${fill[@]}" |
        kubectl_ apply --server-side --force-conflicts -f - >/dev/null
}

install_addons() {
    log "CoreDNS, local-path-provisioner (default StorageClass), Argo Workflows ${ARGO_WORKFLOWS_VERSION}, Argo Rollouts ${ARGO_ROLLOUTS_VERSION}, Traefik ${TRAEFIK_VERSION}"
    apply_addon "${CLUSTER_SCRIPTS}/addons/coredns.yaml"
    apply_addon "${CLUSTER_SCRIPTS}/addons/local-path-storage.yaml"
    local namespace
    for namespace in argo argo-rollouts; do
        kubectl_ create namespace "${namespace}" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
    done
    apply_addon "${CLUSTER_SCRIPTS}/addons/argo"
    apply_addon "${CLUSTER_SCRIPTS}/addons/argo-rollouts"
    apply_addon "${CLUSTER_SCRIPTS}/addons/traefik"
    local deployment
    for deployment in kube-system/coredns local-path-storage/local-path-provisioner \
        argo/workflow-controller argo/argo-server argo-rollouts/argo-rollouts traefik/traefik; do
        kubectl_ -n "${deployment%/*}" rollout status "deployment/${deployment#*/}" --timeout 300s >/dev/null
    done
}

main() {
    check_host
    # The modelyard images' tag follows the commit: fixed for this run, so that a commit made while
    # it builds changes nothing between the images built and the images imported.
    local trainer
    trainer=$(printed_image MODELYARD_TRAINER_IMAGE "$("${REPO_ROOT}/scripts/build-images.sh" --print-tags)")
    export MODELYARD_IMAGE_TAG=${MODELYARD_IMAGE_TAG:-${trainer##*:}}
    start_docker
    "${CLUSTER_SCRIPTS}/images.sh" early &
    local early=$! status=0
    "${CLUSTER_SCRIPTS}/build.sh" || status=$?
    wait "${early}" || die "building the images failed; see ${LOG_DIR}/images.log and ${LOG_DIR}/build-images.log"
    ((status == 0)) || exit "${status}"
    "${CLUSTER_SCRIPTS}/images.sh" build
    mkdir -p "${ETC_DIR}" "${VAR_DIR}" "${RUN_DIR}" "${LOG_DIR}"
    setup_network
    write_pki
    write_node_configs
    start_control_plane
    start_node
    install_addons
    log "cluster ready: node ${NODE_NAME} (${KUBERNETES_VERSION}) at https://${NODE_IP}:6443"
    cat <<EOF
  export KUBECONFIG=${KUBECONFIG_FILE} PATH=${BIN_DIR}:\$PATH
  kubectl get pods -A
  make cluster-down     # stops everything and removes the node
EOF
}

main "$@"
