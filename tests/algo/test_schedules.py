"""Max-length schedules (rl/algo/schedules.py) against hand-computed values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.algo.schedules import LengthSchedule, describe, length_limit, validate_schedule

BASE = 4000


def limits(s: LengthSchedule, steps, base: int = BASE) -> list[int]:
    validate_schedule(s, base)
    return [length_limit(s, t, base) for t in steps]


def test_constant_is_base():
    assert limits(LengthSchedule(), [1, 2, 100, 10_000]) == [BASE] * 4


def test_staged_thinkprune():
    s = LengthSchedule(kind="staged", stages=[[1, 4000], [101, 3000], [201, 2000]])
    assert limits(s, [1, 100, 101, 200, 201, 500]) == [4000, 4000, 3000, 3000, 2000, 2000]
    assert describe(s, BASE, 500) == "staged: 4000 (step 1) -> 3000 (step 101) -> 2000 (step 201)"


def test_staged_before_first_stage_is_base():
    s = LengthSchedule(kind="staged", stages=[[5, 1000]])
    assert limits(s, [1, 4, 5, 6]) == [BASE, BASE, 1000, 1000]


def test_cyclic_stair_compresses_first():
    s = LengthSchedule(kind="cyclic", low=1000, high=4000, period=10, compress_steps=4)
    assert limits(s, range(1, 12)) == [1000] * 4 + [4000] * 6 + [1000]
    assert "1000 for 4 steps" in describe(s, BASE, 100)


def test_cyclic_stair_defaults():
    s = LengthSchedule(kind="cyclic", low=1000, period=4)  # high = base, compress = period // 2
    assert limits(s, range(1, 6)) == [1000, 1000, BASE, BASE, 1000]


def test_cyclic_cosine():
    # length_limit is a pure formula (validate would reject low=0; see test below for low >= 1)
    s = LengthSchedule(kind="cyclic", shape="cosine", low=0, high=100, period=4)
    assert [length_limit(s, t, BASE) for t in range(1, 6)] == [100, 50, 0, 50, 100]
    s = LengthSchedule(kind="cyclic", shape="cosine", low=100, high=200, period=4)
    assert limits(s, range(1, 6)) == [200, 150, 100, 150, 200]
    s = LengthSchedule(kind="cyclic", shape="cosine", low=7, period=1)
    assert limits(s, [1, 2]) == [BASE] * 2


def test_decay_train_long_think_short():
    s = LengthSchedule(kind="decay", start=1000, gamma=0.5, every=10, min_length=200)
    assert limits(s, [1, 10, 11, 20, 21, 31, 1000]) == [1000, 1000, 500, 500, 250, 200, 200]
    assert describe(s, BASE, 1000) == (
        "decay: 1000 (step 1) -> 500 (step 11) -> 250 (step 21) -> 200 (step 31)"
    )


def test_decay_floors_and_defaults_to_base():
    s = LengthSchedule(kind="decay", gamma=0.9, every=1)  # B0 = base, min_length = 1
    assert limits(s, [1, 2, 3]) == [4000, 3600, 3240]
    # 100 * 0.29 == 28.999999999999996 in floats; the floor must still give 29
    s = LengthSchedule(kind="decay", start=100, gamma=0.29, every=1)
    assert limits(s, [2], base=100) == [29]
    s = LengthSchedule(kind="decay", start=999, gamma=0.5, every=1)
    assert limits(s, [2, 3], base=1000) == [499, 249]


def test_describe_truncates_many_changes():
    s = LengthSchedule(kind="decay", gamma=0.99, every=1)
    text = describe(s, BASE, 2000)
    assert text.startswith("decay: 4000 (step 1) -> 3960 (step 2) -> ")
    assert text.count(" -> ") == 8 and "more) -> 1 (step " in text


def test_step_must_be_one_based():
    with pytest.raises(ValueError, match="1-based"):
        length_limit(LengthSchedule(), 0, BASE)


def test_describe_constant_and_cosine():
    assert describe(LengthSchedule(), BASE, 10) == "constant: 4000 (step 1)"
    s = LengthSchedule(kind="cyclic", shape="cosine", low=1000, period=200)
    assert describe(s, BASE, 1000) == "cyclic cosine: 4000 -> 1000 -> 4000 every 200 steps"


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        (dict(kind="stagged"), ["kind: unknown 'stagged'; did you mean 'staged'?",
                                "(choices: constant, cyclic, decay, staged)"]),
        (dict(kind="cyclc"), ["did you mean 'cyclic'?"]),
        (dict(kind="zzz"), ["kind: unknown 'zzz' (choices:"]),
        (dict(kind="staged"), ["stages: staged needs at least one"]),
        (dict(kind="staged", stages=[[1, 4000], [1, 3000]]),
         ["stages: from_step must increase, got [1, 1]"]),
        (dict(kind="staged", stages=[[10, 4000], [5, 3000]]), ["from_step must increase, got [10, 5]"]),
        (dict(kind="staged", stages=[[1, 0]]), ["stages: must be >= 1, got 0"]),
        (dict(kind="staged", stages=[[0, 100]]), ["stages: from_step must be >= 1"]),
        (dict(kind="staged", stages=[[1, 4000, 5]]), ["stages: each stage must be [from_step, limit]"]),
        (dict(kind="staged", stages=[[1]]), ["2 ints"]),
        (dict(kind="staged", stages=[[1, 2.5]]), ["2 ints"]),
        (dict(kind="staged", stages=[[1, 5000]]), ["stages: 5000 exceeds rollout.max_new_tokens=4000",
                                                   "raise rollout.max_new_tokens"]),
        (dict(kind="cyclic", period=10), ["low: required for kind 'cyclic'"]),
        (dict(kind="cyclic", low=100), ["period: required for kind 'cyclic'"]),
        (dict(kind="cyclic", low=3000, high=2000, period=10), ["low: must be <= high"]),
        (dict(kind="cyclic", low=0, period=10), ["low: must be >= 1"]),
        (dict(kind="cyclic", low=100, high=5000, period=10), ["high: 5000 exceeds rollout.max_new_tokens"]),
        (dict(kind="cyclic", low=100, period=1), ["period: must be >= 2 for shape 'stair'"]),
        (dict(kind="cyclic", low=100, period=0, shape="cosine"), ["period: must be >= 1"]),
        (dict(kind="cyclic", low=100, period=10, compress_steps=0), ["compress_steps: must satisfy 0 <"]),
        (dict(kind="cyclic", low=100, period=10, compress_steps=10), ["compress_steps:", "got 10"]),
        (dict(kind="cyclic", low=100, period=10, shape="cosin"),
         ["shape: unknown 'cosin'; did you mean 'cosine'?"]),
        (dict(kind="decay", every=10), ["gamma: required for kind 'decay'"]),
        (dict(kind="decay", gamma=0.5), ["every: required for kind 'decay'"]),
        (dict(kind="decay", gamma=0.0, every=10), ["gamma: must satisfy 0 < gamma <= 1"]),
        (dict(kind="decay", gamma=1.5, every=10), ["gamma: must satisfy"]),
        (dict(kind="decay", gamma=0.5, every=0), ["every: must be >= 1"]),
        (dict(kind="decay", gamma=0.5, every=10, start=5000), ["start: 5000 exceeds rollout.max_new_tokens"]),
        (dict(kind="decay", gamma=0.5, every=10, min_length=0), ["min_length: must be >= 1"]),
        (dict(kind="decay", gamma=0.5, every=10, start=100, min_length=200),
         ["min_length: must be <= start=100"]),
    ],
)
def test_validation_errors(kwargs, needles):
    with pytest.raises(ValueError) as err:
        validate_schedule(LengthSchedule(**kwargs), BASE)
    msg = str(err.value)
    assert msg.startswith("rollout.length_schedule.")
    for needle in needles:
        assert needle in msg, msg


def test_irrelevant_fields_are_ignored():
    validate_schedule(LengthSchedule(kind="constant", low=-5, gamma=9.0, stages=[[3, 1]]), BASE)
    validate_schedule(LengthSchedule(kind="staged", stages=[[1, 10]], period=0, shape="x"), BASE)


# ----------------------------------------------------------------------------- property
limit_st = st.integers(1, BASE)


@st.composite
def schedules(draw) -> tuple[LengthSchedule, int, int]:
    kind = draw(st.sampled_from(["constant", "staged", "cyclic", "decay"]))
    if kind == "constant":
        return LengthSchedule(), BASE, BASE
    if kind == "staged":
        froms = sorted(draw(st.sets(st.integers(1, 500), min_size=1, max_size=5)))
        lims = draw(st.lists(limit_st, min_size=len(froms), max_size=len(froms)))
        lo = min(lims + ([BASE] if froms[0] > 1 else []))
        hi = max(lims + ([BASE] if froms[0] > 1 else []))
        return LengthSchedule(kind="staged", stages=[list(p) for p in zip(froms, lims)]), lo, hi
    if kind == "cyclic":
        low, high = sorted(draw(st.lists(limit_st, min_size=2, max_size=2)))
        shape = draw(st.sampled_from(["stair", "cosine"]))
        period = draw(st.integers(2 if shape == "stair" else 1, 50))
        compress = draw(st.none() | st.integers(1, period - 1)) if period > 1 else None
        return LengthSchedule(kind="cyclic", shape=shape, low=low, high=high, period=period,
                              compress_steps=compress), low, high
    start = draw(limit_st)
    min_length = draw(st.integers(1, start))
    gamma = draw(st.floats(0.01, 1.0, exclude_min=False))
    every = draw(st.integers(1, 50))
    return LengthSchedule(kind="decay", start=start, min_length=min_length, gamma=gamma,
                          every=every), min_length, start


@settings(max_examples=200, deadline=None)
@given(schedules(), st.integers(1, 5000))
def test_limit_within_configured_range(case, step):
    s, lo, hi = case
    validate_schedule(s, BASE)
    limit = length_limit(s, step, BASE)
    assert type(limit) is int
    assert 1 <= lo <= limit <= hi
