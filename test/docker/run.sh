#!/usr/bin/env bash
# The whole Docker e2e cycle: the docker group of test/deps.sh, the
# offline images (test/e2e/images.sh: seconds when built), up.sh, the Go
# suite in ./test/docker, then down.sh, which always runs unless the
# runtime was already up before (then it is left running). Extra arguments
# go to `go test`, e.g. test/docker/run.sh -run TestAgentStopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

bash "$REPO_ROOT/test/deps.sh" docker
"$E2E_SRC/images.sh"
was_up=
dockerd_pid >/dev/null && was_up=1
teardown() {
	local rc=$?
	if [ -z "$was_up" ]; then
		"$DK_SRC/down.sh" || rc=1
	fi
	exit "$rc"
}
trap teardown EXIT
eval "$("$DK_SRC/up.sh")"
cd "$REPO_ROOT"
go test -count=1 -v "$@" ./test/docker/
