"""Cosine-scaled reward (rewards/cosine.py) against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rewards import Context, CosineScaled, build_reward
from rewards.base import Sample
from rewards.cosine import cos_fn

CTX = Context(step=1, max_length=1000)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731
C45 = math.cos(math.pi / 4)   # 0.70711


def S(correct, length, truncated=False):
    return Sample("p", 0, correct=correct, length=length, truncated=truncated)


def test_cos_fn():
    assert cos_fn(0, 10, 2.0, 1.0) == 2.0 and cos_fn(10, 10, 2.0, 1.0) == 1.0
    assert cos_fn(5, 10, 2.0, 1.0) == pytest.approx(1.5)
    assert cos_fn(20, 10, 2.0, 1.0) == 1.0   # t clipped to T


def test_published_defaults_hand_numbers():
    samples = [S(True, 0), S(True, 250), S(True, 500), S(True, 750),
               S(False, 0), S(False, 500), S(False, 750), S(True, 1000), S(False, 100, truncated=True)]
    assert CosineScaled()(samples, CTX) == approx([
        2.0,                        # 1 + 1*(1+cos 0)/2
        1 + (1 + C45) / 2,          # 1.85355
        1.5,                        # 1 + (1+cos pi/2)/2
        1 + (1 - C45) / 2,          # 1.14645
        -10.0,                      # 0 + (-10)(1+1)/2
        -5.0,                       # 0 + (-10)(1+0)/2
        -10 * (1 - C45) / 2,        # -1.46447
        -10.0,                      # L = L_max: exceed
        -10.0,                      # truncated: exceed
    ])


def test_max_length_parameter_and_missing_limit():
    r = CosineScaled(max_length=100, r0_correct=1.0, rT_correct=0.5, r_exceed=-1.0)
    # T = 100 overrides ctx: L=50 -> 0.5 + 0.5*(1+0)/2 = 0.75 ; L=100 -> exceed -1
    assert r([S(True, 50), S(True, 100)], CTX) == approx([0.75, -1.0])
    with pytest.raises(ValueError, match="cosine.*max_length"):
        CosineScaled()([S(True, 5)], Context())
    assert build_reward({"name": "cosine", "r_exceed": -5})[1].r_exceed == -5.0
