#!/usr/bin/env bash
# The test command: installs what it needs into .venv, then runs pytest (slow tests excluded).
#   bash scripts/test.sh                 # the CI suite
#   bash scripts/test.sh -m slow         # the slow tests (full quickstart, ...)
source "$(dirname "$0")/env.sh"
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec python -m pytest "$@"
