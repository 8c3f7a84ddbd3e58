r"""PALU: performance-aware length update, a per-prompt token budget that shrinks while the prompt is solved.

"Concise Reasoning in the Lens of Lagrangian Optimization", arXiv 2510.10168. No code is released
(``glorgao/PALU`` holds a README and a poster); the formulas are the poster's, the constants C and τ
those the ICLR-2026 OpenReview reviews quote. The paper solves, per question q,
``min L s.t. R(θ, L, q) >= C`` (R = pass rate when generation is capped at L tokens) with three
approximations: R is estimated off-policy from q's previous visit, the multiplier λ is truncated to
{0, ∞} (θ follows plain RL on correctness under the current budget), and the budget step is a
quantile gap. For each prompt q this reward keeps a budget ``L_q`` (initially ``L_max``)::

    r_i   = correct_reward * 1[correct_i and not truncated_i and L_i <= L_q]      (scored with L_q before the step)
    R_q   = mean_i 1[correct_i and not truncated_i and L_i <= L_q]                (update, after scoring)
    R_q > C:  L_q <- min(L_max, max(L_floor, L_q - ceil(alpha_q))),  alpha_q = Q_1.0 - Q_{1-tau}
    else:     L_q <- L_max

``Q_p`` is the p-quantile of q's completion lengths this step (numpy's default ``linear`` method,
:func:`quantile`): over the completions that pass (``lengths: correct``, the reading of two reviewers)
or over all of them, each counted at most ``L_q`` (``lengths: all``, the poster's formula); both are
logged. C = 0.8, τ = 0.5 (α = longest − median). ``comparison``: ``>`` (the poster) or ``>=`` (a
reviewer's summary). ``L_max`` is ``max_length`` or else ``ctx.max_length`` (``rollout.max_new_tokens``:
the paper does not state its L_max); ``L_floor`` (``floor``, default 256, our choice) keeps a budget
from collapsing; α is rounded up to whole tokens. α = 0 (one completion, or all of the same length)
leaves the budget where it is; no correct completion resets it to L_max.

The budget is a hard generation cap by default (``hard_cap: true``, the faithful reading): the
reward's ``prompt_limits`` hook makes the trainer generate q's completions with at most L_q tokens
(docs/design.md, "The data path of one step", step 2), so a completion over budget is cut at L_q and
comes back truncated. ``hard_cap: false`` is the fallback without per-prompt limits: generation runs
to the step's limit and the reward reads ``L_i <= L_q`` as DLER's limit does; the rewards are equal
(a correct completion over budget scores 0 either way), but an over-budget completion is then trained
on at its full length instead of being cut at L_q, and costs its full generation time.

State: ``{"budgets": {prompt_id: L_q}}`` for the prompts below L_max (absent = L_max), in checkpoints.
Metrics (after each update, :meth:`PALU.metrics`): ``palu/budget_mean`` and ``palu/at_max_share``
(the budgets the step's prompts were generated under), ``palu/pass_rate`` (mean R_q),
``palu/shrink_share`` (share with R_q > C), ``palu/alpha_correct`` and ``palu/alpha_all`` (mean α of
those, both variants), ``palu/tracked`` (prompts below L_max).

>>> from rewards.base import Sample, Context
>>> palu = PALU(floor=4)
>>> ctx = Context(max_length=100)
>>> group = [Sample("q", 0, correct=True, length=n) for n in (20, 30, 40, 60, 80)]
>>> palu(group, ctx)                            # budget 100: every correct answer passes
[1.0, 1.0, 1.0, 1.0, 1.0]
>>> palu.update(group, ctx); palu.budgets       # R = 1 > 0.8: alpha = Q_1.0 - Q_0.5 = 80 - 40
{'q': 60}
>>> palu(group, ctx)                            # 80 > 60: over budget
[1.0, 1.0, 1.0, 1.0, 0.0]
>>> palu.update(group, ctx); palu.budgets       # R = 0.8, not > 0.8: back to L_max
{}
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ._util import check_choice, check_number, correct_flags
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["PALU", "quantile", "quantile_step"]

COMPARISONS = (">", ">=")
LENGTHS = ("correct", "all")


def quantile(values: Sequence[float], p: float) -> float:
    """The ``p``-quantile of ``values`` by linear interpolation between order statistics: numpy's
    default method (``np.quantile(values, p, method="linear")``, type 7 of Hyndman and Fan).

    >>> quantile([10, 20, 40], 0.5), quantile([10, 20, 40], 0.75), quantile([7], 0.3)
    (20.0, 30.0, 7.0)
    """
    if not values:
        raise ValueError("quantile of no values")
    xs = sorted(float(v) for v in values)
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def quantile_step(lengths: Sequence[float], tau: float) -> float | None:
    """PALU's step ``α = Q_1.0 − Q_{1−τ}`` of ``lengths`` (None when there are none).

    >>> quantile_step([20, 30, 40, 60, 80], 0.5), quantile_step([50, 50], 0.5), quantile_step([], 0.5)
    (40.0, 0.0, None)
    """
    if not lengths:
        return None
    return quantile(lengths, 1.0) - quantile(lengths, 1.0 - tau)


@register_reward("palu")
class PALU(Reward):
    """``correct_reward * 1[correct and not truncated and L <= L_q]``; L_q shrinks by a quantile gap while
    the prompt's pass rate at L_q stays above C, and resets to L_max otherwise."""

    name = "palu"
    reads_truncation = True

    def __init__(
        self,
        threshold: float = 0.8,
        tau: float = 0.5,
        comparison: str = ">",
        lengths: str = "correct",
        floor: int = 256,
        max_length: int | None = None,
        hard_cap: bool = True,
        correct_reward: float = 1.0,
        delimiter: str | None = "</think>",
    ):
        self.threshold = float(check_number(self.name, "threshold", threshold, low=0.0, high=1.0))
        self.tau = float(check_number(self.name, "tau", tau, low=0.0, high=1.0, low_open=True))
        self.comparison = check_choice(self.name, "comparison", comparison, COMPARISONS)
        self.lengths = check_choice(self.name, "lengths", lengths, LENGTHS)
        self.floor = int(check_number(self.name, "floor", floor, low=1, integer=True))
        if max_length is not None:
            check_number(self.name, "max_length", max_length, low=1, integer=True)
        self.max_length = max_length
        if not isinstance(hard_cap, bool):
            raise ValueError(f"reward '{self.name}': hard_cap must be true or false, got {hard_cap!r}")
        self.hard_cap = hard_cap
        self.limits_generation = hard_cap  # the trainer asks prompt_limits only with a hard cap
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.delimiter = delimiter
        self.budgets: dict[str, int] = {}
        self._metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ budgets
    def l_max(self, ctx: Context) -> int:
        limit = self.max_length if self.max_length is not None else ctx.max_length
        if limit is None:
            raise ValueError(f"reward '{self.name}' needs L_max: pass max_length=... or run with ctx.max_length set")
        return int(limit)

    def budget(self, prompt_id: str, ctx: Context) -> int:
        """L_q: the prompt's budget, L_max until it has shrunk (never above L_max)."""
        top = self.l_max(ctx)
        return min(self.budgets.get(prompt_id, top), top)

    def prompt_limits(self, prompts: list[Sample], ctx: Context) -> dict[str, int]:
        """The generation limit of each prompt: its budget (``hard_cap``; nothing otherwise)."""
        if not self.hard_cap:
            return {}
        return {p.prompt_id: self.budget(p.prompt_id, ctx) for p in prompts}

    def above(self, rate: float) -> bool:
        """R > C (or R >= C), with a tolerance for k/n fractions."""
        if self.comparison == ">":
            return rate > self.threshold + 1e-9
        return rate >= self.threshold - 1e-9

    # ------------------------------------------------------------------ reward
    def passes(self, samples: list[Sample], ctx: Context, flags: list[bool] | None = None) -> list[bool]:
        """``correct and not truncated and L <= L_q`` per sample, with the budgets from before this step."""
        flags = correct_flags(samples, self.delimiter) if flags is None else flags
        return [bool(ok) and not s.truncated and s.length <= self.budget(s.prompt_id, ctx)
                for s, ok in zip(samples, flags)]

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.correct_reward if ok else 0.0 for ok in self.passes(samples, ctx)]

    def update(self, samples: list[Sample], ctx: Context) -> None:
        top = self.l_max(ctx)
        passed = self.passes(samples, ctx)
        by_prompt: dict[str, list[int]] = {}  # by prompt id: robust to groups renumbered by dynamic sampling
        for i, s in enumerate(samples):
            by_prompt.setdefault(s.prompt_id, []).append(i)
        before, rates, alphas = [], [], {"correct": [], "all": []}
        new: dict[str, int] = {}
        for pid, idx in by_prompt.items():
            budget = self.budget(pid, ctx)
            before.append(budget)
            rate = sum(passed[i] for i in idx) / len(idx)
            rates.append(rate)
            if not self.above(rate):
                new[pid] = top
                continue
            steps = {"correct": quantile_step([samples[i].length for i in idx if passed[i]], self.tau),
                     "all": quantile_step([min(samples[i].length, budget) for i in idx], self.tau)}
            for k, a in steps.items():
                if a is not None:
                    alphas[k].append(a)
            alpha = steps[self.lengths] or 0.0
            new[pid] = min(top, max(self.floor, budget - math.ceil(alpha - 1e-9)))
        for pid, budget in new.items():
            if budget >= top:
                self.budgets.pop(pid, None)
            else:
                self.budgets[pid] = int(budget)
        n = max(len(before), 1)
        self._metrics = {"palu/budget_mean": statistics.fmean(before) if before else float(top),
                         "palu/at_max_share": sum(b >= top for b in before) / n,
                         "palu/pass_rate": statistics.fmean(rates) if rates else 0.0,
                         "palu/shrink_share": sum(self.above(r) for r in rates) / n,
                         "palu/tracked": float(len(self.budgets))}
        for k, values in alphas.items():
            if values:
                self._metrics[f"palu/alpha_{k}"] = statistics.fmean(values)

    def metrics(self) -> dict[str, float]:
        """The last update's budget statistics (module docstring)."""
        return dict(self._metrics)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"budgets": dict(self.budgets)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) - {"budgets"}:
            raise ValueError(f"reward '{self.name}': expected {{'budgets': {{prompt_id: tokens}}}}, got {state!r:.200}")
        budgets = state.get("budgets", {})
        if not isinstance(budgets, Mapping):
            raise ValueError(f"reward '{self.name}': budgets must be a mapping of prompt id -> tokens")
        out = {}
        for k, v in budgets.items():
            if not isinstance(k, str):
                raise ValueError(f"reward '{self.name}': budget keys must be prompt ids (strings), got {k!r}")
            check_number(self.name, f"budgets[{k!r}]", v, low=1)
            if not float(v).is_integer():
                raise ValueError(f"reward '{self.name}': budgets[{k!r}] must be a whole number of tokens, got {v!r}")
            out[k] = int(v)
        self.budgets = out
