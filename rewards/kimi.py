r"""Kimi-1.5 length penalty: within each group, reward the shorter half and penalize the longer.

Kimi Team, "Kimi k1.5: Scaling Reinforcement Learning with LLMs", arXiv 2501.12599, as implemented
in Laser (hkust-nlp/Laser, ``compute_kimi_penalty``). Over the G completions of a group (correct
or not), L in tokens::

    lambda_i = 0.5 - (L_i - L_min) / (L_max - L_min)          (lambda = 0 when all lengths are equal,
                                                               G = 1 included)
    r_i = correct_reward + w * lambda_i             if correct
        = wrong_reward   + w * min(0, lambda_i)     otherwise       (w = 0.4, Laser's config)

The score defaults to 1 / 0 (correctness); set ``correct_reward=0, wrong_reward=0`` to get the
length term alone and add it to another reward.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=100), Sample("p", 0, correct=True, length=200),
...            Sample("p", 0, correct=False, length=300), Sample("p", 0, correct=False, length=100)]
>>> [round(r, 6) for r in KimiLength()(samples, Context())]   # lambda = 0.5, 0, -0.5, 0.5
[1.2, 1.0, -0.2, 0.0]
"""

from __future__ import annotations

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["KimiLength", "kimi_lambdas"]


def kimi_lambdas(lengths: list[int]) -> list[float]:
    """``0.5 - (L - L_min) / (L_max - L_min)`` per completion of one group (0 if all equal)."""
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    return [0.5 - (x - lo) / (hi - lo) for x in lengths]


@register_reward("kimi_length")
class KimiLength(Reward):
    """Score plus ``w * lambda`` (correct) or ``w * min(0, lambda)`` (wrong), lambda in the group."""

    name = "kimi_length"

    def __init__(self, w: float = 0.4, correct_reward: float = 1.0, wrong_reward: float = 0.0,
                 delimiter: str | None = "</think>"):
        self.w = float(check_number(self.name, "w", w))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.wrong_reward = float(check_number(self.name, "wrong_reward", wrong_reward))
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        out = [0.0] * len(samples)
        for idx in groups_of(samples).values():
            for i, lam in zip(idx, kimi_lambdas([samples[i].length for i in idx])):
                if flags[i]:
                    out[i] = self.correct_reward + self.w * lam
                else:
                    out[i] = self.wrong_reward + self.w * min(0.0, lam)
        return out
