#!/usr/bin/env bash
# make k8s-e2e: builds (or reuses) the e2e runtime and the cluster
# binaries, brings up the e2e containerd and the single-node cluster,
# imports Bulwark's image (make image), runs the namespace-watch test of
# the agent against the real API server and the suite of this directory,
# and always tears everything down. Holds /tmp/bulwark-e2e.lock throughout
# (the e2e runtime uses fixed paths). Extra arguments go to go test.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

exec 9>/tmp/bulwark-e2e.lock
flock 9
bash "$E2E_SRC/install.sh" >&2
nice bash "$K8S_SRC/install.sh" >&2
[ -f "$REPO_ROOT/bin/bulwark-image.tar" ] || kdie "bin/bulwark-image.tar missing: run make image"

trap '"$K8S_SRC/down.sh"' EXIT
eval "$("$K8S_SRC/up.sh")"
ctr_cmd images import "$REPO_ROOT/bin/bulwark-image.tar" >&2
export BULWARK_BIN
cd "$REPO_ROOT"
go test -count=1 -run '^TestNamespaceWatch$' ./agent
go test -count=1 -v -timeout 15m "$@" ./test/k8s
