r"""DECS's curriculum data scheduling: a share kappa of each dynamic-sampling batch is all-correct groups.

"Overthinking Reduction with Decoupled Rewards and Curriculum Data Scheduling" (DECS), arXiv
2509.25827; released code pixas/DECS, ``src_valid/valid_ray_trainer.py`` (the group filter with
``filter_groups.enable_kappa`` and the kappa update after the advantages) and
``src_valid/reward_manager.py`` (``first_correct_chunk_ratio``).

Dynamic sampling (``algo.dynamic_sampling: correctness``) drops groups whose completions are all
right or all wrong. Under DECS's per-token rewards an all-correct group still carries a signal:
tokens in the redundant span (after the reasoning first reaches the answer, rewards/decs.py) earn
less than the ones before. The curriculum puts a controlled number of them back. With K
informative (mixed) groups kept, ::

    added = min(floor(kappa / (1 - kappa) * K), all-correct groups available)

so that about a share kappa of the batch is all-correct. The batch still holds at most
``rollout.prompts_per_step`` groups: rounds stop once ``K + added`` reaches it, and where K is
more than that allows (a round brought many informative groups), the batch keeps the largest
K' <= K with ``K' + added(K') <= prompts_per_step`` and fills what is left with all-correct groups
(the released code gets the same share on average by appending, shuffling and truncating). The
added groups are drawn at random from every all-correct group the step generated (the released
code draws from the current round's), with a generator seeded by ``train.seed`` and the step, so
every process draws the same groups and a resumed run draws what the uninterrupted one did.

After the batch is formed, the redundant ratio rho is measured on it: over the correct
completions whose reasoning states the gold answer, the mean share of their tokens after the
token that completes that statement (:func:`rewards.decs.answer_token`). The released code
measures the complement (the position of the first chunk that reaches the answer, over the
number of chunks, from a judge model) and moves kappa with its step-to-step change; in terms of
rho::

    kappa <- clamp(kappa - eta * (rho_t - rho_{t-1}), low, high)

so kappa grows when the redundant ratio drops (the model is learning to stop): more all-correct
groups, whose redundant tails the per-token reward penalizes, enter the batch. The released
code's settings: kappa starts at 0, eta = 0.2, rho_0 = 0.5 (its "previous" ratio before step 1);
it clamps nothing (a kappa <= 0 just adds no group) -- without clamps the updates telescope to
``kappa_t = kappa_0 - eta * (rho_t - rho_0)``, so kappa stays within eta of its start. Here
``high`` (default 0.9) keeps kappa / (1 - kappa) finite; ``low`` is off by default.

A step whose batch has no correct completion with a located answer (rho undefined; the released
code would divide 0 by 0) leaves kappa and rho_{t-1} unchanged and logs rho as NaN. A step with
no informative group adds none (K = 0). State -- kappa and rho_{t-1} -- lives in ``ctx.state``
(``curriculum/kappa``, ``curriculum/last_redundant_ratio``), checkpointed with the run; the
ratio is computed from the gathered table, so it is the same on every process.

>>> groups_to_add(0.2, kept=8, available=5)
2
>>> compose(0.2, kept=8, available=5, target=8)     # 8 + 2 > 8: 7 informative + 1 all-correct
(7, 1)
>>> next_kappa(0.0, 0.25, 0.5, eta=0.2)             # rho fell by 0.25: kappa up by 0.05
0.05
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from rewards.decs import answer_token

DEFAULTS: dict[str, float | None] = {"kappa": 0.0, "eta": 0.2, "start_ratio": 0.5, "low": None, "high": 0.9}
KAPPA, LAST = "curriculum/kappa", "curriculum/last_redundant_ratio"

__all__ = ["DEFAULTS", "groups_to_add", "compose", "next_kappa", "redundant_ratio", "options",
           "check_options", "Curriculum"]


def options(spec: dict[str, Any]) -> dict[str, Any]:
    """``algo.curriculum`` over the defaults."""
    return {**DEFAULTS, **spec}


def check_options(spec: dict[str, Any]) -> str | None:
    """What is wrong with ``algo.curriculum`` (unknown keys are checked by the caller), or None."""
    o = options(spec)
    for k, v in o.items():
        if v is None and k == "low":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"algo.curriculum.{k} must be a number, got {v!r}"
    if not o["high"] < 1:
        return f"algo.curriculum.high must be < 1 (kappa / (1 - kappa) groups are added), got {o['high']}"
    if o["low"] is not None and not o["low"] <= o["high"]:
        return f"algo.curriculum: low ({o['low']}) must be <= high ({o['high']})"
    if not (o["low"] if o["low"] is not None else -math.inf) <= o["kappa"] <= o["high"]:
        return f"algo.curriculum.kappa ({o['kappa']}) must lie in [low, high]"
    if o["eta"] < 0:
        return f"algo.curriculum.eta must be >= 0, got {o['eta']}"
    if not 0 <= o["start_ratio"] <= 1:
        return f"algo.curriculum.start_ratio must be in [0, 1], got {o['start_ratio']}"
    return None


def groups_to_add(kappa: float, kept: int, available: int) -> int:
    """All-correct groups to add to ``kept`` informative ones: ``floor(kappa / (1 - kappa) * kept)``,
    at most ``available``; none when kappa <= 0."""
    if kappa <= 0 or kept <= 0 or available <= 0:
        return 0
    return min(math.floor(kappa / (1 - kappa) * kept + 1e-9), available)  # 1e-9: 0.25 * 8 is 2, not 1.999..


def compose(kappa: float, kept: int, available: int, target: int) -> tuple[int, int]:
    """``(informative, all_correct)`` groups of a batch of at most ``target``: every kept group and
    :func:`groups_to_add` when they fit; else the most informative groups K' with
    ``K' + groups_to_add(K') <= target``, the rest of the batch all-correct (as far as available)."""
    k = min(kept, target)
    while k > 0 and k + groups_to_add(kappa, k, available) > target:
        k -= 1
    if k == kept:
        return k, groups_to_add(kappa, k, available)
    return k, min(available, target - k) if kappa > 0 else 0


def redundant_ratio(table: list[Any], delimiter: str | None) -> float | None:
    """Mean share of redundant tokens (after :func:`rewards.decs.answer_token`) over the correct
    completions whose reasoning states the answer; None when there is none."""
    shares = []
    for s in table:
        if s.correct and s.length:
            k = answer_token(s, delimiter)
            if k is not None:
                shares.append(max(s.length - (k + 1), 0) / s.length)
    return statistics.fmean(shares) if shares else None


def next_kappa(kappa: float, ratio: float, last: float, *, eta: float, low: float | None = None,
               high: float = 0.9) -> float:
    """``clamp(kappa - eta * (ratio - last), low, high)``."""
    k = min(kappa - eta * (ratio - last), high)
    return k if low is None else max(k, low)


class Curriculum:
    """The step's kappa, the batch composition and the update, over ``ctx.state``."""

    def __init__(self, spec: dict[str, Any], state: dict[str, Any], seed: int):
        self.o, self.state, self.seed = options(spec), state, seed
        state.setdefault(KAPPA, float(self.o["kappa"]))
        state.setdefault(LAST, float(self.o["start_ratio"]))

    @property
    def kappa(self) -> float:
        return float(self.state[KAPPA])

    def full(self, kept: int, available: int, target: int) -> bool:
        """Whether ``kept`` informative groups plus the all-correct ones fill a batch of ``target``."""
        return kept + groups_to_add(self.kappa, kept, available) >= target

    def pick(self, reserve: list, kept: int, target: int, step: int) -> tuple[int, list]:
        """How many informative groups to keep, and the all-correct groups (drawn from ``reserve``,
        kept in their order) to add: the same on every process and on a resume."""
        k, a = compose(self.kappa, kept, len(reserve), target)
        chosen = sorted(random.Random(self.seed * 1_000_003 + step).sample(range(len(reserve)), a))
        return k, [reserve[i] for i in chosen]

    def update(self, table: list[Any], delimiter: str | None, added: int) -> dict[str, float]:
        """Measure rho on the batch, move kappa; the step's metrics (kappa as used for this batch)."""
        used, ratio = self.kappa, redundant_ratio(table, delimiter)
        if ratio is not None:
            self.state[KAPPA] = next_kappa(used, ratio, float(self.state[LAST]), eta=self.o["eta"],
                                           low=self.o["low"], high=self.o["high"])
            self.state[LAST] = ratio
        return {"curriculum/kappa": used, "curriculum/redundant_ratio": math.nan if ratio is None else ratio,
                "curriculum/added_groups": float(added)}
