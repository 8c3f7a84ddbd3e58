r"""Gates: apply a reward only to the groups that pass a condition (ConciseR, GRPO-lambda, generic).

``gate`` - generic. Per group (the G completions of a prompt), ``condition`` decides whether the
group gets ``reward`` or ``otherwise``::

    all_correct | any_correct | none_correct | mixed (some right, some wrong)
    ratio_at_least (k/G >= threshold) | ratio_above (>) | ratio_below (<)
    "package.module:function"   - your predicate ``fn(group_samples: list[Sample]) -> bool``

``reward`` and ``otherwise`` are reward specs as in a recipe (``{name: ..., ...}``, a list of
them - summed with their weights -, or a number for a constant). The inner reward is called on
the samples of the passing groups only (a batch-level inner reward sees just those), ``otherwise``
on the rest; both get the whole table in ``update`` (histories learn from every sample).

``concise_r`` - ConciseR's stage-2 L-GRPO (Song & Zheng, arXiv 2505.21178): the length reward
only when **all** G completions are correct, else the correctness value. The paper's length
formula is not published in a form we could read; the default inner reward (*open*) is
correctness plus the remaining budget, ``1 + (1 - L/L_max)`` (``remaining_budget``,
L_max = ``ctx.max_length`` unless given).

``grpo_lambda`` - GRPO-lambda (arXiv 2505.18086): rank the batch's groups by correctness ratio;
the top ``fraction`` (lambda = 0.2) of them get a length reward, the others plain 0/1::

    selected group, correct:  r = 1 - alpha * sigmoid((L - mean_c) / std_c)     (alpha = 0.6, *open*)
    selected group, wrong:    r = 0
    mean_c, std_c over the group's correct completions (sample std, n-1); fewer than two correct or
    std_c = 0 -> z = 0 (r = 1 - alpha/2)

Choices: k = ceil(fraction * n_groups) groups are selected (at least one when fraction > 0); ties in
the ratio are broken by order of first appearance in the table (identical on every process).

>>> from rewards.base import Sample, Context
>>> groups = [Sample("a", 0, correct=True, length=10), Sample("a", 0, correct=True, length=30),
...           Sample("b", 1, correct=True, length=10), Sample("b", 1, correct=False, length=30)]
>>> ConciseR()(groups, Context(max_length=40))   # a: all correct, 1 + (1 - L/40); b: 0/1
[1.75, 1.25, 1.0, 0.0]
>>> Gate(reward=2.0, condition="any_correct", otherwise=-1.0)(groups[:2], Context())
[2.0, 2.0]
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from ._util import check_choice, check_number, correct_flags, limit_from
from .base import Context, Reward, Sample, groups_of
from .compose import build_rewards
from .registry import RewardConfigError, _import_object, register_reward

__all__ = ["CONDITIONS", "ConciseR", "Constant", "GRPOLambda", "Gate", "RemainingBudget", "build_inner"]

CONDITIONS = ("all_correct", "any_correct", "none_correct", "mixed", "ratio_at_least", "ratio_above",
              "ratio_below")


class Constant(Reward):
    """The same value for every sample."""

    name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.value] * len(samples)


def build_inner(spec: Any, owner: str, what: str) -> Reward:
    """A reward from a spec (mapping / name / list of specs / number / Reward instance)."""
    if isinstance(spec, Reward):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return Constant(float(check_number(owner, what, spec)))
    if isinstance(spec, (str, Mapping)) or (isinstance(spec, Sequence) and not isinstance(spec, bytes)):
        try:
            return build_rewards(spec)
        except RewardConfigError as e:
            raise RewardConfigError(f"reward '{owner}': {what}: {e}") from e
    raise RewardConfigError(
        f"reward '{owner}': {what} must be a reward spec like {{'name': 'correctness'}}, a list of specs "
        f"or a number, got {spec!r}"
    )


@register_reward("gate")
class Gate(Reward):
    """Per group: ``reward`` if ``condition`` holds, else ``otherwise``."""

    name = "gate"

    def __init__(
        self,
        reward: Any,
        condition: str = "all_correct",
        otherwise: Any = 0.0,
        threshold: float = 0.5,
        delimiter: str | None = "</think>",
    ):
        self.inner = build_inner(reward, self.name, "reward")
        self.otherwise = build_inner(otherwise, self.name, "otherwise")
        self.predicate: Callable[[list[Sample]], Any] | None = None
        if isinstance(condition, str) and ":" in condition:
            obj = _import_object(condition)
            if not callable(obj):
                raise RewardConfigError(f"reward '{self.name}': condition '{condition}' is not callable")
            self.predicate = obj
        else:
            check_choice(self.name, "condition", condition, CONDITIONS)
        self.condition = condition
        self.threshold = float(check_number(self.name, "threshold", threshold, low=0.0, high=1.0))
        self.delimiter = delimiter
        self.needs = frozenset(self.inner.needs | self.otherwise.needs)

    def passes(self, group: list[Sample], flags: list[bool]) -> bool:
        if self.predicate is not None:
            return bool(self.predicate(group))
        k, n, t = sum(flags), len(flags), self.threshold * len(flags)
        return {
            "all_correct": k == n,
            "any_correct": k > 0,
            "none_correct": k == 0,
            "mixed": 0 < k < n,
            "ratio_at_least": k >= t - 1e-9,
            "ratio_above": k > t + 1e-9,
            "ratio_below": k < t - 1e-9,
        }[self.condition]

    def open_mask(self, samples: list[Sample]) -> list[bool]:
        """Per sample: does its group pass the condition."""
        flags = correct_flags(samples, self.delimiter) if self.predicate is None else [False] * len(samples)
        mask = [False] * len(samples)
        for idx in groups_of(samples).values():
            ok = self.passes([samples[i] for i in idx], [flags[i] for i in idx])
            for i in idx:
                mask[i] = ok
        return mask

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        mask = self.open_mask(samples)
        out = [0.0] * len(samples)
        for reward, want in ((self.inner, True), (self.otherwise, False)):
            idx = [i for i, m in enumerate(mask) if m is want]
            if not idx:
                continue
            values = list(reward([samples[i] for i in idx], ctx))
            if len(values) != len(idx):
                raise ValueError(f"reward '{self.name}': inner reward returned {len(values)} values for {len(idx)} samples")
            for i, v in zip(idx, values):
                out[i] = float(v)
        return out

    def update(self, samples: list[Sample], ctx: Context) -> None:
        self.inner.update(samples, ctx)
        self.otherwise.update(samples, ctx)

    def state_dict(self) -> dict[str, Any]:
        return {"reward": self.inner.state_dict(), "otherwise": self.otherwise.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"reward", "otherwise"}
        if unknown:
            raise ValueError(f"reward '{self.name}': unexpected state entries {sorted(unknown)}")
        self.inner.load_state_dict(state.get("reward", {}))
        self.otherwise.load_state_dict(state.get("otherwise", {}))


@register_reward("remaining_budget")
class RemainingBudget(Reward):
    """``correct_reward * 1[correct] * clip(1 - L / L_max, 0, 1)`` (L_max = ``ctx.max_length`` unless given)."""

    name = "remaining_budget"

    def __init__(self, max_length: int | None = None, correct_reward: float = 1.0,
                 delimiter: str | None = "</think>"):
        if max_length is not None:
            check_number(self.name, "max_length", max_length, low=0, low_open=True, integer=True)
        self.max_length = max_length
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        limit = limit_from(self.name, self.max_length, ctx)
        return [self.correct_reward * min(1.0, max(0.0, 1.0 - s.length / limit)) if ok else 0.0
                for s, ok in zip(samples, correct_flags(samples, self.delimiter))]


@register_reward("concise_r")
class ConciseR(Gate):
    """ConciseR's L-GRPO gate: ``reward`` only for groups whose G completions are all correct."""

    name = "concise_r"

    def __init__(self, reward: Any = None, otherwise: Any = None, delimiter: str | None = "</think>"):
        if reward is None:
            reward = [{"name": "correctness", "delimiter": delimiter},
                      {"name": "remaining_budget", "delimiter": delimiter}]
        if otherwise is None:
            otherwise = {"name": "correctness", "delimiter": delimiter}
        super().__init__(reward, "all_correct", otherwise, delimiter=delimiter)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@register_reward("grpo_lambda")
class GRPOLambda(Reward):
    """Top-``fraction`` groups by accuracy: ``1 - alpha * sigmoid(z_L)`` for correct, others 0/1."""

    name = "grpo_lambda"

    def __init__(self, fraction: float = 0.2, alpha: float = 0.6, correct_reward: float = 1.0,
                 delimiter: str | None = "</think>"):
        self.fraction = float(check_number(self.name, "fraction", fraction, low=0.0, high=1.0))
        self.alpha = float(check_number(self.name, "alpha", alpha))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.delimiter = delimiter

    def selected(self, samples: list[Sample], flags: list[bool] | None = None) -> list[int]:
        """Group ids that get the length reward, best accuracy first."""
        flags = correct_flags(samples, self.delimiter) if flags is None else flags
        groups = groups_of(samples)
        k = math.ceil(self.fraction * len(groups) - 1e-9)
        order = sorted(enumerate(groups.items()),
                       key=lambda item: (-sum(flags[i] for i in item[1][1]) / len(item[1][1]), item[0]))
        return [g for _, (g, _) in order[:k]]

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        flags = correct_flags(samples, self.delimiter)
        out = [self.correct_reward * ok for ok in flags]
        groups = groups_of(samples)
        for g in self.selected(samples, flags):
            right = [i for i in groups[g] if flags[i]]
            lengths = [float(samples[i].length) for i in right]
            mean = statistics.fmean(lengths) if lengths else 0.0
            std = statistics.stdev(lengths) if len(lengths) >= 2 else 0.0
            for i in right:
                z = (samples[i].length - mean) / std if std > 0 else 0.0
                out[i] = self.correct_reward * (1.0 - self.alpha * _sigmoid(z))
        return [float(x) for x in out]
