r"""CEEH: difficulty-aware length reward with running per-prompt accuracy and length histories.

Paper arXiv 2602.22642. The defaults follow the authors' release, github.com/QinwenLuo/CEEH,
``trainer/edlao_trainer.py`` (class ``EDLAORayPPOTrainer``: ``compute_length_reward`` and the
accuracy-record update and ``difficulties`` in ``fit``; ``reward_scale`` = 0.1 as ``train.sh``
sets it, EMA rates 0.2 / 0.05 from ``config/edlao_trainer.yaml``), and
``actor/edlao_dp_actor.py`` (``update_policy``) for the entropy side. The root
``edlao_trainer.py`` of that repository is an older variant (a 0.8-1.2 L_x band) and is not
followed. Laconic's earlier choices remain as options (below), none of them on by default.

Per prompt x with ``Acc(x)`` = its group's accuracy this step (share of correct completions) and
the histories from *before* the batch (they change only in :meth:`CEEH.update`):

* **length term**, for a correct completion of length L when ``Acc(x) >= Acc_h(x)`` and L_x > 0::

      r = correct_reward * 1[correct] + max(floor, beta * (L_x - L) / L_x)     beta 0.1, floor -0.9

  and no term otherwise (an unseen prompt, or one with no correct completion yet, has L_x unset).
  The bonus is at most beta (L = 0); with the defaults the floor binds only past L = 10 L_x.
* **running accuracy** (after scoring): ``Acc_h(x) <- Acc(x)`` while ``Acc_h(x) <= 0`` (unseen, or
  only wrong answers so far: the history restarts), else ``(1 - eta) Acc_h + eta Acc`` with
  eta = 0.2 if ``Acc > Acc_h`` else 0.05.
* **reference length** (after scoring): the shortest correct length of the step, L_min, sets L_x
  while it is unset (0), else ``L_x <- (1 - eta) L_x + eta L_min``, eta = 0.2 if L_min < L_x else 0.05.
  Every correct completion counts, whatever the accuracy test said.
* **hard** (:meth:`CEEH.hard_mask`, the trainer's ``entropy_mask`` hook): ``Acc(x) <= mean``, the
  mean of ``Acc_h`` over the whole training set with unseen prompts counting -1 (the release
  keeps a record per dataset row, initialised to -1). The training set's size is the number of
  distinct prompt ids (histories are keyed by prompt id, so duplicate rows share one): laconic's
  trainer passes it as ``ctx.num_prompts``; ``num_prompts`` sets it elsewhere (TRL). Early on the
  mean is below 0 and no prompt is hard. With neither, the mean runs over the prompts seen so far,
  which is the release's value once every prompt has been seen (after an epoch) and higher before.

Entropy. The release adds an *entropy advantage* on hard prompts inside the actor's loss, per token
``A' = A + s * 1[hard] * min(0.4 * H_t, |A| / 2)`` (H_t the detached token entropy, s an annealing
scale, 1 in ``train.sh``), with the entropy loss off (``entropy_coeff`` 0). That needs the trainer's
advantages and token entropies: the trainer computes it with ``algo.entropy_advantage: {alpha: 0.4,
kappa: 2}`` (:func:`rl.algo.loss.entropy_shaped_advantages`, s = 1), and this reward supplies the
per-sample hard flag through ``entropy_mask``. (``algo.entropy_coef`` > 0 instead gives an entropy
bonus on the hard prompts only: laconic's earlier form.)

Laconic's earlier behaviour, as options: ``strict=True`` (``Acc > Acc_h`` for the length term);
``length_term="clipped"`` (``- beta * clip((L - L_x)/L_x, clip_low, clip_high)``, L_x floored at 1);
``acc_reset=False`` (only the first observation sets ``Acc_h``); ``hard_rule="history"`` (hard iff
``Acc_h(x) < mean``, an unseen prompt never hard). "Correct" is the sample's verdict throughout (the
release tests its 0/1 task reward: ``>= 1`` for the length term, ``== 1`` for the accuracy).

>>> from rewards.base import Sample, Context
>>> ceeh = CEEH()
>>> ceeh.load_state_dict({"acc": {"p": 0.5}, "length": {"p": 100}})
>>> batch = [Sample("p", 0, correct=True, length=50), Sample("p", 0, correct=True, length=300),
...          Sample("p", 0, correct=True, length=120), Sample("p", 0, correct=False, length=10)]
>>> [round(r, 6) for r in ceeh(batch, Context())]   # Acc = 0.75 >= 0.5: 1+0.1*0.5, 1+0.1*(-2), 1+0.1*(-0.2)
[1.05, 0.8, 0.98, 0.0]
>>> ceeh.hard_mask(batch)                           # mean over seen prompts = 0.5 < Acc = 0.75
[False, False, False, False]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._util import check_choice, check_number, correct_flags, float_dict
from .base import Context, Reward, Sample, groups_of
from .registry import register_reward

__all__ = ["CEEH"]

LENGTH_TERMS = ("release", "clipped")
HARD_RULES = ("release", "history")


@register_reward("ceeh")
class CEEH(Reward):
    """``1[correct] + max(-0.9, beta (L_x - L)/L_x)`` for correct answers when ``Acc(x) >= Acc_h(x)``."""

    name = "ceeh"

    def __init__(
        self,
        beta: float = 0.1,
        acc_eta_up: float = 0.2,
        acc_eta_down: float = 0.05,
        len_eta_shorter: float = 0.2,
        len_eta_longer: float = 0.05,
        length_term: str = "release",
        floor: float = -0.9,
        clip_low: float = -0.9,
        clip_high: float = 1.0,
        strict: bool = False,
        acc_reset: bool = True,
        hard_rule: str = "release",
        num_prompts: int | None = None,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        n = self.name
        self.beta = float(check_number(n, "beta", beta))
        self.acc_eta_up = float(check_number(n, "acc_eta_up", acc_eta_up, low=0.0, high=1.0))
        self.acc_eta_down = float(check_number(n, "acc_eta_down", acc_eta_down, low=0.0, high=1.0))
        self.len_eta_shorter = float(check_number(n, "len_eta_shorter", len_eta_shorter, low=0.0, high=1.0))
        self.len_eta_longer = float(check_number(n, "len_eta_longer", len_eta_longer, low=0.0, high=1.0))
        self.length_term = check_choice(n, "length_term", length_term, LENGTH_TERMS)
        self.floor = float(check_number(n, "floor", floor))
        self.clip_low = float(check_number(n, "clip_low", clip_low))
        self.clip_high = float(check_number(n, "clip_high", clip_high, low=self.clip_low))
        self.strict = bool(strict)
        self.acc_reset = bool(acc_reset)
        self.hard_rule = check_choice(n, "hard_rule", hard_rule, HARD_RULES)
        self.num_prompts = None if num_prompts is None else int(
            check_number(n, "num_prompts", num_prompts, low=1, integer=True))
        self.correct_reward = float(check_number(n, "correct_reward", correct_reward))
        self.delimiter = delimiter
        self.acc: dict[str, float] = {}  # Acc_h(x); absent = unseen (the release's -1)
        self._trainer_size: int | None = None  # ctx.num_prompts, the trainer's count, when num_prompts is unset
        self.length: dict[str, float] = {}  # L_x; absent or 0 = unset

    # ------------------------------------------------------------------ difficulty

    def mean_accuracy(self) -> float | None:
        """The mean that "hard" compares with: over ``num_prompts`` prompts with -1 for each unseen
        one, or (``num_prompts`` unset) over the prompts seen so far, None before any."""
        total, size = math.fsum(self.acc.values()), self.dataset_size()
        if size is not None:
            return (total - (size - len(self.acc))) / size
        return total / len(self.acc) if self.acc else None

    def dataset_size(self) -> int | None:
        """``num_prompts``, else the trainer's count of distinct training prompt ids (``ctx.num_prompts``)."""
        return self.num_prompts if self.num_prompts is not None else self._trainer_size

    def is_hard(self, prompt_id: str, accuracy: float | None = None) -> bool:
        """``hard_rule="release"``: ``accuracy <= mean`` (``accuracy``, this step's, is required);
        ``"history"``: ``Acc_h(prompt_id) < mean``, False for an unseen prompt."""
        mean = self.mean_accuracy()
        if mean is None:
            return False
        if self.hard_rule == "history":
            return prompt_id in self.acc and self.acc[prompt_id] < mean
        if accuracy is None:
            raise ValueError(f"reward '{self.name}': is_hard needs this step's accuracy of {prompt_id!r}")
        return accuracy <= mean

    def hard_mask(self, samples: list[Sample]) -> list[bool]:
        """Per sample: is its prompt hard this step (judged with the histories from before the batch)."""
        flags = correct_flags(samples, self.delimiter)
        out = [False] * len(samples)
        for idx in groups_of(samples).values():
            hard = self.is_hard(samples[idx[0]].prompt_id, sum(flags[i] for i in idx) / len(idx))
            for i in idx:
                out[i] = hard
        return out

    entropy_mask = hard_mask  # trainer hook: algo.entropy_advantage / entropy_coef apply only where this is True

    # ------------------------------------------------------------------ scoring

    def _qualifies(self, acc_now: float, acc_h: float | None) -> bool:
        if acc_h is None:  # unseen: the release's record is -1, always passed (but L_x is unset too)
            return True
        return acc_now > acc_h if self.strict else acc_now >= acc_h

    def _term(self, length: float, ref: float) -> float:
        if self.length_term == "release":
            return max(self.floor, self.beta * (ref - length) / ref)
        ref = max(ref, 1.0)
        return -self.beta * min(self.clip_high, max(self.clip_low, (length - ref) / ref))

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        self._trainer_size = getattr(ctx, "num_prompts", None)
        flags = correct_flags(samples, self.delimiter)
        out = [self.correct_reward * ok for ok in flags]
        for idx in groups_of(samples).values():
            pid = samples[idx[0]].prompt_id
            acc_now = sum(flags[i] for i in idx) / len(idx)
            ref = self.length.get(pid, 0.0)
            if ref <= 0 or not self._qualifies(acc_now, self.acc.get(pid)):
                continue
            for i in idx:
                if flags[i]:
                    out[i] += self._term(samples[i].length, ref)
        return [float(x) for x in out]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        self._trainer_size = getattr(ctx, "num_prompts", None)
        flags = correct_flags(samples, self.delimiter)
        groups = list(groups_of(samples).values())
        if self.dataset_size() is not None:
            seen = len(self.acc.keys() | {samples[idx[0]].prompt_id for idx in groups})
            self._check_size(seen)
        shortest: dict[str, float] = {}  # per prompt, over all its groups of the step (the release: per row)
        for idx in groups:
            pid = samples[idx[0]].prompt_id
            acc_now = sum(flags[i] for i in idx) / len(idx)
            old = self.acc.get(pid)
            if old is None or (self.acc_reset and old <= 0):
                self.acc[pid] = acc_now
            else:
                eta = self.acc_eta_up if acc_now > old else self.acc_eta_down
                self.acc[pid] = (1 - eta) * old + eta * acc_now
            lengths = [float(samples[i].length) for i in idx if flags[i]]
            if lengths:
                shortest[pid] = min(min(lengths), shortest.get(pid, math.inf))
        for pid, new in shortest.items():
            old_len = self.length.get(pid, 0.0)
            if old_len == 0:
                self.length[pid] = new
            else:
                eta = self.len_eta_shorter if new < old_len else self.len_eta_longer
                self.length[pid] = (1 - eta) * old_len + eta * new

    def _check_size(self, seen: int) -> None:
        size = self.dataset_size()
        if size is not None and seen > size:
            raise ValueError(
                f"reward '{self.name}': {seen} distinct prompt ids seen but the training set has {size} "
                "(num_prompts or the trainer's count); set num_prompts to the number of distinct training prompt ids"
            )

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"acc": dict(self.acc), "length": dict(self.length)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"acc", "length"}
        if unknown:
            raise ValueError(f"reward '{self.name}': unexpected state entries {sorted(unknown)}")
        acc = float_dict(self.name, state.get("acc", {}), "acc")
        length = float_dict(self.name, state.get("length", {}), "length")
        bad = [k for k, v in acc.items() if not 0.0 <= v <= 1.0] + [k for k, v in length.items() if v < 0]
        if bad:
            raise ValueError(f"reward '{self.name}': accuracies must lie in [0, 1] and lengths be >= 0, "
                             f"not for {sorted(bad)}")
        self._check_size(len(acc))
        self.acc, self.length = acc, length
