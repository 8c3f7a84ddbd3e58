"""DAPO soft overlong punishment (rewards/dapo.py)."""

from __future__ import annotations

import pytest

from rewards import Context, DAPOOverlong, build_reward
from rewards.base import Sample

approx = lambda xs: pytest.approx(xs, abs=1e-12)  # noqa: E731


def S(length):
    return Sample("p", 0, length=length)


def test_published_setting():
    ctx = Context(max_length=20480)   # L_max = 20480, buffer 4096 -> penalty starts after 16384
    lengths = [1000, 16384, 16385, 18432, 20480, 25000]
    # 0 ; 0 ; -1/4096 ; -2048/4096 = -0.5 ; -1 ; beyond the limit -> -factor
    assert DAPOOverlong()([S(n) for n in lengths], ctx) == approx([0.0, 0.0, -1 / 4096, -0.5, -1.0, -1.0])
    assert DAPOOverlong(factor=2.0)([S(18432)], ctx) == approx([-1.0])


def test_limit_from_parameter_or_context():
    r = DAPOOverlong(max_length=100, buffer=20)
    # start = 80: L=90 -> -10/20
    assert r([S(90)], Context(max_length=5000)) == approx([-0.5])
    # buffer longer than the limit: cut to the limit (64): -L/64
    assert DAPOOverlong()([S(0), S(32), S(64)], Context(max_length=64)) == approx([0.0, -0.5, -1.0])
    with pytest.raises(ValueError, match="dapo_overlong"):
        DAPOOverlong()([S(1)], Context())
    assert build_reward({"name": "dapo_overlong", "buffer": 8})[1].buffer == 8
