r"""e1 / Adaptive Effort Control: correct *and* within a stated fraction of the current mean length.

Kleinman et al., "e1: Learning Adaptive Control of Reasoning Effort", arXiv 2510.27042 (no released
code in our sources). The prompt states an effort r (a fraction); the reward is::

    r_i = correct_reward * 1[correct_i] * 1[ l_i <= r * T_avg(x) ]        else wrong_reward (0)

T_avg(x) is the *current* mean chain-of-thought length on the prompt: here the mean over the
sample's group (its G completions of the same prompt and effort, this step). The comparison is
exact, in rationals: ``l * G <= r * sum(l)`` with r read as the decimal it is written as (0.6 = 3/5),
so l = 14 passes at r = 0.6 and T_avg = 70/3, where floats give 0.6 * 70/3 = 13.999999999999998;
and T_avg = 0 needs no division (l = 0 passes). l_i is the think length (tokens
before the delimiter) when the completion has one and ``think_only`` is set, else the completion
length; T_avg uses the same measure.

The effort comes from ``sample.meta["effort"]`` (a dataset column of that name lands there, and a
prompt template can state it with ``{effort}``), or from the reward's fixed ``effort`` parameter for
prompts that carry none. :func:`effort_prompt` words it, :func:`sample_effort` draws one. Drawing an
effort per prompt per step, as the paper trains, needs data-side support (as L1's budgets have in
``data.length_budget``); until then a recipe uses a fixed effort or an ``effort`` column.

>>> from rewards.base import Sample, Context
>>> g = [Sample("p", 0, correct=True, length=50, meta={"effort": 0.5}),
...      Sample("p", 0, correct=True, length=100, meta={"effort": 0.5}),
...      Sample("p", 0, correct=False, length=30, meta={"effort": 0.5}),
...      Sample("p", 0, correct=True, length=180, meta={"effort": 0.5})]
>>> E1Effort()(g, Context())   # T_avg = 90: only L <= 45 passes, and it must be correct
[0.0, 0.0, 0.0, 0.0]
>>> E1Effort()([*g[:3], Sample("p", 0, correct=True, length=20, meta={"effort": 0.5})], Context())  # T_avg 50
[0.0, 0.0, 0.0, 1.0]
>>> E1Effort(effort=0.6)([Sample("q", 1, correct=True, length=n) for n in (14, 26, 30)], Context())  # the boundary
[1.0, 0.0, 0.0]
>>> effort_prompt("What is 2+2?", 0.25)
'What is 2+2?\n\nReasoning effort: 0.25'
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["E1Effort", "effort_of", "effort_prompt", "sample_effort"]


def effort_prompt(text: str, effort: float, template: str = "\n\nReasoning effort: {effort:g}") -> str:
    """``text`` followed by the effort statement (wording ours; the paper's is not in our sources)."""
    check_number("e1", "effort", effort, low=0.0, low_open=True)
    return text.rstrip() + template.format(effort=effort)


def sample_effort(rng: Any = None, low: float = 0.1, high: float = 1.0, decimals: int = 2) -> float:
    """An effort r ~ U[low, high], rounded to ``decimals`` (our choice of range).

    >>> 0.1 <= sample_effort(random.Random(0)) <= 1.0
    True
    """
    if not 0 < low <= high:
        raise ValueError(f"effort range must satisfy 0 < low <= high, got low={low!r}, high={high!r}")
    rng = random if rng is None else rng
    return round(rng.uniform(low, high), decimals)


def effort_of(s: Sample, key: str = "effort", default: float | None = None) -> float:
    """``s.meta[key]`` as a positive number, else ``default``; an error naming the key if neither."""
    if key not in s.meta:
        if default is None:
            raise ValueError(
                f"reward 'e1' needs the effort in sample.meta[{key!r}] (or a fixed effort=...), but the sample "
                f"of prompt {s.prompt_id!r} has meta keys {sorted(s.meta)}"
            )
        return default
    try:
        value = float(s.meta[key])
    except (TypeError, ValueError):
        raise ValueError(f"reward 'e1': sample.meta[{key!r}] must be a number, got {s.meta[key]!r}") from None
    return check_number("e1", f"meta[{key!r}]", value, low=0.0, low_open=True)


@register_reward("e1")
class E1Effort(Reward):
    """``correct_reward`` if correct and ``l <= effort * mean_group(l)``, else ``wrong_reward``."""

    name = "e1"

    def __init__(self, effort: float | None = None, effort_key: str = "effort", think_only: bool = True,
                 correct_reward: float = 1.0, wrong_reward: float = 0.0, delimiter: str | None = "</think>"):
        self.effort = None if effort is None else float(check_number(self.name, "effort", effort, low=0.0, low_open=True))
        if not isinstance(effort_key, str) or not effort_key:
            raise ValueError(f"reward '{self.name}': effort_key must be a non-empty string, got {effort_key!r}")
        self.effort_key = effort_key
        self.think_only = bool(think_only)
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.wrong_reward = float(check_number(self.name, "wrong_reward", wrong_reward))
        self.delimiter = delimiter

    def measure(self, s: Sample) -> int:
        return s.think_length if self.think_only and s.think_length is not None else s.length

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        efforts = [effort_of(s, self.effort_key, self.effort) for s in samples]
        flags = correct_flags(samples, self.delimiter)
        lengths = [self.measure(s) for s in samples]
        out = [self.wrong_reward] * len(samples)
        for idx in groups_of(samples).values():
            total = sum(lengths[i] for i in idx)  # l <= r * total / G, exactly: l * G <= r * total
            for i in idx:
                if flags[i] and lengths[i] * len(idx) <= Fraction(str(efforts[i])) * total:
                    out[i] = self.correct_reward
        return out
