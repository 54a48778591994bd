#!/usr/bin/env bash
# Benchmark (not a test): latency of `crictl create` + `crictl start` of a
# container in a running pod, median of N runs (default 20, after one
# warm-up), on the runtime up.sh started.
#
#   bench.sh [-n N]            measure as the runtime is now (agent or not)
#   bench.sh [-n N] --compare  measure with the agent stopped, then with it
#                              running, and print the added latency
#
# The numbers include two crictl process start-ups; the comparison cancels
# them out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

n=20
compare=
while [ $# -gt 0 ]; do
	case "$1" in
	-n) n=$2; shift 2 ;;
	--compare) compare=1; shift ;;
	*) die "usage: $0 [-n N] [--compare]" ;;
	esac
done
crictl_cmd info >/dev/null 2>&1 || die "runtime not up: run test/e2e/up.sh"

work="$(mktemp -d /tmp/bulwark-e2e-bench.XXXXXX)"
pod=
cleanup() {
	[ -z "$pod" ] || crictl_cmd rmp -f "$pod" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# measure LABEL: prints "LABEL median_ms min_ms max_ms" on stdout.
measure() {
	local uid="bench-$$-$RANDOM"
	printf '{"metadata":{"name":"bench","namespace":"bulwark-bench","uid":"%s"},"hostname":"bench","log_directory":"%s","linux":{"cgroup_parent":"%s"}}' \
		"$uid" "$E2E_DIR/logs/$uid" "$CGROUP_PARENT" >"$work/pod.json"
	pod="$(crictl_cmd runp "$work/pod.json")"
	local i t0 t1 cid samples=()
	for i in $(seq 0 "$n"); do
		printf '{"metadata":{"name":"bench-%d"},"image":{"image":"%s"},"command":["/bin/sleep","3600"],"log_path":"bench-%d.log","linux":{}}' \
			"$i" "$TEST_IMAGE" "$i" >"$work/ctr.json"
		t0=$(date +%s%N)
		cid="$(crictl_cmd create "$pod" "$work/ctr.json" "$work/pod.json")"
		crictl_cmd start "$cid" >/dev/null
		t1=$(date +%s%N)
		crictl_cmd rm -f "$cid" >/dev/null
		[ "$i" = 0 ] || samples+=("$(( (t1 - t0) / 1000 ))")
	done
	crictl_cmd rmp -f "$pod" >/dev/null
	pod=
	printf '%s\n' "${samples[@]}" | sort -n | awk -v label="$1" '
		{ v[NR] = $1 }
		END {
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%s %.1f %.1f %.1f\n", label, m / 1000, v[1] / 1000, v[NR] / 1000
		}'
}

report() {
	read -r label med min max <<<"$1"
	printf 'crictl create+start, %s: median %s ms (n=%d, min %s, max %s)\n' "${label//-/ }" "$med" "$n" "$min" "$max"
}

if [ -z "$compare" ]; then
	label=no-agent
	"$E2E_SRC/agent.sh" status && label=agent-running
	report "$(measure "$label")"
	exit 0
fi

was_running=
"$E2E_SRC/agent.sh" status && was_running=1
"$E2E_SRC/agent.sh" stop
off="$(measure plugin-off)"
report "$off"
"$E2E_SRC/agent.sh" start
if ! "$E2E_SRC/agent.sh" status; then
	log "no agent to compare with (needs '$BULWARK_BIN agent'); only the plugin-off number above"
	exit 0
fi
on="$(measure plugin-on)"
report "$on"
[ -n "$was_running" ] || "$E2E_SRC/agent.sh" stop
awk -v a="${off#* }" -v b="${on#* }" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "added latency (median on - median off): %.1f ms\n", y[1] - x[1] }'
