"""DA-DLER (rewards/da_dler.py) against hand-computed tables."""

from __future__ import annotations

import pytest

from rewards import Context, DADLER, build_reward
from rewards.base import Sample
from rewards.registry import RewardConfigError

CTX = Context(step=1, max_length=8000)


def S(correct, length, group=0, pid="p", truncated=False):
    return Sample(prompt_id=pid, group=group, correct=correct, length=length, truncated=truncated)


def test_ratio_at_threshold_uses_short_limit():
    # 2 of 4 correct: ratio 0.5 >= 0.5 -> limit 2000
    g = [S(True, 1999), S(True, 2001), S(False, 100), S(False, 100)]
    assert DADLER()(g, CTX) == [1.0, 0.0, 0.0, 0.0]
    assert DADLER().limits(g) == [2000] * 4


def test_ratio_below_threshold_uses_long_limit():
    # 1 of 4 correct: ratio 0.25 < 0.5 -> limit 4000; L = 4000 is within (<=)
    g = [S(True, 4000), S(False, 100), S(False, 100), S(False, 100)]
    assert DADLER()(g, CTX) == [1.0, 0.0, 0.0, 0.0]
    g[0] = S(True, 4001)
    assert DADLER()(g, CTX) == [0.0, 0.0, 0.0, 0.0]


def test_groups_get_their_own_limit_and_truncation_zeroes():
    easy = [S(True, 2500, 0, "e"), S(True, 1000, 0, "e"), S(True, 1500, 0, "e", truncated=True)]
    hard = [S(True, 2500, 1, "h"), S(False, 10, 1, "h"), S(False, 10, 1, "h")]
    # easy: ratio 3/3 -> 2000: 2500 > 2000 -> 0; 1000 -> 1; truncated -> 0
    # hard: ratio 1/3 -> 4000: 2500 -> 1; wrong -> 0
    assert DADLER()(easy + hard, CTX) == [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_parameters_and_single_completion_group():
    r = DADLER(short_limit=10, long_limit=20, threshold=0.75, correct_reward=2.0)
    # G=1 correct: ratio 1 >= 0.75 -> limit 10; 12 > 10 -> 0;  G=1 wrong: 0
    assert r([S(True, 12, 0, "a"), S(False, 5, 1, "b")], CTX) == [0.0, 0.0]
    # 3 of 4: 0.75 >= 0.75 -> 10 tokens: 10 -> 2.0
    g = [S(True, 10), S(True, 11), S(True, 3), S(False, 3)]
    assert r(g, CTX) == [2.0, 0.0, 2.0, 0.0]
    # 2 of 4: 0.5 < 0.75 -> 20 tokens
    g = [S(True, 10), S(True, 20), S(False, 3), S(False, 3)]
    assert r(g, CTX) == [2.0, 2.0, 0.0, 0.0]


def test_verifier_fallback_and_registry():
    s = [Sample("p", 0, completion="<think>..</think>\\boxed{4}", answer="4", length=50),
         Sample("p", 0, completion="<think>..</think>\\boxed{5}", answer="4", length=50)]
    name, r, w = build_reward({"name": "da_dler", "short_limit": 40})
    # ratio 1/2 -> short limit 40; both longer -> 0
    assert name == "da_dler" and r(s, CTX) == [0.0, 0.0]
    assert build_reward({"name": "da_dler"})[1](s, CTX) == [1.0, 0.0]
    with pytest.raises(RewardConfigError, match="short_limt"):
        build_reward({"name": "da_dler", "short_limt": 3})
    with pytest.raises(RewardConfigError, match="short_limit"):
        build_reward({"name": "da_dler", "short_limit": -1})
