"""Composition of rewards: a weighted sum with named, validated components.

Composition is data, not code (docs/design.md, "The reward contract"): a recipe lists rewards with
weights and :func:`build_rewards` turns the list into one :class:`ComposedReward`::

    total_i = sum_k  w_k * r_k(samples, ctx)_i

A member with ``scales_total = True`` (dynamic reward weighting's meta-reward ``m``,
rewards/dynamic_weighting.py) is not a term of the sum but a factor of it:
``total_i = m_i * sum_k w_k r_k``, per token too; its weight must be 1.

The components (unweighted ``r_k``) are kept per display name for logging. Every member's output
is checked: one finite real number per sample; a failure names the reward that caused it.

>>> from rewards.base import Sample, Context
>>> composed = build_rewards([{"name": "dler"}, {"name": "truncation_penalty", "weight": 0.5}])
>>> samples = [Sample("p", 0, correct=True), Sample("p", 0, correct=True, truncated=True)]
>>> composed.score(samples, Context())
([1.0, -0.5], {'dler': [1.0, 0.0], 'truncation_penalty': [0.0, -1.0]})
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from .base import Context, FunctionReward, Reward, Sample
from .registry import RewardConfigError, _check_weight, build_reward

__all__ = ["ComposedReward", "RewardError", "build_rewards"]

RewardLike = Reward | Callable[[list[Sample], Context], Iterable[float]]


class RewardError(RuntimeError):
    """A reward failed while scoring or updating: raised, wrong length, NaN/inf, non-number."""


class ComposedReward(Reward):
    """Weighted sum of named rewards; itself a :class:`Reward` (so compositions nest)."""

    name = "composed"

    def __init__(self, items: Sequence[tuple[str, RewardLike, float]]):
        if not items:
            raise RewardConfigError("no rewards configured: the reward list is empty")
        self.names: list[str] = []
        self.rewards: list[Reward] = []
        self.weights: list[float] = []
        for item in items:
            try:
                name, reward, weight = item
            except (TypeError, ValueError):
                raise RewardConfigError(f"expected (name, reward, weight), got {item!r}") from None
            if not isinstance(reward, Reward):
                if not callable(reward):
                    raise RewardConfigError(f"reward '{name}' is {type(reward).__name__}, not callable")
                reward = FunctionReward(reward, name=str(name))
            self.names.append(self._unique(str(name)))
            self.rewards.append(reward)
            self.weights.append(_check_weight(str(name), weight))
            if getattr(reward, "scales_total", False) and self.weights[-1] != 1.0:
                raise RewardConfigError(f"reward '{name}' scales the total (a factor, not a term): its weight must be 1, "
                                        f"got {weight}")
        self.needs = frozenset().union(*(r.needs for r in self.rewards))
        self.reads_truncation = any(getattr(r, "reads_truncation", False) for r in self.rewards)

    def _unique(self, name: str) -> str:
        """``len``, ``len_1``, ``len_2``... for repeated display names."""
        if name not in self.names:
            return name
        k = 1
        while f"{name}_{k}" in self.names:
            k += 1
        return f"{name}_{k}"

    def items(self) -> list[tuple[str, Reward, float]]:
        return list(zip(self.names, self.rewards, self.weights))

    def score(self, samples: list[Sample], ctx: Context) -> tuple[list[float], dict[str, list[float]]]:
        """Return ``(totals, components)``; components are unweighted, keyed by display name. A
        per-token reward counts here with its mean over the sample's tokens (see :meth:`score_tokens`)."""
        totals, components, _ = self.score_tokens(samples, ctx)
        return totals, components

    def score_tokens(self, samples: list[Sample], ctx: Context
                     ) -> tuple[list[float], dict[str, list[float]], list[list[float]] | None]:
        """Like :meth:`score`, plus the per-token totals when any reward returned per-token values
        (else None): for every sample, ``sum_k w_k * r_k`` per token, a scalar ``r_k`` counting on
        every token. A reward may return, per sample, a number or a list of ``sample.length`` numbers."""
        raw: dict[str, list[float | list[float]]] = {}
        for name, reward in zip(self.names, self.rewards):
            try:
                out = reward(samples, ctx)
            except Exception as e:
                raise RewardError(f"reward '{name}' failed: {type(e).__name__}: {e}") from e
            raw[name] = _validate(name, out, samples)
        components = {n: [math.fsum(v) / max(len(v), 1) if isinstance(v, list) else v for v in vals]
                      for n, vals in raw.items()}
        totals = self.combine(components)
        if not any(isinstance(v, list) for vals in raw.values() for v in vals):
            return totals, components, None
        scale = self._scale(components)
        per_token = []
        for i, s in enumerate(samples):
            row = [0.0] * s.length
            for n, w in self.terms():
                v = raw[n][i]
                for t in range(s.length):
                    row[t] += scale[i] * w * (v[t] if isinstance(v, list) else v)
            per_token.append(row)
        return totals, components, per_token

    def terms(self) -> list[tuple[str, float]]:
        """``(display name, weight)`` of the members summed (all but the factors, ``scales_total``)."""
        return [(n, w) for n, w, r in zip(self.names, self.weights, self.rewards) if not getattr(r, "scales_total", False)]

    def _scale(self, components: Mapping[str, list[float]]) -> list[float]:
        factors = [n for n, r in zip(self.names, self.rewards) if getattr(r, "scales_total", False)]
        size = len(next(iter(components.values()), []))
        return [math.prod(components[n][i] for n in factors) for i in range(size)]

    def combine(self, components: Mapping[str, list[float]]) -> list[float]:
        """The totals from (per-sample) components with the current weights: ``m_i * sum_k w_k r_k[i]``."""
        scale = self._scale(components)
        return [scale[i] * math.fsum(w * components[n][i] for n, w in self.terms()) for i in range(len(scale))]

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return self.score(samples, ctx)[0]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        for name, reward in zip(self.names, self.rewards):
            try:
                reward.update(samples, ctx)
            except Exception as e:
                raise RewardError(f"reward '{name}' failed in update: {type(e).__name__}: {e}") from e

    def state_dict(self) -> dict[str, Any]:
        return {name: reward.state_dict() for name, reward in zip(self.names, self.rewards)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = [k for k in state if k not in self.names]
        if unknown:
            raise ValueError(
                f"reward state has entries {unknown} that match no configured reward "
                f"(configured: {self.names}); did the recipe's reward list change?"
            )
        for name, reward in zip(self.names, self.rewards):
            if name in state:
                try:
                    reward.load_state_dict(state[name])
                except Exception as e:
                    raise RewardError(f"reward '{name}' could not load its state: {e}") from e


def _number(name: str, v: Any, i: int, samples: list[Sample]) -> float:
    if not isinstance(v, numbers.Real) and hasattr(v, "item"):  # numpy / torch scalars
        try:
            v = v.item()
        except Exception:
            pass
    if not isinstance(v, numbers.Real):
        raise RewardError(f"reward '{name}' returned a non-number at sample {i}: {v!r} ({type(v).__name__})")
    f = float(v)
    if not math.isfinite(f):
        raise RewardError(
            f"reward '{name}' returned {f} at sample {i} (first non-finite value; "
            f"prompt_id={samples[i].prompt_id!r})"
        )
    return f


def _validate(name: str, out: Any, samples: list[Sample]) -> list[float | list[float]]:
    """Per sample one finite real number, or a list of ``sample.length`` of them (per-token
    rewards); else a :class:`RewardError` naming ``name``."""
    n = len(samples)
    if isinstance(out, (str, bytes, Mapping)) or not isinstance(out, Iterable):
        raise RewardError(f"reward '{name}' returned {type(out).__name__}; expected a sequence of {n} numbers")
    values = list(out)
    if len(values) != n:
        raise RewardError(f"reward '{name}' returned the wrong number of values: expected {n}, got {len(values)}")
    result: list[float | list[float]] = []
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple)) or (hasattr(v, "ndim") and getattr(v, "ndim", 0) == 1):
            tokens = [_number(name, x, i, samples) for x in list(v)]
            if len(tokens) != samples[i].length:
                raise RewardError(f"reward '{name}' returned {len(tokens)} per-token values at sample {i}, "
                                  f"whose completion has {samples[i].length} tokens")
            result.append(tokens)
        else:
            result.append(_number(name, v, i, samples))
    return result


def build_rewards(specs: Sequence[Mapping[str, Any] | str] | Mapping[str, Any]) -> ComposedReward:
    """Build a :class:`ComposedReward` from a recipe's reward list (see :func:`build_reward`)."""
    if isinstance(specs, (Mapping, str)):
        specs = [specs]
    if not isinstance(specs, Sequence) or not specs:
        raise RewardConfigError(
            "no rewards configured: give a non-empty list such as [{'name': 'correctness'}]"
        )
    items = []
    for i, spec in enumerate(specs):
        try:
            items.append(build_reward(spec))
        except RewardConfigError as e:
            raise RewardConfigError(f"rewards[{i}]: {e}") from e
    return ComposedReward(items)
