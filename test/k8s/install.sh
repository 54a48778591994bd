#!/usr/bin/env bash
# Builds (or reuses) the single-node cluster's binaries from the Go module
# proxy into .cache/k8s/bin: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet and kubectl. `go install` refuses both projects
# (their go.mod files carry replace directives), so each is built from a
# small wrapper module: etcd's server module as a dependency, and
# k8s.io/kubernetes with every staging module it replaces pointed at the
# published copy of the same release. Idempotent: a binary already built
# from the pinned version is kept (warm: nothing to do). Also installs the
# k8s group of test/deps.sh (openssl, procps).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# built_from BIN MODULE prints the version of MODULE that BIN was built
# with (as its main module or a dependency), or nothing.
built_from() {
	[ -x "$1" ] || return 0
	go version -m "$1" 2>/dev/null | awk -v m="$2" '($1 == "mod" || $1 == "dep") && $2 == m { print $3 }'
}

build_etcd() {
	if [ "$(built_from "$K8S_BIN/etcd" go.etcd.io/etcd/server/v3)" = "$ETCD_VERSION" ]; then
		klog "etcd $ETCD_VERSION: up to date"
		return 0
	fi
	local src="$K8S_CACHE/src/etcd"
	rm -rf "$src" && mkdir -p "$src" "$K8S_BIN"
	printf 'module bulwark.test/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$src/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$src/tools.go"
	klog "building etcd $ETCD_VERSION"
	(cd "$src" && go mod tidy && CGO_ENABLED=0 nice go build -buildvcs=false -o "$K8S_BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_kubernetes() {
	local c missing=0
	for c in "${K8S_CMDS[@]}"; do
		[ "$(built_from "$K8S_BIN/$c" k8s.io/kubernetes)" = "$KUBERNETES_VERSION" ] || missing=1
	done
	if [ $missing = 0 ]; then
		klog "kubernetes $KUBERNETES_VERSION: up to date"
		return 0
	fi
	local src="$K8S_CACHE/src/kubernetes" staging="v0.${KUBERNETES_VERSION#v1.}" gomod
	rm -rf "$src" && mkdir -p "$src" "$K8S_BIN"
	gomod="$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
	[ -f "$gomod" ] || kdie "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION"
	{
		printf 'module bulwark.test/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
		# Every "k8s.io/x => ./staging/src/k8s.io/x" becomes the published x.
		sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
		printf ')\n'
	} >"$src/go.mod"
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		for c in "${K8S_CMDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
		printf ')\n'
	} >"$src/tools.go"
	klog "building kubernetes $KUBERNETES_VERSION (${K8S_CMDS[*]})"
	local ldflags="-s -w" minor="${KUBERNETES_VERSION#v1.}" v pkgs=()
	minor="${minor%%.*}"
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
	done
	for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	(cd "$src" && go mod tidy &&
		CGO_ENABLED=0 nice go build -buildvcs=false -ldflags "$ldflags" -o "$K8S_BIN/" "${pkgs[@]}")
}

bash "$REPO_ROOT/test/deps.sh" k8s
build_etcd
build_kubernetes
klog "cluster binaries ready in $K8S_BIN"
