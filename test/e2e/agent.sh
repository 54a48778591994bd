#!/usr/bin/env bash
# Starts, stops or SIGKILLs the Bulwark agent attached to the e2e runtime.
#
#   agent.sh start   start "$BULWARK_BIN agent" (default bin/bulwark) in the
#                    background if it has an `agent` verb; otherwise say so
#                    and do nothing. Logs to $E2E_DIR/log/agent.log.
#   agent.sh stop    SIGTERM the agent and wait for it to exit.
#   agent.sh kill    SIGKILL the agent (enforcement must hold while it is down).
#   agent.sh status  exit 0 when the agent is running.
#
# The agent's command line is in agent_cmd below: the one place to change
# when the agent's flags change.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pidfile="$E2E_DIR/run/agent.pid"

agent_cmd() {
	printf '%s\0' "$BULWARK_BIN" agent \
		--nri-socket "$NRI_SOCK" \
		--policy-dir "$POLICY_DIR" \
		--socket "$AGENT_SOCK" \
		--runtime-endpoint "$CONTAINERD_SOCK" \
		--namespace-labels "$NS_LABELS" \
		--pin-dir "$PIN_DIR"
}

exefile="$E2E_DIR/run/agent.exe"

# running_pid prints the agent's pid if it runs. The pid is the agent's only
# while it still runs the binary recorded at start (which may have been
# rebuilt since: "(deleted)").
running_pid() {
	local pid
	[ -f "$pidfile" ] && [ -f "$exefile" ] || return 1
	pid="$(cat "$pidfile")"
	[ -n "$pid" ] && [ "$(exe_of "$pid")" = "$(cat "$exefile")" ] || return 1
	echo "$pid"
}

wait_gone() {
	local pid=$1
	for _ in $(seq 1 100); do
		[ -d "/proc/$pid" ] || return 0
		sleep 0.1
	done
	return 1
}

case "${1:-}" in
start)
	need_root
	if running_pid >/dev/null; then
		log "agent already running (pid $(running_pid))"
		exit 0
	fi
	if ! [ -x "$BULWARK_BIN" ] || ! "$BULWARK_BIN" agent --help >/dev/null 2>&1; then
		log "agent: $BULWARK_BIN has no working 'agent' verb; the runtime runs without the agent"
		exit 0
	fi
	mountpoint -q "$BPFFS" || die "$BPFFS is not mounted: start the runtime with test/e2e/up.sh"
	mkdir -p "$E2E_DIR/log" "$E2E_DIR/run" "$POLICY_DIR"
	# No agent runs (checked above), so a socket left by a SIGKILLed one is
	# stale; remove it so the wait below sees the new agent's socket.
	rm -f "$AGENT_SOCK"
	mapfile -d '' cmd < <(agent_cmd)
	CONTAINER_RUNTIME_ENDPOINT="unix://$CONTAINERD_SOCK" setsid "${cmd[@]}" >>"$E2E_DIR/log/agent.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	readlink -f "$BULWARK_BIN" >"$exefile"
	for _ in $(seq 1 100); do
		[ -S "$AGENT_SOCK" ] && { log "agent running (pid $!)"; exit 0; }
		[ -d "/proc/$!" ] || die "agent exited at start; see $E2E_DIR/log/agent.log"
		sleep 0.1
	done
	die "agent socket $AGENT_SOCK did not appear within 10s; see $E2E_DIR/log/agent.log"
	;;
stop | kill)
	pid="$(running_pid)" || { rm -f "$pidfile" "$exefile"; exit 0; }
	sig=TERM
	[ "$1" = kill ] && sig=KILL
	kill -s "$sig" "$pid"
	if ! wait_gone "$pid"; then
		log "agent (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
		kill -s KILL "$pid"
		wait_gone "$pid" || die "agent (pid $pid) does not exit"
	fi
	rm -f "$pidfile" "$exefile"
	;;
status)
	running_pid >/dev/null
	;;
*)
	echo "usage: $0 start|stop|kill|status" >&2
	exit 2
	;;
esac
