"""Kimi-1.5 length penalty (rewards/kimi.py) on hand-computed groups."""

from __future__ import annotations

import pytest

from rewards import Context, KimiLength, build_reward
from rewards.base import Sample
from rewards.kimi import kimi_lambdas

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def S(correct, length, group=0):
    return Sample(f"p{group}", group, correct=correct, length=length)


def test_lambdas():
    # L_min = 10, L_max = 50: 0.5 - (L-10)/40
    assert kimi_lambdas([10, 20, 30, 40, 50]) == approx([0.5, 0.25, 0.0, -0.25, -0.5])
    assert kimi_lambdas([7, 7, 7]) == [0.0, 0.0, 0.0]   # all equal -> 0
    assert kimi_lambdas([3]) == [0.0]                   # G = 1


def test_correct_and_wrong():
    g = [S(True, 10), S(True, 20), S(True, 30), S(False, 40), S(False, 10)]
    # L_min = 10, L_max = 40: lambda = 0.5 - (L-10)/30 -> 0.5, 0.1667, -0.1667, -0.5, 0.5
    # correct: 1 + 0.4*lambda ; wrong: 0 + 0.4*min(0, lambda)
    assert KimiLength()(g, CTX) == approx([1.2, 1 + 0.4 / 6, 1 - 0.4 / 6, -0.2, 0.0])


def test_all_lengths_equal_and_single_completion():
    g = [S(True, 5), S(False, 5), S(True, 5)]
    assert KimiLength()(g, CTX) == [1.0, 0.0, 1.0]
    assert KimiLength()([S(True, 100)], CTX) == [1.0]


def test_groups_are_independent_and_parameters():
    g = [S(True, 10, 0), S(True, 30, 0), S(True, 100, 1), S(False, 300, 1)]
    # group 0: lambda 0.5, -0.5 -> w=1: 1.5, 0.5 ; group 1: 0.5, -0.5 -> 1.5, 0 + min(0,-0.5) = -0.5
    assert KimiLength(w=1.0)(g, CTX) == approx([1.5, 0.5, 1.5, -0.5])
    # length term alone
    assert KimiLength(correct_reward=0, wrong_reward=0)(g, CTX) == approx([0.2, -0.2, 0.2, -0.2])
    assert build_reward("kimi_length")[1].w == 0.4
