"""ARLCP (rewards/arlcp.py): keyword counts, group statistics over correct completions, adaptive w1/w2."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import ARLCP, Context, build_reward
from rewards.arlcp import count_keywords
from rewards.base import Sample

CTX = Context(step=1, max_length=1000)
sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731


def S(correct, length, text="", group=0):
    return Sample(f"p{group}", group, completion=text, correct=correct, length=length)


def test_keyword_count_whole_words_any_case_longest_phrase_once():
    assert count_keywords("WAIT wait Wait waiting awaits") == 3
    assert count_keywords("double-check, then check; Hold on. hold") == 3  # double-check | check | hold on
    assert count_keywords("Alternatively, an alternative; alternatives") == 2
    assert count_keywords("nothing to see here") == 0
    assert count_keywords("oh well, think again", keywords=["think again"]) == 1


def test_hand_computed_group():
    # correct: c = 1, 4 (mu 2.5, sd 2.1213), L = 100, 300 (mu 200, sd 141.42); z = -/+ 1/sqrt(2)
    batch = [S(True, 100, "Wait."), S(True, 300, "Wait, hmm. But check it."), S(False, 50, "wait wait")]
    z = 1 / math.sqrt(2)
    expect = [1 - 0.05 * sig(-z) - 0.15 * sig(-z), 1 - 0.05 * sig(z) - 0.15 * sig(z), 0.0]
    assert ARLCP()(batch, CTX) == pytest.approx(expect, abs=1e-5)


def test_single_correct_completion_has_sigma_one_and_scores_0_9():
    for text in ("", "wait " * 50, "hmm " * 100):  # w1 = 0.05 / 0.10 / 0.15: always 1 - 0.2 / 2
        assert ARLCP()([S(True, 777, text), S(False, 5)], CTX) == pytest.approx([0.9, 0.0])


def test_identical_correct_completions_sigma_zero():
    assert ARLCP()([S(True, 40, "wait"), S(True, 40, "wait")], CTX) == pytest.approx([0.9, 0.9])


def test_adaptive_weights_by_own_count():
    r = ARLCP()
    assert [r.w1(c) for c in (0, 40, 41, 80, 81, 500)] == [0.05, 0.05, 0.10, 0.10, 0.15, 0.15]
    # c = 41 and 100, equal lengths (z_L = 0): z_c = -/+ 1/sqrt(2)
    batch = [S(True, 64, "wait " * 41), S(True, 64, "wait " * 100)]
    z = 1 / math.sqrt(2)
    assert r(batch, CTX) == pytest.approx([1 - 0.10 * sig(-z) - 0.10 * 0.5, 1 - 0.15 * sig(z) - 0.05 * 0.5], abs=1e-5)


def test_groups_are_separate_and_wrong_is_zero():
    batch = [S(True, 10, group=0), S(True, 1000, group=1), S(False, 3, group=1), S(False, 3, group=2)]
    assert ARLCP()(batch, CTX) == pytest.approx([0.9, 0.9, 0.0, 0.0])


def test_keyword_list_is_a_parameter_and_checked():
    _, r, _ = build_reward({"name": "arlcp", "keywords": ["hmm"], "w1_values": [0.2, 0.2, 0.2]})
    batch = [S(True, 50, "wait wait"), S(True, 50, "hmm")]  # only "hmm" counts: c = 0, 1; w2 = 0
    z = 0.5 / math.sqrt(0.5)
    assert r(batch, CTX) == pytest.approx([1 - 0.2 * sig(-z), 1 - 0.2 * sig(z)], abs=1e-5)
    for bad in ({"keywords": []}, {"keywords": "wait"}, {"w1_values": [0.1]}, {"thresholds": [80, 40]}):
        with pytest.raises(Exception, match="arlcp"):
            build_reward({"name": "arlcp", **bad})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4000), st.integers(0, 120)), min_size=1, max_size=10))
def test_properties(rows):
    batch = [S(c, n, "wait " * k) for c, n, k in rows]
    out = ARLCP()(batch, CTX)
    for (c, n, k), r in zip(rows, out):
        assert r == 0.0 if not c else 0.8 <= r <= 1.0  # 1 - w1 s1 - w2 s2 with w1 + w2 = 0.2
    # order does not matter
    assert ARLCP()(batch[::-1], CTX) == pytest.approx(out[::-1], abs=1e-12)
    # among correct ones with the same count, longer never scores higher
    right = sorted((n, r) for (c, n, k), r in zip(rows, out) if c and k == rows[0][2])
    assert all(a[1] >= b[1] - 1e-12 for a, b in zip(right, right[1:]))
