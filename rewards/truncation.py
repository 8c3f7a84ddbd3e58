r"""Truncation rewards: DLER's zero reward at the length limit, and an additive penalty.

DLER (Liu et al., "DLER: Doing Length pEnalty Right", arXiv 2510.15110, NVlabs/DLER) shows that
the simplest length penalty - truncation - suffices when the RL recipe is right::

    r_i = correct_reward * 1[correct_i]   if completion i ended before the limit (EOS)
    r_i = 0                               if it hit the limit (finish_reason "length"), correct or not

``truncation_penalty`` is the composable variant: ``r_i = -penalty * 1[truncated_i]``
(0 otherwise), to add to any other reward. "Truncated" is ``s.truncated``; with ``max_length``
set, a completion longer than ``max_length`` tokens counts as truncated too (a limit below the
generation limit, e.g. DA-DLER's per-prompt 2000/4000).

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=10), Sample("p", 0, correct=True, truncated=True),
...            Sample("p", 0, correct=False, length=10), Sample("p", 0, correct=False, truncated=True),
...            Sample("p", 0, correct=True, length=50)]
>>> DLER()(samples, Context())
[1.0, 0.0, 0.0, 0.0, 1.0]
>>> DLER(max_length=40)(samples, Context())
[1.0, 0.0, 0.0, 0.0, 0.0]
>>> TruncationPenalty(penalty=2.0)(samples, Context())
[0.0, -2.0, 0.0, -2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Context, Reward, Sample
from .correctness import sample_correct
from .registry import register_reward

__all__ = ["DLER", "TruncationPenalty", "is_truncated"]


def is_truncated(s: Sample, max_length: int | None = None) -> bool:
    """``s.truncated``, or longer than ``max_length`` tokens when that is given."""
    return bool(s.truncated) or (max_length is not None and s.length > max_length)


def _check_limit(max_length: int | None) -> int | None:
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0):
        raise ValueError(f"max_length must be a positive integer (tokens) or None, got {max_length!r}")
    return max_length


@register_reward("dler")
class DLER(Reward):
    """DLER truncation reward: ``correct_reward * 1[correct and not truncated]``."""

    name = "dler"
    reads_truncation = True

    def __init__(
        self,
        correct_reward: float = 1.0,
        max_length: int | None = None,
        delimiter: str | None = "</think>",
        timeout: float = 5.0,
        fallback_last_number: bool = True,
        patterns: Sequence[str] | None = None,
    ):
        self.correct_reward = float(correct_reward)
        self.max_length = _check_limit(max_length)
        self.verify_kw = dict(delimiter=delimiter, timeout=timeout,
                              fallback_last_number=fallback_last_number, patterns=patterns)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [
            0.0 if is_truncated(s, self.max_length)
            else (self.correct_reward if sample_correct(s, **self.verify_kw) else 0.0)
            for s in samples
        ]


@register_reward("truncation_penalty")
class TruncationPenalty(Reward):
    """``-penalty`` for a truncated completion, ``0`` otherwise."""

    name = "truncation_penalty"
    reads_truncation = True

    def __init__(self, penalty: float = 1.0, max_length: int | None = None):
        self.penalty = float(penalty)
        self.max_length = _check_limit(max_length)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [-self.penalty if is_truncated(s, self.max_length) else 0.0 for s in samples]
