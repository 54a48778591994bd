#!/usr/bin/env bash
# Starts, stops or SIGKILLs one of Bulwark's daemons attached to the e2e
# runtime: the agent or the collector it streams to.
#
#   daemon.sh agent|collector start   start "$BULWARK_BIN agent|collector"
#                    (default bin/bulwark) in the background if it has that
#                    verb; otherwise say so and do nothing. Logs to
#                    $E2E_DIR/log/NAME.log.
#   daemon.sh NAME stop    SIGTERM it and wait for it to exit.
#   daemon.sh NAME kill    SIGKILL it (enforcement must hold while the
#                          agent is down; nothing may be lost while the
#                          collector is).
#   daemon.sh NAME status  exit 0 when it is running.
#
# BULWARK_DAEMON_DOCKER_HOST starts the agent for the Docker suite
# (test/docker): no NRI, Docker's API at that address.
#
# The daemons' command lines are in daemon_cmd below: the one place to
# change when their flags change. agent.sh and collector.sh are shorthands.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name="${1:-}"
shift || true
case "$name" in
agent) sock="$AGENT_SOCK" ;;
collector) sock="$COLLECTOR_SOCK" ;;
*)
	echo "usage: $0 agent|collector start|stop|kill|status" >&2
	exit 2
	;;
esac
pidfile="$E2E_DIR/run/$name.pid"
exefile="$E2E_DIR/run/$name.exe"

daemon_cmd() {
	case "$name" in
	agent)
		# The Docker suite's agent (test/docker) reaches no NRI runtime:
		# Docker's containers come through the OCI hook.
		if [ -n "${BULWARK_DAEMON_DOCKER_HOST:-}" ]; then
			printf '%s\0' "$BULWARK_BIN" agent --no-nri --docker-host "$BULWARK_DAEMON_DOCKER_HOST"
		else
			printf '%s\0' "$BULWARK_BIN" agent --nri-socket "$NRI_SOCK" --docker=false
		fi
		printf '%s\0' \
			--policy-dir "$POLICY_DIR" \
			--socket "$AGENT_SOCK" \
			--runtime-endpoint "$CONTAINERD_SOCK" \
			--namespace-labels "$NS_LABELS" \
			--pin-dir "$PIN_DIR" \
			--collector-socket "$COLLECTOR_SOCK" \
			--spool-dir "$E2E_DIR/spool" \
			--services=false
		# More agent flags, one per word (bench.sh --hook: --oci-hook=false).
		# shellcheck disable=SC2086 # split on purpose
		[ -z "${BULWARK_AGENT_ARGS:-}" ] || printf '%s\0' $BULWARK_AGENT_ARGS
		;;
	collector)
		printf '%s\0' "$BULWARK_BIN" collector \
			--socket "$COLLECTOR_SOCK" \
			--db "$E2E_DIR/collector.db"
		;;
	esac
}

# running_pid prints the daemon's pid if it runs. The pid is the daemon's only
# while it still runs the binary recorded at start (which may have been
# rebuilt since: "(deleted)").
running_pid() {
	local pid
	[ -f "$pidfile" ] && [ -f "$exefile" ] || return 1
	pid="$(cat "$pidfile")"
	[ -n "$pid" ] && [ "$(exe_of "$pid")" = "$(cat "$exefile")" ] || return 1
	echo "$pid"
}

case "${1:-}" in
start)
	need_root
	if running_pid >/dev/null; then
		log "$name already running (pid $(running_pid))"
		exit 0
	fi
	if ! [ -x "$BULWARK_BIN" ] || ! "$BULWARK_BIN" "$name" --help >/dev/null 2>&1; then
		log "$name: $BULWARK_BIN has no working '$name' verb; the runtime runs without it"
		exit 0
	fi
	if [ "$name" = agent ]; then
		# The agent pins its programs on the runtime's bpffs and reads the
		# policy directory.
		mountpoint -q "$BPFFS" || die "$BPFFS is not mounted: start the runtime with test/e2e/up.sh"
		mkdir -p "$POLICY_DIR"
	fi
	mkdir -p "$E2E_DIR/log" "$E2E_DIR/run"
	# It is not running (checked above), so a socket left by a SIGKILLed
	# one is stale; remove it so the wait below sees the new socket.
	rm -f "$sock"
	mapfile -d '' cmd < <(daemon_cmd)
	setsid "${cmd[@]}" >>"$E2E_DIR/log/$name.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	readlink -f "$BULWARK_BIN" >"$exefile"
	# The agent loads and verifies every BPF program before its socket
	# appears: within 10 s on an idle machine, not with both cores busy.
	for _ in $(seq 1 300); do
		[ -S "$sock" ] && { log "$name running (pid $!)"; exit 0; }
		[ -d "/proc/$!" ] || die "$name exited at start; see $E2E_DIR/log/$name.log"
		sleep 0.1
	done
	die "$name socket $sock did not appear within 30s; see $E2E_DIR/log/$name.log"
	;;
stop | kill)
	pid="$(running_pid)" || { rm -f "$pidfile" "$exefile"; exit 0; }
	sig=TERM
	[ "$1" = kill ] && sig=KILL
	kill -s "$sig" "$pid"
	if ! wait_gone "$pid"; then
		log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
		kill -s KILL "$pid"
		wait_gone "$pid" || die "$name (pid $pid) does not exit"
	fi
	rm -f "$pidfile" "$exefile"
	;;
status)
	running_pid >/dev/null
	;;
*)
	echo "usage: $0 agent|collector start|stop|kill|status" >&2
	exit 2
	;;
esac
