#!/usr/bin/env bash
# Restarts the e2e runtime's containerd (SIGTERM, then the same config
# again); the shims keep the containers running meanwhile. For the test of
# the agent's NRI reconnection.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
pidfile="$E2E_DIR/run/containerd.pid"
pid="$(cat "$pidfile" 2>/dev/null || true)"
[ -n "$pid" ] && [ "$(exe_of "$pid")" = "$(readlink -f "$E2E_BIN/containerd")" ] || die "containerd of the e2e runtime is not running"
kill -s TERM "$pid"
for _ in $(seq 1 100); do
	[ -d "/proc/$pid" ] || break
	sleep 0.1
done
[ ! -d "/proc/$pid" ] || die "containerd (pid $pid) did not exit"
start_containerd
