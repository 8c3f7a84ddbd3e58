"""AdaCtrl (rewards/adactrl.py): difficulty tags and the easy-answer length term."""

from __future__ import annotations

import math

import pytest

from rewards import AdaCtrl, Context, build_reward
from rewards.adactrl import find_tag
from rewards.base import Sample

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def S(correct, length, text, group=0):
    return Sample(f"p{group}", group, correct=correct, length=length, completion=text)


def test_easy_group():
    # 3 of 4 correct: 0.75 > 0.625 -> easy; longest in the group = 100
    g = [S(True, 25, "[Easy] A:1"), S(True, 100, "[Hard] A:1"), S(True, 50, "A:1"), S(False, 100, "[Easy] A:2")]
    assert AdaCtrl()(g, CTX) == approx([
        1 + 0.5 * (1 + math.cos(math.pi / 4)) / 2 + 0.5,   # correct [Easy]: length term 0.8536, tag +1 -> 1.9268
        1.0,                                               # [Hard] mismatch: tag 0, no length term
        1 - 0.5,                                           # no tag: -1
        0.5,                                               # wrong but the tag matches: +1 * 0.5
    ])


def test_hard_group_and_threshold():
    # 5 of 8 = 0.625, not > 0.625 -> hard
    g = [S(True, 100, "[Easy] A:1")] + [S(True, 50, "[Hard] A:1")] * 4 + [S(False, 10, "[Hard]")] * 3
    out = AdaCtrl()(g, CTX)
    # correct [Easy] in a hard group: length term (1 + cos(pi * 100/100))/2 = 0, tag mismatch 0 -> 1
    assert out[0] == pytest.approx(1.0)
    assert out[1:5] == approx([1.5] * 4) and out[5:] == approx([0.5] * 3)


def test_tag_detection_and_zero_lengths():
    assert find_tag("[Hard] then [Easy]", ("[Easy]", "[Hard]")) == "[Hard]"
    assert find_tag("  [Easy] x", ("[Easy]", "[Hard]"), at_start=True) == "[Easy]"
    assert find_tag("x [Easy]", ("[Easy]", "[Hard]"), at_start=True) is None
    # all lengths 0: L_max,group = 0 -> length term 1 ; G = 1 correct -> easy
    assert AdaCtrl()([S(True, 0, "[Easy]")], CTX) == approx([1 + 0.5 + 0.5])
    assert AdaCtrl(at_start=True)([S(True, 0, "ok [Easy]")], CTX) == approx([1 - 0.5])
    _, r, _ = build_reward({"name": "adactrl", "easy_tag": "<easy>", "hard_tag": "<hard>"})
    assert r([S(False, 3, "<hard> A:2")], CTX) == approx([0.5])   # G = 1 wrong -> hard; tag matches
