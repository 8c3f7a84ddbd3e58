"""ThinkDial's rewards (rewards/thinkdial.py) on hand-computed groups: the mode-weighted Kimi length term
and the leak reward; phase 2's composed reward R_task + alpha(m) R_len + R_leak."""

from __future__ import annotations

import pytest

from rewards import Context, build_reward, build_rewards
from rewards.base import Sample
from rewards.registry import RewardConfigError
from rewards.thinkdial import ALPHA, MODES, Leak, ThinkDialLength, has_transition

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-12)  # noqa: E731


def S(correct, length, mode, group=0, text=""):
    return Sample(f"p{group}", group, completion=text, correct=correct, length=length, meta={"mode": mode})


# ----------------------------------------------------------------------------- thinkdial_length
def test_kimi_lambda_weighted_by_the_mode():
    # L_min = 100, L_max = 300: lambda = 0.5 - (L - 100)/200 = 0.5, 0.25, 0, -0.5
    # R_len: correct -> lambda, wrong -> min(0, lambda) = 0.5, 0.25, 0, -0.5 (the wrong 200 has lambda 0)
    lengths, correct = (100, 150, 200, 300), (True, True, False, False)
    for mode, alpha in (("low", 1.0), ("medium", 0.5), ("high", 0.0)):
        g = [S(c, n, mode) for c, n in zip(correct, lengths)]
        assert ThinkDialLength()(g, CTX) == approx([alpha * x for x in (0.5, 0.25, 0.0, -0.5)])
    assert ALPHA == {"high": 0.0, "medium": 0.5, "low": 1.0} and MODES == ("high", "medium", "low")


def test_a_wrong_short_answer_gets_no_bonus_and_groups_are_separate():
    # group 0 (low): L 10, 20, 30 -> lambda 0.5, 0, -0.5; the wrong 10 gets min(0, 0.5) = 0
    # group 1 (medium): L 40, 80 -> lambda 0.5, -0.5, x 0.5
    g = [S(False, 10, "low"), S(True, 20, "low"), S(True, 30, "low"),
         S(True, 40, "medium", group=1), S(True, 80, "medium", group=1)]
    assert ThinkDialLength()(g, CTX) == approx([0.0, 0.0, -0.5, 0.25, -0.25])


def test_equal_lengths_and_one_sample_give_zero():
    assert ThinkDialLength()([S(True, 50, "low"), S(False, 50, "low"), S(True, 50, "low")], CTX) == [0.0, 0.0, 0.0]
    assert ThinkDialLength()([S(True, 7, "low")], CTX) == [0.0]


def test_weights_mode_key_and_fixed_mode():
    g = [S(True, 10, "medium"), S(True, 30, "medium")]
    assert ThinkDialLength(weights={"high": 0.1, "medium": 2.0, "low": 3.0})(g, CTX) == approx([1.0, -1.0])
    other = [Sample("p", 0, correct=True, length=n, meta={"effort_mode": "low"}) for n in (10, 30)]
    assert ThinkDialLength(mode_key="effort_mode")(other, CTX) == approx([0.5, -0.5])
    bare = [Sample("p", 0, correct=True, length=n) for n in (10, 30)]
    assert ThinkDialLength(mode="medium")(bare, CTX) == approx([0.25, -0.25])
    with pytest.raises(ValueError, match=r"needs the ThinkDial mode in sample.meta\['mode'\]"):
        ThinkDialLength()(bare, CTX)
    with pytest.raises(ValueError, match=r"mode 'fast' .* is not one of"):
        ThinkDialLength()([S(True, 1, "fast")], CTX)


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": {"high": 0, "medium": 0.5}}, r"missing \['low'\]"),
    ({"weights": {"high": 0, "medium": 0.5, "low": 1, "fast": 2}}, r"unknown mode\(s\) \['fast'\]"),
    ({"weights": {"high": 0, "medium": "x", "low": 1}}, r"weights\['medium'\] must be a finite number"),
    ({"mode": "hi"}, r"mode must be one of"),
])
def test_length_parameter_errors(kwargs, message):
    with pytest.raises(RewardConfigError, match=message):
        build_reward({"name": "thinkdial_length", **kwargs})


# ----------------------------------------------------------------------------- leak
def L(text):
    return Sample("p", 0, completion=text)


def test_leak_with_and_without_keywords():
    texts = ["<think>Wait, 2+2. Actually 4.</think>The answer is \\boxed{4}.",  # keywords in the thinking only
             "<think>2+2</think>The answer is 4. Wait, let me re-check: 4.",
             "<think>2+2</think>However, we must be careful: 4.",
             "<think>2+2</think>Let me think again. 4.",
             "<think>2+2</think>Alternatively, 4.",
             "<think>2+2</think>"]                                                # an empty answer section
    assert Leak()([L(t) for t in texts], CTX) == [0.5, -0.5, -0.5, -0.5, -0.5, 0.5]


def test_leak_without_a_delimiter_is_minus_half():
    assert Leak()([L("Wait. The answer is 4."), L("The answer is 4."), L("")], CTX) == [-0.5, -0.5, -0.5]


def test_the_answer_section_follows_the_last_delimiter():
    assert Leak()([L("a</think>Wait</think>4"), L("a</think>4</think>Wait")], CTX) == [0.5, -0.5]


def test_word_boundaries_and_case():
    texts = ["x</think>Waiting for nothing: 4.", "x</think>Actually4", "x</think>so however it is 4",
             "x</think>(Wait) 4", "x</think>Let  me\nthink: 4", "x</think>WAIT 4"]
    assert Leak()([L(t) for t in texts], CTX) == [0.5, 0.5, 0.5, -0.5, -0.5, 0.5]
    assert Leak(case_sensitive=False)([L(t) for t in texts], CTX) == [0.5, 0.5, -0.5, -0.5, -0.5, -0.5]
    assert has_transition("re-Wait") and not has_transition("Waits")  # "-" is a boundary, "s" is not


def test_leak_fields():
    r = Leak(keywords=["check"], delimiter="A:", clean_reward=1.0, leak_reward=0.0, missing_delimiter_reward=-2.0)
    assert r([L("3+5=8.check1:3+5=8.A:8"), L("8.A:8 check"), L("8.")], CTX) == [1.0, 0.0, -2.0]


@pytest.mark.parametrize("kwargs, message", [
    ({"keywords": []}, r"keywords must be a non-empty list"),
    ({"keywords": "Wait"}, r"keywords must be a non-empty list"),
    ({"keywords": ["Wait", " "]}, r"keywords must be a non-empty list"),
    ({"delimiter": None}, r"delimiter must be a non-empty string"),
    ({"case_sensitive": "no"}, r"case_sensitive must be true or false"),
    ({"leak_reward": float("nan")}, r"leak_reward must be a finite number"),
])
def test_leak_parameter_errors(kwargs, message):
    with pytest.raises(RewardConfigError, match=message):
        build_reward({"name": "leak", **kwargs})


# ----------------------------------------------------------------------------- phase 2
def test_phase_two_reward_is_task_plus_weighted_length_plus_leak():
    composed = build_rewards([{"name": "correctness"}, {"name": "thinkdial_length"}, {"name": "leak"}])
    g = [Sample("p", 0, completion="t</think>4", correct=True, length=10, meta={"mode": "medium"}),
         Sample("p", 0, completion="t</think>Wait, 4", correct=True, length=30, meta={"mode": "medium"}),
         Sample("p", 0, completion="t t t", correct=False, length=50, meta={"mode": "medium"})]
    # lambda = 0.5, 0, -0.5; alpha(medium) = 0.5 -> 0.25, 0, -0.25; leak +0.5, -0.5, -0.5 (no delimiter)
    totals, parts = composed.score(g, CTX)
    assert totals == approx([1 + 0.25 + 0.5, 1 + 0 - 0.5, 0 - 0.25 - 0.5])
    assert parts["leak"] == [0.5, -0.5, -0.5] and parts["thinkdial_length"] == approx([0.25, 0.0, -0.25])


def test_doctests():
    import doctest

    import rewards.thinkdial

    result = doctest.testmod(rewards.thinkdial)
    assert result.failed == 0 and result.attempted > 0
