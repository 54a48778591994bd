#!/usr/bin/env bash
# vmbench.sh [--kernel VERSION] [BENCH FLAGS...] is the lsm half of
# `make bench`: it builds the benchmark (bpf/internal/bench) static and runs
# it with -backend lsm inside the qemu VM (run.sh), printing its ratios. The
# guest is emulated (TCG), so absolute times are slow; the ratios compare
# loops measured side by side in the same guest.
set -euo pipefail
. "$(dirname "$0")/common.sh"

kernel=()
if [ "${1:-}" = --kernel ]; then
	kernel=(--kernel "${2:?--kernel needs a value}")
	shift 2
fi
cd "$vm_repo"
tmp=$(mktemp -d /tmp/bulwark-vmbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 nice "${GO:-go}" build -o "$tmp/bench" ./bpf/internal/bench || vm_die "building the benchmark failed"
"$(dirname "$0")/run.sh" ${kernel[@]+"${kernel[@]}"} --timeout 900 -- "$tmp/bench" -backend lsm "$@" | tee "$tmp/bench.log"
grep -q '^backend lsm' "$tmp/bench.log" || vm_die "the benchmark did not run on the lsm backend"
