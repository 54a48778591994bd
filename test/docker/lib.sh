# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts sourcing this file
# Shared settings of the Docker e2e scripts (up.sh, down.sh, run.sh,
# bench.sh). It reuses the containerd e2e's settings for the offline
# images and the bulwark binary. Source it; it defines variables and
# functions only.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e" && pwd)/lib.sh"

DK_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Everything the suite's dockerd owns: data root, daemon.json, sockets,
# logs, the agent's policies and private bpffs. down.sh removes it.
DK_DIR="${BULWARK_DOCKER_DIR:-/var/lib/bulwark-docker}"
# dockerd's exec root (containerd's sockets live under it: keep it short).
DK_EXEC=/run/bulwark-dk
DK_SOCK="$DK_DIR/run/docker.sock"
DK_HOST="unix://$DK_SOCK"
DK_PIDFILE="$DK_DIR/run/dockerd.pid"
DK_DAEMON_JSON="$DK_DIR/daemon.json"
DK_AGENT_SOCK="$DK_DIR/run/agent.sock"
DK_COLLECTOR_SOCK="$DK_DIR/run/collector.sock"
DK_POLICY_DIR="$DK_DIR/policies"
DK_BPFFS="$DK_DIR/bpf"
DK_PIN_DIR="$DK_BPFFS/bulwark"
# The containers' network: a bridge of the suite's own, on a subnet used
# by nothing else; dockerd touches no iptables rule (--iptables=false).
DK_BRIDGE=bulwark-dk0
DK_BRIDGE_CIDR=10.214.0.1/24
# cgroup parent of every container (cgroupfs driver), removed by down.sh.
DK_CGROUP_PARENT=/bulwark-docker
# Debian's docker.io binaries (/usr/local/bin may hold another docker CLI).
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker

dk() { "$DOCKER" -H "$DK_HOST" "$@"; }

# dockerd_pid prints the pid of the suite's dockerd when it runs.
dockerd_pid() {
	local pid
	pid="$(cat "$DK_PIDFILE" 2>/dev/null)" || return 1
	alive "$pid" && [ "$(exe_of "$pid")" = "$DOCKERD" ] && echo "$pid"
}

# dk_daemon NAME start|stop|kill|status runs daemon.sh of the containerd
# e2e for the Docker suite's agent or collector, with the suite's paths.
dk_daemon() {
	BULWARK_E2E_DIR="$DK_DIR" BULWARK_DAEMON_DOCKER_HOST="$DK_HOST" "$E2E_SRC/daemon.sh" "$@"
}

log() { printf 'docker-e2e: %s\n' "$*" >&2; }

# dk_session brings the Docker runtime up for the calling script (the
# docker deps group, the offline images, up.sh, its environment exported)
# and tears it down when the script exits, unless it was up already.
dk_session() {
	bash "$REPO_ROOT/test/deps.sh" docker
	"$E2E_SRC/images.sh"
	DK_WAS_UP=
	dockerd_pid >/dev/null && DK_WAS_UP=1
	trap dk_teardown EXIT
	eval "$("$DK_SRC/up.sh")"
}

dk_teardown() {
	local rc=$?
	if [ -z "$DK_WAS_UP" ]; then
		"$DK_SRC/down.sh" || rc=1
	fi
	exit "$rc"
}
