"""Hypervolume-guided dynamic reward weighting: the meta-reward ``m``, a factor of every reward.

Paper: arXiv 2509.11452 (TACL 2026), "Learning to Optimize Multi-Objective Alignment Through
Dynamic Reward Weighting"; released code ``yining610/dynamic-reward-weighting`` @238fe65,
``verl/trainer/ppo/ray_trainer_vanilla.py`` (the loop, ``train_strategy.method=vanilla``) and
``verl/utils/reward_score/dynamic_math/hypervolumn_contribution.py`` (the volume). This module is
written from reading them; it copies no code.

The method keeps the static reward weights and multiplies *every* reward of step t by one scalar
``m`` computed after step t-1 (``m = 1`` at the first step):

- before training, ``p_0`` = the validation means (accuracy, response length in tokens, format);
  the buffer ``B = [p_0]``, and ``B[0]`` is the reference point of the hypervolume;
- after each update, ``p_t`` = the validation means; ``dHV = HV(B[1:] + [p_t]) - HV(B[1:])``
  w.r.t. ``B[0]``, accuracy and format maximised, length minimised (:data:`MAXIMIZE`), clamped
  at 0; ``m = 0.5 + 1.5 * tanh(dHV)``; ``p_t`` is appended to ``B`` only when ``dHV > 0``
  (dominated points are never removed). The axes are not normalised (length is in tokens), so a
  step that improves all three objectives usually gives ``m`` close to 2.

In a recipe it is the reward ``hypervolume_weight`` (:class:`HypervolumeWeight`): a factor of the step's
total (``scales_total``, rewards/compose.py), its points from the monitor set (``train.monitor_prompts``
training prompts, G samples each, rolled out before step 1 and, with ``train.monitor_every: 1``, before
every step, i.e. after every update; the release validates on its validation split). One step-wide
scalar times every reward cancels under group normalisation (``algo.advantage: grpo``:
``(m r - m mean) / (m std + eps)`` = ``(r - mean) / (std + eps / m)``) and under batch whitening
(``batch_std``, ``reinforce_pp_baseline``) up to eps; only the estimators without a std feel it
(``rloo``, ``none``). :func:`check_estimator` refuses the others before any model loads;
``tests/algo/test_reward_weighting.py`` shows the cancellation with laconic's own estimators.

One choice differs from the release: its 1-D base case returns ``max(p) - ref`` unclamped, so a
point below the reference on the last axis (format) adds *negative* volume. Here a point counts
only if it is strictly better than the reference on every axis (the textbook hypervolume); a single
such point gives the same ``m`` in both (the release clamps the negative to 0).

>>> ref = (0.5, 1000.0, 0.5)                       # accuracy, tokens, format
>>> round(hypervolume([(0.6, 800.0, 0.7)], ref), 9)  # box 0.1 * 200 * 0.2
4.0
>>> meta = HypervolumeMetaReward()
>>> meta.update(ref)                                # p_0: the reference, m stays 1
1.0
>>> round(meta.update((0.6, 800.0, 0.7)), 6)        # dHV = 4: 0.5 + 1.5 tanh(4)
1.998994
>>> round(meta.update((0.55, 900.0, 0.6)), 6)       # dominated: dHV = 0, m = 0.5, not kept
0.5
>>> len(meta.buffer)
2
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from .base import Context, Reward, Sample
from .clarity import Clarity
from .registry import register_reward

#: Objective axes of a validation point, in order.
OBJECTIVES = ("accuracy", "length", "format")
#: Which axes are maximised (``maximize=[True, False, True]`` in the release): length is minimised.
MAXIMIZE = (True, False, True)
#: ``algo.advantage`` estimators under which ``m`` does not cancel (no std in the advantage).
ESTIMATORS_THAT_FEEL_M = ("rloo", "none")

Point = Sequence[float]


def check_estimator(name: str) -> None:
    """Refuse an ``algo.advantage`` under which the meta-reward would do nothing.

    >>> check_estimator("rloo")
    >>> check_estimator("grpo")
    Traceback (most recent call last):
    ...
    ValueError: dynamic reward weighting needs algo.advantage in ['rloo', 'none'] (group baseline, no std), got 'grpo': a std-normalised estimator (grpo, batch_std, reinforce_pp_baseline) cancels the step-wide weight m (m r / (m std) = r / std, up to eps)
    """
    if name not in ESTIMATORS_THAT_FEEL_M:
        raise ValueError(f"dynamic reward weighting needs algo.advantage in {list(ESTIMATORS_THAT_FEEL_M)} "
                         f"(group baseline, no std), got '{name}': a std-normalised estimator (grpo, batch_std, "
                         f"reinforce_pp_baseline) cancels the step-wide weight m (m r / (m std) = r / std, up to eps)")


def _as_max(p: Point, maximize: Sequence[bool]) -> tuple[float, ...]:
    if len(p) != len(maximize):
        raise ValueError(f"point {tuple(p)} has {len(p)} values, expected {len(maximize)}")
    out = tuple(float(x) if up else -float(x) for x, up in zip(p, maximize))
    if not all(math.isfinite(x) for x in out):
        raise ValueError(f"point {tuple(p)} must be finite")
    return out


def _slice_volume(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Volume dominated by ``points`` (all strictly above ``ref`` on every axis) by recursive
    slicing along the first axis (Fonseca et al. 2006, as the release)."""
    if not points:
        return 0.0
    if len(ref) == 1:
        return max(p[0] for p in points) - ref[0]
    xs = sorted({p[0] for p in points})
    total, lower = 0.0, ref[0]
    for x in xs:  # slab (lower, x]: every point reaching at least x, projected
        total += (x - lower) * _slice_volume([p[1:] for p in points if p[0] >= x], ref[1:])
        lower = x
    return total


def hypervolume(points: Sequence[Point], ref: Point, maximize: Sequence[bool] = MAXIMIZE) -> float:
    """Hypervolume of ``points`` w.r.t. ``ref`` (axes minimised where ``maximize`` is False).
    A point not strictly better than ``ref`` on every axis adds nothing.

    >>> round(hypervolume([(0.6, 800, 0.7), (0.7, 900, 0.6)], (0.5, 1000, 0.5)), 9)  # 4 + 2 - overlap 1
    5.0
    >>> hypervolume([(0.6, 800, 0.4)], (0.5, 1000, 0.5))                   # worse format
    0.0
    """
    r = _as_max(ref, maximize)
    pts = [q for q in (_as_max(p, maximize) for p in points) if all(a > b for a, b in zip(q, r))]
    return _slice_volume(pts, r)


def hv_contribution(buffer: Sequence[Point], point: Point, maximize: Sequence[bool] = MAXIMIZE) -> float:
    """``dHV = HV(buffer[1:] + [point]) - HV(buffer[1:])`` w.r.t. ``buffer[0]``, clamped at 0.

    >>> round(hv_contribution([(0.5, 1000, 0.5), (0.6, 800, 0.7)], (0.7, 900, 0.6)), 9)
    1.0
    """
    if not buffer:
        raise ValueError("the buffer must hold at least the reference point")
    ref, kept = buffer[0], list(buffer[1:])
    delta = hypervolume(kept + [point], ref, maximize) - hypervolume(kept, ref, maximize)
    return max(delta, 0.0)


def meta_weight(delta_hv: float) -> float:
    """``m = 0.5 + 1.5 * tanh(dHV)``: 0.5 for no gain, towards 2 for a large one.

    >>> meta_weight(0.0), round(meta_weight(1.0), 6)
    (0.5, 1.642391)
    """
    return 0.5 + 1.5 * math.tanh(delta_hv)


def hypervolume_step(buffer: Sequence[Point], point: Point,
                     maximize: Sequence[bool] = MAXIMIZE) -> tuple[float, float, list[tuple[float, ...]]]:
    """One update after a training step: ``(m, dHV, new buffer)``; ``point`` joins the buffer
    only when ``dHV > 0``. The input buffer is not changed.

    >>> m, d, b = hypervolume_step([(0.5, 1000, 0.5)], (0.4, 700, 0.9))   # accuracy fell
    >>> m, d, len(b)
    (0.5, 0.0, 1)
    """
    delta = hv_contribution(buffer, point, maximize)
    new = [tuple(float(x) for x in p) for p in buffer]
    if delta > 0:
        new.append(tuple(float(x) for x in point))
    return meta_weight(delta), delta, new


class HypervolumeMetaReward:
    """The meta-reward's state across steps: ``update(p_t)`` with each validation point
    (``p_0`` first, before training) returns the ``m`` for the next step's rewards. ``m`` is 1
    until a second point arrives. ``state()``/``from_state()`` round-trip through plain lists
    (for a checkpoint or ``ctx.state``)."""

    def __init__(self, maximize: Sequence[bool] = MAXIMIZE) -> None:
        self.maximize = tuple(bool(x) for x in maximize)
        self.buffer: list[tuple[float, ...]] = []
        self.m = 1.0
        self.last_delta: float | None = None

    def update(self, point: Point) -> float:
        if not self.buffer:
            _as_max(point, self.maximize)
            self.buffer = [tuple(float(x) for x in point)]
            return self.m
        self.m, self.last_delta, self.buffer = hypervolume_step(self.buffer, point, self.maximize)
        return self.m

    def state(self) -> dict:
        return {"maximize": list(self.maximize), "buffer": [list(p) for p in self.buffer], "m": self.m}

    @classmethod
    def from_state(cls, state: dict) -> "HypervolumeMetaReward":
        out = cls(state["maximize"])
        out.buffer = [tuple(float(x) for x in p) for p in state["buffer"]]
        out.m = float(state["m"])
        return out


@register_reward("hypervolume_weight")
class HypervolumeWeight(Reward):
    """``m`` for every sample of the step (a factor of the total, not a term), updated from each
    monitor-set point: (accuracy, mean length in tokens, mean clarity), or (accuracy, length) with
    ``clarity=False`` (where no completion can show steps, e.g. the toy: a constant axis adds no volume).
    ``answer``: the clarity rule's final answer (rewards/clarity.py)."""

    name = "hypervolume_weight"
    scales_total = True

    def __init__(self, clarity: bool = True, answer: str = "boxed") -> None:
        self.clarity = Clarity(answer) if clarity else None
        self.meta = HypervolumeMetaReward(MAXIMIZE if clarity else MAXIMIZE[:2])
        self.point: tuple[float, ...] | None = None

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.meta.m] * len(samples)

    def observe_monitor(self, samples: list[Sample], ctx: Context) -> None:
        point = [statistics.fmean(float(bool(s.correct)) for s in samples), statistics.fmean(s.length for s in samples)]
        if self.clarity is not None:
            point.append(statistics.fmean(self.clarity(samples, ctx)))
        self.point = tuple(point)
        self.meta.update(self.point)

    def metrics(self) -> dict[str, float]:
        out = {"hypervolume/m": self.meta.m, "hypervolume/delta": self.meta.last_delta or 0.0,
               "hypervolume/points": float(len(self.meta.buffer))}
        for axis, v in zip(OBJECTIVES, self.point or ()):
            out[f"hypervolume/monitor_{axis}"] = v
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**self.meta.state(), "delta": self.meta.last_delta, "point": self.point}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meta = HypervolumeMetaReward.from_state(state)
        self.meta.last_delta = state.get("delta")
        self.point = tuple(state["point"]) if state.get("point") else None
