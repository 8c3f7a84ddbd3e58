"""PEAR (rewards/pear.py): phase-entropy penalty on hand-set entropies."""

from __future__ import annotations

import pytest

from rewards import PEAR, Context, RewardError, build_rewards
from rewards.base import Sample

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def S(correct, think=0.8, answer=0.3, mean=0.4, think_length=10):
    return Sample("p", 0, correct=correct, length=20, think_length=think_length,
                  answer_length=None if think_length is None else 9,
                  entropy_think=think, entropy_answer=answer, entropy_mean=mean)


def test_phase_penalty_hand_numbers():
    samples = [S(True), S(True, think=0.2, answer=0.5), S(True, think=1.8, answer=0.3), S(False)]
    # P = max(0, 0.8 - 0.3) = 0.5 -> 0.5 ; P = max(0, 0.2 - 0.5) = 0 -> 1 ; P = 1.5 -> 1 - 1.5 = -0.5 ;
    # wrong -> r_fmt = 0
    assert PEAR()(samples, CTX) == approx([0.5, 1.0, -0.5, 0.0])
    # alpha = 0.5: 0.8 - 0.15 = 0.65 -> 0.35 ; format_score for wrong answers
    assert PEAR(alpha=0.5, format_score=-0.1)(samples[:1] + samples[3:], CTX) == approx([0.35, -0.1])


def test_missing_think_delimiter_uses_mean_entropy():
    # no </think>: think_length None -> P = mean entropy over all tokens = 0.4 -> 0.6 (phase values ignored)
    s = S(True, think=None, answer=None, mean=0.4, think_length=None)
    assert PEAR()([s], CTX) == approx([0.6])
    s = S(True, think=5.0, answer=0.0, mean=0.4, think_length=None)
    assert PEAR()([s], CTX) == approx([0.6])


def test_cap_at_one():
    # P = 0 -> min(1, s - 0) with s = 1.5 is capped at 1
    assert PEAR(correct_score=1.5)([S(True, think=0.1, answer=0.5)], CTX) == [1.0]


def test_needs_and_missing_entropy_is_a_clear_error():
    assert PEAR.needs == frozenset({"entropy"})
    composed = build_rewards([{"name": "pear"}, {"name": "correctness"}])
    assert "entropy" in composed.needs
    bare = Sample("p", 0, correct=True, length=5, think_length=3, answer_length=1)
    with pytest.raises(ValueError, match=r"reward 'pear'.*entropy_think=None"):
        PEAR()([bare], CTX)
    with pytest.raises(RewardError, match="pear"):
        composed.score([bare], CTX)
    no_delim = Sample("p", 0, correct=False, length=5)   # even wrong answers must carry the facts
    with pytest.raises(ValueError, match="entropy_mean=None"):
        PEAR()([no_delim], CTX)
