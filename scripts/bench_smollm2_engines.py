#!/usr/bin/env python
"""Rollout throughput of SmolLM2-135M-Instruct on CPU: vLLM fp32 vs vLLM bf16 vs transformers fp32.

All engines live in one process and generate the same chat prompts (``builtin:sums`` word
problems with a "Think step by step" prompt) with the same sampling settings, in alternation after a warm-up,
so the ratios hold on a loaded, shared machine. Tokens/s counts completion tokens. Prints one
JSON object: tokens/s of each engine and each one's ratio to vLLM fp32.

    OMP_NUM_THREADS=1 python scripts/bench_smollm2_engines.py --prompts 16 --n 4 --max-tokens 96  # docs/smollm2.md
    OMP_NUM_THREADS=1 python scripts/bench_smollm2_engines.py --engines vllm-float32,vllm-bfloat16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

ENGINES = ("vllm-float32", "vllm-bfloat16", "transformers-float32")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:smollm2")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {ENGINES}")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=4, help="completions per prompt")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (each engine once a round)")
    p.add_argument("--kv-cache-gb", type=float, default=1.0)
    return p.parse_args(argv)


def cpu_flags() -> list[str]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f")))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from rl.config import DataConfig, ModelConfig, RolloutConfig
    from rl.data import load_prompts
    from rl.engines.base import SamplingParams
    from rl.engines.build import build_engine
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path

    mcfg = ModelConfig(name_or_path=args.model, dtype="float32")
    path = resolve_model_path(mcfg)
    tokenizer = load_tokenizer(path)
    dcfg = DataConfig(name="builtin:sums", split="test", num_examples=args.prompts, delimiter=None,
                      prompt_template="{question}\nThink step by step, then end with: The answer is <number>.",
                      chat_template="auto")
    prompts = [p.ids for p in load_prompts(dcfg, tokenizer, seed=0)]
    params = SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature, n=args.n)
    policy = load_policy(mcfg, path)
    engines = {}
    for name in args.engines.split(","):
        backend, dtype = name.split("-")
        rollout = RolloutConfig(engine=backend, vllm_dtype=dtype, vllm_kv_cache_gb=args.kv_cache_gb)
        model = policy if dtype == "float32" else load_policy(ModelConfig(name_or_path=args.model, dtype=dtype), path)
        engines[name] = build_engine(backend, model, tokenizer, len(prompts) * args.n, model_path=path,
                                     rollout=rollout, dtype=dtype)
        engines[name].generate(prompts[:2], SamplingParams(max_new_tokens=8, temperature=1.0, n=2))  # warm-up
    tokens = {k: 0 for k in engines}
    seconds = {k: 0.0 for k in engines}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            t0 = time.perf_counter()
            rollouts = engine.generate(prompts, params)
            seconds[name] += time.perf_counter() - t0
            tokens[name] += sum(len(r.completion_ids) for r in rollouts)
    tps = {k: tokens[k] / seconds[k] for k in engines}
    ref = tps.get("vllm-float32") or next(iter(tps.values()))
    print(json.dumps({
        "model": args.model, "prompts": len(prompts), "n": args.n, "max_tokens": args.max_tokens,
        "repeats": args.repeats, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
        "tokens_per_s": {k: round(v, 1) for k, v in tps.items()},
        "mean_completion_tokens": {k: round(tokens[k] / (args.repeats * len(prompts) * args.n), 1) for k in engines},
        "ratio_to_first": {k: round(v / ref, 3) for k, v in tps.items()},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
