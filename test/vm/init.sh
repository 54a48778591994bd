#!/bin/sh
# /init of the Bulwark test VM (busybox sh). run.sh writes /etc/bulwark-vm.conf,
# which sets VM_NONCE and VM_BINARY, exports the requested environment and sets
# the binary's arguments as "$@". Everything reaches the host over the serial
# console; the last line is the exit marker run.sh waits for.
export PATH=/usr/sbin:/usr/bin HOME=/root
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
ip link set lo up
hostname bulwark-vm

. /etc/bulwark-vm.conf

echo "vm: kernel $(uname -r), lsm=$(cat /sys/kernel/security/lsm), $(nproc) cpus"

# Report once when a BPF LSM program is attached (an LSM link held by any
# process), so run.sh --require-lsm can tell that the LSM path was exercised.
watch_lsm() {
	while :; do
		if grep -qs '^attach_type:[[:space:]]*27$' /proc/[0-9]*/fdinfo/*; then
			echo "@@bulwark-vm-lsm $VM_NONCE@@"
			return
		fi
		sleep 0.1
	done
}
watch_lsm &
watcher=$!

cd "$VM_WORKDIR" || exit 1
"$VM_BINARY" "$@"
status=$?
kill "$watcher" 2>/dev/null
echo "@@bulwark-vm-exit $VM_NONCE $status@@"
poweroff -f
