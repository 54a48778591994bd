#!/usr/bin/env bash
# Starts, stops or SIGKILLs the e2e runtime's collector: daemon.sh collector start|stop|kill|status.
exec "$(dirname "$0")/daemon.sh" collector "$@"
