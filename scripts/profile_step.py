#!/usr/bin/env python
"""Profile laconic's training step: where the seconds of one step go.

Runs ``--warmup`` steps of a recipe, then ``--steps`` more under ``cProfile``, and prints one JSON
object: the median ``time/*`` phases of the profiled steps and the ``--top`` functions by own
time (``tottime``) and by cumulative time, each with calls and seconds per step::

    OMP_NUM_THREADS=1 python scripts/profile_step.py                          # the quickstart recipe
    python scripts/profile_step.py recipes/toy/dler.yaml rollout.engine=vllm --steps 3
    python scripts/profile_step.py --out prof.json --pstats prof.pstats      # then: snakeviz prof.pstats

Extra ``section.key=value`` arguments are recipe overrides, as for ``laconic train``. The output
directory is a temporary one unless ``train.output_dir=...`` is given.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=str(ROOT / "recipes" / "quickstart.yaml"))
    p.add_argument("overrides", nargs="*", help="section.key=value recipe overrides")
    p.add_argument("--steps", type=int, default=3, help="profiled steps")
    p.add_argument("--warmup", type=int, default=1, help="steps run first, not profiled")
    p.add_argument("--top", type=int, default=25, help="functions listed per ranking")
    p.add_argument("--threads", type=int, default=1, help="torch threads (train.torch_threads)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--pstats", default=None, help="also dump the raw cProfile stats here")
    return p.parse_args(argv)


def top_functions(stats: pstats.Stats, key: str, n: int, steps: int) -> list[dict]:
    """The ``n`` functions with the largest ``key`` ('tottime' or 'cumtime'), per step."""
    rows = []
    for (path, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{Path(path).name}:{line}({name})", "calls_per_step": ncalls / steps,
                     "tottime_s": tottime / steps, "cumtime_s": cumtime / steps})
    rows.sort(key=lambda r: r[f"{key}_s"], reverse=True)
    return rows[:n]


def main(argv=None) -> dict:
    args = parse_args(argv)
    if "=" in args.recipe and not Path(args.recipe).exists():  # only overrides were given
        args.overrides.insert(0, args.recipe)
        args.recipe = str(ROOT / "recipes" / "quickstart.yaml")
    from rl.config import load_config
    from rl.train.loop import setup, train_step

    overrides = [f"train.torch_threads={args.threads}", "eval.before=false", "eval.after=false",
                 "eval.every=0", "train.log_completions=0", *args.overrides]
    if not any(o.startswith("train.output_dir=") for o in overrides):
        overrides.append(f"train.output_dir={tempfile.mkdtemp(prefix='laconic-profile-')}")
    cfg = load_config(args.recipe, overrides)
    run = setup(cfg)
    for step in range(1, args.warmup + 1):
        train_step(run, step)
    profiler, phases = cProfile.Profile(), []
    for step in range(args.warmup + 1, args.warmup + args.steps + 1):
        profiler.enable()
        m = train_step(run, step)
        profiler.disable()
        phases.append({k: v for k, v in m.items() if k.startswith("time/")} | {"tokens/mean": m["tokens/mean"]})
    stats = pstats.Stats(profiler)
    if args.pstats:
        stats.dump_stats(args.pstats)
    report = {
        "recipe": args.recipe, "overrides": overrides, "steps": args.steps, "warmup": args.warmup,
        "phases_median": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
        "per_step": phases,
        "top_tottime": top_functions(stats, "tottime", args.top, args.steps),
        "top_cumtime": top_functions(stats, "cumtime", args.top, args.steps),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
