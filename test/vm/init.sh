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

# With run.sh --require-lsm, lsmwatch reports once that a BPF LSM program ran.
watcher=
if [ -x /opt/bulwark-vm/lsmwatch ]; then
	/opt/bulwark-vm/lsmwatch "$VM_NONCE" &
	watcher=$!
fi

cd "$VM_WORKDIR" || exit 1
"$VM_BINARY" "$@"
status=$?
[ -z "$watcher" ] || kill "$watcher" 2>/dev/null
echo "@@bulwark-vm-exit $VM_NONCE $status@@"
poweroff -f
