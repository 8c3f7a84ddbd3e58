#!/usr/bin/env bash
# The quickstart: installs laconic into .venv, then trains recipes/quickstart.yaml (builds the toy
# model on first use). Extra arguments are recipe overrides, e.g. train.max_steps=20.
LACONIC_EXTRAS="${LACONIC_EXTRAS:-tensorboard}" source "$(dirname "$0")/env.sh"
exec laconic train recipes/quickstart.yaml "$@"
