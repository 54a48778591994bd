#!/usr/bin/env bash
# Starts the e2e runtime: containerd (CRI + NRI) with runc, the CNI bridge
# and portmap plugins, the offline images and, when bin/bulwark has an
# `agent` verb, the agent. Everything it creates lives under $E2E_DIR
# (default /var/lib/bulwark-e2e), plus the bridge $CNI_BRIDGE, the CNI
# iptables chains, cgroups under $CGROUP_PARENT and net.ipv4.ip_forward,
# all of which down.sh undoes.
#
# BULWARK_E2E_REQUIRED_PLUGINS="name ..." makes containerd's NRI default
# validator require those plugins: while one is not connected, creating a
# container fails (fail closed against a missing agent).
# BULWARK_E2E_LOG_LEVEL sets containerd's log level (default info).
#
# Prints `export` lines on stdout (logs go to stderr), for
#   eval "$(test/e2e/up.sh)"
# and writes the same lines to $E2E_DIR/env. Running it again while the
# runtime is up only prints them. Needs test/e2e/install.sh first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

for b in "$E2E_BIN/containerd" "$E2E_BIN/ctr" "$E2E_BIN/containerd-shim-runc-v2" "$E2E_BIN/crictl" \
	"$E2E_CNI_BIN/bridge" "$E2E_CNI_BIN/portmap" "$E2E_CNI_BIN/host-local" "$E2E_CNI_BIN/loopback" \
	"$E2E_IMAGES/bulwark-test.tar" "$E2E_IMAGES/bulwark-pause.tar" "$E2E_IMAGES/bulwark-nginx.tar"; do
	[ -e "$b" ] || die "$b missing: run test/e2e/install.sh"
done
RUNC="$(command -v runc)" || die "runc missing: run test/e2e/install.sh"

print_env() {
	cat <<-ENV
		export CONTAINER_RUNTIME_ENDPOINT=unix://$CONTAINERD_SOCK
		export CRI_CONFIG_FILE=$E2E_DIR/crictl.yaml
		export IMAGE_SERVICE_ENDPOINT=unix://$CONTAINERD_SOCK
		export BULWARK_POLICY_DIR=$POLICY_DIR
		export BULWARK_BUSYBOX_IMAGE=$TEST_IMAGE
		export BULWARK_TEST_IMAGE=$TEST_IMAGE
		export BULWARK_NGINX_IMAGE=$NGINX_IMAGE
		export BULWARK_PAUSE_IMAGE=$PAUSE_IMAGE
		export BULWARK_NRI_SOCKET=$NRI_SOCK
		export BULWARK_AGENT_SOCKET=$AGENT_SOCK
		export BULWARK_COLLECTOR_SOCKET=$COLLECTOR_SOCK
		export BULWARK_NAMESPACE_LABELS=$NS_LABELS
		export BULWARK_PIN_DIR=$PIN_DIR
		export BULWARK_BIN=$BULWARK_BIN
		export BULWARK_E2E_DIR=$E2E_DIR
		export BULWARK_E2E_SCRIPTS=$E2E_SRC
		export BULWARK_E2E_CGROUP_PARENT=$CGROUP_PARENT
		export BULWARK_E2E_SUBNET=$CNI_SUBNET
		export BULWARK_CRICTL=$E2E_BIN/crictl
		export PATH=$E2E_BIN:\$PATH
	ENV
}

# required_plugins_toml prints the NRI default validator settings for
# BULWARK_E2E_REQUIRED_PLUGINS, or nothing.
required_plugins_toml() {
	local names=() p list=
	read -r -a names <<<"${BULWARK_E2E_REQUIRED_PLUGINS:-}"
	[ ${#names[@]} -gt 0 ] || return 0
	for p in "${names[@]}"; do
		list+="${list:+, }'$p'"
	done
	# Pods annotated bulwark.dev/tolerate-missing-plugins=true (Bulwark's
	# own DaemonSet) start while a required plugin is missing.
	printf "  [plugins.'io.containerd.nri.v1.nri'.default_validator]\n    enable = true\n    required_plugins = [%s]\n    tolerate_missing_plugins_annotation = 'bulwark.dev/tolerate-missing-plugins'\n" "$list"
}

if containerd_pid >/dev/null && crictl_cmd info >/dev/null 2>&1; then
	log "runtime already up in $E2E_DIR"
	"$E2E_SRC/collector.sh" start
	"$E2E_SRC/agent.sh" start
	print_env
	exit 0
fi

if [ -d "$E2E_DIR" ]; then
	log "removing the remains of a previous runtime in $E2E_DIR"
	"$E2E_SRC/down.sh" || die "down.sh could not clean $E2E_DIR"
fi

[ ${#E2E_DIR} -le 38 ] || die "E2E_DIR $E2E_DIR is too long for the shim socket directory (max 38 chars)"
mkdir -p "$E2E_DIR"/{root,state,run,s,runc,host,log,opt,cni/conf,cni/ipam,nri/plugins,nri/conf.d} "$POLICY_DIR" "$BPFFS"
chmod 700 "$E2E_DIR/s"
# The agent's pins live on a private bpffs (not /sys/fs/bpf); unmounting it
# in down.sh drops every pin.
mountpoint -q "$BPFFS" || mount -t bpf -o mode=0700 bpffs "$BPFFS"
# Namespace labels the agent reads (YAML: namespace name -> labels).
[ -f "$NS_LABELS" ] || echo '{}' >"$NS_LABELS"

# Host state down.sh restores; a second up after a partial one keeps the
# first snapshot, which is the state before anything was changed.
[ -f "$E2E_DIR/host/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward >"$E2E_DIR/host/ip_forward"
[ -f "$E2E_DIR/host/iptables.save" ] || iptables-save >"$E2E_DIR/host/iptables.save"
# libcni caches results in /var/lib/cni (not configurable through
# containerd); umount (libmount) may create /run/mount for its utab.
[ -f "$E2E_DIR/host/var-lib-cni" ] || { [ -d /var/lib/cni ] && echo existed || echo absent; } >"$E2E_DIR/host/var-lib-cni"
[ -f "$E2E_DIR/host/run-mount" ] || { [ -d /run/mount ] && echo existed || echo absent; } >"$E2E_DIR/host/run-mount"

printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' \
	"$CONTAINERD_SOCK" "$CONTAINERD_SOCK" >"$E2E_DIR/crictl.yaml"

cat >"$E2E_DIR/cni/conf/10-$CNI_NETWORK.conflist" <<-CNI
	{
	  "cniVersion": "1.0.0",
	  "name": "$CNI_NETWORK",
	  "plugins": [
	    {
	      "type": "bridge",
	      "bridge": "$CNI_BRIDGE",
	      "isGateway": true,
	      "ipMasq": false,
	      "hairpinMode": true,
	      "ipam": {
	        "type": "host-local",
	        "dataDir": "$E2E_DIR/cni/ipam",
	        "ranges": [[{"subnet": "$CNI_SUBNET"}]],
	        "routes": [{"dst": "$CNI_SUBNET"}]
	      }
	    },
	    {"type": "portmap", "capabilities": {"portMappings": true}}
	  ]
	}
CNI

cat >"$E2E_DIR/containerd.toml" <<-TOML
	version = 3
	root = '$E2E_DIR/root'
	state = '$E2E_DIR/state'

	[grpc]
	  address = '$CONTAINERD_SOCK'

	[ttrpc]
	  address = '$CONTAINERD_SOCK.ttrpc'

	[debug]
	  level = '${BULWARK_E2E_LOG_LEVEL:-info}'

	[plugins.'io.containerd.internal.v1.opt']
	  path = '$E2E_DIR/opt'

	[plugins.'io.containerd.shim.v1.manager']
	  socket_dir = '$E2E_DIR/s'

	[plugins.'io.containerd.nri.v1.nri']
	  disable = false
	  socket_path = '$NRI_SOCK'
	  plugin_path = '$E2E_DIR/nri/plugins'
	  plugin_config_path = '$E2E_DIR/nri/conf.d'
$(required_plugins_toml)

	[plugins.'io.containerd.cri.v1.images']
	  snapshotter = 'overlayfs'
	  [plugins.'io.containerd.cri.v1.images'.pinned_images]
	    sandbox = '$PAUSE_IMAGE'

	[plugins.'io.containerd.cri.v1.runtime']
	  restrict_oom_score_adj = true
	  netns_mounts_under_state_dir = true
	  enable_selinux = false
	  [plugins.'io.containerd.cri.v1.runtime'.containerd]
	    default_runtime_name = 'runc'
	    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
	      runtime_type = 'io.containerd.runc.v2'
	      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
	        BinaryName = '$RUNC'
	        Root = '$E2E_DIR/runc'
	        SystemdCgroup = false
	  [plugins.'io.containerd.cri.v1.runtime'.cni]
	    bin_dirs = ['$E2E_CNI_BIN']
	    conf_dir = '$E2E_DIR/cni/conf'
	    max_conf_num = 1

	[plugins.'io.containerd.grpc.v1.cri']
	  stream_server_address = '127.0.0.1'
	  stream_server_port = '0'
TOML

start_containerd

for img in bulwark-pause bulwark-test bulwark-nginx; do
	ctr_cmd images import "$E2E_IMAGES/$img.tar" >>"$E2E_DIR/log/import.log" 2>&1 ||
		die "import $E2E_IMAGES/$img.tar failed; see $E2E_DIR/log/import.log"
done
# cri_sees IMAGE waits up to 5 s for the CRI plugin to list IMAGE: it
# learns of imported images from containerd's events, asynchronously (an
# immediate inspecti failed in 3 of 9 runs here on a loaded machine).
cri_sees() {
	local i
	for i in $(seq 1 50); do
		crictl_cmd inspecti "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	crictl_cmd inspecti "$1" >/dev/null
}
cri_sees "$TEST_IMAGE" || die "CRI does not see $TEST_IMAGE"
cri_sees "$PAUSE_IMAGE" || die "CRI does not see $PAUSE_IMAGE"
cri_sees "$NGINX_IMAGE" || die "CRI does not see $NGINX_IMAGE"
log "containerd ready; images $TEST_IMAGE, $PAUSE_IMAGE and $NGINX_IMAGE imported"

"$E2E_SRC/collector.sh" start
"$E2E_SRC/agent.sh" start
print_env | tee "$E2E_DIR/env"
