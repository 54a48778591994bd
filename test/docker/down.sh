#!/usr/bin/env bash
# Stops and removes everything up.sh started and made: the agent and the
# collector, the suite's dockerd and its containers (its containerd and
# shims with it), mounts under its roots, the runc wrapper's settings, its
# bridge, its cgroups and directories; restores the iptables FORWARD policy and ip_forward as they
# were before up.sh. Safe to run at any point, also after a failed up.sh;
# it never touches a dockerd it did not start.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root
fail=0

if [ -d "$DK_DIR" ]; then
	dk_daemon agent stop || fail=1
	dk_daemon collector stop || fail=1
fi
if pid="$(dockerd_pid)"; then
	dk ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "$DK_HOST" rm -f >/dev/null 2>&1
	log "stopping dockerd (pid $pid)"
	kill -s TERM "$pid"
	wait_gone "$pid" 200 || { kill -s KILL "$pid"; wait_gone "$pid"; }
fi
# Its containerd and shims (they outlive a SIGKILLed dockerd): every
# process whose command line names the exec or data root.
for p in $(pgrep -f -- "$DK_EXEC|$DK_DIR/data" 2>/dev/null); do
	[ "$p" = $$ ] || kill -s KILL "$p" 2>/dev/null
done
sleep 0.2
# Mounts under the roots, deepest first.
for root in "$DK_EXEC" "$DK_DIR"; do
	awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || fail=1; done
done
if [ -f "$DK_DIR/host/forward-policy" ]; then
	pol="$(cat "$DK_DIR/host/forward-policy")"
	[ -z "$pol" ] || iptables -P FORWARD "$pol" || fail=1
fi
[ -f "$DK_DIR/host/ip_forward" ] && cat "$DK_DIR/host/ip_forward" >/proc/sys/net/ipv4/ip_forward
# The wrapper's settings up.sh's install wrote beside it (its socket is
# this suite's).
if [ -f "$DK_DAEMON_JSON" ] && [ -x "$BULWARK_BIN" ]; then
	"$BULWARK_BIN" uninstall docker --daemon-json "$DK_DAEMON_JSON" >/dev/null || fail=1
fi
ip link show "$DK_BRIDGE" >/dev/null 2>&1 && { ip link del "$DK_BRIDGE" || fail=1; }
# The containers' cgroups, in every hierarchy, deepest first.
for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
	[ -d "$h$DK_CGROUP_PARENT" ] || continue
	find "$h$DK_CGROUP_PARENT" -depth -type d -exec rmdir {} + 2>/dev/null
	[ -d "$h$DK_CGROUP_PARENT" ] && { log "cgroup $h$DK_CGROUP_PARENT still there"; fail=1; }
done
rm -rf "$DK_EXEC" "$DK_DIR" || fail=1
[ $fail = 0 ] && log "Docker runtime removed" || log "Docker runtime removed with errors"
exit $fail
