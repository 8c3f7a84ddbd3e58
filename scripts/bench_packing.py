#!/usr/bin/env python
"""The policy update packed (``train.packing``) against padded, on SmolLM2-135M with the untrained
model's own long-tailed completions; prints one JSON object.

    flock /tmp/laconic-bench.lock python scripts/bench_packing.py [--rollouts 16] [--micro-batch-tokens 2048]

Completions: the untrained SmolLM2-135M-Instruct (``builtin:smollm2``, float32, the transformers engine)
on ``builtin:sums`` with recipes/smollm2/sums.yaml's prompt and chat template, 4 samples a prompt at
temperature 0.7, up to 512 tokens; generated once (a few minutes on 2 cores) and cached in
``/tmp/laconic-bench-packing-rollouts.json``. The first ``--rollouts`` of them are the step.

Timing: one process, ``--repeats`` rounds, each running ``rl.train.update.update_policy`` (forward,
backward and the AdamW step over all the rollouts, ``train.micro_batch_tokens`` a micro-batch, 64 rows
at most: the trainer's defaults otherwise) padded, then packed, from the same weights (reloaded in place
before every update). Reported: the median wall and CPU time of each (with one torch thread CPU time is
what the update itself used, which the machine's other load moves less than wall time), their ratios,
the micro-batches each cut, and the update's statistics of both sides (they must agree). Memory: the
kernel's peak-RSS counter is reset (``/proc/self/clear_refs``) before every update and read after it
(``VmHWM``), minus the RSS before it: gradients, activations, logits chunks and AdamW's temporaries;
``MALLOC_MMAP_THRESHOLD_`` is set (the script re-executes itself), so freed buffers leave RSS at once.
Linux only. Also reported: the torch threads and ``os.getloadavg()`` at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path("/tmp/laconic-bench-packing-rollouts.json")
PROMPT = "{question}\nShow your work, then end with: The answer is <number>."  # recipes/smollm2/sums.yaml


def rss(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def completions(policy, tokenizer, prompts: int, n: int) -> tuple[list[dict], float | None]:
    """The untrained model's completions (cached); returns them and the generation time (None: cached)."""
    if CACHE.exists():
        return json.loads(CACHE.read_text()), None
    import torch

    from rl.config import DataConfig
    from rl.data import load_prompts
    from rl.engines.base import SamplingParams
    from rl.engines.build import build_engine

    data = DataConfig(name="builtin:sums", split="train", num_examples=prompts, delimiter=None,
                      prompt_template=PROMPT, chat_template="auto")
    ids = [p.ids for p in load_prompts(data, tokenizer, seed=0)]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    rollouts = build_engine("transformers", policy, tokenizer, len(ids) * n).generate(
        ids, SamplingParams(max_new_tokens=512, temperature=0.7, n=n))
    seconds = time.perf_counter() - t0
    rows = [{"prompt_ids": r.prompt_ids, "completion_ids": r.completion_ids, "finish_reason": r.finish_reason}
            for r in rollouts]
    CACHE.write_text(json.dumps(rows))
    return rows, seconds


def percentile(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--micro-batch-tokens", type=int, default=2048)
    ap.add_argument("--micro-batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":  # freed buffers leave RSS at once
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    load_start = os.getloadavg()
    import torch
    from accelerate import Accelerator

    from rl.config import AlgoConfig, ModelConfig
    from rl.engines.base import Rollout
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path
    from rl.train.update import micro_batches, packed_micro_batches, update_policy

    torch.set_num_threads(args.threads)
    mcfg = ModelConfig(name_or_path="builtin:smollm2", dtype="float32")
    path = resolve_model_path(mcfg, progress=False)
    policy, tokenizer = load_policy(mcfg, path), load_tokenizer(path)
    rows, gen_seconds = completions(policy, tokenizer, prompts=8, n=4)
    rollouts = [Rollout(i, r["prompt_ids"], r["completion_ids"], "", r["finish_reason"], None)
                for i, r in enumerate(rows[: args.rollouts])]
    lengths = [r.length for r in rollouts]
    idx = list(range(len(rollouts)))
    cuts = {"padded": micro_batches(rollouts, idx, args.micro_batch_size, args.micro_batch_tokens),
            "packed": packed_micro_batches(rollouts, idx, args.micro_batch_size, args.micro_batch_tokens)}
    width = lambda mb: max(len(rollouts[i].prompt_ids) for i in mb) + max(max(rollouts[i].length, 1) for i in mb)  # noqa: E731
    tokens = {"padded": [len(mb) * width(mb) for mb in cuts["padded"]],
              "packed": [sum(len(rollouts[i].prompt_ids) + rollouts[i].length for i in mb) for mb in cuts["packed"]]}

    acc = Accelerator(cpu=True)
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    policy, opt = acc.prepare(policy, opt)
    initial = {k: v.detach().clone() for k, v in acc.unwrap_model(policy).state_dict().items()}
    adv = torch.randn(len(rollouts), generator=torch.Generator().manual_seed(0))

    def update(packing: bool, rs=rollouts, a=adv):
        acc.unwrap_model(policy).load_state_dict(initial)  # in place: both sides from the same weights
        return update_policy(acc, policy, None, opt, sched, rs, a, AlgoConfig(), pad_id=tokenizer.pad_token_id,
                             temperature=0.7, micro_batch_size=args.micro_batch_size, max_grad_norm=1.0,
                             norm_len=512, micro_batch_tokens=args.micro_batch_tokens, packing=packing)

    for packing in (False, True):  # warm-up: AdamW's moments, first-use allocations, both code paths
        update(packing, rollouts[:2], adv[:2])
    runs: dict[str, dict[str, list]] = {k: {"wall_s": [], "cpu_s": [], "peak_rss_delta_mib": []} for k in cuts}
    stats = {}
    for _ in range(args.repeats):
        for name in ("padded", "packed"):
            before = rss()
            Path("/proc/self/clear_refs").write_text("5")
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            stats[name] = update(name == "packed")
            runs[name]["wall_s"].append(round(time.perf_counter() - t_wall, 2))
            runs[name]["cpu_s"].append(round(time.process_time() - t_cpu, 2))
            runs[name]["peak_rss_delta_mib"].append(round((rss("VmHWM") - before) / 2**20))
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in runs.items()}
    out = {
        "model": "builtin:smollm2 (SmolLM2-135M-Instruct, float32, sdpa)", "rollouts": len(rollouts),
        "completions": {"source": "untrained model on builtin:sums, T=0.7, up to 512 tokens (" + (
            "cached)" if gen_seconds is None else f"generated in {gen_seconds:.0f} s)"),
            "median": percentile(lengths, 0.5), "p90": percentile(lengths, 0.9),
            "mean": round(statistics.fmean(lengths), 1), "max": max(lengths),
            "prompt_tokens": sorted({len(r.prompt_ids) for r in rollouts})},
        "micro_batch_tokens": args.micro_batch_tokens, "micro_batch_size": args.micro_batch_size,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        **{name: {"micro_batches": len(cuts[name]), "rows": [len(mb) for mb in cuts[name]],
                  "tokens": tokens[name], "tokens_total": sum(tokens[name]), **runs[name],
                  **{f"median_{m}": v for m, v in med[name].items()}} for name in cuts},
        "ratio_wall": round(med["packed"]["wall_s"] / med["padded"]["wall_s"], 3),
        "ratio_cpu": round(med["packed"]["cpu_s"] / med["padded"]["cpu_s"], 3),
        "ratio_peak_rss": round(med["packed"]["peak_rss_delta_mib"] / med["padded"]["peak_rss_delta_mib"], 3),
        "stats_abs_diff": {k: float(f"{abs(stats['packed'][k] - stats['padded'][k]):.2g}") for k in stats["padded"]},
        "stats_packed": {k: round(v, 6) for k, v in stats["packed"].items()},
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
