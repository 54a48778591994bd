# Shared helpers of the Bulwark qemu harness; sourced by the scripts in test/vm/.
# shellcheck shell=bash

# vm_repo is the repository root; vm_cache holds downloaded kernels (git-ignored).
vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm_cache=${BULWARK_VM_CACHE:-$vm_repo/.cache/vm}

vm_log() { printf 'vm: %s\n' "$*" >&2; }
vm_die() { printf 'vm: error: %s\n' "$*" >&2; exit 125; }

# vm_ensure_deps installs the host packages the harness needs (qemu, cpio,
# busybox-static) when any of them is missing. CI machines start without them.
vm_ensure_deps() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	command -v cpio >/dev/null || missing+=(cpio)
	[ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || vm_die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
	vm_log "installing ${missing[*]}"
	vm_apt_update_once
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
		vm_die "apt-get install ${missing[*]} failed"
}

# vm_apt_update_once refreshes the apt lists at most once per script run.
vm_apt_update_once() {
	[ -n "${vm_apt_updated:-}" ] && return 0
	vm_log "apt-get update"
	apt-get update -q >&2 || vm_die "apt-get update failed"
	vm_apt_updated=1
}
