"""e1 (rewards/e1.py): correct and within effort x the group's current mean length."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import Context, E1Effort, build_reward
from rewards.base import Sample
from rewards.e1 import effort_prompt, sample_effort

CTX = Context(step=1)


def S(correct, length, effort=None, group=0, think=None):
    meta = {} if effort is None else {"effort": effort}
    return Sample(f"p{group}", group, correct=correct, length=length, think_length=think, meta=meta)


def test_hand_computed_threshold_is_effort_times_group_mean():
    # lengths 40, 60, 80, 100: T_avg = 70; effort 0.75 -> 52.5; 1.0 -> 70
    lens = [40, 60, 80, 100]
    assert E1Effort()([S(True, n, 0.75) for n in lens], CTX) == [1.0, 0.0, 0.0, 0.0]
    assert E1Effort()([S(True, n, 1.0) for n in lens], CTX) == [1.0, 1.0, 0.0, 0.0]
    assert E1Effort()([S(True, n, 1.5) for n in lens], CTX) == [1.0, 1.0, 1.0, 1.0]   # 105
    assert E1Effort()([S(c, 40, 1.0) for c in (True, False)], CTX) == [1.0, 0.0]       # wrong: 0


def test_edges_single_sample_equal_lengths_zero_lengths():
    assert E1Effort()([S(True, 50, 1.0)], CTX) == [1.0]      # G = 1: T_avg = L, passes iff effort >= 1
    assert E1Effort()([S(True, 50, 0.99)], CTX) == [0.0]
    assert E1Effort()([S(True, 30, 0.5)] * 3, CTX) == [0.0] * 3   # all equal: L = T_avg > 0.5 T_avg
    assert E1Effort()([S(True, 0, 0.1), S(True, 0, 0.1)], CTX) == [1.0, 1.0]  # T_avg = 0, no division


def test_think_length_is_the_measure_when_present():
    g = [S(True, 100, 1.0, think=10), S(True, 100, 1.0, think=90)]  # think mean 50
    assert E1Effort()(g, CTX) == [1.0, 0.0]
    assert E1Effort(think_only=False)(g, CTX) == [1.0, 1.0]          # totals are equal


def test_groups_are_separate():
    batch = [S(True, 10, 1.0, 0), S(True, 30, 1.0, 0), S(True, 1000, 1.0, 1)]
    assert E1Effort()(batch, CTX) == [1.0, 0.0, 1.0]


def test_fixed_effort_fallback_and_errors():
    g = [S(True, 10), S(True, 30, effort=2.0)]  # T_avg 20; fixed 0.5 -> 10 for the first, meta 2.0 -> 40
    assert E1Effort(effort=0.5)(g, CTX) == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"meta\['effort'\]"):
        E1Effort()([S(True, 10)], CTX)
    with pytest.raises(ValueError, match="must be a number"):
        E1Effort()([Sample("p", 0, correct=True, length=3, meta={"effort": "high"})], CTX)
    with pytest.raises(Exception, match="effort"):
        build_reward({"name": "e1", "effort": 0})


def test_prompt_and_draw():
    assert effort_prompt("Q?  ", 0.5) == "Q?\n\nReasoning effort: 0.5"
    rng = random.Random(3)
    draws = [sample_effort(rng, 0.2, 0.4) for _ in range(50)]
    assert all(0.2 <= d <= 0.4 for d in draws) and len(set(draws)) > 5


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 500)), min_size=1, max_size=8),
       st.floats(0.05, 3.0), st.floats(0.05, 3.0))
def test_properties(rows, e1, e2):
    lo, hi = sorted((e1, e2))
    a = E1Effort()([S(c, n, lo) for c, n in rows], CTX)
    b = E1Effort()([S(c, n, hi) for c, n in rows], CTX)
    assert all(x in (0.0, 1.0) for x in a)
    assert all(x <= y for x, y in zip(a, b))                          # more effort never hurts
    assert all(x == 0.0 for (c, _), x in zip(rows, a) if not c)       # wrong -> 0
    mean = sum(n for _, n in rows) / len(rows)
    assert all((x == 1.0) == (c and n <= lo * mean) for (c, n), x in zip(rows, a))


def test_the_boundary_is_exact():
    """issue 24 (A5): effort 0.6 and a mean of 70/3 allow exactly 14 tokens; in floats 0.6 * (70/3) is
    13.999999999999998 and 14 was rejected. The comparison is now in rationals, the effort read as written."""
    from rewards.base import Context, Sample
    from rewards.e1 import E1Effort

    group = [Sample("q", 1, correct=True, length=n) for n in (14, 26, 30)]
    assert 0.6 * (70 / 3) < 14  # the float trap
    assert E1Effort(effort=0.6)(group, Context()) == [1.0, 0.0, 0.0]
    assert E1Effort(effort=0.59)(group, Context()) == [0.0, 0.0, 0.0]
