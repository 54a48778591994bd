#!/usr/bin/env bash
# The whole e2e cycle: install.sh (warm: seconds), up.sh, the Go suite in
# ./test/e2e, then down.sh, which always runs unless the runtime was
# already up before (then it is left running). Extra arguments go to
# `go test`, e.g. test/e2e/run.sh -run TestNoPolicy. Exits non-zero when
# the suite or the teardown fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

"$E2E_SRC/install.sh"

was_up=
if containerd_pid >/dev/null; then
	was_up=1
	log "runtime already up; leaving it up afterwards"
fi
teardown() {
	local rc=$?
	if [ -z "$was_up" ]; then
		"$E2E_SRC/down.sh" || rc=1
	fi
	exit "$rc"
}
trap teardown EXIT

env_lines="$("$E2E_SRC/up.sh")"
eval "$env_lines"
cd "$REPO_ROOT"
go test -count=1 -v "$@" ./test/e2e/
