#!/usr/bin/env python
"""Merge fine-tuned models into a base: DLER's update-selective merge, or long-to-short merging.

    python scripts/merge_updates.py BASE TUNED OUT [--top-k 0.25] [--scale 0.7]
        [--scope tensor|global] [--dtype float32|bfloat16|float16] [--overwrite] [--per-tensor]
    python scripts/merge_updates.py BASE TUNED [TUNED ...] OUT --method ties|task_arithmetic|dare|dare_ties
        [--scale S] [--weights W ...] [--density 0.2] [--drop-rate 0.3] [--seed 0]

``--method dler`` (default): θ = θ_base + λ · mask_top-k%(Δ) ⊙ Δ, Δ = θ_tuned − θ_base (DLER,
arXiv 2510.15110). The other methods combine the task vectors of one or more TUNED models (arXiv
2503.20641; for long-to-short, BASE = the short model, TUNED = the long-CoT one): task arithmetic,
TIES (``--density`` = fraction kept per tensor; the release's k = 0.8 is 0.2), DARE (``--drop-rate``)
and DARE + TIES. ``--scale`` defaults to the published value: 0.7 for dler and task_arithmetic,
1.0 otherwise. TUNED may be a full model directory or a LoRA adapter directory. Prints a one-line
summary and the stats as JSON (the full record goes to OUT/merge_info.json). Bad input (missing
directory, top-k outside [0, 1], ...) exits with code 2 and a one-line error. See rl/models/merge.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

# Kept equal to rl.models.merge.SCOPES / DTYPES and rl.models.task_vectors.METHODS (tested); they (torch, transformers) are
# imported only after the cheap checks, so bad input fails in well under a second.
SCOPES = ("tensor", "global")
DTYPES = ("float32", "bfloat16", "float16")
METHODS = ("task_arithmetic", "ties", "dare", "dare_ties")
DEFAULT_SCALE = {"dler": 0.7, "task_arithmetic": 0.7, "ties": 1.0, "dare": 1.0, "dare_ties": 1.0}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(description="Merge fine-tuned models into their base (DLER top-k, task arithmetic, TIES, DARE).")
    p.add_argument("base", help="base model directory or Hub id (θ_base; the short model for long-to-short)")
    p.add_argument("tuned", nargs="+", help="tuned model or LoRA adapter directories (one for dler)")
    p.add_argument("out", help="output directory for the merged model")
    p.add_argument("--method", choices=("dler", *METHODS), default="dler", help="merge method (default dler)")
    p.add_argument("--top-k", type=float, default=0.25, help="dler: fraction of |Δ| entries kept (default 0.25)")
    p.add_argument("--scale", type=float, default=None, help="λ, scale of the merged update (default: per method)")
    p.add_argument("--scope", choices=SCOPES, default="tensor", help="dler: top-k per tensor (default) or global")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="per-model weights w_k (default 1)")
    p.add_argument("--density", type=float, default=0.2, help="ties: fraction of each Δ kept per tensor")
    p.add_argument("--drop-rate", type=float, default=0.3, help="dare: drop probability p")
    p.add_argument("--seed", type=int, default=0, help="dare: seed of the drop masks")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="dtype to save in (default: base's)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.add_argument("--per-tensor", action="store_true", help="dler: include per-tensor stats in the printed JSON")
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    if not 0.0 <= args.top_k <= 1.0:  # also rejects NaN
        raise ValueError(f"--top-k must be in [0, 1], got {args.top_k}")
    if not math.isfinite(args.scale):
        raise ValueError(f"--scale must be finite, got {args.scale}")
    if not 0.0 <= args.density <= 1.0:
        raise ValueError(f"--density must be in [0, 1], got {args.density}")
    if not 0.0 <= args.drop_rate <= 1.0:
        raise ValueError(f"--drop-rate must be in [0, 1], got {args.drop_rate}")
    if args.method == "dler" and len(args.tuned) != 1:
        raise ValueError(f"--method dler merges one tuned model, got {len(args.tuned)}")
    if args.weights is not None and len(args.weights) != len(args.tuned):
        raise ValueError(f"--weights needs one weight per tuned model ({len(args.tuned)}), got {len(args.weights)}")
    for tuned in args.tuned:
        if not Path(tuned).is_dir():
            raise FileNotFoundError(f"tuned directory not found: {tuned}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scale is None:
        args.scale = DEFAULT_SCALE[args.method]
    try:
        check(args)
        from rl.models.merge import merge_model_dirs
        from rl.models.task_vectors import merge_task_vector_dirs

        if args.method == "dler":
            info = merge_model_dirs(args.base, args.tuned[0], args.out, top_k=args.top_k, scale=args.scale,
                                    scope=args.scope, dtype=args.dtype, overwrite=args.overwrite)
        else:
            info = merge_task_vector_dirs(args.base, args.tuned, args.out, method=args.method, scale=args.scale,
                                          weights=args.weights, density=args.density, drop_rate=args.drop_rate,
                                          seed=args.seed, dtype=args.dtype, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"merge_updates.py: error: {e}", file=sys.stderr)
        return 2
    stats = dict(info["stats"])
    if args.method == "dler":
        if not args.per_tensor:
            stats.pop("per_tensor")
        print(
            f"merged {stats['n_tensors']} tensors ({stats['n_params']:,} params): kept {stats['n_kept']:,} "
            f"updates ({stats['kept_fraction']:.1%}, {stats['delta_energy_kept']:.1%} of |Δ|²) "
            f"scaled by {args.scale} [{args.scope}] -> {args.out}"
        )
    else:
        print(
            f"merged {stats['n_tensors']} tensors ({stats['n_params']:,} params) of {stats['n_models']} model(s) "
            f"[{args.method}]: {stats['kept_fraction']:.1%} of Δ entries kept, {stats['changed_fraction']:.1%} "
            f"of parameters moved, scaled by {args.scale} -> {args.out}"
        )
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
