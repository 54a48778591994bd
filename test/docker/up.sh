#!/usr/bin/env bash
# Starts the Docker e2e runtime: Debian's dockerd (test/deps.sh docker)
# with its own data root, exec root, pidfile, socket, bridge and cgroup
# parent, and Bulwark's runtime installed as its default (bulwark install
# docker --default); loads the offline test image and starts the agent and
# the collector. dockerd changes no iptables rule and no sysctl
# (--iptables=false, --ip-forward=false); down.sh removes everything and
# restores the FORWARD policy and ip_forward all the same.
#
# Prints `export` lines on stdout (logs go to stderr), for
#   eval "$(test/docker/up.sh)"
# Running it again while the runtime is up only prints them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

print_env() {
	cat <<-ENV
		export DOCKER_HOST=$DK_HOST
		export BULWARK_DOCKER=$DOCKER
		export BULWARK_AGENT_SOCKET=$DK_AGENT_SOCK
		export BULWARK_COLLECTOR_SOCKET=$DK_COLLECTOR_SOCK
		export BULWARK_POLICY_DIR=$DK_POLICY_DIR
		export BULWARK_TEST_IMAGE=$TEST_IMAGE
		export BULWARK_BIN=$BULWARK_BIN
		export BULWARK_DOCKER_DIR=$DK_DIR
		export BULWARK_DOCKER_SCRIPTS=$DK_SRC
	ENV
}

[ -x "$DOCKERD" ] || die "$DOCKERD missing: run test/deps.sh docker"
[ -x "$BULWARK_BIN" ] || die "$BULWARK_BIN missing: make build"
[ -e "$E2E_IMAGES/bulwark-test.tar" ] || die "$E2E_IMAGES/bulwark-test.tar missing: run test/e2e/images.sh"
RUNC="$(command -v runc)" || die "runc missing: run test/deps.sh docker"

if dockerd_pid >/dev/null && dk version >/dev/null 2>&1; then
	log "dockerd already up in $DK_DIR"
	dk_daemon collector start
	dk_daemon agent start
	print_env
	exit 0
fi
if [ -d "$DK_DIR" ] || [ -d "$DK_EXEC" ]; then
	log "removing the remains of a previous Docker runtime in $DK_DIR"
	"$DK_SRC/down.sh" || die "down.sh could not clean $DK_DIR"
fi

mkdir -p "$DK_DIR"/{data,run,log,host} "$DK_POLICY_DIR" "$DK_BPFFS"
mountpoint -q "$DK_BPFFS" || mount -t bpf -o mode=0700 bpffs "$DK_BPFFS"
echo '{}' >"$DK_DIR/namespace-labels.yaml"
# Host state down.sh restores even though dockerd is told to leave it.
iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3 }' >"$DK_DIR/host/forward-policy"
cat /proc/sys/net/ipv4/ip_forward >"$DK_DIR/host/ip_forward"

ip link add "$DK_BRIDGE" type bridge
ip addr add "$DK_BRIDGE_CIDR" dev "$DK_BRIDGE"
ip link set "$DK_BRIDGE" up

"$BULWARK_BIN" install docker --default --daemon-json "$DK_DAEMON_JSON" --runc "$RUNC" \
	--socket "$DK_AGENT_SOCK" --policy-dir "$DK_POLICY_DIR" --docker-host "$DK_HOST" >&2

log "starting dockerd ($("$DOCKERD" --version)) in $DK_DIR"
PATH="/usr/sbin:/usr/bin:/sbin:/bin" setsid "$DOCKERD" \
	--config-file "$DK_DAEMON_JSON" \
	--data-root "$DK_DIR/data" \
	--exec-root "$DK_EXEC" \
	--pidfile "$DK_PIDFILE" \
	--host "$DK_HOST" \
	--bridge "$DK_BRIDGE" \
	--iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
	--exec-opt native.cgroupdriver=cgroupfs \
	--cgroup-parent "$DK_CGROUP_PARENT" \
	--storage-driver overlay2 \
	>>"$DK_DIR/log/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 300); do
	dk version >/dev/null 2>&1 && break
	alive $! || die "dockerd exited; see $DK_DIR/log/dockerd.log"
	sleep 0.1
done
dk version >/dev/null 2>&1 || die "dockerd not ready after 30s; see $DK_DIR/log/dockerd.log"
dk load -i "$E2E_IMAGES/bulwark-test.tar" >>"$DK_DIR/log/load.log" 2>&1 ||
	die "docker load failed; see $DK_DIR/log/load.log"
log "dockerd ready; image $TEST_IMAGE loaded"

dk_daemon collector start
dk_daemon agent start
print_env | tee "$DK_DIR/env"
