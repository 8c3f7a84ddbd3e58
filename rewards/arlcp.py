r"""ARLCP: adaptive reflection and length coordinated penalty on correct completions.

"Stop Unnecessary Reflection: Training LRMs for Efficient Reasoning with Adaptive Reflection and
Length Coordinated Penalty", arXiv 2602.12113 (code: ZeweiYu1/ARLCP ``src/rm.py``, the statistics in
``verl/workers/reward_manager/naive.py``). With c_i the number of reflection keywords in completion
i (whole words, any case; default list below) and L_i its length in tokens::

    correct:  r_i = 1 - w1(c_i) * sigmoid((c_i - mu_c) / (sigma_c + eps))
                      - w2(c_i) * sigmoid((L_i - mu_L) / (sigma_L + eps))
    wrong:    r_i = 0

mu/sigma are the mean and sample standard deviation (n - 1) of c and L over the *correct*
completions of the sample's group; with a single correct completion sigma = 1 (as the release),
so its z-scores are 0 and its reward 1 - (w1 + w2)/2 = 0.9. eps = 1e-6. The weights adapt to the
completion's own reflection count::

    w1 = 0.05 if c <= 40,  0.10 if c <= 80,  else 0.15;      w2 = 0.2 - w1

(``thresholds`` / ``w1_values`` / ``total_weight``). The keywords are a parameter; overlapping
ones count once, the longer phrase winning ("double-check" is one keyword, not also "check").
Published: RLOO, KL-in-reward 1e-3, G = 16, 128 prompts, lr 2e-6, 16k tokens.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=100, completion="Wait."),
...            Sample("p", 0, correct=True, length=300, completion="Wait, hmm. But check it."),
...            Sample("p", 0, correct=False, length=50, completion="done")]
>>> [round(r, 4) for r in ARLCP()(samples, Context())]  # c 1, 4; z = -/+ 0.7071 for both c and L
[0.934, 0.866, 0.0]
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["ARLCP", "REFLECTION_KEYWORDS", "count_keywords"]

REFLECTION_KEYWORDS = ("wait", "alternatively", "hold on", "another thought", "verify", "think again", "but",
                       "however", "alternative", "check", "double-check", "oh", "hmm")


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """Whole-word, case-insensitive alternation, longest keyword first."""
    words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def count_keywords(text: str, keywords: Sequence[str] = REFLECTION_KEYWORDS) -> int:
    """Number of keyword occurrences in ``text``.

    >>> count_keywords("Wait, but hmm... double-check. Oh! However, I'll verify. Waiting, checks.")
    7
    """
    return len(keyword_pattern(keywords).findall(text))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 1.0)


@register_reward("arlcp")
class ARLCP(Reward):
    """``1 - w1 sigmoid(z_c) - w2 sigmoid(z_L)`` for correct completions (z over the group's correct ones), 0 else."""

    name = "arlcp"

    def __init__(
        self,
        keywords: Sequence[str] = REFLECTION_KEYWORDS,
        thresholds: Sequence[int] = (40, 80),
        w1_values: Sequence[float] = (0.05, 0.10, 0.15),
        total_weight: float = 0.2,
        correct_reward: float = 1.0,
        wrong_reward: float = 0.0,
        eps: float = 1e-6,
        delimiter: str | None = "</think>",
    ):
        if isinstance(keywords, str) or not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ValueError(f"reward '{self.name}': keywords must be a non-empty list of non-empty strings, got {keywords!r}")
        self.pattern = keyword_pattern(keywords)
        self.thresholds = [check_number(self.name, "thresholds", t) for t in thresholds]
        self.w1_values = [float(check_number(self.name, "w1_values", w)) for w in w1_values]
        if len(self.w1_values) != len(self.thresholds) + 1 or self.thresholds != sorted(self.thresholds):
            raise ValueError(f"reward '{self.name}': w1_values needs one more entry than thresholds (ascending), "
                             f"got {list(w1_values)} and {list(thresholds)}")
        self.total_weight = float(check_number(self.name, "total_weight", total_weight))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.wrong_reward = float(check_number(self.name, "wrong_reward", wrong_reward))
        self.eps = float(check_number(self.name, "eps", eps, low=0.0))
        self.delimiter = delimiter

    def w1(self, count: int) -> float:
        """The reflection weight for a completion with ``count`` keywords."""
        for t, w in zip(self.thresholds, self.w1_values):
            if count <= t:
                return w
        return self.w1_values[-1]

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        counts = [len(self.pattern.findall(s.completion)) for s in samples]
        out = [self.wrong_reward] * len(samples)
        for idx in groups_of(samples).values():
            right = [i for i in idx if flags[i]]
            if not right:
                continue
            mu_c, sd_c = _mean_std([counts[i] for i in right])
            mu_l, sd_l = _mean_std([samples[i].length for i in right])
            for i in right:
                w1 = self.w1(counts[i])
                out[i] = (self.correct_reward
                          - w1 * _sigmoid((counts[i] - mu_c) / (sd_c + self.eps))
                          - (self.total_weight - w1) * _sigmoid((samples[i].length - mu_l) / (sd_l + self.eps)))
        return out
