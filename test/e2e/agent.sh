#!/usr/bin/env bash
# Starts, stops or SIGKILLs the e2e runtime's agent: daemon.sh agent start|stop|kill|status.
exec "$(dirname "$0")/daemon.sh" agent "$@"
