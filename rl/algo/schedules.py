"""Max-length schedules: the generation length limit (tokens) at a training step.

The limit goes to the rollout engine as ``max_new_tokens`` and to rewards as ``ctx.max_length``.
Steps t are 1-based. ``base`` is ``rollout.max_new_tokens``, the generation buffer that the engine
and loss normalizer are sized by: a scheduled limit above it is an error (raise it instead).

constant   limit(t) = base.
staged     ThinkPrune (arXiv 2504.01296), a hard cap iterated 4000 -> 3000 -> 2000: the limit of the
           last ``[from_step, limit]`` stage with from_step <= t; before the first stage, base.
cyclic     SIRI (arXiv 2509.25176), alternating compress/expand phases; with p = (t - 1) mod period:
           stair:  low if p < compress_steps (compression first) else high;
           cosine: round(low + (high - low) * (1 + cos(2*pi*u)) / 2), u = p / period, i.e. high at
                   the start of each period, low at its middle, back to high at its end.
decay      Train Long, Think Short (arXiv 2508.08940), B(t) = max(B_min, floor(B0 * gamma^floor(t/T))),
           with the paper's 0-based t = step - 1 (step 1 gets B0); B0 = start, or base if unset.

    rollout:
      max_new_tokens: 4000
      length_schedule: {kind: constant}
      # length_schedule: {kind: staged, stages: [[1, 4000], [101, 3000], [201, 2000]]}
      # length_schedule: {kind: cyclic, shape: stair, low: 1000, high: 4000, period: 10, compress_steps: 4}
      # length_schedule: {kind: cyclic, shape: cosine, low: 1000, period: 200}   # high = max_new_tokens
      # length_schedule: {kind: decay, min_length: 200, gamma: 0.5, every: 10, start: 1000}
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

KINDS = ("constant", "cyclic", "decay", "staged")
SHAPES = ("cosine", "stair")
REQUIRED = {"cyclic": ("low", "period"), "decay": ("gamma", "every")}
_P = "rollout.length_schedule."


@dataclass
class LengthSchedule:
    kind: str = "constant"  # constant | staged | cyclic | decay
    stages: list[list[int]] = field(default_factory=list)  # staged: [[from_step, limit], ...]
    low: int | None = None  # cyclic: compressed limit (required)
    high: int | None = None  # cyclic: expanded limit (default: rollout.max_new_tokens)
    period: int | None = None  # cyclic: steps per compress + expand cycle (required)
    compress_steps: int | None = None  # cyclic stair: steps of the compress phase (default period // 2)
    shape: str = "stair"  # cyclic: stair | cosine
    min_length: int = 1  # decay: B_min
    gamma: float | None = None  # decay: factor per interval, 0 < gamma <= 1 (required)
    every: int | None = None  # decay: T, steps per interval (required)
    start: int | None = None  # decay: B0 (default: rollout.max_new_tokens)


def length_limit(schedule: LengthSchedule, step: int, base: int) -> int:
    """The length limit at 1-based ``step``; assumes ``validate_schedule`` passed."""
    if step < 1:
        raise ValueError(f"steps are 1-based, got step {step}")
    s = schedule
    if s.kind == "constant":
        return base
    if s.kind == "staged":
        return next((lim for frm, lim in reversed(s.stages) if frm <= step), base)
    if s.kind == "cyclic":
        low, high, p = s.low, base if s.high is None else s.high, (step - 1) % s.period
        if s.shape == "stair":
            return low if p < _compress(s) else high
        return round(low + (high - low) * (1 + math.cos(2 * math.pi * p / s.period)) / 2)
    if s.kind == "decay":
        value = (base if s.start is None else s.start) * s.gamma ** ((step - 1) // s.every)
        return max(s.min_length, math.floor(value * (1 + 1e-12)))  # float error: 100 * 0.29 -> 29, not 28
    raise ValueError(f"{_P}kind: unknown {s.kind!r}")


def _compress(s: LengthSchedule) -> int:
    return s.period // 2 if s.compress_steps is None else s.compress_steps


def _fail(name: str, msg: str) -> None:
    raise ValueError(f"{_P}{name}: {msg}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = "".join(f"; did you mean '{c}'?" for c in difflib.get_close_matches(value, choices, n=1))
        _fail(name, f"unknown {value!r}{hint} (choices: {', '.join(choices)})")


def _limit_ok(name: str, value: int, base: int) -> None:
    if value < 1:
        _fail(name, f"must be >= 1, got {value}")
    if value > base:
        _fail(name, f"{value} exceeds rollout.max_new_tokens={base} (the generation buffer and loss "
              "normalizer are sized by it); raise rollout.max_new_tokens")


def validate_schedule(schedule: LengthSchedule, base: int) -> None:
    """Raise ValueError naming the field; fields irrelevant to ``kind`` are ignored."""
    s = schedule
    _choice("kind", s.kind, KINDS)
    for name in REQUIRED.get(s.kind, ()):
        if getattr(s, name) is None:
            _fail(name, f"required for kind {s.kind!r}")
    if s.kind == "staged":
        if not s.stages:
            _fail("stages", "staged needs at least one [from_step, limit] pair")
        for pair in s.stages:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(type(x) is int for x in pair)):
                _fail("stages", f"each stage must be [from_step, limit] (2 ints), got {pair!r}")
            if pair[0] < 1:
                _fail("stages", f"from_step must be >= 1 (steps are 1-based), got {pair[0]}")
            _limit_ok("stages", pair[1], base)
        for a, b in zip(s.stages, s.stages[1:]):
            if b[0] <= a[0]:
                _fail("stages", f"from_step must increase, got [{a[0]}, {b[0]}]")
    elif s.kind == "cyclic":
        _choice("shape", s.shape, SHAPES)
        _limit_ok("low", s.low, base)
        _limit_ok("high", high := base if s.high is None else s.high, base)
        if s.low > high:
            _fail("low", f"must be <= high, got low={s.low} > high={high}")
        if s.period < (min_period := 2 if s.shape == "stair" else 1):
            _fail("period", f"must be >= {min_period} for shape {s.shape!r}, got {s.period}")
        if s.shape == "stair" and not 0 < _compress(s) < s.period:
            _fail("compress_steps", f"must satisfy 0 < compress_steps < period={s.period}, "
                  f"got {_compress(s)}")
    elif s.kind == "decay":
        if not 0 < s.gamma <= 1:
            _fail("gamma", f"must satisfy 0 < gamma <= 1, got {s.gamma}")
        if s.every < 1:
            _fail("every", f"must be >= 1, got {s.every}")
        _limit_ok("start", b0 := base if s.start is None else s.start, base)
        _limit_ok("min_length", s.min_length, base)
        if s.min_length > b0:
            _fail("min_length", f"must be <= start={b0}, got {s.min_length}")


def describe(schedule: LengthSchedule, base: int, steps: int) -> str:
    """One line for logs, e.g. ``staged: 4000 (step 1) -> 3000 (step 101) -> 2000 (step 201)``."""
    s = schedule
    if s.kind == "cyclic":
        high = base if s.high is None else s.high
        if s.shape == "stair":
            return (f"cyclic stair: {s.low} for {_compress(s)} steps, then {high} for "
                    f"{s.period - _compress(s)} steps, period {s.period}")
        return f"cyclic cosine: {high} -> {s.low} -> {high} every {s.period} steps"
    lims = [length_limit(s, t, base) for t in range(1, max(steps, 1) + 1)]
    changes = [f"{v} (step {t})" for t, v in enumerate(lims, 1) if t == 1 or v != lims[t - 2]]
    if len(changes) > 8:
        changes = changes[:7] + [f"... ({len(changes) - 8} more)", changes[-1]]
    return f"{s.kind}: " + " -> ".join(changes)
