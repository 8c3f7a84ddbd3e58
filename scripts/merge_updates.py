#!/usr/bin/env python
"""DLER update-selective merging: θ_merged = θ_base + λ · mask_top-k%(Δ) ⊙ Δ, Δ = θ_tuned − θ_base.

    python scripts/merge_updates.py BASE TUNED OUT [--top-k 0.25] [--scale 0.7]
        [--scope tensor|global] [--dtype float32|bfloat16|float16] [--overwrite] [--per-tensor]

TUNED may be a full model directory or a LoRA adapter directory. Prints a one-line summary and
the stats as JSON (the full record, per-tensor stats included, goes to OUT/merge_info.json).
Bad input (missing directory, top-k outside [0, 1], ...) exits with code 2 and a one-line error.
See rl/merge.py for the method.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

# Kept equal to rl.merge.SCOPES / DTYPES (tested); rl.merge (torch, transformers) is imported only
# after the cheap checks, so bad input fails in well under a second.
SCOPES = ("tensor", "global")
DTYPES = ("float32", "bfloat16", "float16")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(description="DLER update-selective merging of an RL-tuned model into its base.")
    p.add_argument("base", help="base model directory or Hub id (θ_base)")
    p.add_argument("tuned", help="RL-tuned model directory or LoRA adapter directory (θ_RL)")
    p.add_argument("out", help="output directory for the merged model")
    p.add_argument("--top-k", type=float, default=0.25, help="fraction of |Δ| entries kept (default 0.25)")
    p.add_argument("--scale", type=float, default=0.7, help="λ, scale of the kept updates (default 0.7)")
    p.add_argument("--scope", choices=SCOPES, default="tensor", help="top-k per tensor (default) or global")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="dtype to save in (default: base's)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.add_argument("--per-tensor", action="store_true", help="include per-tensor stats in the printed JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not 0.0 <= args.top_k <= 1.0:  # also rejects NaN
            raise ValueError(f"--top-k must be in [0, 1], got {args.top_k}")
        if not math.isfinite(args.scale):
            raise ValueError(f"--scale must be finite, got {args.scale}")
        if not Path(args.tuned).is_dir():
            raise FileNotFoundError(f"tuned directory not found: {args.tuned}")
        from rl.merge import merge_model_dirs

        info = merge_model_dirs(
            args.base,
            args.tuned,
            args.out,
            top_k=args.top_k,
            scale=args.scale,
            scope=args.scope,
            dtype=args.dtype,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"merge_updates.py: error: {e}", file=sys.stderr)
        return 2
    stats = dict(info["stats"])
    if not args.per_tensor:
        stats.pop("per_tensor")
    print(
        f"merged {stats['n_tensors']} tensors ({stats['n_params']:,} params): kept {stats['n_kept']:,} "
        f"updates ({stats['kept_fraction']:.1%}, {stats['delta_energy_kept']:.1%} of |Δ|²) "
        f"scaled by {args.scale} [{args.scope}] -> {args.out}"
    )
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
