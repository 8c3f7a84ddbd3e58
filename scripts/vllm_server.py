#!/usr/bin/env python
"""The vLLM generation server for ``rollout.engine: vllm-server`` (see rl/vllm_server.py).

    OMP_NUM_THREADS=1 python scripts/vllm_server.py --model builtin:smollm2 --dtype bfloat16 --port 8000
"""
import sys

from rl.vllm_server import main

if __name__ == "__main__":
    sys.exit(main())
