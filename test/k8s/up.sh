#!/usr/bin/env bash
# Starts a real single-node Kubernetes on the e2e containerd: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet, all
# on 127.0.0.1, with certificates made here by openssl. Brings the e2e
# runtime up first when it is not (test/e2e/up.sh; its host agent and
# collector are stopped: the cluster runs Bulwark as a DaemonSet). Host
# state the kubelet changes is recorded under $K8S_DIR/host for down.sh.
# Prints `export` lines on stdout (logs go to stderr):
#   eval "$(test/k8s/up.sh)"
# Needs test/e2e/install.sh and test/k8s/install.sh first. Hold
# /tmp/bulwark-e2e.lock while the cluster is up (make k8s-e2e does).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
# The daemons started here must not inherit the caller's descriptors, above
# all the fd of a held /tmp/bulwark-e2e.lock: they would keep the lock
# after the caller ends. Close everything above stderr.
for fd in $(ls /proc/$$/fd); do
	[ "$fd" -le 2 ] || eval "exec $fd>&-" 2>/dev/null || true
done

for b in etcd "${K8S_CMDS[@]}"; do
	[ -x "$K8S_BIN/$b" ] || kdie "$K8S_BIN/$b missing: run test/k8s/install.sh"
done

print_env() {
	printf 'export KUBECONFIG=%s\nexport BULWARK_KUBECONFIG=%s\nexport BULWARK_K8S_DIR=%s\nexport BULWARK_E2E_DIR=%s\nexport PATH=%s:$PATH\n' \
		"$KUBECONFIG_ADMIN" "$KUBECONFIG_ADMIN" "$K8S_DIR" "$E2E_DIR" "$K8S_BIN"
}

if [ -f "$K8S_DIR/up" ] && kubectl_cmd get --raw /readyz >/dev/null 2>&1; then
	klog "cluster already up in $K8S_DIR"
	print_env
	exit 0
fi
if [ -d "$K8S_DIR" ]; then
	klog "removing the remains of a previous cluster in $K8S_DIR"
	"$K8S_SRC/down.sh" --keep-runtime || kdie "down.sh could not clean $K8S_DIR"
fi
mkdir -p "$K8S_DIR"/{pki,host,log,run,etcd,pods} "$KUBELET_ROOT"

# The runtime, when it is not up: up.sh requires NRI plugin "bulwark"
# (fail closed while the agent is missing).
if ! containerd_pid >/dev/null; then
	BULWARK_E2E_REQUIRED_PLUGINS=bulwark "$E2E_SRC/up.sh" >/dev/null
	touch "$K8S_DIR/host/started-runtime"
fi
"$E2E_SRC/agent.sh" stop
"$E2E_SRC/collector.sh" stop

# Host state the kubelet changes.
for s in vm.overcommit_memory kernel.panic kernel.panic_on_oops; do
	sysctl -n "$s" >"$K8S_DIR/host/sysctl.$s"
done
iptables-save >"$K8S_DIR/host/iptables.save"
ip6tables-save >"$K8S_DIR/host/ip6tables.save"
{ [ -e /var/log/containers ] && echo existed || echo absent; } >"$K8S_DIR/host/var-log-containers"

# Certificates: one CA; the API server's serving certificate; one client
# certificate (system:masters) for the components and the admin; the
# service-account signing key.
pki="$K8S_DIR/pki"
openssl_q() { openssl "$@" 2>>"$K8S_DIR/log/openssl.log"; }
openssl_q req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bulwark-k8s-ca -keyout "$pki/ca.key" -out "$pki/ca.crt"
cert() { # cert NAME SUBJECT [SAN]
	openssl_q req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
	local ext="$pki/$1.ext"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ext"
	[ -z "${3:-}" ] || printf 'subjectAltName=%s\n' "$3" >>"$ext"
	openssl_q x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -extfile "$ext" -out "$pki/$1.crt"
}
cert apiserver /CN=kube-apiserver "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
cert admin "/O=system:masters/CN=bulwark-admin"
openssl_q genrsa -out "$pki/sa.key" 2048
openssl_q rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
"$K8S_BIN/kubectl" config set-cluster local --server="https://127.0.0.1:$API_PORT" --certificate-authority="$pki/ca.crt" --embed-certs --kubeconfig "$KUBECONFIG_ADMIN" >/dev/null
"$K8S_BIN/kubectl" config set-credentials admin --client-certificate="$pki/admin.crt" --client-key="$pki/admin.key" --embed-certs --kubeconfig "$KUBECONFIG_ADMIN" >/dev/null
"$K8S_BIN/kubectl" config set-context local --cluster local --user admin --kubeconfig "$KUBECONFIG_ADMIN" >/dev/null
"$K8S_BIN/kubectl" config use-context local --kubeconfig "$KUBECONFIG_ADMIN" >/dev/null

# start NAME ARGS...: runs a component in the background, its log in
# log/NAME.log, its pid in run/NAME.pid.
start() {
	local name=$1
	shift
	setsid "$K8S_BIN/$name" "$@" >>"$K8S_DIR/log/$name.log" 2>&1 </dev/null &
	echo $! >"$K8S_DIR/run/$name.pid"
}
# wait_for WHAT TENTHS CMD...: polls CMD until it succeeds.
wait_for() {
	local what=$1 n=$2
	shift 2
	for _ in $(seq 1 "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	kdie "$what not ready; see $K8S_DIR/log"
}

start etcd --name bulwark --data-dir "$K8S_DIR/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "bulwark=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" --log-level warn
start kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --endpoint-reconciler-type none \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
	--kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.0.0.0/24 \
	--authorization-mode Node,RBAC --allow-privileged=true --kubelet-preferred-address-types Hostname --cert-dir "$K8S_DIR/pki/apiserver-generated"
wait_for kube-apiserver 600 kubectl_cmd get --raw /readyz
start kube-controller-manager --kubeconfig "$KUBECONFIG_ADMIN" --authentication-kubeconfig "$KUBECONFIG_ADMIN" \
	--authorization-kubeconfig "$KUBECONFIG_ADMIN" --controllers='*' --leader-elect=false --bind-address 127.0.0.1 \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" --use-service-account-credentials \
	--cert-dir "$K8S_DIR/pki/cm-generated"
start kube-scheduler --kubeconfig "$KUBECONFIG_ADMIN" --authentication-kubeconfig "$KUBECONFIG_ADMIN" \
	--authorization-kubeconfig "$KUBECONFIG_ADMIN" --leader-elect=false --bind-address 127.0.0.1

cat >"$K8S_DIR/kubelet.yaml" <<-YAML
	apiVersion: kubelet.config.k8s.io/v1beta1
	kind: KubeletConfiguration
	address: 127.0.0.1
	cgroupDriver: cgroupfs
	failCgroupV1: false
	failSwapOn: false
	oomScoreAdj: 0
	containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
	podLogsDir: $K8S_DIR/pods
	syncFrequency: 5s
	authentication:
	  anonymous: {enabled: false}
	  webhook: {enabled: true}
	  x509: {clientCAFile: $pki/ca.crt}
	authorization: {mode: Webhook}
	evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
	imageGCHighThresholdPercent: 100
	imageGCLowThresholdPercent: 99
YAML
start kubelet --config "$K8S_DIR/kubelet.yaml" --kubeconfig "$KUBECONFIG_ADMIN" --root-dir "$KUBELET_ROOT" \
	--hostname-override "$K8S_NODE" --cert-dir "$KUBELET_ROOT/pki"
wait_for "node $K8S_NODE" 600 kubectl_cmd wait --for=condition=Ready "node/$K8S_NODE" --timeout=1s
touch "$K8S_DIR/up"
klog "cluster ready: node $K8S_NODE"
print_env
