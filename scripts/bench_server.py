#!/usr/bin/env python
"""``rollout.engine: vllm-server`` against the colocated vLLM engine on CPU, in lockstep; prints JSON.

    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_server.py --model builtin:toy
    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_server.py --model builtin:smollm2

Starts ``laconic serve MODEL`` (loopback, fp32, one OMP thread) and an in-process ``vllm.LLM``
with the same settings (rl/engines/vllm_colocated.py), then alternates the two ``--reps`` times on the same
work: a weight push of the policy (server: pause, safetensors into /dev/shm, ``reload_weights``,
prefix-cache reset, resume; colocated: ``reload_weights`` from the in-memory tensors) and one
rollout of ``--prompts`` digit-sum prompts x ``--n`` samples (tokens/s = completion tokens / wall
time). Medians and server/colocated ratios; compare ratios, not seconds, on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_server(model_path: str, key: str, kv_bytes: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "rl.cli", "serve", model_path, "--port", str(port), "--api-key", key,
           "--dtype", "float32", "--kv-cache-memory-bytes", str(kv_bytes)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:toy")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--kv-cache-gb", type=float, default=0.5)
    args = p.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    import torch

    from rl.config import ModelConfig
    from rl.engines.base import SamplingParams
    from rl.engines.vllm_colocated import VLLMEngine
    from rl.engines.vllm_server import VLLMServerEngine
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path

    path = resolve_model_path(ModelConfig(name_or_path=args.model))
    key = "bench-" + os.urandom(8).hex()
    proc, url = start_server(path, key, int(args.kv_cache_gb * (1 << 30)))
    try:
        tok = load_tokenizer(path)
        policy = load_policy(ModelConfig(name_or_path=path), path).eval()
        colocated = VLLMEngine(path, tok, dtype="float32", kv_cache_gb=args.kv_cache_gb, seed=0)
        server = VLLMServerEngine([url], tok, api_key=key, connect_timeout=600)
        rng = random.Random(0)
        questions = ["Q:" + "+".join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 5))) + "=" for _ in range(args.prompts)]
        prompts = [tok(q)["input_ids"] for q in questions]
        params = SamplingParams(max_new_tokens=args.max_new_tokens, n=args.n)
        engines = {"server": server, "colocated": colocated}
        for e in engines.values():  # warm-up: first push and first batch
            e.sync_weights(policy)
            e.generate(prompts, params)
        push = {k: [] for k in engines}
        tps = {k: [] for k in engines}
        for _ in range(args.reps):
            with torch.no_grad():  # a new policy each round, so every push carries changed weights
                for q in policy.parameters():
                    q.mul_(1.0 + 1e-4)
            for name, e in engines.items():
                t0 = time.perf_counter()
                e.sync_weights(policy)
                push[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                tokens = sum(r.length for r in e.generate(prompts, params))
                tps[name].append(tokens / (time.perf_counter() - t0))
        med = {f"push_s/{k}": statistics.median(v) for k, v in push.items()}
        med.update({f"tokens_per_s/{k}": statistics.median(v) for k, v in tps.items()})
        server_bytes = sum(t.numel() * t.element_size() for t in policy.state_dict().values())
        print(json.dumps({"model": args.model, "weights_mb": round(server_bytes / 2**20, 1), "prompts": args.prompts,
                          "n": args.n, "max_new_tokens": args.max_new_tokens, "reps": args.reps, **med,
                          "ratio/push server:colocated": med["push_s/server"] / med["push_s/colocated"],
                          "ratio/tokens_per_s server:colocated": med["tokens_per_s/server"] / med["tokens_per_s/colocated"],
                          "raw": {"push_s": push, "tokens_per_s": tps}}, indent=1))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
