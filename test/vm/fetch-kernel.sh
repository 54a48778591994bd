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

# download PKG extracts PKG's boot/vmlinuz-* into the cache as $out; it
# fails when apt cannot download PKG.
tmp=
trap 'rm -rf "$tmp"' EXIT
download() {
	mkdir -p "$vm_cache"
	rm -rf "$tmp"
	tmp=$(mktemp -d "$vm_cache/.fetch.XXXXXX")
	vm_log "downloading $1"
	(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$1" >&2) || return 1
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' ||
		vm_die "no boot/vmlinuz-* in $1"
	mv "$tmp/boot/vmlinuz-$kver" "$out" || vm_die "$1 holds no boot/vmlinuz-$kver"
}

# pick sets pkg, kver and out for the newest matching package apt knows.
pick() {
	pkg=$(candidates | tail -n 1)
	kver=${pkg#linux-image-}
	kver=${kver%-unsigned}
	out=$vm_cache/vmlinuz-$kver
}

# fetch picks the package and extracts its kernel unless it is cached; it
# fails when apt knows no matching package or cannot download it.
fetch() {
	pick
	[ -n "$pkg" ] || { vm_log "apt knows no linux-image-${want:-*}$suffix package"; return 1; }
	[ -s "$out" ] || download "$pkg" || { vm_log "apt-get download $pkg failed"; return 1; }
}

# Missing or stale apt lists (naming packages the archive no longer has):
# refresh them once and try again.
fetch || { vm_apt_update_once; fetch; } || vm_die "no kernel image for ${want:-the newest version}"
printf '%s\n' "$out"
