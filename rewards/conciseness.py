r"""Conciseness objective of dynamic reward weighting: shorter than the run's average so far.

    r_i = 1  if L_i < L_bar  else  0,     L_bar = mean length of every training completion since step 1,
                                                  this batch included (never reset)

L in tokens (``Sample.length``). Paper: arXiv 2509.11452 (TACL 2026), "Learning to Optimize
Multi-Objective Alignment Through Dynamic Reward Weighting"; released code
``yining610/dynamic-reward-weighting`` @238fe65, ``verl/utils/reward_score/dynamic_math/math_conciseness.py``
(``global_avg_tokens``, counted there with ``tokenizer.tokenize`` on the decoded text). The release's
average includes the batch being scored; laconic's contract is to score with history from before the
batch, so :meth:`__call__` adds the batch to the running sums without storing it, and :meth:`update`
stores it (the same numbers as the release).

>>> from rewards.base import Sample, Context
>>> r = Conciseness()
>>> r([Sample("p", 0, length=n) for n in (100, 300)], Context())   # L_bar = 200
[1.0, 0.0]
>>> r.update([Sample("p", 0, length=n) for n in (100, 300)], Context())
>>> r([Sample("p", 0, length=n) for n in (150, 250)], Context())   # L_bar = (400 + 400) / 4 = 200
[1.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["Conciseness"]


@register_reward("conciseness")
class Conciseness(Reward):
    """1 for a completion shorter than the running mean length (this batch included), else 0."""

    name = "conciseness"

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        mean = (self.total + sum(s.length for s in samples)) / max(self.count + len(samples), 1)
        return [1.0 if s.length < mean else 0.0 for s in samples]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        self.total += sum(s.length for s in samples)
        self.count += len(samples)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.count = int(state.get("total", 0)), int(state.get("count", 0))
