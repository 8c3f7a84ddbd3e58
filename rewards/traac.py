r"""TRAAC's training reward: correctness, format, and a difficulty-scaled length term.

    r_i   = 4 * 1[correct] + f_i + r_len_i
    f_i   = 0.25 * 1[one open tag and one close tag] + 0.25 * 1[the open tag before the close tag]
    r_len = s_d * max(L_norm, soft)   for a correct answer (else 0), with
        L_norm = clip((M - L) / max(M - m, 1e-6), 0, 1)
        soft   = 1 / (1 + exp((L - mu) / (0.1 mu)))
        s_d    = 1.0 / 0.75 / 0.5 for easy / medium / hard (the group's pass rate p: easy p >= 0.8,
                 medium 0.3 <= p < 0.8, hard p < 0.3; rl/algo/traac.py)

m, M and mu are the min, max and median of the correct lengths (tokens, EOS included) in the answer's
bucket (data source = ``meta["source"]``, difficulty) over the last ``history`` steps (10), flattened;
an empty bucket gives r_len = 0. The release includes the batch being scored
(``history_includes_current: true``, its order); ``false`` scores against the steps before it only
(laconic's usual contract).

With ``open_tag: null`` the prompt opened the thinking (R1-Distill's chat template writes ``<think>``),
so only the close tag is counted: f = 0.25 * 1[one close tag] + 0.25.

Paper: arXiv 2510.01581, "Think Right with Adaptive, Attentive Compression" (TRAAC); released code
``joykirat18/TRAAC`` @0bfea0a, ``verl/workers/reward_manager/sumLinear.py`` (``SumLinearRewardManager``)
and ``verl/utils/reward_score/math_verify_sum.py``. Written from reading them.

>>> from rewards.base import Sample, Context
>>> group = [Sample("p", 0, correct=True, length=n, completion="<think>x</think>A") for n in (100, 200, 300)]
>>> group.append(Sample("p", 0, correct=False, length=50, completion="no tags"))
>>> [round(r, 4) for r in TRAAC()(group, Context(step=1))]   # p = 0.75: medium, s = 0.75; m 100, M 300, mu 200
[5.25, 4.875, 4.505, 0.0]

Correct at 100 tokens: L_norm = 1 (soft = 1 / (1 + e^-5) = 0.9933): 4 + 0.5 + 0.75 x 1; at 200: L_norm = 0.5,
soft = 0.5: 4.5 + 0.375; at 300: L_norm = 0, soft = 1 / (1 + e^5) = 0.0067: 4.5 + 0.005.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from ._util import check_number
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["TRAAC"]

SCALE = {"easy": 1.0, "medium": 0.75, "hard": 0.5}


def level(pass_rate: float) -> str:
    """TRAAC's difficulty from a group's pass rate: easy p >= 0.8, medium 0.3 <= p < 0.8, hard p < 0.3.

    >>> level(0.8), level(0.5), level(0.2)
    ('easy', 'medium', 'hard')
    """
    return "easy" if pass_rate >= 0.8 else "medium" if pass_rate >= 0.3 else "hard"


@register_reward("traac")
class TRAAC(Reward):
    """``4 * 1[correct] + format + s_d * max(L_norm, soft)`` with per-(source, difficulty) length history."""

    name = "traac"

    def __init__(self, correct_reward: float = 4.0, format_reward: float = 0.25, open_tag: str | None = "<think>",
                 close_tag: str = "</think>", history: int = 10, history_includes_current: bool = True) -> None:
        self.correct_reward = check_number(self.name, "correct_reward", correct_reward)
        self.format_reward = check_number(self.name, "format_reward", format_reward)
        self.history = int(check_number(self.name, "history", history, low=1, integer=True))
        self.open_tag, self.close_tag = open_tag, close_tag
        self.includes_current = bool(history_includes_current)
        self.steps: dict[str, list[list[int]]] = defaultdict(list)  # bucket -> per step, the correct lengths

    def _levels(self, samples: list[Sample]) -> list[str]:
        out = [""] * len(samples)
        for idx in groups_of(samples).values():
            d = level(statistics.fmean(float(bool(samples[i].correct)) for i in idx))
            for i in idx:
                out[i] = d
        return out

    def _bucket(self, s: Sample, d: str) -> str:
        return f"{s.meta.get('source', '')}|{d}"

    def _format(self, text: str) -> float:
        close = text.count(self.close_tag)
        if self.open_tag is None:
            return self.format_reward * (float(close == 1) + 1.0)
        opened = text.count(self.open_tag)
        ordered = opened >= 1 and close >= 1 and text.find(self.open_tag) < text.find(self.close_tag)
        return self.format_reward * (float(opened == 1 and close == 1) + float(ordered))

    def _current(self, samples: list[Sample], levels: list[str]) -> dict[str, list[int]]:
        now: dict[str, list[int]] = defaultdict(list)
        for s, d in zip(samples, levels):
            if s.correct:
                now[self._bucket(s, d)].append(s.length)
        return now

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        levels = self._levels(samples)
        now = self._current(samples, levels) if self.includes_current else {}
        out = []
        for s, d in zip(samples, levels):
            r = self.correct_reward * float(bool(s.correct)) + self._format(s.completion)
            if s.correct:
                key = self._bucket(s, d)
                keep = self.history - 1 if self.includes_current else self.history  # earlier steps in the window
                past = self.steps.get(key, [])[len(self.steps.get(key, [])) - keep:] if keep > 0 else []
                lengths = [n for step in past for n in step] + now.get(key, [])
                if lengths:
                    lo, hi, mid = min(lengths), max(lengths), statistics.median(lengths)
                    norm = min(max((hi - s.length) / max(hi - lo, 1e-6), 0.0), 1.0)
                    z = (s.length - mid) / (0.1 * mid) if mid > 0 else 0.0
                    soft = 1.0 / (1.0 + math.exp(min(z, 700.0)))
                    r += SCALE[d] * max(norm, soft)
            out.append(r)
        return out

    def update(self, samples: list[Sample], ctx: Context) -> None:
        now = self._current(samples, self._levels(samples))
        for key in set(self.steps) | set(now):
            self.steps[key] = (self.steps[key] + [now.get(key, [])])[-self.history:]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": dict(self.steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = defaultdict(list, {k: [list(x) for x in v] for k, v in state.get("steps", {}).items()})
