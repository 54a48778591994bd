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

# suite KERNEL NAME [RUN.SH OPTIONS...] runs ./NAME's test binary in the VM
# booting KERNEL ("" for the newest) and checks its verbose output.
suite() {
	local kernel=$1 name=$2
	shift 2
	[ -x "$tmp/$name.test" ] || CGO_ENABLED=0 nice "$go" test -c -o "$tmp/$name.test" "./$name" ||
		vm_die "go test -c ./$name failed"
	local status=0 kopt=()
	[ -z "$kernel" ] || kopt=(--kernel "$kernel")
	"$(dirname "$0")/run.sh" ${kopt[@]+"${kopt[@]}"} --timeout 1200 --workdir "$name" "$@" -- \
		"$tmp/$name.test" -test.v -test.count=1 -test.timeout=19m | tee "$tmp/$name.log" || status=$?
	local passed failed skipped
	passed=$(grep -cE '^--- PASS: ' "$tmp/$name.log" || true)
	failed=$(grep -cE '^--- FAIL: ' "$tmp/$name.log" || true)
	skipped=$(grep -cE '^--- SKIP: ' "$tmp/$name.log" || true)
	summary+=("${kernel:-newest} $name: $passed passed, $failed failed, $skipped skipped (exit status $status)")
	if [ "$skipped" -gt 0 ]; then
		summary+=("  skipped: $(grep -oE '^--- SKIP: [^ ]+' "$tmp/$name.log" | cut -d' ' -f3 | paste -sd' ')")
	fi
	if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
		bad=1
	fi
}

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
for k in "${kernels[@]}"; do
	# One guest CPU for the bpf suite: with two, attaching tp_btf/sys_exit
	# patches the syscall-exit path while the other vCPU runs it, and TCG
	# executed a stale int3 of that patch (Debian 6.12.117 guest: "Oops:
	# int3" in syscall_exit_to_user_mode_prepare, kernel panic), an
	# emulator artifact, not a kernel one.
	suite "$k" bpf --cpus 1 --require-lsm --env BULWARK_TEST_BACKEND=lsm
	suite "$k" cgroup
done
printf 'vmtest: %s\n' "${summary[@]}"
printf 'vmtest: %ss\n' "$(($(date +%s) - start))"
[ -z "$bad" ] || { echo "vmtest: FAIL" >&2; exit 1; }
echo "vmtest: ok"
