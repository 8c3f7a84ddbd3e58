#!/usr/bin/env python
"""Peak memory and wall time of the policy update, in units of one float32 logits copy.

The setup of issue 13: a Qwen2-architecture model with R1-Distill's vocabulary (151,936; untied
head) but hidden size 64 and 2 layers, float32, on CPU, run through ``rl.train.update.update_policy`` as
the trainer calls it (SGD, so no optimizer state). Each case runs in its own child process: model
and batch are built, one short warm-up update runs, the peak-RSS counter is reset
(``/proc/self/clear_refs``), then the measured update runs. ``peak_copies`` is the growth of the
peak RSS over the RSS before that update, divided by one ``[rows, completion, vocab]`` float32
copy. Cases: 2 rows x 1024 completion tokens; the same with ``kl_coef`` (a reference model) and an
entropy bonus; 1 row x 4096 tokens. Prompts are 16 tokens.

    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_memory.py
    # before/after in one run: a checkout of the commit before the change as the baseline
    git worktree add /tmp/before 6cfc30f
    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_memory.py --baseline /tmp/before

With ``--baseline DIR`` every case also runs with ``rl`` imported from ``DIR`` (alternating with
this checkout, each in a fresh process), and ``time_ratio`` is this checkout's wall time over the
baseline's. Linux only (``VmHWM``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 151936
PROMPT = 16
CASES = {"2x1024": (2, 1024, False), "2x1024+kl+entropy": (2, 1024, True), "1x4096": (1, 4096, False)}


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_case(name: str) -> dict:
    """In the child: one measured update of case ``name`` with ``rl`` from ``sys.path[0]``."""
    import copy

    import torch
    from accelerate import Accelerator
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rl.config import AlgoConfig
    from rl.engines.base import Rollout
    from rl.train.update import update_policy

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows, length, kl = CASES[name]
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    policy = Qwen2ForCausalLM(cfg)
    ref = copy.deepcopy(policy).eval().requires_grad_(False) if kl else None
    algo = AlgoConfig(kl_coef=0.05 if kl else 0.0, entropy_coef=0.01 if kl else 0.0)
    opt = torch.optim.SGD(policy.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    acc = Accelerator(cpu=True)

    def update(n_rows: int, n_tokens: int) -> float:
        g = torch.Generator().manual_seed(n_tokens)
        rs = [Rollout(i, torch.randint(1, VOCAB, (PROMPT,), generator=g).tolist(),
                      torch.randint(1, VOCAB, (n_tokens,), generator=g).tolist(), "", "length", None)
              for i in range(n_rows)]
        adv = torch.linspace(-1.0, 1.0, n_rows) if n_rows > 1 else torch.ones(1)
        t0 = time.perf_counter()
        update_policy(acc, policy, ref, opt, sched, rs, adv, algo, pad_id=0, temperature=1.0,
                      micro_batch_size=rows, max_grad_norm=1.0, norm_len=length)
        return time.perf_counter() - t0

    update(rows, 8)  # warm-up: lazy initialisations, gradient buffers
    rss = _kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    wall = update(rows, length)
    peak = _kb("VmHWM") - rss
    unit = rows * length * VOCAB * 4
    return {"case": name, "rows": rows, "completion_tokens": length, "peak_bytes": peak,
            "peak_copies": round(peak / unit, 3), "wall_s": round(wall, 3)}


def child(name: str, code_root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--code-root", str(code_root)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code_root)
    if p.returncode:
        return {"case": name, "error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout to compare against (e.g. of 6cfc30f)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--code-root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(args.code_root))
        print(json.dumps(run_case(args.child)))
        return {}
    out: dict = {"vocab": VOCAB, "model": "Qwen2 hidden 64, 2 layers, float32, CPU", "prompt_tokens": PROMPT,
                 "unit": "one float32 [rows, completion, vocab] logits copy", "cases": []}
    for name in args.cases:
        row = {"after": child(name, ROOT)}
        if args.baseline:
            row["before"] = child(name, args.baseline.resolve())
            if "wall_s" in row["before"] and "wall_s" in row["after"]:
                row["time_ratio"] = round(row["after"]["wall_s"] / row["before"]["wall_s"], 3)
        out["cases"].append(row)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
