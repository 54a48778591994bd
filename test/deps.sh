#!/usr/bin/env bash
# Installs, when missing, the Debian packages Bulwark's build, tests and demo
# need: clang/llvm/libbpf-dev to regenerate the BPF objects, runc,
# iptables and busybox-static for the e2e runtime and test images, qemu and
# cpio for the LSM tests in a VM. Go modules come from the module proxy.
set -euo pipefail
pkgs=(clang llvm libbpf-dev runc iptables busybox-static qemu-system-x86 cpio)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deps: ok"
