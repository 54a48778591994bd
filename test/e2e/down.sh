#!/usr/bin/env bash
# Removes everything test/e2e/up.sh (and the tests) created: pods and
# containers, the agent, containerd and its shims, runc state, container
# processes and cgroups under $CGROUP_PARENT, mounts and network namespaces
# under $E2E_DIR, the CNI bridge and its veths, the iptables chains the CNI
# plugins added, net.ipv4.ip_forward, and finally $E2E_DIR itself.
# Works after a failed or partial up.sh and when nothing is up; each step
# only touches what it can prove is the runtime's own. Exits non-zero when
# something could not be removed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root

failed=0
warn() {
	log "warning: $*"
	failed=1
}

# 1. Pods, through CRI, so the CNI plugins tear down their own network
#    state (veth, IPAM lease, portmap rules).
if containerd_pid >/dev/null && [ -S "$CONTAINERD_SOCK" ] && crictl_cmd --timeout 5s info >/dev/null 2>&1; then
	mapfile -t pods < <(crictl_cmd pods -q 2>/dev/null)
	if [ ${#pods[@]} -gt 0 ]; then
		log "removing ${#pods[@]} pod(s)"
		crictl_cmd rmp -f "${pods[@]}" >/dev/null 2>&1 || warn "crictl rmp failed"
	fi
fi

# 2. The agent.
"$E2E_SRC/agent.sh" stop || warn "agent did not stop"
"$E2E_SRC/collector.sh" stop || warn "collector did not stop"

# 3. containerd.
stop_containerd || warn "containerd does not exit"
rm -f "$E2E_DIR/run/containerd.pid"

# 4. Shims of this containerd (identified by the exact -address flag) and
#    the containers runc still knows in our runc root.
shim_exe="$(readlink -f "$E2E_BIN/containerd-shim-runc-v2")"
grep -lsF -- "$CONTAINERD_SOCK" /proc/[0-9]*/cmdline | while read -r f; do
	pid="${f#/proc/}"
	pid="${pid%/cmdline}"
	[ "$(exe_of "$pid")" = "$shim_exe" ] || continue
	tr '\0' '\n' <"$f" 2>/dev/null | grep -qxF "$CONTAINERD_SOCK" || continue
	log "killing leftover shim (pid $pid)"
	kill -s KILL "$pid" 2>/dev/null
done
if [ -d "$E2E_DIR/runc" ]; then
	for root in "$E2E_DIR"/runc/*/; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			log "runc delete --force $id"
			runc --root "$root" delete --force "$id" >/dev/null 2>&1 || warn "runc delete $id failed"
		done
	done
fi

# 5. Container processes and cgroups under our cgroup parent, in every
#    hierarchy (v1 controllers and the v2 tree), deepest first.
for top in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup"$CGROUP_PARENT"; do
	kill_cgroup_procs "$top"
done
for top in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup"$CGROUP_PARENT"; do
	rmdir_cgroup "$top" || warn "cannot remove cgroup $top"
done

# 6. Mounts under $E2E_DIR (rootfs overlays, sandbox shm, netns bind
#    mounts, the agent's bpffs), deepest first; unmounting the netns mounts
#    frees the network namespaces and with them the pods' veth ends, and
#    unmounting the bpffs drops the agent's pins (detaching its programs).
if [ -d "$E2E_DIR" ]; then
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
	done < <(awk -v d="$E2E_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
fi

# 7. The CNI bridge and any veth still attached to it.
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
	for v in $(ip -o link show master "$CNI_BRIDGE" | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		ip link del "$v" 2>/dev/null
	done
	ip link del "$CNI_BRIDGE" || warn "cannot delete bridge $CNI_BRIDGE"
fi

# 8. iptables chains named CNI-* that did not exist before up.sh, and the
#    rules that jump to them.
if [ -f "$E2E_DIR/host/iptables.save" ]; then
	for t in filter nat mangle raw; do
		before="$(awk -v t="*$t" '$0 == t { in_t = 1; next } /^\*/ { in_t = 0 } in_t && /^:CNI-/ { print substr($1, 2) }' "$E2E_DIR/host/iptables.save")"
		new=()
		for c in $(iptables-save -t "$t" 2>/dev/null | awk '/^:CNI-/ { print substr($1, 2) }'); do
			grep -qxF "$c" <<<"$before" || new+=("$c")
		done
		[ ${#new[@]} -gt 0 ] || continue
		log "removing iptables $t chains ${new[*]}"
		for c in "${new[@]}"; do
			iptables -t "$t" -F "$c" || warn "flush $t $c failed"
		done
		for c in "${new[@]}"; do
			while read -r rule; do
				eval "iptables -t $t -D $rule" || warn "delete $t rule $rule failed"
			done < <(iptables -t "$t" -S | grep -E -- "-j $c( |\$)" | sed 's/^-A //')
		done
		for c in "${new[@]}"; do
			iptables -t "$t" -X "$c" || warn "delete $t chain $c failed"
		done
	done
fi

# 9. libcni's result cache entries for our network and our sandboxes
#    (left behind when a pod was not removed through CRI), and
#    /var/lib/cni itself when up.sh found it absent.
if [ -d /var/lib/cni/results ]; then
	rm -f /var/lib/cni/results/"$CNI_NETWORK"-*
	for sb in "$E2E_DIR"/state/io.containerd.grpc.v1.cri/sandboxes/*/; do
		[ -d "$sb" ] && rm -f /var/lib/cni/results/cni-loopback-"$(basename "$sb")"-*
	done
fi
if [ "$(cat "$E2E_DIR/host/var-lib-cni" 2>/dev/null)" = absent ] && [ -d /var/lib/cni ]; then
	[ ! -d /var/lib/cni/results ] || rmdir /var/lib/cni/results 2>/dev/null
	rmdir /var/lib/cni 2>/dev/null || warn "/var/lib/cni is not empty; left in place"
fi

# /run/mount, libmount's utab directory, when up.sh found it absent and it
# is empty.
if [ "$(cat "$E2E_DIR/host/run-mount" 2>/dev/null)" = absent ] && [ -d /run/mount ]; then
	rmdir /run/mount 2>/dev/null || true
fi

# 10. ip_forward as it was before up.sh.
if [ -f "$E2E_DIR/host/ip_forward" ]; then
	want="$(cat "$E2E_DIR/host/ip_forward")"
	if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$want" ]; then
		echo "$want" >/proc/sys/net/ipv4/ip_forward || warn "cannot restore ip_forward"
	fi
fi

# 11. The directory itself, only once nothing is mounted below it.
if [ -d "$E2E_DIR" ]; then
	if awk -v d="$E2E_DIR/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		warn "mounts remain under $E2E_DIR; not removing it"
	else
		rm -rf "$E2E_DIR" || warn "cannot remove $E2E_DIR"
	fi
fi

if [ "$failed" = 0 ]; then
	log "runtime removed"
fi
exit "$failed"
