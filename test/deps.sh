#!/usr/bin/env bash
# Installs, when missing, the Debian packages Bulwark's build, tests and demo
# need; the one list of them. Usage:
# test/deps.sh [build|e2e|vm|unit|docker|k8s|servers]... (all groups when
# none is named):
#   build    clang, llvm and libbpf-dev to regenerate the BPF objects, and
#            libc6-dev for the C test helpers (cmd/bulwark/testdata) and the
#            runc wrapper's static C front (hook/front)
#   unit     systemd (systemd-analyze verify of the install units),
#            util-linux (setpriv runs them with their capabilities) and curl
#            (the dnsSelector learning test fetches a URL by name)
#   e2e      runc, iptables and busybox-static for the e2e runtime and images,
#            wget for the demo's requests to its pods
#   vm       qemu, cpio and busybox-static for the LSM tests in a VM
#   docker   dockerd (docker.io, which brings containerd 1.6 and runc) for
#            the Docker e2e suite (test/docker), with busybox-static for
#            its offline image
#   k8s      openssl (the cluster's certificates) and procps (sysctl) for the
#            single-node Kubernetes of test/k8s
#   servers  nginx and apache2-bin, the pre-forking servers the service and
#            e2e tests run (each with its own config); installed with their
#            services neither started nor enabled
# Go modules come from the module proxy.
set -euo pipefail

group_packages() {
	case $1 in
	build) echo clang llvm libbpf-dev libc6-dev ;;
	e2e) echo runc iptables busybox-static wget ;;
	vm) echo qemu-system-x86 cpio busybox-static ;;
	unit) echo systemd util-linux curl ;;
	docker) echo docker.io busybox-static ;;
	k8s) echo openssl procps ;;
	# apache2-bin is Apache's program and modules without the apache2
	# package's service and site configuration.
	servers) echo nginx apache2-bin ;;
	*) return 1 ;;
	esac
}

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build e2e vm unit docker k8s servers)
for g in "${groups[@]}"; do
	group_packages "$g" >/dev/null || {
		echo "deps: unknown group $g (want build, e2e, vm, unit, docker, k8s or servers)" >&2
		exit 2
	}
done
missing=()
for g in "${groups[@]}"; do
	for p in $(group_packages "$g"); do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
		[[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
	done
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing ${missing[*]}; run as root or apt-get install them" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# A package's maintainer scripts start its service through
	# invoke-rc.d, which asks policy-rc.d first: 101 forbids it. Put one
	# in place for this install when the machine has none.
	rcd=/usr/sbin/policy-rc.d
	if [ ! -e "$rcd" ]; then
		printf '#!/bin/sh\n# test/deps.sh: no service starts during this install\nexit 101\n' >"$rcd"
		chmod 755 "$rcd"
		trap 'rm -f "$rcd"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nginx's package enables its service at boot; the tests run nginx
	# themselves, so leave it disabled for systemd and sysvinit alike.
	if [[ " ${missing[*]} " == *" nginx "* ]]; then
		deb-systemd-helper disable nginx.service >/dev/null 2>&1 || true
		update-rc.d nginx disable >/dev/null 2>&1 || true
	fi
fi
echo "deps: ${groups[*]}: ok" >&2
