#!/usr/bin/env bash
# run.sh [OPTIONS] -- BINARY [ARGS...] boots a Debian cloud kernel under qemu
# (TCG) with BPF LSM enabled, runs the static BINARY with ARGS as root inside a
# busybox initramfs, streams the serial console to stdout and exits with the
# binary's exit status.
#
# Options:
#   --kernel VERSION   kernel to boot (see fetch-kernel.sh; default: newest)
#   --env NAME=VALUE   set NAME in the binary's environment (repeatable)
#   --workdir DIR      copy DIR into the guest and run the binary there
#                      (default: an empty /work)
#   --root DIR         overlay the tree DIR on the guest's root (programs and
#                      libraries the guest lacks, as servers-root.sh builds);
#                      its files replace the harness's own /etc/passwd,
#                      /etc/group and /etc/hosts, and it may not hold /init,
#                      /etc/bulwark-vm.conf or /opt/bulwark-vm, nor a
#                      directory where the guest has a symlink (/bin, /sbin,
#                      /lib: use the /usr paths)
#   --cpus N           guest CPUs (default 2)
#   --timeout SECONDS  give up on the whole VM after SECONDS (default 300)
#   --require-lsm      fail unless a BPF LSM program ran while the binary
#                      ran (lsmwatch/ watches the kernel's program list; needs
#                      Go to build it)
#
# The guest has merged /usr (busybox applets hard-linked into /usr/bin and
# /usr/sbin, /bin -> usr/bin), cgroup2 at /sys/fs/cgroup, bpffs at /sys/fs/bpf,
# securityfs, tmpfs /tmp, loopback up, and /etc/passwd with root (0) and
# nobody (65534). BULWARK_VM=1 is always set in the binary's environment.
#
# Exit status: the binary's; 124 on timeout; 125 when the harness or the VM
# failed (no exit marker, no LSM program ran with --require-lsm, bad usage).
set -euo pipefail
. "$(dirname "$0")/common.sh"

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 125; }

kernel= workdir= overlay= cpus=2 timeout=300 require_lsm=
envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=${2:?--kernel needs a value}; shift 2 ;;
	--env)
		[[ ${2:-} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || vm_die "--env needs NAME=VALUE, got '${2:-}'"
		envs+=("$2"); shift 2 ;;
	--workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
	--root) overlay=${2:?--root needs a value}; shift 2 ;;
	--cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
	--timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
	--require-lsm) require_lsm=1; shift ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -ge 1 ] || usage
binary=$1
shift
[ -f "$binary" ] && [ -x "$binary" ] || vm_die "$binary is not an executable file"
if ldd "$binary" >/dev/null 2>&1; then
	vm_die "$binary is dynamically linked; build it static (CGO_ENABLED=0)"
fi
[ -z "$workdir" ] || [ -d "$workdir" ] || vm_die "--workdir $workdir is not a directory"
if [ -n "$overlay" ]; then
	[ -d "$overlay" ] || vm_die "--root $overlay is not a directory"
	for p in init etc/bulwark-vm.conf opt/bulwark-vm; do
		[ ! -e "$overlay/$p" ] && [ ! -L "$overlay/$p" ] || vm_die "--root $overlay holds /$p, which the harness writes"
	done
fi

vm_ensure_deps
vmlinuz=$("$(dirname "$0")/fetch-kernel.sh" ${kernel:+"$kernel"})

tmp=$(mktemp -d /tmp/bulwark-vm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
nonce=$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')

# quote prints $1 as a single-quoted shell word.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Build the initramfs tree.
root=$tmp/root
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,dev,proc,sys,tmp,run,root,etc,opt/bulwark-vm,work}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
cp /bin/busybox "$root/usr/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	case $applet in
	sbin/* | usr/sbin/*) dst=usr/sbin/${applet##*/} ;;
	*) dst=usr/bin/${applet##*/} ;;
	esac
	[ -e "$root/$dst" ] || ln "$root/usr/bin/busybox" "$root/$dst"
done
install -m 0755 "$(dirname "$0")/init.sh" "$root/init"
install -m 0755 "$binary" "$root/opt/bulwark-vm/${binary##*/}"
[ -z "$workdir" ] || cp -a "$workdir/." "$root/work/"
if [ -n "$require_lsm" ]; then
	(cd "$vm_repo" && CGO_ENABLED=0 "${GO:-go}" build -o "$root/opt/bulwark-vm/lsmwatch" ./test/vm/lsmwatch) ||
		vm_die "building test/vm/lsmwatch failed"
fi
chmod 0700 "$root/root"
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
printf '%s\n' '127.0.0.1 localhost' '::1 localhost' >"$root/etc/hosts"
if [ -n "$overlay" ]; then
	cp -a "$overlay/." "$root/" || vm_die "overlaying --root $overlay failed"
fi
{
	echo "VM_NONCE=$nonce"
	echo "VM_BINARY=$(quote "/opt/bulwark-vm/${binary##*/}")"
	echo "VM_WORKDIR=/work"
	echo "export BULWARK_VM=1"
	for e in ${envs[@]+"${envs[@]}"}; do
		echo "export ${e%%=*}=$(quote "${e#*=}")"
	done
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(quote "$a")"; done
	echo
} >"$root/etc/bulwark-vm.conf"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -1) >"$tmp/initrd.gz" ||
	vm_die "building the initramfs failed"

vm_log "booting ${vmlinuz##*/} (timeout ${timeout}s)"
set +e
timeout -k 5 "$timeout" qemu-system-x86_64 \
	-accel tcg -cpu max -smp "$cpus" -m 1024M \
	-nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-kernel "$vmlinuz" -initrd "$tmp/initrd.gz" \
	-append "console=ttyS0 lsm=lockdown,capability,landlock,yama,bpf panic=-1 quiet" \
	</dev/null 2>&1 | sed -u 's/\r$//' | tee "$tmp/console.log"
qemu_status=${PIPESTATUS[0]}
set -e

if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
	vm_log "error: timed out after ${timeout}s"
	exit 124
fi
marker=$(grep -aoE "@@bulwark-vm-exit $nonce [0-9]+@@" "$tmp/console.log" | tail -n 1 || true)
[ -n "$marker" ] || vm_die "the guest ended without an exit marker (qemu status $qemu_status)"
status=${marker##* }
status=${status%@@}
if [ -n "$require_lsm" ] && ! grep -aq "@@bulwark-vm-lsm $nonce " "$tmp/console.log"; then
	vm_die "no BPF LSM program ran while ${binary##*/} ran (binary exit status $status)"
fi
vm_log "${binary##*/} exited with status $status"
exit "$status"
