#!/usr/bin/env python
"""Quickstart step time of this checkout against another one (e.g. the commit before a change), as
ratios from one run.

Each side runs in its own process with ``rl`` imported from its checkout: the quickstart recipe on
a freshly built untrained toy (no cached toy needed), the transformers engine, one torch thread,
no evaluation; one warm-up step, then ``--steps`` timed steps. Sides alternate for ``--rounds``
rounds (old first in even rounds), so drift hits both. Prints JSON: medians of ``time/step``,
``time/update``, ``time/generate`` and ``tokens/mean`` per side, and this checkout's over the other's.

    git worktree add /tmp/before 6cfc30f
    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_step_ratio.py /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("time/step", "time/update", "time/generate", "tokens/mean")


def child(tree: str, steps: int) -> list[dict]:
    sys.path.insert(0, tree)
    from rl.config import load_config
    from rl.models.toy_build import build_untrained_toy
    from rl.train.loop import setup, train_step

    toy = build_untrained_toy(Path(tempfile.mkdtemp()) / "toy")
    cfg = load_config(str(Path(tree) / "recipes" / "quickstart.yaml"), [
        f"model.name_or_path={toy}", "rollout.engine=transformers", "train.torch_threads=1", "eval.before=false",
        "eval.after=false", "eval.every=0", "train.log_completions=0", "train.save_every=0",
        f"train.output_dir={tempfile.mkdtemp()}"])
    run = setup(cfg)
    train_step(run, 1)  # warm-up
    return [{k: m[k] for k in KEYS} for m in (train_step(run, s) for s in range(2, steps + 2))]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("baseline", type=Path, help="the other checkout")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return {}
    sides = {"new": str(ROOT), "old": str(args.baseline.resolve())}
    res: dict[str, list] = {"new": [], "old": []}
    for r in range(args.rounds):
        for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
            cmd = [sys.executable, __file__, str(args.baseline), "--child", sides[side], "--steps", str(args.steps)]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=sides[side],
                               env={**os.environ, "PYTHONPATH": sides[side], "OMP_NUM_THREADS": "1"})
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            res[side] += json.loads(p.stdout.strip().splitlines()[-1])
    out = {"rounds": args.rounds, "steps_per_round": args.steps, "median": {}}
    for k in KEYS:
        a, b = (statistics.median(m[k] for m in res[s]) for s in ("new", "old"))
        out["median"][k] = {"new": round(a, 4), "old": round(b, 4), "ratio": round(a / b, 3)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
