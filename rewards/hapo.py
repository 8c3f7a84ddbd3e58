r"""HAPO: history-aware length reward against the shortest correct answer seen so far.

Huang et al., "HAPO: Training Language Models to Reason Concisely via History-Aware Policy
Optimization", arXiv 2505.11225 (HCY123902/HAPO). Per prompt p the history h_p is the shortest
correct length seen so far (none at first). A batch is scored with h from *before* it; then
:meth:`HAPO.update` sets ``h_p <- min(h_p, min correct L of p in the batch)``.

Cosine (``variant="cosine"``)::

    h none:   r = 0
    else:     c = cos(pi/2 * L/h)  if L < 2h  else  -1
              correct: r = max(c, -0.7);   wrong: r = min(c, 0)

Linear (``variant="linear"``, tolerance tau = 0.1)::

    correct:  1 - L/h                               if L < h
              0                                     if h <= L < (1+tau) h
              max(-0.7, -(L - (1+tau) h) / h)       otherwise
    wrong:    0 if L < (1+tau) h  else  max(-1, -(L - (1+tau) h) / h)
    h none:   r = 0 (choice made here, as for the cosine: no reference yet, no length signal)

    total = correct_reward * 1[correct] + w * r          (w = 1; w <= 1 keeps correct > wrong)

A zero-token correct completion would give h = 0; the formulas then use h = 1 token (no 0/0).
With several processes, combine histories with :func:`merge_state` (per-prompt minimum). The
trainer scores the gathered global table on every process, so all copies agree anyway.

>>> from rewards.base import Sample, Context
>>> hapo = HAPO(variant="linear")
>>> hapo.load_state_dict({"p": 100})
>>> batch = [Sample("p", 0, correct=True, length=50), Sample("p", 0, correct=True, length=105),
...          Sample("p", 0, correct=True, length=160), Sample("p", 0, correct=False, length=200)]
>>> [round(r, 6) for r in hapo(batch, Context())]   # 1+(1-50/100); 1+0; 1-(160-110)/100; -(200-110)/100
[1.5, 1.0, 0.5, -0.9]
>>> hapo.update(batch, Context()); hapo.state_dict()
{'p': 50}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._util import check_choice, check_number, correct_flags, float_dict
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["HAPO", "VARIANTS", "hapo_cosine", "hapo_linear", "merge_state"]

VARIANTS = ("cosine", "linear")


def hapo_cosine(length: float, h: float | None, correct: bool, correct_floor: float = -0.7) -> float:
    """HAPO's cosine length reward (0 without history)."""
    if h is None:
        return 0.0
    h = max(float(h), 1.0)
    c = math.cos(math.pi / 2 * length / h) if length < 2 * h else -1.0
    return max(c, correct_floor) if correct else min(c, 0.0)


def hapo_linear(length: float, h: float | None, correct: bool, tolerance: float = 0.1,
                correct_floor: float = -0.7, wrong_floor: float = -1.0) -> float:
    """HAPO's linear length reward with tolerance band ``[h, (1+tolerance) h)`` (0 without history)."""
    if h is None:
        return 0.0
    h = max(float(h), 1.0)
    edge = (1 + tolerance) * h
    if correct:
        if length < h:
            return 1.0 - length / h
        if length < edge:
            return 0.0
        return max(correct_floor, -(length - edge) / h)
    if length < edge:
        return 0.0
    return max(wrong_floor, -(length - edge) / h)


def merge_state(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Per-prompt minimum of two HAPO histories (multi-process merge).

    >>> merge_state({"p": 10, "q": 7}, {"p": 4, "r": 9})
    {'p': 4, 'q': 7, 'r': 9}
    """
    out = dict(a)
    for k, v in b.items():
        out[k] = min(out[k], v) if k in out else v
    return out


@register_reward("hapo")
class HAPO(Reward):
    """``correct_reward * 1[correct] + w * r_len(L, h_p)`` with h_p the shortest correct length so far."""

    name = "hapo"

    def __init__(
        self,
        variant: str = "cosine",
        w: float = 1.0,
        tolerance: float = 0.1,
        correct_floor: float = -0.7,
        wrong_floor: float = -1.0,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        self.variant = check_choice(self.name, "variant", variant, VARIANTS)
        self.w = float(check_number(self.name, "w", w))
        self.tolerance = float(check_number(self.name, "tolerance", tolerance, low=0.0))
        self.correct_floor = float(check_number(self.name, "correct_floor", correct_floor))
        self.wrong_floor = float(check_number(self.name, "wrong_floor", wrong_floor))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.delimiter = delimiter
        self.history: dict[str, float] = {}

    merge_state = staticmethod(merge_state)

    def length_reward(self, length: float, h: float | None, correct: bool) -> float:
        if self.variant == "cosine":
            return hapo_cosine(length, h, correct, self.correct_floor)
        return hapo_linear(length, h, correct, self.tolerance, self.correct_floor, self.wrong_floor)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        return [
            self.correct_reward * ok + self.w * self.length_reward(s.length, self.history.get(s.prompt_id), ok)
            for s, ok in zip(samples, flags)
        ]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        shortest: dict[str, float] = {}
        for s, ok in zip(samples, correct_flags(samples, self.delimiter)):
            if ok:
                shortest[s.prompt_id] = min(shortest.get(s.prompt_id, s.length), s.length)
        self.history = merge_state(self.history, shortest)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.history)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {k: (int(v) if float(v).is_integer() else v)
                        for k, v in float_dict(self.name, state, "history").items()}
