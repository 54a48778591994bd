#!/usr/bin/env bash
# Restarts the e2e runtime's containerd (SIGTERM, then the same config
# again); the shims keep the containers running meanwhile. For the test of
# the agent's NRI reconnection.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
containerd_pid >/dev/null || die "containerd of the e2e runtime is not running"
stop_containerd || die "containerd does not exit"
start_containerd
