r"""Cosine-scaled reward: correctness whose size depends smoothly on the length.

Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in LLMs", arXiv 2502.03373
(eddycmu/demystify-long-cot). With T = L_max (the length limit) and t = min(L, T)::

    CosFn(t, T, r_0, r_T) = r_T + (r_0 - r_T) * (1 + cos(pi * t / T)) / 2      (r_0 at t = 0, r_T at t = T)

    r = r_exceed                                   if the completion hit the limit (truncated, or L >= T)
      = CosFn(L, T, r0_correct, rT_correct)        if correct   (2 -> 1: shorter correct is better)
      = CosFn(L, T, r0_wrong,   rT_wrong)          otherwise    (-10 -> 0: longer wrong is less bad)

Published defaults (section 4.2 script): r0_correct = 2, rT_correct = 1, r0_wrong = -10,
rT_wrong = 0, r_exceed = -10. ``max_length`` defaults to ``ctx.max_length``. The paper pairs it
with the n-gram repetition penalty (:mod:`rewards.repetition`).

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=0), Sample("p", 0, correct=True, length=500),
...            Sample("p", 0, correct=False, length=500), Sample("p", 0, correct=True, length=1000)]
>>> CosineScaled()(samples, Context(max_length=1000))   # 2; 1 + 1*(1+0)/2; 0 - 10*(1+0)/2; exceed
[2.0, 1.5, -5.0, -10.0]
"""

from __future__ import annotations

import math

from ._util import check_number, correct_flags, limit_from
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["CosineScaled", "cos_fn"]


def cos_fn(t: float, T: float, r_0: float, r_T: float) -> float:
    """``r_0`` at t = 0 falling (or rising) along a half cosine to ``r_T`` at t = T."""
    t = min(max(t, 0.0), T)
    return r_T + (r_0 - r_T) * (1.0 + math.cos(math.pi * t / T)) / 2.0


@register_reward("cosine")
class CosineScaled(Reward):
    """Cosine-scaled correctness reward with an exceed-length penalty."""

    name = "cosine"
    reads_truncation = True

    def __init__(
        self,
        max_length: int | None = None,
        r0_correct: float = 2.0,
        rT_correct: float = 1.0,
        r0_wrong: float = -10.0,
        rT_wrong: float = 0.0,
        r_exceed: float = -10.0,
        delimiter: str | None = "</think>",
    ):
        n = self.name
        if max_length is not None:
            check_number(n, "max_length", max_length, low=0, low_open=True, integer=True)
        self.max_length = max_length
        self.r0_correct = float(check_number(n, "r0_correct", r0_correct))
        self.rT_correct = float(check_number(n, "rT_correct", rT_correct))
        self.r0_wrong = float(check_number(n, "r0_wrong", r0_wrong))
        self.rT_wrong = float(check_number(n, "rT_wrong", rT_wrong))
        self.r_exceed = float(check_number(n, "r_exceed", r_exceed))
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        T = limit_from(self.name, self.max_length, ctx)
        out = []
        for s, ok in zip(samples, correct_flags(samples, self.delimiter)):
            if s.truncated or s.length >= T:
                out.append(self.r_exceed)
            elif ok:
                out.append(cos_fn(s.length, T, self.r0_correct, self.rT_correct))
            else:
                out.append(cos_fn(s.length, T, self.r0_wrong, self.rT_wrong))
        return out
