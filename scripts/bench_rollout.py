#!/usr/bin/env python
"""Rollout throughput of laconic's vLLM engine vs raw ``vllm.LLM.generate``, and weight-push time.

One vLLM engine serves both: the same prompts and the same vLLM ``SamplingParams`` (built by
``rl.engines.vllm_colocated.vllm_sampling_params``) go to ``llm.generate`` directly and through
``VLLMEngine.generate`` (which adds the conversion to ``Rollout``s and decoding), alternating,
after a warm-up. Tokens/s counts completion tokens. Then the whole policy state is pushed
(``VLLMEngine.sync_weights``) a few times, full and LoRA-merged. Prints one JSON object.

    OMP_NUM_THREADS=2 python scripts/bench_rollout.py                      # SmolLM2-135M, bf16
    OMP_NUM_THREADS=1 python scripts/bench_rollout.py --prompts 8 --n 4 --max-tokens 32
    python scripts/bench_rollout.py --model builtin:toy --dtype float32

Targets (issue 5): ratio >= 0.95, push < 1 s for SmolLM2-135M on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "What is 17 times 23? Think step by step.",
    "A train travels 60 km in 45 minutes. What is its average speed in km per hour?",
    "Write the first ten prime numbers and add them up.",
    "If a rectangle is 7 cm wide and 12 cm long, what are its area and perimeter?",
    "Tom has 3 boxes with 14 apples each. He gives away 9 apples. How many are left?",
    "Explain why the sum of two odd numbers is even.",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:smollm2", help="builtin:smollm2, builtin:toy or a model directory")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--n", type=int, default=8, help="completions per prompt (G)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each, alternating")
    p.add_argument("--pushes", type=int, default=3)
    p.add_argument("--kv-cache-gb", type=float, default=1.0)
    p.add_argument("--no-lora", action="store_true", help="skip the LoRA push timing")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build_prompts(tokenizer, k: int, toy: bool) -> list[list[int]]:
    if toy:
        from rl.tasks import sample_arithmetic
        import random

        rng = random.Random(0)
        return [tokenizer(f"Q:{sample_arithmetic(rng)['question']}=")["input_ids"] for _ in range(k)]
    out = []
    for i in range(k):
        msgs = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
        out.append(list(tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True,
                                                      return_dict=False)))
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from rl.config import ModelConfig
    from rl.engines.base import SamplingParams, eos_ids_of
    from rl.engines.vllm_colocated import VLLMEngine, vllm_sampling_params
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path

    mcfg = ModelConfig(name_or_path=args.model, dtype="float32")
    path = resolve_model_path(mcfg)
    tok = load_tokenizer(path)
    policy = load_policy(mcfg, path).eval()
    prompts = build_prompts(tok, args.prompts, toy="toy" in args.model)
    params = SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, n=args.n)

    t0 = time.perf_counter()
    engine = VLLMEngine(path, tok, dtype=args.dtype, kv_cache_gb=args.kv_cache_gb, seed=args.seed,
                        eos_ids=eos_ids_of(policy, tok))
    start_s = time.perf_counter() - t0
    sp = vllm_sampling_params(params, engine.eos_ids)
    inputs = [{"prompt_token_ids": p} for p in prompts]

    def raw() -> int:
        outs = engine.llm.generate(inputs, sp, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs)

    def ours() -> int:
        return sum(r.length for r in engine.generate(prompts, params))

    raw(), ours()  # warm-up (first-call allocations, caches)
    timings: dict[str, list[float]] = {"raw": [], "engine": []}
    for _ in range(args.repeats):
        for name, fn in (("raw", raw), ("engine", ours)):
            t = time.perf_counter()
            tokens = fn()
            timings[name].append(tokens / (time.perf_counter() - t))
    raw_tps, our_tps = statistics.fmean(timings["raw"]), statistics.fmean(timings["engine"])

    def push_times(model) -> list[float]:
        out = []
        for _ in range(args.pushes):
            engine.sync_weights(model)
            out.append(engine.last_push_seconds)
        return out

    push = push_times(policy)
    result = {
        "model": args.model, "vllm_dtype": args.dtype, "prompts": args.prompts, "n": args.n,
        "max_tokens": args.max_tokens, "temperature": args.temperature,
        "omp_threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
        "device": "cuda" if torch.cuda.is_available() else platform.processor() or "cpu",
        "engine_start_s": round(start_s, 2),
        "raw_tokens_per_s": round(raw_tps, 1), "engine_tokens_per_s": round(our_tps, 1),
        "ratio": round(our_tps / raw_tps, 4),
        "raw_runs": [round(x, 1) for x in timings["raw"]], "engine_runs": [round(x, 1) for x in timings["engine"]],
        "push_s": round(statistics.median(push), 3), "push_runs_s": [round(x, 3) for x in push],
        "parameters": sum(p.numel() for p in policy.parameters()),
    }
    if not args.no_lora:
        lcfg = ModelConfig(name_or_path=args.model, dtype="float32", lora_r=16)
        lora = load_policy(lcfg, path).eval()
        result["push_lora_s"] = round(statistics.median(push_times(lora)), 3)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
