r"""PEAR: phase-entropy-aware reward - correct answers lose reward for entropy spent thinking.

"PEAR: Phase Entropy Aware Reward for Efficient Reasoning", arXiv 2510.08026. The completion is
split at the ``</think>`` token position (think = before it, answer = after it, delimiter
excluded); per-token entropy of the *training* policy (temperature-scaled, full vocabulary),
averaged per phase by the trainer (``s.entropy_think``, ``s.entropy_answer``, ``s.entropy_mean``)::

    P_i = max(0, mean H_think - alpha * mean H_answer)        (alpha = 1)
    P_i = mean H over all completion tokens                    if there is no delimiter
                                                               (s.think_length is None)
    r_i = min(1, s - P_i)   if correct  (s = correct_score = 1)
        = r_fmt             otherwise   (format score, 0)

The reward declares ``needs = {"entropy"}`` so the trainer computes the entropies; a sample without
them is an error that names this reward.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, think_length=10, answer_length=5,
...                   entropy_think=0.5, entropy_answer=0.25, entropy_mean=0.4),
...            Sample("p", 0, correct=True, think_length=None, entropy_mean=0.4),
...            Sample("p", 0, correct=False, think_length=10, answer_length=5,
...                   entropy_think=0.5, entropy_answer=0.25, entropy_mean=0.4)]
>>> PEAR()(samples, Context())   # 1 - (0.5 - 0.25); 1 - 0.4 (no </think>); wrong -> 0
[0.75, 0.6, 0.0]
"""

from __future__ import annotations

import math

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["PEAR", "phase_penalty"]


def _entropy(s: Sample, field: str, reward: str) -> float:
    value = getattr(s, field)
    if value is None:
        raise ValueError(
            f"reward '{reward}' needs per-phase policy entropies, but the sample of prompt {s.prompt_id!r} "
            f"has {field}=None; the trainer computes them only for rewards that declare needs={{'entropy'}} "
            "(set them yourself when calling the reward directly)"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"reward '{reward}': sample of prompt {s.prompt_id!r} has {field}={value}")
    return value


def phase_penalty(s: Sample, alpha: float = 1.0, reward: str = "pear") -> float:
    """``max(0, H_think - alpha * H_answer)``, or ``H_mean`` when the completion has no delimiter."""
    if s.think_length is None:
        return _entropy(s, "entropy_mean", reward)
    think = _entropy(s, "entropy_think", reward)
    answer = _entropy(s, "entropy_answer", reward)
    return max(0.0, think - alpha * answer)


@register_reward("pear")
class PEAR(Reward):
    """``min(1, correct_score - P)`` for correct completions, ``format_score`` otherwise."""

    name = "pear"
    needs = frozenset({"entropy"})

    def __init__(self, alpha: float = 1.0, correct_score: float = 1.0, format_score: float = 0.0,
                 cap: float = 1.0, delimiter: str | None = "</think>"):
        self.alpha = float(check_number(self.name, "alpha", alpha))
        self.correct_score = float(check_number(self.name, "correct_score", correct_score))
        self.format_score = float(check_number(self.name, "format_score", format_score))
        self.cap = float(check_number(self.name, "cap", cap))
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        out = []
        for s, ok in zip(samples, correct_flags(samples, self.delimiter)):
            penalty = phase_penalty(s, self.alpha, self.name)  # checked for every sample, right or wrong
            out.append(min(self.cap, self.correct_score - penalty) if ok else self.format_score)
        return out
