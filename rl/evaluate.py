"""Held-out evaluation: accuracy, mean completion tokens and truncation rate (by difficulty too).

Prompts are sharded over processes; results are gathered so every process returns the same numbers.
Evaluation runs under its own seed inside ``torch.random.fork_rng``: it neither consumes nor depends
on the training RNG, so training is reproducible with or without it.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean
from typing import Any

import torch

from .data import Prompt
from .facts import make_samples
from .rollout import RolloutEngine, SamplingParams


def summarize(samples) -> dict[str, Any]:
    """accuracy, mean_tokens, truncation_rate over samples (each a rewards.base.Sample)."""
    if not samples:
        return {"n": 0, "accuracy": float("nan"), "mean_tokens": float("nan"), "truncation_rate": float("nan")}
    return {
        "n": len(samples),
        "accuracy": mean(float(bool(s.correct)) for s in samples),
        "mean_tokens": mean(s.length for s in samples),
        "truncation_rate": mean(float(s.truncated) for s in samples),
    }


def evaluate(engine: RolloutEngine, prompts: list[Prompt], params: SamplingParams, tokenizer,
             accelerator=None, delimiter: str | None = "</think>", seed: int = 1234) -> dict[str, Any]:
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    mine = prompts[rank::world]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + rank)
        rollouts = engine.generate([p.ids for p in mine], params) if mine else []
    samples = make_samples(rollouts, mine, 0, tokenizer, delimiter=delimiter)
    if world > 1:
        from accelerate.utils import gather_object

        samples = gather_object(samples)
    out = summarize(samples)
    by_diff: dict[Any, list] = defaultdict(list)
    for s in samples:
        if "difficulty" in s.meta:
            by_diff[s.meta["difficulty"]].append(s)
    if by_diff:
        out["by_difficulty"] = {str(k): summarize(v) for k, v in sorted(by_diff.items())}
    return out
