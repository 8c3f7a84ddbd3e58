r"""CEEH: difficulty-aware length reward with running per-prompt accuracy and length histories.

arXiv 2602.22642 (QinwenLuo/CEEH). Per prompt x, with Acc(x) = the group's accuracy this step:

* running accuracy ``Acc_h(x) <- (1 - eta) Acc_h + eta Acc``, eta = 0.2 if Acc > Acc_h else 0.05
  (the first observation sets Acc_h = Acc, as the released code does);
* hard iff ``Acc_h(x) < mean over prompts of Acc_h`` (prompts with a history; an unseen prompt is
  not hard) - :meth:`CEEH.is_hard` / :meth:`CEEH.hard_prompts` let the trainer restrict its
  entropy regularization to hard prompts;
* reference length ``L_x`` = EMA of the per-step shortest correct length: the first observation
  sets it; then eta = 0.2 when the new shortest is *shorter* than L_x, else 0.05 (the paper only
  says "0.2 / 0.05"; the direction follows the released code: adopt improvements fast).

Reward (beta = 0.1), with Acc_h and L_x from *before* the batch (histories change only in
:meth:`CEEH.update`)::

    R_len = clip((L - L_x) / L_x, -0.9, 1)     for correct answers when Acc(x) > Acc_h(x)
          = 0                                  otherwise (and while x has no history)
    r     = correct_reward * 1[correct] - beta * R_len

``strict=False`` uses Acc >= Acc_h (the released code's test). L_x below one token counts as 1.

>>> from rewards.base import Sample, Context
>>> ceeh = CEEH()
>>> ceeh.load_state_dict({"acc": {"p": 0.5}, "length": {"p": 100}})
>>> batch = [Sample("p", 0, correct=True, length=50), Sample("p", 0, correct=True, length=300),
...          Sample("p", 0, correct=True, length=120), Sample("p", 0, correct=False, length=10)]
>>> [round(r, 6) for r in ceeh(batch, Context())]   # Acc = 0.75 > 0.5: 1+0.1*0.5, 1-0.1*1, 1-0.1*0.2
[1.05, 0.9, 0.98, 0.0]
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from ._util import check_number, correct_flags, float_dict
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["CEEH"]


@register_reward("ceeh")
class CEEH(Reward):
    """``1[correct] - beta * clip((L - L_x)/L_x, -0.9, 1)`` for correct answers of improving prompts."""

    name = "ceeh"

    def __init__(
        self,
        beta: float = 0.1,
        acc_eta_up: float = 0.2,
        acc_eta_down: float = 0.05,
        len_eta_shorter: float = 0.2,
        len_eta_longer: float = 0.05,
        clip_low: float = -0.9,
        clip_high: float = 1.0,
        strict: bool = True,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        n = self.name
        self.beta = float(check_number(n, "beta", beta))
        self.acc_eta_up = float(check_number(n, "acc_eta_up", acc_eta_up, low=0.0, high=1.0))
        self.acc_eta_down = float(check_number(n, "acc_eta_down", acc_eta_down, low=0.0, high=1.0))
        self.len_eta_shorter = float(check_number(n, "len_eta_shorter", len_eta_shorter, low=0.0, high=1.0))
        self.len_eta_longer = float(check_number(n, "len_eta_longer", len_eta_longer, low=0.0, high=1.0))
        self.clip_low = float(check_number(n, "clip_low", clip_low))
        self.clip_high = float(check_number(n, "clip_high", clip_high, low=self.clip_low))
        self.strict = bool(strict)
        self.correct_reward = float(check_number(n, "correct_reward", correct_reward))
        self.delimiter = delimiter
        self.acc: dict[str, float] = {}  # Acc_h(x)
        self.length: dict[str, float] = {}  # L_x

    # ------------------------------------------------------------------ difficulty

    def mean_accuracy(self) -> float | None:
        return statistics.fmean(self.acc.values()) if self.acc else None

    def is_hard(self, prompt_id: str) -> bool:
        """``Acc_h(x) < mean_x' Acc_h(x')``; False for a prompt without history."""
        mean = self.mean_accuracy()
        return mean is not None and prompt_id in self.acc and self.acc[prompt_id] < mean

    def hard_prompts(self) -> set[str]:
        mean = self.mean_accuracy()
        return set() if mean is None else {p for p, a in self.acc.items() if a < mean}

    def hard_mask(self, samples: list[Sample]) -> list[bool]:
        """Per sample: is its prompt hard (for masking entropy regularization)."""
        hard = self.hard_prompts()
        return [s.prompt_id in hard for s in samples]

    entropy_mask = hard_mask  # trainer hook: algo.entropy_coef applies only where this is True

    # ------------------------------------------------------------------ scoring

    def _improving(self, acc_now: float, acc_h: float | None) -> bool:
        if acc_h is None:
            return False
        return acc_now > acc_h if self.strict else acc_now >= acc_h

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        out = [self.correct_reward * ok for ok in flags]
        for idx in groups_of(samples).values():
            pid = samples[idx[0]].prompt_id
            acc_now = sum(flags[i] for i in idx) / len(idx)
            ref = self.length.get(pid)
            if ref is None or not self._improving(acc_now, self.acc.get(pid)):
                continue
            ref = max(ref, 1.0)
            for i in idx:
                if flags[i]:
                    r_len = min(self.clip_high, max(self.clip_low, (samples[i].length - ref) / ref))
                    out[i] -= self.beta * r_len
        return [float(x) for x in out]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        flags = correct_flags(samples, self.delimiter)
        for idx in groups_of(samples).values():
            pid = samples[idx[0]].prompt_id
            acc_now = sum(flags[i] for i in idx) / len(idx)
            old = self.acc.get(pid)
            if old is None:
                self.acc[pid] = acc_now
            else:
                eta = self.acc_eta_up if acc_now > old else self.acc_eta_down
                self.acc[pid] = (1 - eta) * old + eta * acc_now
            correct_lengths = [samples[i].length for i in idx if flags[i]]
            if correct_lengths:
                new = float(min(correct_lengths))
                old_len = self.length.get(pid)
                if old_len is None:
                    self.length[pid] = new
                else:
                    eta = self.len_eta_shorter if new < old_len else self.len_eta_longer
                    self.length[pid] = (1 - eta) * old_len + eta * new

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"acc": dict(self.acc), "length": dict(self.length)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"acc", "length"}
        if unknown:
            raise ValueError(f"reward '{self.name}': unexpected state entries {sorted(unknown)}")
        self.acc = float_dict(self.name, state.get("acc", {}), "acc")
        self.length = float_dict(self.name, state.get("length", {}), "length")
