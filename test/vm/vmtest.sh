#!/usr/bin/env bash
# vmtest.sh [--kernel VERSION]... is `make vmtest`: it builds the bpf and
# cgroup test binaries static and runs each inside the qemu VM (run.sh), once
# per --kernel given (see fetch-kernel.sh; default: the newest). The bpf
# suite runs with BULWARK_TEST_BACKEND=lsm and must attach a BPF LSM program;
# the cgroup suite checks the pure cgroup v2 layout the host (hybrid) lacks.
# It fails when a suite fails, passes no test, or the LSM path was not used
# (and first checks that run.sh --require-lsm rejects a run without LSM).
set -euo pipefail
. "$(dirname "$0")/common.sh"

kernels=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernels+=("${2:?--kernel needs a value}"); shift 2 ;;
	*) vm_die "usage: vmtest.sh [--kernel VERSION]..." ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=("")

cd "$vm_repo"
go=${GO:-go}
start=$(date +%s)
tmp=$(mktemp -d /tmp/bulwark-vmtest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# suite KERNEL NAME [RUN.SH OPTIONS...] runs ./NAME's test binary (built
# beforehand) in the VM booting KERNEL ("" for the newest), writes its
# output to $tmp/KERNEL-NAME.log and appends its summary line(s) to
# $tmp/KERNEL.summary; it fails when the suite did.
suite() {
	local kernel=$1 name=$2
	shift 2
	local status=0 kopt=() log="$tmp/${kernel:-newest}-$name.log" sum="$tmp/${kernel:-newest}.summary"
	[ -z "$kernel" ] || kopt=(--kernel "$kernel")
	"$(dirname "$0")/run.sh" ${kopt[@]+"${kopt[@]}"} --timeout 2700 --workdir "$name" "$@" -- \
		"$tmp/$name.test" -test.v -test.count=1 -test.timeout=40m >"$log" 2>&1 || status=$?
	local passed failed skipped
	passed=$(grep -cE '^--- PASS: ' "$log" || true)
	failed=$(grep -cE '^--- FAIL: ' "$log" || true)
	skipped=$(grep -cE '^--- SKIP: ' "$log" || true)
	echo "${kernel:-newest} $name: $passed passed, $failed failed, $skipped skipped (exit status $status)" >>"$sum"
	if [ "$skipped" -gt 0 ]; then
		echo "  skipped: $(grep -oE '^--- SKIP: [^ ]+' "$log" | cut -d' ' -f3 | paste -sd' ')" >>"$sum"
	fi
	[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

# kernel_suites KERNEL runs both suites on KERNEL, each VM with one CPU
# (the 6.12 bpf suite then needs more than 19 minutes: 49 of its 64 tests
# had run at 19 minutes, with other jobs on the host).
# With two, attaching tp_btf/sys_exit patches the syscall-exit path while
# the other vCPU runs it, and TCG executed a stale int3 of that patch
# (Debian 6.12.117 guest: "Oops: int3" in syscall_exit_to_user_mode_prepare,
# kernel panic), an emulator artifact.
kernel_suites() {
	local ok=0
	suite "$1" bpf --cpus 1 --require-lsm --env BULWARK_TEST_BACKEND=lsm || ok=1
	suite "$1" cgroup --cpus 1 || ok=1
	return $ok
}

for name in bpf cgroup; do
	CGO_ENABLED=0 nice "$go" test -c -o "$tmp/$name.test" "./$name" || vm_die "go test -c ./$name failed"
done
# Fetch every kernel before the VMs run side by side.
for k in "${kernels[@]}"; do
	"$(dirname "$0")/fetch-kernel.sh" $k >/dev/null
done

summary=()
bad=
# The LSM check must be able to fail: a run that loads no LSM program is
# rejected (status 125).
status=0
# (Booting the first kernel the suites boot, so no other is fetched.)
selfk=()
[ -z "${kernels[0]}" ] || selfk=(--kernel "${kernels[0]}")
"$(dirname "$0")/run.sh" ${selfk[@]+"${selfk[@]}"} --require-lsm -- /bin/busybox true >"$tmp/self.log" 2>&1 || status=$?
if [ "$status" -ne 125 ] || ! grep -q 'no BPF LSM program ran' "$tmp/self.log"; then
	cat "$tmp/self.log" >&2
	vm_die "run.sh --require-lsm accepted a run without any LSM program (status $status)"
fi
# The kernels run side by side, one single-CPU VM each (TCG is CPU-bound and
# this machine has two cores); their logs are printed after.
pids=()
for k in "${kernels[@]}"; do
	kernel_suites "$k" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid" || bad=1
done
for k in "${kernels[@]}"; do
	for name in bpf cgroup; do
		echo "=== vmtest: kernel ${k:-newest}, $name suite"
		cat "$tmp/${k:-newest}-$name.log"
	done
	mapfile -t -O "${#summary[@]}" summary <"$tmp/${k:-newest}.summary"
done
printf 'vmtest: %s\n' "${summary[@]}"
printf 'vmtest: %ss\n' "$(($(date +%s) - start))"
[ -z "$bad" ] || { echo "vmtest: FAIL" >&2; exit 1; }
echo "vmtest: ok"
