#!/usr/bin/env bash
# The whole e2e cycle: install.sh (warm: seconds), up.sh, the Go suite in
# ./test/e2e, then down.sh, which always runs unless the runtime was
# already up before (then it is left running). Extra arguments go to
# `go test`, e.g. test/e2e/run.sh -run TestNoPolicy. Exits non-zero when
# the suite or the teardown fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

teardown() {
	local rc=$?
	runtime_release || rc=1
	exit "$rc"
}
trap teardown EXIT

runtime_up
cd "$REPO_ROOT"
go test -count=1 -v "$@" ./test/e2e/
