"""Label-free format-length reward (rewards/format_length.py): no gold, hand numbers, the curve."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import Context, FormatLength, build_reward
from rewards.base import Sample
from rewards.format_length import length_curve, parses_as_math

CTX = Context(step=1, max_length=1000)
OK = "<think>reasoning</think> so \\boxed{\\frac{1}{2}}"


def S(text, length):
    return Sample("p", 0, completion=text, length=length)  # answer=None, correct=None: no gold anywhere


def test_length_curve_hand_numbers():
    assert length_curve(0.1) == pytest.approx(1 - 0.8 ** 2)          # 0.36
    assert length_curve(0.6) == pytest.approx(1 - 2 * 0.2 ** 2)      # 0.92
    assert length_curve(1.5) == pytest.approx(1 - 2 * 2.0 ** 2)      # -7: keeps falling past L_ref
    assert length_curve(0.2, p=0.25) == pytest.approx(1 - 0.2 ** 2)  # 0.96


def test_scores_without_gold():
    r = FormatLength()
    batch = [S(OK, 307), S("\\boxed{12}", 1536), S("<think>x</think> \\boxed{???}", 1536),
             S("<think>x</think> nothing", 2765), S("</think> \\boxed{3}", 0)]
    x1, x4 = 307 / 3072, 2765 / 3072
    assert r(batch, CTX) == pytest.approx([
        1.0 + length_curve(x1),   # tags + parseable answer
        0.5 + 1.0,                # answer but no think tags; x = p
        0.0,                      # "???" does not parse: min(0, f = 1)
        min(0.0, length_curve(x4)),
        0.5 + 0.0,                # </think> without <think>; L = 0 -> f = 0
    ])


def test_open_tag_none_accepts_the_closing_tag_alone():
    assert FormatLength(open_tag=None)([S("x</think> \\boxed{3}", 1536)], CTX) == [2.0]
    assert FormatLength()([S("</think><think> \\boxed{3}", 1536)], CTX) == [1.5]  # wrong order


def test_reference_length_none_uses_the_generation_limit():
    assert FormatLength(reference_length=None)([S(OK, 500)], CTX) == [2.0]  # x = 500/1000 = p
    with pytest.raises(ValueError, match="length limit"):
        FormatLength(reference_length=None)([S(OK, 500)], Context())
    for bad in ({"peak": 1.0}, {"peak": 0}, {"reference_length": 0}, {"close_tag": ""}):
        with pytest.raises(Exception, match="format_length"):
            build_reward({"name": "format_length", **bad})


def test_parseable():
    assert parses_as_math("7") and parses_as_math("x^2+1") and parses_as_math("\\boxed{3}")
    assert not parses_as_math("!!") and not parses_as_math("   ") and not parses_as_math("1" * 3000)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 6000), st.integers(0, 6000), st.sampled_from([OK, "\\boxed{4}", "<think>a</think>none", ""]))
def test_properties(a, b, text):
    r = FormatLength()
    ra, rb = r([S(text, a)], CTX)[0], r([S(text, b)], CTX)[0]
    assert ra <= 2.0
    if text.endswith("none") or not text:
        assert ra <= 0.0
    lo, hi = sorted((a, b))
    if hi <= 1536:  # rising branch: longer is better up to x = p
        assert r([S(text, lo)], CTX)[0] <= r([S(text, hi)], CTX)[0]
    if lo >= 1536:  # falling branch
        assert r([S(text, lo)], CTX)[0] >= r([S(text, hi)], CTX)[0]
