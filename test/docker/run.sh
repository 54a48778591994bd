#!/usr/bin/env bash
# The whole Docker e2e cycle: the docker group of test/deps.sh, the
# offline images (test/e2e/images.sh: seconds when built), up.sh, the Go
# suite in ./test/docker, then down.sh, which always runs unless the
# runtime was already up before (then it is left running). Extra arguments
# go to `go test`, e.g. test/docker/run.sh -run TestAgentStopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

dk_session
cd "$REPO_ROOT"
go test -count=1 -v "$@" ./test/docker/
