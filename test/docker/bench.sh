#!/usr/bin/env bash
# Benchmark (not a test): the latency `docker run --rm IMAGE true` gains
# from Bulwark's runtime (the runc wrapper and the createRuntime hook
# waiting for the agent to arm the container, in observe mode: no policy
# selects it), against plain runc on the same dockerd: N runs of each
# (default 20), alternating, after 2 warm-up runs of each; prints the
# medians. Brings the Docker runtime up and down unless it was up.
# Usage: test/docker/bench.sh [N]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
n="${1:-20}"

dk_session

# once RUNTIME prints the wall time of one run in microseconds.
once() {
	local t0 t1
	t0=$(date +%s%N)
	dk run --rm --runtime "$1" "$TEST_IMAGE" /bin/true >/dev/null 2>&1 || die "docker run --runtime $1 failed"
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for rt in runc bulwark runc bulwark; do once "$rt" >/dev/null; done
plain=() shim=()
for _ in $(seq 1 "$n"); do
	plain+=("$(once runc)")
	shim+=("$(once bulwark)")
done
mp="$(printf '%s\n' "${plain[@]}" | median)"
ms="$(printf '%s\n' "${shim[@]}" | median)"
# Each pair ran back to back: the median of their differences cancels
# the drift of a shared machine better than the difference of medians.
md="$(for i in "${!plain[@]}"; do echo $((shim[i] - plain[i])); done | median)"
awk -v p="$mp" -v s="$ms" -v d="$md" -v n="$n" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
	printf "docker run --rm IMAGE true, median of %d each, alternating: runc %.1f ms, bulwark runtime %.1f ms, added %.1f ms (median of the pairs\047 differences %.1f ms; load average %s)\n", n, p / 1000, s / 1000, (s - p) / 1000, d / 1000, load
}'
