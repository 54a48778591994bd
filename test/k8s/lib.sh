# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts sourcing this file
# Shared settings for the single-node Kubernetes scripts (install.sh, up.sh,
# down.sh, e2e.sh). Source it; it defines variables and functions only. The
# cluster runs on the e2e containerd (test/e2e/up.sh).
K8S_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$K8S_SRC/../e2e/lib.sh"

# Pinned versions of what install.sh builds.
KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.6.16

# Build cache (git-ignored): the cluster binaries.
K8S_CACHE="${BULWARK_K8S_CACHE:-$REPO_ROOT/.cache/k8s}"
K8S_BIN="$K8S_CACHE/bin"

# Everything the running cluster owns: certificates, kubeconfigs, etcd's
# data, the kubelet's root, logs and pid files. down.sh removes it.
K8S_DIR="${BULWARK_K8S_DIR:-/var/lib/bulwark-k8s}"
KUBECONFIG_ADMIN="$K8S_DIR/admin.kubeconfig"
KUBELET_ROOT="$K8S_DIR/kubelet"
# The node is named localhost: its Hostname address (what the API server
# dials for exec and logs) then resolves to 127.0.0.1, where the kubelet
# listens; the kubelet refuses a loopback --node-ip.
K8S_NODE=localhost
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
API_PORT=6443
ETCD_PORT=2379
ETCD_PEER_PORT=2380

klog() { printf 'k8s: %s\n' "$*" >&2; }
kdie() { klog "error: $*"; exit 1; }

kubectl_cmd() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
