r"""DA-DLER: DLER's truncation reward with a per-prompt length limit set by difficulty.

Liu et al., "DLER: Doing Length pEnalty Right", arXiv 2510.15110 (NVlabs/DLER), difficulty-aware
variant (150 extra steps on top of DLER). For the group of prompt x (G completions)::

    ratio_x = (1/G) * sum_i 1[correct_i]                   (the verifier's verdict)
    limit_x = short_limit (2000)  if ratio_x >= threshold (0.5)  else  long_limit (4000)
    r_i     = correct_reward * 1[correct_i]  if L_i <= limit_x and not truncated_i  else  0

Easy prompts (most completions correct) are held to the short limit, hard ones keep the long one.
Choice made here (the paper does not spell it out): the ratio counts the verifier's verdict of
every completion, whatever its length (a completion cut by the generation limit normally has no
final answer and so counts as wrong). L is in tokens; "truncated" is ``s.truncated``
(finish reason "length").

>>> from rewards.base import Sample, Context
>>> easy = [Sample("e", 0, correct=True, length=1500), Sample("e", 0, correct=True, length=2500)]
>>> hard = [Sample("h", 1, correct=True, length=2500), Sample("h", 1, correct=False, length=100),
...         Sample("h", 1, correct=False, length=100)]
>>> DADLER()(easy + hard, Context())   # easy: ratio 1 -> limit 2000; hard: 1/3 -> 4000
[1.0, 0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from ._util import check_number, correct_flags, group_accuracy
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["DADLER"]


@register_reward("da_dler")
class DADLER(Reward):
    """``correct_reward * 1[correct and L <= limit(group) and not truncated]``."""

    name = "da_dler"
    reads_truncation = True

    def __init__(
        self,
        short_limit: int = 2000,
        long_limit: int = 4000,
        threshold: float = 0.5,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        self.short_limit = check_number(self.name, "short_limit", short_limit, low=0, low_open=True, integer=True)
        self.long_limit = check_number(self.name, "long_limit", long_limit, low=0, low_open=True, integer=True)
        self.threshold = float(check_number(self.name, "threshold", threshold, low=0.0, high=1.0))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.delimiter = delimiter

    def limits(self, samples: list[Sample], flags: list[bool] | None = None) -> list[int]:
        """The length limit applied to each sample (for logging)."""
        flags = correct_flags(samples, self.delimiter) if flags is None else flags
        acc = group_accuracy(samples, flags)
        out = []
        for s in samples:
            k, n = acc[s.group]
            out.append(self.short_limit if k >= self.threshold * n - 1e-9 else self.long_limit)
        return out

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        return [
            self.correct_reward if ok and not s.truncated and s.length <= limit else 0.0
            for s, ok, limit in zip(samples, flags, self.limits(samples, flags))
        ]
