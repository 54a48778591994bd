#!/usr/bin/env bash
# fetch-kernel.sh [VERSION] prints the path of a Debian cloud kernel image
# (vmlinuz) with BPF LSM support, downloading it into the cache when absent.
#
# VERSION selects among the linux-image-*-cloud-amd64-unsigned packages apt
# knows: "6.1" picks the newest 6.1 kernel, "6.1.0-56" or "6.12.117+deb12" an
# exact one; without VERSION the newest of all is used. Only boot/vmlinuz-* is
# extracted from the package; nothing is installed on the host.
set -euo pipefail
. "$(dirname "$0")/common.sh"

want=${1:-}
suffix=-cloud-amd64-unsigned

# candidates lists the matching package names, oldest first.
candidates() {
	local re='^linux-image-[0-9][^ ]*'"$suffix"'$'
	if [ -n "$want" ]; then
		re='^linux-image-'$(printf '%s' "$want" | sed 's/[.+]/\\&/g')'([.+-][^ ]*)?'"$suffix"'$'
	fi
	apt-cache search --names-only 'linux-image-.*-cloud-amd64-unsigned' |
		awk '{print $1}' | grep -E "$re" | sort -V || true
}

pkg=$(candidates | tail -n 1)
if [ -z "$pkg" ]; then
	vm_apt_update_once
	pkg=$(candidates | tail -n 1)
fi
[ -n "$pkg" ] || vm_die "apt knows no linux-image-${want:-*}$suffix package"

kver=${pkg#linux-image-}
kver=${kver%-unsigned}
out=$vm_cache/vmlinuz-$kver
if [ ! -s "$out" ]; then
	mkdir -p "$vm_cache"
	tmp=$(mktemp -d "$vm_cache/.fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	vm_log "downloading $pkg"
	(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2) ||
		vm_die "apt-get download $pkg failed"
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' ||
		vm_die "no boot/vmlinuz-* in $pkg"
	mv "$tmp/boot/vmlinuz-$kver" "$out" || vm_die "$pkg holds no boot/vmlinuz-$kver"
fi
printf '%s\n' "$out"
