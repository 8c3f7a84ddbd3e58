"""CEEH (rewards/ceeh.py): running accuracy / length histories, hard prompts, length term."""

from __future__ import annotations

import json

import pytest

from rewards import CEEH, Context, build_reward
from rewards.base import Sample

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def S(correct, length, pid="p", group=0):
    return Sample(pid, group, correct=correct, length=length)


def test_histories_and_scoring_over_three_steps():
    r = CEEH()
    b1 = [S(True, 100), S(True, 200), S(False, 50), S(False, 50), S(False, 10, "q", 1), S(False, 10, "q", 1)]
    assert r(b1, CTX) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]       # no history: no length term
    assert r.state_dict() == {"acc": {}, "length": {}}         # scoring never updates
    r.update(b1, CTX)
    # first observations set the histories: Acc_h(p) = 0.5, L_p = 100; Acc_h(q) = 0, q has no correct
    assert r.state_dict() == {"acc": {"p": 0.5, "q": 0.0}, "length": {"p": 100.0}}
    # mean Acc_h = 0.25: q (0 < 0.25) is hard, p is not
    assert r.hard_prompts() == {"q"} and r.is_hard("q") and not r.is_hard("p") and not r.is_hard("new")
    assert r.hard_mask(b1) == [False] * 4 + [True] * 2

    b2 = [S(True, 50), S(True, 300), S(True, 120), S(False, 10)]
    # Acc = 0.75 > Acc_h = 0.5 -> length term with L_x = 100, beta = 0.1:
    # 50: (50-100)/100 = -0.5 -> 1 + 0.05 ; 300: 2 -> clip 1 -> 0.9 ; 120: 0.2 -> 0.98 ; wrong 0
    assert r(b2, CTX) == approx([1.05, 0.9, 0.98, 0.0])
    r.update(b2, CTX)
    # Acc up: eta 0.2 -> 0.8*0.5 + 0.2*0.75 = 0.55 ; shortest 50 < 100: eta 0.2 -> 0.8*100 + 0.2*50 = 90
    assert r.acc["p"] == pytest.approx(0.55) and r.length["p"] == pytest.approx(90.0)

    b3 = [S(True, 200), S(False, 1), S(False, 1), S(False, 1)]
    # Acc = 0.25 < 0.55: no length term
    assert r(b3, CTX) == [1.0, 0.0, 0.0, 0.0]
    r.update(b3, CTX)
    # Acc down: eta 0.05 -> 0.95*0.55 + 0.05*0.25 = 0.535 ; 200 > 90: eta 0.05 -> 0.95*90 + 0.05*200 = 95.5
    assert r.acc["p"] == pytest.approx(0.535) and r.length["p"] == pytest.approx(95.5)


def test_clip_low_and_equal_accuracy():
    r = CEEH()
    r.load_state_dict({"acc": {"p": 0.5}, "length": {"p": 100}})
    # L=5: (5-100)/100 = -0.95 -> clip -0.9 -> 1 + 0.09
    assert r([S(True, 5), S(True, 5), S(True, 5), S(False, 1)], CTX) == approx([1.09, 1.09, 1.09, 0.0])
    equal = [S(True, 200), S(False, 1)]   # Acc = 0.5 == Acc_h: strict -> no term
    assert r(equal, CTX) == [1.0, 0.0]
    loose = CEEH(strict=False)
    loose.load_state_dict(r.state_dict())
    assert loose(equal, CTX) == approx([0.9, 0.0])   # (200-100)/100 = 1 -> 1 - 0.1


def test_state_round_trip():
    r = CEEH(beta=0.2)
    r.update([S(True, 40), S(False, 1), S(True, 9, "q", 1)], CTX)
    state = json.loads(json.dumps(r.state_dict()))
    fresh = CEEH(beta=0.2)
    fresh.load_state_dict(state)
    batch = [S(True, 60), S(True, 30)]   # Acc 1 > 0.5, L_x = 40: 60 -> 0.5 -> 1 - 0.1 ; 30 -> -0.25 -> 1.05
    assert fresh(batch, CTX) == r(batch, CTX) == approx([0.9, 1.05])
    with pytest.raises(ValueError, match="ceeh"):
        fresh.load_state_dict({"acc": {"p": 0.5}, "lengths": {}})


def test_registry_params():
    _, r, _ = build_reward({"name": "ceeh", "beta": 0.05, "acc_eta_up": 0.3})
    assert r.beta == 0.05 and r.acc_eta_up == 0.3
