# Shared by scripts/cluster/{build,up,down,images}.sh: where things live and the cluster's
# helpers, on top of scripts/lib.sh (REPO_ROOT, log, die, apt_install, wait_for, ensure_docker).
# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2034  # the variables are for the scripts that source this

CLUSTER_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "${CLUSTER_SCRIPTS}/../lib.sh"
# shellcheck source=versions.env
source "${CLUSTER_SCRIPTS}/versions.env"

CLUSTER_DIR="${CLUSTER_DIR:-${REPO_ROOT}/.cluster}"
BIN_DIR="${CLUSTER_DIR}/bin"            # what cluster-up built: kubectl, argo, kubelet, ...
CNI_BIN_DIR="${BIN_DIR}/cni"
IMAGE_DIR="${CLUSTER_DIR}/images"       # image tarballs imported into the node's containerd
ETC_DIR="${CLUSTER_DIR}/etc"            # generated configs, PKI, kubeconfigs
PKI_DIR="${ETC_DIR}/pki"
VAR_DIR="${CLUSTER_DIR}/var"            # state: etcd, containerd, kubelet, volumes
RUN_DIR="${CLUSTER_DIR}/run"            # sockets and pid files
LOG_DIR="${CLUSTER_DIR}/logs"
KUBECONFIG_FILE="${CLUSTER_DIR}/kubeconfig"

# The node: one network namespace, reached from the host over a veth pair.
NODE_NAME="${NODE_NAME:-modelyard-node}"
NETNS="${NETNS:-modelyard}"
HOST_VETH="${HOST_VETH:-modelyard0}"
HOST_IP=10.200.0.1
NODE_IP=10.200.0.2
NODE_PREFIX=30
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
CONTAINERD_SOCKET="${RUN_DIR}/containerd/containerd.sock"

# Pods run these cgroups (kubelet, cgroupfs driver on cgroup v1).
CGROUP_ROOT=/sys/fs/cgroup
KUBEPODS_CGROUP=kubepods

# The node's daemons, in start order; each has .cluster/run/NAME.pid and .cluster/logs/NAME.log.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

running() { [[ -f ${RUN_DIR}/$1.pid ]] && kill -0 "$(<"${RUN_DIR}/$1.pid")" 2>/dev/null; }

need_root() { [[ $(id -u) == 0 ]] || die "run as root (it starts a kubelet, containerd and network namespaces)"; }

# in_node CMD...: run CMD inside the node's network namespace. nsenter, not `ip netns exec`:
# the latter remounts /sys and hides the cgroup mounts the kubelet needs.
in_node() { nsenter --net="/run/netns/${NETNS}" -- "$@"; }

kubectl_() { "${BIN_DIR}/kubectl" --kubeconfig "${KUBECONFIG_FILE}" "$@"; }
