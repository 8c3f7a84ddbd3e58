"""HAPO (rewards/hapo.py): cosine and linear rewards, history semantics, state."""

from __future__ import annotations

import json
import math

import pytest

from rewards import HAPO, Context, build_reward
from rewards.base import Sample
from rewards.hapo import hapo_cosine, hapo_linear, merge_state

CTX = Context(step=1, max_length=1000)
approx = lambda xs: pytest.approx(xs, abs=1e-6)  # noqa: E731


def S(correct, length, pid="p", group=0):
    return Sample(pid, group, correct=correct, length=length)


def with_history(h, **kw):
    r = HAPO(**kw)
    r.load_state_dict(h)
    return r


def test_no_history_yet_gives_plain_correctness():
    batch = [S(True, 10), S(False, 10), S(True, 999)]
    assert HAPO()(batch, CTX) == [1.0, 0.0, 1.0]                  # cosine: r = 0 without history
    assert HAPO(variant="linear")(batch, CTX) == [1.0, 0.0, 1.0]  # linear: r = 0 too (documented choice)
    assert hapo_cosine(10, None, True) == hapo_linear(10, None, False) == 0.0


def test_cosine_hand_numbers():
    r = with_history({"p": 100})
    batch = [S(True, 50), S(True, 100), S(True, 150), S(True, 250), S(False, 50), S(False, 150), S(False, 200)]
    assert r(batch, CTX) == approx([
        1 + math.cos(math.pi / 4),   # L=50:  cos(pi/2 * 0.5) = 0.7071 -> 1.7071
        1.0,                         # L=100: cos(pi/2) = 0
        1 - 0.7,                     # L=150: cos(3pi/4) = -0.7071 -> floored at -0.7
        1 - 0.7,                     # L=250 >= 2h: -1 -> floored at -0.7
        0.0,                         # wrong L=50: min(0.7071, 0) = 0
        -math.cos(math.pi / 4),      # wrong L=150: -0.7071
        -1.0,                        # wrong L=200 = 2h: -1
    ])
    assert [round(x, 4) for x in r(batch[:1], CTX)] == [1.7071]


def test_linear_hand_numbers():
    r = with_history({"p": 100}, variant="linear")   # tolerance 0.1 -> band [100, 110)
    batch = [S(True, 20), S(True, 100), S(True, 109), S(True, 130), S(True, 300),
             S(False, 50), S(False, 110), S(False, 160), S(False, 500)]
    assert r(batch, CTX) == approx([
        1.8,    # 1 + (1 - 20/100)
        1.0,    # in the band
        1.0,    # in the band
        0.8,    # 1 - (130 - 110)/100
        0.3,    # 1 + max(-0.7, -1.9)
        0.0,    # wrong, 50 < 110
        0.0,    # wrong, -(110 - 110)/100 = 0
        -0.5,   # -(160 - 110)/100
        -1.0,   # max(-1, -3.9)
    ])


def test_weight_and_floors():
    r = with_history({"p": 100}, w=0.5, correct_floor=-0.5)
    # 1 + 0.5 * cos(pi/4) = 1.35355 ; 1 + 0.5 * max(-1, -0.5) = 0.75
    assert r([S(True, 50), S(True, 300)], CTX) == approx([1 + 0.5 * math.cos(math.pi / 4), 0.75])


def test_scored_with_history_from_before_the_batch():
    r = HAPO()
    batch = [S(True, 100), S(True, 60), S(False, 10)]
    assert r(batch, CTX) == [1.0, 1.0, 0.0]        # no history yet
    assert r.state_dict() == {}                     # scoring never touches the history
    r.update(batch, CTX)
    assert r.state_dict() == {"p": 60}              # shortest *correct* (the wrong 10 does not count)
    # same batch again, h = 60: L=100: cos(pi/2 * 100/60) = -0.866 -> -0.7 -> 0.3 ; L=60: cos(pi/2) = 0 ;
    # wrong L=10: cos(pi/12) > 0 -> min(., 0) = 0
    assert r(batch, CTX) == approx([0.3, 1.0, 0.0])
    r.update([S(True, 80), S(True, 30, pid="q", group=1), S(False, 5, pid="r", group=2)], CTX)
    assert r.state_dict() == {"p": 60, "q": 30}     # min(60, 80) = 60; q new; r has no correct answer


def test_state_round_trip_and_merge():
    r = HAPO(variant="linear")
    r.update([S(True, 40), S(True, 70, "q", 1)], CTX)
    state = json.loads(json.dumps(r.state_dict()))
    fresh = HAPO(variant="linear")
    fresh.load_state_dict(state)
    batch = [S(True, 20), S(False, 100, "q", 1)]
    assert fresh(batch, CTX) == r(batch, CTX) == approx([1.5, -23 / 70])  # 1 + (1-20/40); -(100-77)/70 = -0.3286
    assert merge_state({"p": 10, "q": 7}, {"p": 4, "r": 9}) == {"p": 4, "q": 7, "r": 9}
    assert HAPO.merge_state({"p": 1}, {"p": 2}) == {"p": 1}
    with pytest.raises(ValueError, match="hapo"):
        fresh.load_state_dict({"p": "long"})


def test_zero_length_history_uses_one_token():
    r = with_history({"p": 0})
    # h = 0 is read as 1 token: L=0 -> cos(0) = 1 -> 2 ; L=5 >= 2 -> -1 -> -0.7 -> 0.3
    assert r([S(True, 0), S(True, 5)], CTX) == approx([2.0, 0.3])


def test_registry():
    _, r, _ = build_reward({"name": "hapo", "variant": "linear", "tolerance": 0.2})
    assert r.variant == "linear" and r.tolerance == 0.2
    with pytest.raises(Exception, match="variant"):
        build_reward({"name": "hapo", "variant": "quadratic"})
