"""LASER (rewards/laser.py) against hand-computed tables."""

from __future__ import annotations

import pytest

from rewards import Context, Laser, build_reward
from rewards.base import Sample
from rewards.registry import RewardConfigError

CTX = Context(step=1, max_length=16384)


def S(correct, length, completion="A:3", group=0):
    return Sample("p", group, completion=completion, correct=correct, length=length)


def test_base_scores_and_step_reward():
    samples = [S(True, 100), S(True, 4096), S(True, 4097), S(False, 100), S(False, 100, "no answer here"),
               S(True, 100, "no answer here")]
    # +1+0.5 (<= 4096); +1+0.5 (boundary counts as <=); +1 (> L_T); -0.5 wrong; -1 no answer;
    # correct verdict but nothing extractable -> -1 (format check first, as in the released code)
    assert Laser()(samples, CTX) == [1.5, 1.5, 1.0, -0.5, -1.0, -1.0]


def test_modes():
    samples = [S(True, 100), S(True, 5000), S(False, 5000), S(False, 5000, "")]
    assert Laser(mode="reward")(samples, CTX) == [1.5, 1.0, -0.5, -1.0]
    assert Laser(mode="penalty")(samples, CTX) == [1.0, 0.5, -0.5, -1.0]   # 1 ; 1-0.5
    assert Laser(mode="hybrid")(samples, CTX) == [1.5, 0.5, -0.5, -1.0]    # 1+0.5 ; 1-0.5


def test_custom_target_alpha_and_scores():
    r = Laser(target_length=10, alpha=0.25, correct_score=2.0, wrong_score=0.0, no_answer_score=-3.0)
    samples = [S(True, 10), S(True, 11), S(False, 1), S(False, 1, "")]
    assert r(samples, CTX) == [2.25, 2.0, 0.0, -3.0]


def test_answer_is_read_after_the_delimiter_and_require_think():
    after = S(True, 10, "<think>scratch A:5</think>A:3")
    inside_only = S(True, 10, "<think>A:3</think>nothing")
    no_think = S(True, 10, "A:3")
    assert Laser()([after, inside_only, no_think], CTX) == [1.5, -1.0, 1.5]
    # require_think: a missing </think> counts as "no answer"
    assert Laser(require_think=True)([after, inside_only, no_think], CTX) == [1.5, -1.0, -1.0]
    with pytest.raises(ValueError, match="require_think"):
        Laser(require_think=True, delimiter=None)


def test_registry_and_bad_mode():
    name, r, _ = build_reward({"name": "laser", "target_length": 2048, "mode": "hybrid"})
    # 2000 <= 2048 -> +0.5 ; 3000 > 2048 -> -0.5
    assert r([S(True, 2000), S(True, 3000)], CTX) == [1.5, 0.5]
    with pytest.raises(RewardConfigError, match="mode"):
        build_reward({"name": "laser", "mode": "bonus"})
