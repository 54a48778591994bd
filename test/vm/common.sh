# Shared helpers of the Bulwark qemu harness; sourced by the scripts in test/vm/.
# shellcheck shell=bash

# vm_repo is the repository root; vm_cache holds downloaded kernels (git-ignored).
vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm_cache=${BULWARK_VM_CACHE:-$vm_repo/.cache/vm}

vm_log() { printf 'vm: %s\n' "$*" >&2; }
vm_die() { printf 'vm: error: %s\n' "$*" >&2; exit 125; }

# vm_ensure_deps installs the host packages the harness needs (the vm group
# of test/deps.sh) when any of them is missing. CI machines start without them.
vm_ensure_deps() {
	bash "$vm_repo/test/deps.sh" vm || vm_die "installing the vm group of test/deps.sh failed"
}

# vm_apt_update_once refreshes the apt lists at most once per script run.
vm_apt_update_once() {
	[ -n "${vm_apt_updated:-}" ] && return 0
	vm_log "apt-get update"
	apt-get update -q >&2 || vm_die "apt-get update failed"
	vm_apt_updated=1
}
