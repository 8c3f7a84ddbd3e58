"""CEEH (rewards/ceeh.py): running accuracy / length histories, hard prompts, length term.

Hand-computed numbers for the release's rules (QinwenLuo/CEEH, trainer/edlao_trainer.py), each
beside what laconic computed before (its former rules are now the options ``length_term="clipped"``,
``strict=True``, ``acc_reset=False``, ``hard_rule="history"``).
"""

from __future__ import annotations

import json

import pytest

from rewards import CEEH, Context, build_reward
from rewards.base import Sample

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731
FORMER = dict(length_term="clipped", strict=True, acc_reset=False, hard_rule="history")


def S(correct, length, pid="p", group=0):
    return Sample(pid, group, correct=correct, length=length)


def group(pid, g, n_correct, n=8, length=10):
    return [S(i < n_correct, length, pid, g) for i in range(n)]


def test_histories_and_scoring_over_three_steps():
    r = CEEH()
    b1 = [S(True, 100), S(True, 200), S(False, 50), S(False, 50), S(False, 10, "q", 1), S(False, 10, "q", 1)]
    assert r(b1, CTX) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]       # no history: no length term
    assert r.state_dict() == {"acc": {}, "length": {}}         # scoring never updates
    r.update(b1, CTX)
    # first observations set the histories: Acc_h(p) = 0.5, L_p = 100; Acc_h(q) = 0, q has no correct
    assert r.state_dict() == {"acc": {"p": 0.5, "q": 0.0}, "length": {"p": 100.0}}
    # mean over the seen prompts (num_prompts unset) = 0.25: q's Acc 0 <= 0.25 is hard, p's 0.5 is not
    assert r.mean_accuracy() == 0.25 and r.hard_mask(b1) == [False] * 4 + [True] * 2

    b2 = [S(True, 50), S(True, 300), S(True, 120), S(False, 10), S(True, 40, "q", 1), S(False, 40, "q", 1)]
    # p: Acc = 0.75 >= 0.5 -> 1 + max(-0.9, 0.1 (100 - L)/100): 50 -> 1.05, 300 -> 0.8, 120 -> 0.98
    # q: L_q unset -> no term
    assert r(b2, CTX) == approx([1.05, 0.8, 0.98, 0.0, 1.0, 0.0])
    r.update(b2, CTX)
    # p: Acc up, eta 0.2 -> 0.8*0.5 + 0.2*0.75 = 0.55 ; shortest 50 < 100: 0.8*100 + 0.2*50 = 90
    # q: Acc_h 0 <= 0 -> restarts at 0.5 (before: 0.8*0 + 0.2*0.5 = 0.1) ; L_q first = 40
    assert r.acc == approx({"p": 0.55, "q": 0.5}) and r.length == approx({"p": 90.0, "q": 40.0})

    b3 = [S(True, 200), S(False, 1), S(False, 1), S(False, 1)]
    assert r(b3, CTX) == [1.0, 0.0, 0.0, 0.0]                  # Acc = 0.25 < 0.55: no length term
    r.update(b3, CTX)
    # Acc down: eta 0.05 -> 0.95*0.55 + 0.05*0.25 = 0.535 ; 200 > 90: 0.95*90 + 0.05*200 = 95.5
    assert r.acc["p"] == pytest.approx(0.535) and r.length["p"] == pytest.approx(95.5)


# ---------------------------------------------------------------- item 1: the length term

LX100 = {"acc": {"p": 0.5}, "length": {"p": 100}}


@pytest.mark.parametrize("length,release,former", [
    (300, 0.8, 0.9),      # release 1 + max(-0.9, 0.1*(100-300)/100) = 1 - 0.2 ; before 1 - 0.1*clip(2, -0.9, 1) = 0.9
    (5, 1.095, 1.09),     # release 1 + 0.1*0.95 ; before 1 - 0.1*clip(-0.95, -0.9, 1) = 1 + 0.09
    (50, 1.05, 1.05),     # inside both clips: 1 + 0.1*0.5
    (1100, 0.1, 0.9),     # release 0.1*(-10) = -1 -> floor -0.9 ; before clip at 1 -> 1 - 0.1
    (0, 1.1, 1.09),       # release: bonus at most beta ; before: clip_low -0.9
])
def test_length_term_release_vs_former(length, release, former):
    batch = [S(True, length), S(True, length), S(True, length), S(False, 1)]   # Acc = 0.75 >= 0.5
    new, old = CEEH(), CEEH(**FORMER)
    new.load_state_dict(LX100)
    old.load_state_dict(LX100)
    assert new(batch, CTX) == approx([release] * 3 + [0.0])
    assert old(batch, CTX) == approx([former] * 3 + [0.0])


def test_length_term_at_equal_accuracy_and_unset_reference():
    r = CEEH()
    r.load_state_dict(LX100)
    equal = [S(True, 200), S(False, 1)]   # Acc = 0.5 == Acc_h: the release's test is >= (term applies)
    assert r(equal, CTX) == approx([0.9, 0.0])          # 1 + 0.1*(100-200)/100 ; before (strict): 1.0
    assert CEEH()(equal, CTX) == [1.0, 0.0]             # no history: no term
    strict = CEEH(strict=True)
    strict.load_state_dict(LX100)
    assert strict(equal, CTX) == [1.0, 0.0]
    assert r([S(True, 50), S(True, 50)], CTX) == approx([1.05, 1.05])    # Acc 1 >= 0.5
    assert r([S(True, 50), S(False, 1), S(False, 1), S(False, 1)], CTX) == [1.0, 0.0, 0.0, 0.0]  # 0.25 < 0.5
    zero = CEEH()
    zero.load_state_dict({"acc": {"p": 0.5}, "length": {"p": 0}})   # L_x = 0 is unset: no term
    assert zero(equal, CTX) == [1.0, 0.0]
    zero.update([S(True, 30), S(True, 20)], CTX)                     # ... and the next shortest sets it
    assert zero.length["p"] == 20.0


# ---------------------------------------------------------------- item 2: the accuracy reset

def test_accuracy_history_restarts_while_not_positive():
    new, old = CEEH(), CEEH(acc_reset=False)
    for r in (new, old):
        r.update(group("p", 0, 0), CTX)                 # first sight, all wrong: Acc_h = 0 for both
    assert new.acc == old.acc == {"p": 0.0}
    for r in (new, old):
        r.update(group("p", 0, 4), CTX)                 # Acc = 0.5
    # release: Acc_h <= 0 -> replaced by 0.5 ; before: EMA up 0.8*0 + 0.2*0.5 = 0.1
    assert new.acc["p"] == 0.5 and old.acc["p"] == pytest.approx(0.1)
    # the length term then compares with 0.5 vs 0.1: a group at Acc 0.25 (2/8) with L_x = 10
    b = group("p", 0, 2)
    assert new(b, CTX)[:2] == [1.0, 1.0]                # 0.25 < 0.5: no term
    assert old(b, CTX)[:2] == [1.0, 1.0]                # 0.25 > 0.1 but L = L_x = 10: term 0 (clipped form)
    b = [S(True, 5, "p")] + [S(False, 5, "p")] * 3      # Acc 0.25, L = 5 vs L_x = 10
    assert new(b, CTX)[0] == 1.0                        # no term
    assert old(b, CTX)[0] == pytest.approx(1.05)        # 1 - 0.1*clip(-0.5) = 1.05
    # a positive history is never reset: Acc 0 -> EMA down 0.95*0.5 + 0.05*0 = 0.475
    new.update(group("p", 0, 0), CTX)
    assert new.acc["p"] == pytest.approx(0.475)


# ---------------------------------------------------------------- item 3: "hard"

SEEN4 = {"acc": {"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.25}, "length": {}}


def test_hard_compares_this_steps_accuracy_with_the_dataset_mean():
    batch = group("a", 0, 4) + group("d", 1, 6) + group("c", 2, 5)   # Acc 0.5, 0.75, 0.625
    new, old = CEEH(num_prompts=4), CEEH(**FORMER)
    new.load_state_dict(SEEN4)
    old.load_state_dict(SEEN4)
    assert new.mean_accuracy() == old.mean_accuracy() == 0.625      # all 4 seen: (1+0.75+0.5+0.25)/4
    # release: Acc <= 0.625 -> a (0.5) hard, d (0.75) not, c (0.625, a tie) hard
    assert new.hard_mask(batch) == [True] * 8 + [False] * 8 + [True] * 8
    # before: Acc_h < 0.625 -> a (1.0) not, d (0.25) hard, c (0.5) hard
    assert old.hard_mask(batch) == [False] * 8 + [True] * 8 + [True] * 8
    assert new.state_dict() == SEEN4                                 # judging changes nothing


def test_unseen_prompts_count_minus_one():
    state = {"acc": {"a": 1.0, "b": 0.75}, "length": {}}
    batch = group("a", 0, 8) + group("b", 1, 0) + group("new", 2, 0)    # Acc 1, 0, 0
    sized, unsized, old = CEEH(num_prompts=4), CEEH(), CEEH(**FORMER)
    for r in (sized, unsized, old):
        r.load_state_dict(state)
    # release, 4 prompts of which 2 unseen: (1 + 0.75 - 1 - 1)/4 = -0.0625 -> nothing is hard
    assert sized.mean_accuracy() == -0.0625 and not any(sized.hard_mask(batch))
    # num_prompts unset: the mean over the seen prompts, 0.875 -> b and the unseen prompt (Acc 0) hard
    assert unsized.mean_accuracy() == 0.875
    assert unsized.hard_mask(batch) == [False] * 8 + [True] * 16
    # before: Acc_h(b) = 0.75 < 0.875 hard; a not; an unseen prompt never
    assert old.hard_mask(batch) == [False] * 8 + [True] * 8 + [False] * 8
    assert not CEEH(num_prompts=4).hard_mask(batch)[0] and CEEH().mean_accuracy() is None
    assert CEEH(num_prompts=4).mean_accuracy() == -1.0              # the release's all -1 records


def test_num_prompts_is_checked():
    r = CEEH(num_prompts=2)
    r.update(group("a", 0, 1) + group("b", 1, 1), CTX)
    before = r.state_dict()
    with pytest.raises(ValueError, match="3 distinct prompt ids seen but the training set has 2"):
        r.update(group("a", 0, 1) + group("c", 1, 1), CTX)          # a third prompt id
    assert r.state_dict() == before                                  # nothing half-applied
    with pytest.raises(ValueError, match="the training set has 1"):
        CEEH(num_prompts=1).load_state_dict(before)
    with pytest.raises(ValueError, match="num_prompts"):
        CEEH(num_prompts=0)
    with pytest.raises(ValueError, match="is_hard needs"):
        r.is_hard("a")


# ---------------------------------------------------------------- item 4: the entropy hook

def test_entropy_mask_is_the_release_hard_flag():
    """The release's entropy advantage (actor/edlao_dp_actor.py) is gated per sample by its hard flag;
    the trainer reads that flag through ``entropy_mask``: booleans, one per sample, the histories
    from before the batch (the trainer calls it before ``update``)."""
    r = CEEH(num_prompts=4)
    r.load_state_dict(SEEN4)
    batch = group("a", 0, 4) + group("d", 1, 6)
    mask = r.entropy_mask(batch)
    assert mask == r.hard_mask(batch) == [True] * 8 + [False] * 8
    assert all(isinstance(m, bool) for m in mask)
    r.update(batch, CTX)   # a: 0.95*1 + 0.05*0.5 = 0.975 ; d: 0.8*0.25 + 0.2*0.75 = 0.35 -> mean 0.64375
    assert r.mean_accuracy() == pytest.approx((0.975 + 0.75 + 0.5 + 0.35) / 4)
    assert r.entropy_mask(batch) == [True] * 8 + [False] * 8     # 0.5 <= 0.64375 ; 0.75 > 0.64375


# ---------------------------------------------------------------- state and options

def test_state_round_trip():
    r = CEEH(beta=0.2, num_prompts=10)
    for b in ([S(True, 40), S(False, 1), S(True, 9, "q", 1)], [S(True, 30), S(True, 70), S(False, 5, "q", 1)],
              [S(False, 3), S(False, 3), S(True, 11, "q", 1)]):
        r.update(b, CTX)
    state = json.loads(json.dumps(r.state_dict()))
    fresh = CEEH(beta=0.2, num_prompts=10)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == r.state_dict()
    batch = [S(True, 60), S(True, 30), S(True, 8, "q", 1), S(False, 8, "q", 1)]
    assert fresh(batch, CTX) == r(batch, CTX)
    assert fresh.hard_mask(batch) == r.hard_mask(batch)
    fresh.update(batch, CTX)
    r.update(batch, CTX)
    assert fresh.state_dict() == r.state_dict()
    with pytest.raises(ValueError, match="ceeh"):
        fresh.load_state_dict({"acc": {"p": 0.5}, "lengths": {}})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fresh.load_state_dict({"acc": {"p": -1.0}, "length": {}})
    with pytest.raises(ValueError, match=r"\['p'\]"):
        fresh.load_state_dict({"acc": {}, "length": {"p": -3}})
    assert fresh.state_dict() == r.state_dict()                      # a rejected state changes nothing


def test_registry_params():
    _, r, _ = build_reward({"name": "ceeh", "beta": 0.05, "acc_eta_up": 0.3, "num_prompts": 3156})
    assert r.beta == 0.05 and r.acc_eta_up == 0.3 and r.num_prompts == 3156
    assert (r.length_term, r.floor, r.strict, r.acc_reset, r.hard_rule) == ("release", -0.9, False, True, "release")
    with pytest.raises(ValueError, match="length_term"):
        CEEH(length_term="paper")
    with pytest.raises(ValueError, match="hard_rule"):
        CEEH(hard_rule="mean")


def test_the_trainer_tells_the_training_set_size():
    """laconic's trainer passes ctx.num_prompts (distinct training prompt ids); num_prompts wins where set."""
    import dataclasses

    r = CEEH()
    r.load_state_dict({"acc": {"a": 1.0, "b": 0.75}, "length": {}})
    batch = group("b", 1, 4, n=8)                                     # b at 0.5 this step
    ctx4 = dataclasses.replace(CTX, num_prompts=4)
    r(batch, ctx4)
    assert r.mean_accuracy() == pytest.approx((1.75 - 2) / 4) and not any(r.hard_mask(batch))
    r(batch, CTX)                                                     # unknown size: the seen prompts' mean 0.875
    assert r.mean_accuracy() == pytest.approx(0.875) and all(r.hard_mask(batch))
    sized = CEEH(num_prompts=2)
    sized.load_state_dict({"acc": {"a": 1.0, "b": 0.75}, "length": {}})
    sized(batch, ctx4)
    assert sized.mean_accuracy() == pytest.approx(0.875)
