# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts sourcing this file
# Shared settings for the e2e runtime scripts (install.sh, images.sh, up.sh,
# down.sh, bench.sh, run.sh, demo.sh). Source it; it defines variables and
# functions only.

# runc, iptables, ip, mount tools: make sure sbin is searched.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

E2E_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$E2E_SRC/../.." && pwd)"

# Pinned versions of everything install.sh builds.
CONTAINERD_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.10.0

# Build cache (git-ignored): binaries and image tarballs.
E2E_CACHE="${BULWARK_E2E_CACHE:-$REPO_ROOT/.cache/e2e}"
E2E_BIN="$E2E_CACHE/bin"
E2E_CNI_BIN="$E2E_CACHE/cni"
E2E_IMAGES="$E2E_CACHE/images"

# Everything the running runtime owns lives under this one directory:
# containerd root and state, sockets, CNI config and IPAM state, logs,
# the agent's policy directory, namespace labels file and a private bpffs
# for its pins. down.sh removes it.
E2E_DIR="${BULWARK_E2E_DIR:-/var/lib/bulwark-e2e}"
CONTAINERD_SOCK="$E2E_DIR/run/containerd.sock"
NRI_SOCK="$E2E_DIR/run/nri.sock"
AGENT_SOCK="$E2E_DIR/run/agent.sock"
COLLECTOR_SOCK="$E2E_DIR/run/collector.sock"
POLICY_DIR="$E2E_DIR/policies"
NS_LABELS="$E2E_DIR/namespace-labels.yaml"
BPFFS="$E2E_DIR/bpf"
PIN_DIR="$BPFFS/bulwark"

# Offline images (built by images.sh, imported by up.sh).
TEST_IMAGE=localhost/bulwark-test:1
NGINX_IMAGE=localhost/bulwark-nginx:1
PAUSE_IMAGE=localhost/bulwark-pause:1

# Pod network: a private bridge and subnet used by nothing else.
CNI_BRIDGE=bulwark-e2e0
CNI_SUBNET=10.213.0.0/24
CNI_NETWORK=bulwark-e2e

# cgroup parent of every pod the suite creates (cgroupfs driver): a
# test-owned subtree in every hierarchy, removed by down.sh.
CGROUP_PARENT=/bulwark-e2e

# containerd's CRI namespace.
CTR_NS=k8s.io

# The agent binary; up.sh starts it when it has an `agent` verb.
BULWARK_BIN="${BULWARK_BIN:-$REPO_ROOT/bin/bulwark}"

log() { printf 'e2e: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# exe_of PID prints the path of the binary PID runs, even if it was
# replaced on disk since it started.
exe_of() {
	local exe
	exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 0
	echo "${exe% (deleted)}"
}

# alive PID: PID is a running process.
alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ]; }

# wait_gone PID [TENTHS] waits for PID to exit (10 s by default).
wait_gone() {
	for _ in $(seq 1 "${2:-100}"); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# kill_cgroup_procs TOP SIGKILLs every process in cgroup TOP and below.
kill_cgroup_procs() {
	[ -d "$1" ] || return 0
	find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
		kill -s KILL "$pid" 2>/dev/null
	done
}

# rmdir_cgroup TOP removes cgroup TOP and its descendants, deepest first,
# retrying for 5 s while killed processes exit; fails if TOP remains.
rmdir_cgroup() {
	[ -d "$1" ] || return 0
	for _ in $(seq 1 50); do
		find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
		[ -d "$1" ] || return 0
		sleep 0.1
	done
	return 1
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# go_cmd runs the Go toolchain at low priority (the machine is shared).
go_cmd() { nice -n 10 go "$@"; }

ctr_cmd() { "$E2E_BIN/ctr" --address "$CONTAINERD_SOCK" -n "$CTR_NS" "$@"; }
crictl_cmd() { "$E2E_BIN/crictl" --config /dev/null --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"; }

# start_containerd starts containerd with the runtime's config in the
# background and waits until its CRI answers (dies otherwise).
start_containerd() {
	local pidfile="$E2E_DIR/run/containerd.pid" ready=
	log "starting containerd $CONTAINERD_VERSION in $E2E_DIR"
	# The shim comes from $E2E_BIN; the CNI plugins need iptables from sbin.
	PATH="$E2E_BIN:/usr/local/sbin:/usr/sbin:/sbin:$PATH" setsid "$E2E_BIN/containerd" --config "$E2E_DIR/containerd.toml" \
		>>"$E2E_DIR/log/containerd.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	for _ in $(seq 1 300); do
		if crictl_cmd info >/dev/null 2>&1; then
			ready=1
			break
		fi
		[ -d "/proc/$(cat "$pidfile")" ] || die "containerd exited; see $E2E_DIR/log/containerd.log"
		sleep 0.1
	done
	[ -n "$ready" ] || die "containerd CRI not ready after 30s; see $E2E_DIR/log/containerd.log"
}

# containerd_pid prints the pid of the runtime's containerd when it runs.
containerd_pid() {
	local pid
	pid="$(cat "$E2E_DIR/run/containerd.pid" 2>/dev/null)" || return 1
	alive "$pid" && [ "$(exe_of "$pid")" = "$(readlink -f "$E2E_BIN/containerd")" ] && echo "$pid"
}

# stop_containerd stops the runtime's containerd if it runs: SIGTERM, then
# SIGKILL after 10 s. It fails when containerd outlives both.
stop_containerd() {
	local pid
	pid="$(containerd_pid)" || return 0
	log "stopping containerd (pid $pid)"
	kill -s TERM "$pid"
	wait_gone "$pid" || { kill -s KILL "$pid"; wait_gone "$pid"; }
}

# runtime_up installs the runtime (install.sh) and starts it (up.sh) unless
# it is already up, and exports its environment. Set the EXIT trap that
# calls runtime_release first, so a failed up.sh is cleaned up too.
runtime_up() {
	"$E2E_SRC/install.sh" >&2
	if containerd_pid >/dev/null; then
		log "runtime already up; leaving it up afterwards"
	else
		runtime_started=1
	fi
	local env_lines
	env_lines="$("$E2E_SRC/up.sh")"
	eval "$env_lines"
}

# runtime_release tears the runtime down (down.sh) when runtime_up started
# it; a runtime that was already up is left running.
runtime_release() {
	[ -z "${runtime_started:-}" ] || "$E2E_SRC/down.sh" >&2
}
