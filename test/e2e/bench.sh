#!/usr/bin/env bash
# Benchmark (not a test): latency of `crictl create` + `crictl start` of a
# container in a running pod, median of N runs (default 20), on the e2e
# runtime: the one up.sh started, else one it installs and starts (install.sh,
# up.sh) and tears down at the end (down.sh).
#
#   bench.sh [-n N]            measure as the runtime is now (agent or not)
#   bench.sh [-n N] [-r R] --compare
#                              N runs with the agent stopped and N with it
#                              running, alternating in R rounds (default 4)
#                              to cancel drift on a shared machine, and print
#                              the added latency (difference of medians)
#   bench.sh [-n N] [-r R] --hook
#                              the same, the agent running in both: without
#                              the OCI hook it injects (--oci-hook=false:
#                              armed at NRI's StartContainer) and with it
#                              (armed by bulwark-oci-hook inside runc create,
#                              StartContainer then finds it armed)
#
# The numbers include two crictl process start-ups; the comparison cancels
# them out. Each round creates one pod and one warm-up container first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

n=20
rounds=4
compare=
while [ $# -gt 0 ]; do
	case "$1" in
	-n) n=$2; shift 2 ;;
	-r) rounds=$2; shift 2 ;;
	--compare) compare=agent; shift ;;
	--hook) compare=hook; shift ;;
	*) die "usage: $0 [-n N] [-r ROUNDS] [--compare|--hook]" ;;
	esac
done
if [ "$n" -lt 1 ] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt "$n" ]; then
	die "need 1 <= ROUNDS <= N"
fi

work="$(mktemp -d /tmp/bulwark-e2e-bench.XXXXXX)"
pod=
cleanup() {
	local rc=$?
	[ -z "$pod" ] || crictl_cmd rmp -f "$pod" >/dev/null 2>&1 || true
	rm -rf "$work"
	runtime_release || rc=1
	exit "$rc"
}
trap cleanup EXIT

runtime_up

# samples COUNT: runs one warm-up and COUNT timed create+start in a new
# pod; prints each latency in microseconds.
samples() {
	local uid="bench-$$-$RANDOM"
	printf '{"metadata":{"name":"bench","namespace":"bulwark-bench","uid":"%s"},"hostname":"bench","log_directory":"%s","linux":{"cgroup_parent":"%s"}}' \
		"$uid" "$E2E_DIR/logs/$uid" "$CGROUP_PARENT" >"$work/pod.json"
	pod="$(crictl_cmd runp "$work/pod.json")"
	local i t0 t1 cid
	for i in $(seq 0 "$1"); do
		printf '{"metadata":{"name":"bench-%d"},"image":{"image":"%s"},"command":["/bin/sleep","3600"],"log_path":"bench-%d.log","linux":{}}' \
			"$i" "$TEST_IMAGE" "$i" >"$work/ctr.json"
		t0=$(date +%s%N)
		cid="$(crictl_cmd create "$pod" "$work/ctr.json" "$work/pod.json")"
		crictl_cmd start "$cid" >/dev/null
		t1=$(date +%s%N)
		crictl_cmd rm -f "$cid" >/dev/null
		[ "$i" = 0 ] || echo $(((t1 - t0) / 1000))
	done
	crictl_cmd rmp -f "$pod" >/dev/null
	pod=
}

# stats FILE: prints "median min max" in ms.
stats() {
	sort -n "$1" | awk '
		{ v[NR] = $1 }
		END {
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.1f %.1f %.1f\n", m / 1000, v[1] / 1000, v[NR] / 1000
		}'
}

# report LABEL FILE
report() {
	local med min max
	read -r med min max < <(stats "$2")
	printf 'crictl create+start, %s: median %s ms (n=%d, min %s, max %s)\n' "$1" "$med" "$(wc -l <"$2")" "$min" "$max"
}

if [ -z "$compare" ]; then
	label="no agent"
	"$E2E_SRC/agent.sh" status && label="agent running"
	samples "$n" >"$work/all"
	report "$label" "$work/all"
	exit 0
fi

was_running=
"$E2E_SRC/agent.sh" status && was_running=1
"$E2E_SRC/agent.sh" start
if ! "$E2E_SRC/agent.sh" status; then
	samples "$n" >"$work/off"
	report "plugin off" "$work/off"
	log "no agent to compare with (needs '$BULWARK_BIN agent'); only the plugin-off number"
	exit 0
fi
# off and on: the two setups compared, the agent as samples() meets it.
if [ "$compare" = agent ]; then
	off_label="plugin off" on_label="plugin on"
	off() { "$E2E_SRC/agent.sh" stop; }
	on() { "$E2E_SRC/agent.sh" start; }
else
	off_label="plugin on, no OCI hook" on_label="plugin on, OCI hook injected"
	off() { "$E2E_SRC/agent.sh" stop && BULWARK_AGENT_ARGS=--oci-hook=false "$E2E_SRC/agent.sh" start; }
	on() { "$E2E_SRC/agent.sh" stop && "$E2E_SRC/agent.sh" start; }
fi
: >"$work/off"
: >"$work/on"
for round in $(seq 1 "$rounds"); do
	# Round r takes N/R runs of each kind; the last one the remainder too.
	count=$((n / rounds))
	[ "$round" != "$rounds" ] || count=$((n - (rounds - 1) * (n / rounds)))
	off
	samples "$count" >>"$work/off"
	on
	samples "$count" >>"$work/on"
done
# The last round ends with the agent as it starts by default.
[ -n "$was_running" ] || "$E2E_SRC/agent.sh" stop
report "$off_label" "$work/off"
report "$on_label" "$work/on"
read -r off _ < <(stats "$work/off")
read -r on _ < <(stats "$work/on")
awk -v a="$off" -v b="$on" -v what="$on_label" 'BEGIN { printf "added latency (median %s - median of the other): %.1f ms\n", what, b - a }'
