r"""L1 / LCPO: length-controlled policy optimization with a token budget in the prompt.

Aggarwal & Welleck, "L1: Controlling How Long A Reasoning Model Thinks With Reinforcement
Learning", arXiv 2503.04697 (cmu-l3/l1). Each prompt carries a budget N ~ U[100, 4000]
(:func:`sample_budget`), stated in the prompt as "Think for N tokens." (exact) or
"Think for maximum N tokens." (max) (:func:`budget_prompt`); the trainer stores N in
``s.meta["budget"]``. L in tokens::

    l1_exact:  r = correct_reward * 1[correct] - alpha * |N - L|                 (alpha = 3e-4)
    l1_max:    r = correct_reward * 1[correct] * clip(alpha * (N - L) + delta, 0, 1)   (delta = 0.5)

(the paper's form of L1-Max; the released code uses a sigmoid variant). A sample without the
budget key is an error naming the key.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=1000, meta={"budget": 2000}),
...            Sample("p", 0, correct=False, length=3000, meta={"budget": 2000}),
...            Sample("p", 0, correct=True, length=4000, meta={"budget": 2000})]
>>> [round(r, 6) for r in L1Exact()(samples, Context())]   # 1 - 0.3; 0 - 0.3; 1 - 0.6
[0.7, -0.3, 0.4]
>>> [round(r, 6) for r in L1Max()(samples, Context())]     # clip(0.3+0.5); wrong; clip(-0.6+0.5)
[0.8, 0.0, 0.0]
>>> budget_prompt("What is 2+2?", 512, "max")
'What is 2+2?\n\nThink for maximum 512 tokens.'
"""

from __future__ import annotations

import numbers
import random
from typing import Any

from ._util import check_choice, check_number, correct_flags
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["BUDGET_MODES", "L1Exact", "L1Max", "budget_of", "budget_prompt", "sample_budget"]

BUDGET_MODES = ("exact", "max")


def sample_budget(rng: Any = None, low: int = 100, high: int = 4000) -> int:
    """A budget N ~ U{low, ..., high} (inclusive), from ``random.Random``, a numpy ``Generator``,
    or the ``random`` module when ``rng`` is None.

    >>> 100 <= sample_budget(random.Random(0)) <= 4000
    True
    """
    if not (isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral) and 0 < low <= high):
        raise ValueError(f"budget range must be integers with 0 < low <= high, got low={low!r}, high={high!r}")
    if rng is None:
        rng = random
    if hasattr(rng, "randint"):
        return int(rng.randint(low, high))
    if hasattr(rng, "integers"):  # numpy.random.Generator: high is exclusive
        return int(rng.integers(low, high + 1))
    raise TypeError(f"rng must be random.Random, numpy.random.Generator or None, got {type(rng).__name__}")


def budget_prompt(text: str, budget: int, mode: str = "exact", separator: str = "\n\n") -> str:
    """``text`` followed by L1's instruction: "Think for N tokens." / "Think for maximum N tokens."."""
    check_choice("l1", "mode", mode, BUDGET_MODES)
    check_number("l1", "budget", budget, low=0, low_open=True, integer=True)
    instruction = f"Think for {budget} tokens." if mode == "exact" else f"Think for maximum {budget} tokens."
    return f"{text.rstrip()}{separator}{instruction}" if text.strip() else instruction


def budget_of(s: Sample, key: str = "budget", reward: str = "l1") -> float:
    """``s.meta[key]`` as a number; an error naming the key when it is missing or not a number."""
    if key not in s.meta:
        raise ValueError(
            f"reward '{reward}' needs the token budget in sample.meta[{key!r}], but the sample of prompt "
            f"{s.prompt_id!r} has meta keys {sorted(s.meta)}"
        )
    value = s.meta[key]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"reward '{reward}': sample.meta[{key!r}] must be a number, got {value!r}") from None
    return check_number(reward, f"meta[{key!r}]", value, low=0)


class _L1(Reward):
    def __init__(self, alpha: float, correct_reward: float, budget_key: str, delimiter: str | None):
        self.alpha = float(check_number(self.name, "alpha", alpha, low=0.0))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        if not isinstance(budget_key, str) or not budget_key:
            raise ValueError(f"reward '{self.name}': budget_key must be a non-empty string, got {budget_key!r}")
        self.budget_key = budget_key
        self.delimiter = delimiter

    def score(self, correct: bool, length: int, budget: float) -> float:
        raise NotImplementedError

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        budgets = [budget_of(s, self.budget_key, self.name) for s in samples]
        return [self.score(ok, s.length, n)
                for s, ok, n in zip(samples, correct_flags(samples, self.delimiter), budgets)]


@register_reward("l1_exact")
class L1Exact(_L1):
    """``correct_reward * 1[correct] - alpha * |N - L|``."""

    name = "l1_exact"

    def __init__(self, alpha: float = 3e-4, correct_reward: float = 1.0, budget_key: str = "budget",
                 delimiter: str | None = "</think>"):
        super().__init__(alpha, correct_reward, budget_key, delimiter)

    def score(self, correct: bool, length: int, budget: float) -> float:
        return self.correct_reward * correct - self.alpha * abs(budget - length)


@register_reward("l1_max")
class L1Max(_L1):
    """``correct_reward * 1[correct] * clip(alpha * (N - L) + delta, 0, 1)``."""

    name = "l1_max"

    def __init__(self, alpha: float = 3e-4, delta: float = 0.5, correct_reward: float = 1.0,
                 budget_key: str = "budget", delimiter: str | None = "</think>"):
        super().__init__(alpha, correct_reward, budget_key, delimiter)
        self.delta = float(check_number(self.name, "delta", delta))

    def score(self, correct: bool, length: int, budget: float) -> float:
        if not correct:
            return 0.0
        return self.correct_reward * min(1.0, max(0.0, self.alpha * (budget - length) + self.delta))
