#!/usr/bin/env bash
# Removes everything test/k8s/up.sh (and the suite) created: the kubelet
# and the control plane, the pods the kubelet ran, mounts under $K8S_DIR,
# the kubepods cgroups, the KUBE-* iptables chains that did not exist
# before, /var/log/containers when it was absent, the sysctls the kubelet
# set, $K8S_DIR itself, and the e2e runtime when up.sh started it
# (--keep-runtime: leave it). Works after a partial up.sh and when nothing
# is up. Exits non-zero when something could not be removed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root
keep_runtime=
[ "${1:-}" = --keep-runtime ] && keep_runtime=1

failed=0
kwarn() {
	klog "warning: $*"
	failed=1
}

# stop NAME: SIGTERM, then SIGKILL, the component whose pid file is ours
# and whose binary is ours.
stop() {
	local pid
	pid="$(cat "$K8S_DIR/run/$1.pid" 2>/dev/null)" || return 0
	alive "$pid" && [ "$(exe_of "$pid")" = "$(readlink -f "$K8S_BIN/$1")" ] || return 0
	klog "stopping $1 (pid $pid)"
	kill -s TERM "$pid"
	wait_gone "$pid" || { kill -s KILL "$pid"; wait_gone "$pid"; } || kwarn "$1 does not exit"
}

# 1. The kubelet first (it would restart the pods), then the pods it ran,
#    through CRI so CNI tears their network down.
stop kubelet
if containerd_pid >/dev/null && crictl_cmd --timeout 5s info >/dev/null 2>&1; then
	# The kubelet's pods are those labelled with a pod UID.
	mapfile -t pods < <(for p in $(crictl_cmd pods -q 2>/dev/null); do
		crictl_cmd inspectp -o go-template --template '{{with index .status.labels "io.kubernetes.pod.uid"}}{{$.status.id}}{{end}}' "$p" 2>/dev/null
	done | grep .)
	if [ ${#pods[@]} -gt 0 ]; then
		klog "removing ${#pods[@]} kubelet pod(s)"
		crictl_cmd rmp -f "${pods[@]}" >/dev/null 2>&1 || kwarn "crictl rmp failed"
	fi
fi
for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do
	stop "$c"
done

# 2. Mounts under $K8S_DIR (projected and ConfigMap volumes), deepest first.
if [ -d "$K8S_DIR" ]; then
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || kwarn "cannot unmount $m"
	done < <(awk -v d="$K8S_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
fi

# 3. The kubelet's kubepods cgroups in every hierarchy, deepest first
#    (their processes are gone with the pods; any left are killed).
for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
	kill_cgroup_procs "$top"
	rmdir_cgroup "$top" || kwarn "cannot remove cgroup $top"
done

# 4. iptables chains named KUBE-* that did not exist before up.sh, and
#    the rules that jump to them (IPv4 and IPv6).
for ipt in iptables ip6tables; do
	saved="$K8S_DIR/host/$ipt.save"
	[ -f "$saved" ] || continue
	for t in filter nat mangle raw; do
		before="$(awk -v t="*$t" '$0 == t { in_t = 1; next } /^\*/ { in_t = 0 } in_t && /^:KUBE-/ { print substr($1, 2) }' "$saved")"
		new=()
		for c in $("$ipt-save" -t "$t" 2>/dev/null | awk '/^:KUBE-/ { print substr($1, 2) }'); do
			grep -qxF "$c" <<<"$before" || new+=("$c")
		done
		[ ${#new[@]} -gt 0 ] || continue
		klog "removing $ipt $t chains ${new[*]}"
		for c in "${new[@]}"; do
			"$ipt" -t "$t" -F "$c" || kwarn "flush $ipt $t $c failed"
		done
		for c in "${new[@]}"; do
			while read -r rule; do
				eval "$ipt -t $t -D $rule" || kwarn "delete $ipt $t rule $rule failed"
			done < <("$ipt" -t "$t" -S | grep -E -- "-j $c( |\$)" | sed 's/^-A //')
		done
		for c in "${new[@]}"; do
			"$ipt" -t "$t" -X "$c" || kwarn "delete $ipt $t chain $c failed"
		done
	done
done

# 5. Sysctls and /var/log/containers.
for f in "$K8S_DIR"/host/sysctl.*; do
	[ -f "$f" ] || continue
	sysctl -q -w "${f##*/sysctl.}=$(cat "$f")" || kwarn "cannot restore ${f##*/sysctl.}"
done
if [ "$(cat "$K8S_DIR/host/var-log-containers" 2>/dev/null)" = absent ] && [ -e /var/log/containers ]; then
	rm -rf /var/log/containers || kwarn "cannot remove /var/log/containers"
fi

# 6. The runtime, when up.sh started it, and $K8S_DIR.
if [ -f "$K8S_DIR/host/started-runtime" ] && [ -z "$keep_runtime" ]; then
	"$E2E_SRC/down.sh" || kwarn "test/e2e/down.sh failed"
fi
if [ -d "$K8S_DIR" ]; then
	if awk -v d="$K8S_DIR/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		kwarn "mounts left under $K8S_DIR; not removing it"
	else
		rm -rf "$K8S_DIR" || kwarn "cannot remove $K8S_DIR"
	fi
fi
[ $failed = 0 ] && klog "cluster removed"
exit $failed
