"""Small helpers shared by the reward modules: argument checks, verdicts, group accuracy.

Not a reward module (the leading underscore keeps registry discovery away from it).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from .base import Context, Sample, groups_of
from .correctness import sample_correct


def check_number(reward: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False) -> Any:
    """A finite real (or integer) within ``[low, high]`` (``(low, high]`` with ``low_open``), else
    a ``ValueError`` naming the reward and the parameter."""
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = isinstance(value, numbers.Integral)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = ""
        if low is not None or high is not None:
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            bounds = f" in {'(' if low_open else '['}{lo}, {hi}]"
        raise ValueError(f"reward '{reward}': {name} must be {kind}{bounds}, got {value!r}")
    return value


def check_choice(reward: str, name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"reward '{reward}': {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def correct_flags(samples: list[Sample], delimiter: str | None = "</think>") -> list[bool]:
    """The verdict of each sample (``s.correct``, else the verifier; see :func:`sample_correct`)."""
    return [sample_correct(s, delimiter=delimiter) for s in samples]


def group_accuracy(samples: list[Sample], flags: list[bool]) -> dict[int, tuple[int, int]]:
    """``{group: (n_correct, n)}`` over the samples of each group."""
    return {g: (sum(flags[i] for i in idx), len(idx)) for g, idx in groups_of(samples).items()}


def limit_from(reward: str, max_length: int | None, ctx: Context) -> int:
    """``max_length`` when given, else ``ctx.max_length``; an error naming the reward if neither."""
    limit = max_length if max_length is not None else ctx.max_length
    if limit is None:
        raise ValueError(
            f"reward '{reward}' needs a length limit: pass max_length=... or run with ctx.max_length set"
        )
    return int(check_number(reward, "max_length", limit, low=0, low_open=True))


def float_dict(reward: str, state: Any, what: str) -> dict[str, float]:
    """Validate a ``{str: finite number}`` mapping loaded from a checkpoint."""
    if not isinstance(state, Mapping):
        raise ValueError(f"reward '{reward}': {what} must be a mapping of prompt id -> number, got {type(state).__name__}")
    out: dict[str, float] = {}
    for k, v in state.items():
        if not isinstance(k, str):
            raise ValueError(f"reward '{reward}': {what} keys must be strings (prompt ids), got {k!r}")
        check_number(reward, f"{what}[{k!r}]", v)
        out[k] = float(v)
    return out
