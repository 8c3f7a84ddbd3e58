# Sourced by scripts/test.sh and scripts/quickstart.sh: create (or reuse) a virtual environment and
# install laconic into it. Set LACONIC_VENV to use another location, LACONIC_EXTRAS for extras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${LACONIC_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: an unpinned resolve would pull the newest CUDA build (GBs) on a CPU box.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[${LACONIC_EXTRAS:-dev}]"
