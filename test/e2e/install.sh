#!/usr/bin/env bash
# Builds (or reuses) the e2e runtime: containerd, ctr, the runc shim, crictl
# and the CNI plugins from the Go module proxy into .cache/e2e, and installs
# the e2e and servers groups of test/deps.sh (runc, iptables, busybox-static;
# nginx, whose files make the nginx image) when missing.
# Idempotent: a binary already built at the pinned version is kept. Then
# builds the offline images (images.sh; seconds when nothing changed).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# built_version BIN MODULE prints the version of MODULE that BIN was built
# from, or nothing when BIN is missing or was built from something else.
built_version() {
	[ -x "$1" ] || return 0
	go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

# go_install DIR MODULE VERSION PKG... installs each PKG@VERSION into DIR
# unless DIR already holds it at VERSION.
go_install() {
	local dir=$1 module=$2 version=$3
	shift 3
	local pkg missing=()
	for pkg in "$@"; do
		if [ "$(built_version "$dir/${pkg##*/}" "$module")" != "$version" ]; then
			missing+=("$pkg@$version")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "$module $version: up to date"
		return 0
	fi
	log "building ${missing[*]}"
	mkdir -p "$dir"
	GOBIN="$dir" GOFLAGS=-buildvcs=false go_cmd install "${missing[@]}"
}

bash "$REPO_ROOT/test/deps.sh" e2e servers

go_install "$E2E_BIN" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" \
	github.com/containerd/containerd/v2/cmd/containerd \
	github.com/containerd/containerd/v2/cmd/ctr \
	github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
go_install "$E2E_BIN" sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
	sigs.k8s.io/cri-tools/cmd/crictl
go_install "$E2E_CNI_BIN" github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" \
	github.com/containernetworking/plugins/plugins/main/bridge \
	github.com/containernetworking/plugins/plugins/main/loopback \
	github.com/containernetworking/plugins/plugins/ipam/host-local \
	github.com/containernetworking/plugins/plugins/meta/portmap
log "runtime binaries ready in $E2E_BIN and $E2E_CNI_BIN"
"$E2E_SRC/images.sh"
