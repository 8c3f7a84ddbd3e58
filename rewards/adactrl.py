r"""AdaCtrl: difficulty self-assessment tags plus a length term for easy problems.

Huang et al., "AdaCtrl: Towards Adaptive and Controllable Reasoning via Difficulty-Aware Budgeting",
arXiv 2505.18822. The model opens its answer with ``[Easy]`` or ``[Hard]``. Per group
(G completions), acc = k/G::

    difficulty = easy  if acc > 0.625  else  hard
    tag_i      = the first of "[Easy]" / "[Hard]" found in the completion (``at_start=True``: only
                 at the very start, after whitespace)
    r_tag      = +1 if tag_i matches the difficulty, 0 if it does not, -1 if there is no tag
    r_len      = (1 + cos(pi * L_i / L_max,group)) / 2   for correct completions tagged [Easy]
               = 0                                       otherwise      (L_max,group = 0 -> 1)
    r_i        = 1[correct] + 0.5 * r_len + 0.5 * r_tag

>>> from rewards.base import Sample, Context
>>> g = [Sample("p", 0, correct=True, length=50, completion="[Easy] ... A:3"),
...      Sample("p", 0, correct=True, length=100, completion="[Hard] ... A:3")]
>>> AdaCtrl()(g, Context())   # easy (acc 1): 1 + 0.5*(1+cos(pi/2))/2 + 0.5*1; 1 + 0 + 0.5*0
[1.75, 1.0]
"""

from __future__ import annotations

import math

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["AdaCtrl", "find_tag"]


def find_tag(text: str, tags: tuple[str, ...], at_start: bool = False) -> str | None:
    """The tag that occurs first in ``text`` (or at its start), or None."""
    if at_start:
        head = text.lstrip()
        return next((t for t in tags if head.startswith(t)), None)
    found = [(text.find(t), t) for t in tags if t in text]
    return min(found)[1] if found else None


@register_reward("adactrl")
class AdaCtrl(Reward):
    """``1[correct] + length_weight * r_len + tag_weight * r_tag``."""

    name = "adactrl"

    def __init__(
        self,
        easy_threshold: float = 0.625,
        length_weight: float = 0.5,
        tag_weight: float = 0.5,
        easy_tag: str = "[Easy]",
        hard_tag: str = "[Hard]",
        at_start: bool = False,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        n = self.name
        self.easy_threshold = float(check_number(n, "easy_threshold", easy_threshold, low=0.0, high=1.0))
        self.length_weight = float(check_number(n, "length_weight", length_weight))
        self.tag_weight = float(check_number(n, "tag_weight", tag_weight))
        if not easy_tag or not hard_tag or easy_tag == hard_tag:
            raise ValueError(f"reward '{n}': easy_tag and hard_tag must be two different non-empty strings")
        self.easy_tag, self.hard_tag = easy_tag, hard_tag
        self.at_start = bool(at_start)
        self.correct_reward = float(check_number(n, "correct_reward", correct_reward))
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        out = [0.0] * len(samples)
        for idx in groups_of(samples).values():
            easy = sum(flags[i] for i in idx) / len(idx) > self.easy_threshold + 1e-12
            want = self.easy_tag if easy else self.hard_tag
            longest = max(samples[i].length for i in idx)
            for i in idx:
                s = samples[i]
                tag = find_tag(s.completion, (self.easy_tag, self.hard_tag), self.at_start)
                r_tag = -1.0 if tag is None else (1.0 if tag == want else 0.0)
                r_len = 0.0
                if flags[i] and tag == self.easy_tag:
                    r_len = 1.0 if longest <= 0 else (1.0 + math.cos(math.pi * s.length / longest)) / 2.0
                out[i] = self.correct_reward * flags[i] + self.length_weight * r_len + self.tag_weight * r_tag
        return out
