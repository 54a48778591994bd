#!/usr/bin/env bash
# vmtest.sh [--kernel VERSION]... [--suite NAME]... is `make vmtest`: it
# builds the suites' test binaries static and runs each inside the qemu VM
# (run.sh), once per --kernel given (see fetch-kernel.sh; default: the
# newest). The suites (all three unless --suite names some):
#   bpf      ./bpf with BULWARK_TEST_BACKEND=lsm; must attach a BPF LSM
#            program
#   cgroup   ./cgroup: the pure cgroup v2 layout the host (hybrid) lacks
#   servers  ./cmd/bulwark's TestNginxSeedExample and TestApacheSeedExample
#            on the lsm backend (the seed's example on Debian's nginx and
#            Apache: EPERM at the worker's setuid and at the CGI exec), the
#            servers overlaid on the guest (servers-root.sh); must attach a
#            BPF LSM program and skip nothing. It runs on the newest kernel
#            given only: it took 419 s on 6.12.118 (one vCPU, TCG, a 2-CPU
#            host shared with other jobs); on every kernel it would take
#            `make vmtest` past CI's 45 minutes.
# It fails when a suite fails, passes no test, or the LSM path was not used
# (and first checks that run.sh --require-lsm rejects a run without LSM).
set -euo pipefail
. "$(dirname "$0")/common.sh"

# suite_pkg and suite_run give each suite's package and its -test.run
# pattern (all its tests when unset).
declare -A suite_pkg=([bpf]=bpf [cgroup]=cgroup [servers]=cmd/bulwark)
declare -A suite_run=([servers]='^(TestNginxSeedExample|TestApacheSeedExample)$')

kernels=() suites=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernels+=("${2:?--kernel needs a value}"); shift 2 ;;
	--suite)
		[ -n "${2:-}" ] && [ -n "${suite_pkg[$2]:-}" ] || vm_die "--suite ${2:-}: want bpf, cgroup or servers"
		suites+=("$2"); shift 2 ;;
	*) vm_die "usage: vmtest.sh [--kernel VERSION]... [--suite bpf|cgroup|servers]..." ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=("")
[ ${#suites[@]} -gt 0 ] || suites=(bpf cgroup servers)
# The servers suite's kernel: the newest given ("" is the newest apt knows).
servers_kernel=$(printf '%s\n' "${kernels[@]}" | sort -V | tail -n 1)
for k in "${kernels[@]}"; do
	[ -n "$k" ] || servers_kernel=
done

cd "$vm_repo"
go=${GO:-go}
start=$(date +%s)
tmp=$(mktemp -d /tmp/bulwark-vmtest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# suite KERNEL NAME [RUN.SH OPTIONS...] runs suite NAME's test binary
# (built beforehand) in the VM booting KERNEL ("" for the newest), writes
# its output to $tmp/KERNEL-NAME.log and appends its summary line(s) to
# $tmp/KERNEL.summary; it fails when the suite did (for servers, also when
# it skipped a test).
suite() {
	local kernel=$1 name=$2
	shift 2
	local status=0 kopt=() log="$tmp/${kernel:-newest}-$name.log" sum="$tmp/${kernel:-newest}.summary" run=()
	[ -z "$kernel" ] || kopt=(--kernel "$kernel")
	[ -z "${suite_run[$name]:-}" ] || run=(-test.run "${suite_run[$name]}")
	local t0
	t0=$(date +%s)
	"$(dirname "$0")/run.sh" ${kopt[@]+"${kopt[@]}"} --timeout 2700 --workdir "${suite_pkg[$name]}" "$@" -- \
		"$tmp/$name.test" -test.v -test.count=1 -test.timeout=40m ${run[@]+"${run[@]}"} >"$log" 2>&1 || status=$?
	local passed failed skipped
	passed=$(grep -cE '^--- PASS: ' "$log" || true)
	failed=$(grep -cE '^--- FAIL: ' "$log" || true)
	skipped=$(grep -cE '^--- SKIP: ' "$log" || true)
	echo "${kernel:-newest} $name: $passed passed, $failed failed, $skipped skipped (exit status $status, $(($(date +%s) - t0))s)" >>"$sum"
	if [ "$skipped" -gt 0 ]; then
		echo "  skipped: $(grep -oE '^--- SKIP: [^ ]+' "$log" | cut -d' ' -f3 | paste -sd' ')" >>"$sum"
	fi
	[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && { [ "$name" != servers ] || [ "$skipped" -eq 0 ]; }
}

# wanted NAME succeeds when suite NAME is to run.
wanted() { [[ " ${suites[*]} " == *" $1 "* ]]; }

# kernel_suites KERNEL runs both suites on KERNEL, each VM with one CPU
# (the 6.12 bpf suite then needs more than 19 minutes: 49 of its 64 tests
# had run at 19 minutes, with other jobs on the host).
# With two, attaching tp_btf/sys_exit patches the syscall-exit path while
# the other vCPU runs it, and TCG executed a stale int3 of that patch
# (Debian 6.12.117 guest: "Oops: int3" in syscall_exit_to_user_mode_prepare,
# kernel panic), an emulator artifact.
kernel_suites() {
	local ok=0
	if wanted bpf; then
		suite "$1" bpf --cpus 1 --require-lsm --env BULWARK_TEST_BACKEND=lsm || ok=1
	fi
	if wanted cgroup; then
		suite "$1" cgroup --cpus 1 || ok=1
	fi
	if wanted servers && [ "$1" = "$servers_kernel" ]; then
		suite "$1" servers --cpus 1 --require-lsm --env BULWARK_TEST_BACKEND=lsm --root "$tmp/servers-root" || ok=1
	fi
	return $ok
}

for name in "${suites[@]}"; do
	CGO_ENABLED=0 nice "$go" test -c -o "$tmp/$name.test" "./${suite_pkg[$name]}" ||
		vm_die "go test -c ./${suite_pkg[$name]} failed"
done
if wanted servers; then
	"$(dirname "$0")/servers-root.sh" "$tmp/servers-root" || vm_die "servers-root.sh failed"
fi
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
	for name in "${suites[@]}"; do
		[ -f "$tmp/${k:-newest}-$name.log" ] || continue
		echo "=== vmtest: kernel ${k:-newest}, $name suite"
		cat "$tmp/${k:-newest}-$name.log"
	done
	[ -f "$tmp/${k:-newest}.summary" ] || continue
	mapfile -t -O "${#summary[@]}" summary <"$tmp/${k:-newest}.summary"
done
printf 'vmtest: %s\n' "${summary[@]}"
printf 'vmtest: %ss\n' "$(($(date +%s) - start))"
[ -z "$bad" ] || { echo "vmtest: FAIL" >&2; exit 1; }
echo "vmtest: ok"
