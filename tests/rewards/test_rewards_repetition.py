"""N-gram repetition detector and penalty (rewards/repetition.py)."""

from __future__ import annotations

import pytest

from rewards import Context, RepetitionPenalty, build_reward
from rewards.base import Sample
from rewards.repetition import completion_tokens, has_repetition, repeated_ngram_stats

CTX = Context()


def test_stats_hand_numbers():
    # trigrams of 1231231: 123 231 312 123* 231* -> 5 total, 3 unique -> 0.4; repeats cover positions 3..6
    assert repeated_ngram_stats([1, 2, 3, 1, 2, 3, 1], 3) == pytest.approx((0.4, 4))
    # bigrams: 12 23 31 12* 23* 31* -> 6 total, 3 unique -> 0.5; positions 3..6 -> 4
    assert repeated_ngram_stats([1, 2, 3, 1, 2, 3, 1], 2) == pytest.approx((0.5, 4))
    # 77777, bigrams: 4 total, 1 unique -> 0.75; repeats at 1..3 cover positions 1..4 -> 4
    assert repeated_ngram_stats([7] * 5, 2) == pytest.approx((0.75, 4))
    assert repeated_ngram_stats([1, 2], 3) == (0.0, 0)          # shorter than n
    assert repeated_ngram_stats([], 1) == (0.0, 0)
    with pytest.raises(ValueError):
        repeated_ngram_stats([1], 0)


def test_has_repetition_threshold():
    toks = list("abcabc")   # trigrams: abc bca cab abc* -> 1 - 3/4 = 0.25
    assert has_repetition(toks, 3, 0.2) and not has_repetition(toks, 3, 0.25)
    assert has_repetition(toks, 3, 0.0) and not has_repetition(list("abcdef"), 3, 0.0)


def test_penalty_per_token_and_fraction():
    block = " ".join(f"w{i}" for i in range(40))
    s = Sample("p", 0, completion=block + " " + block)   # 80 words
    # 40-grams: 41, unique 40 (the one at 40 repeats the one at 0) -> covered 40 words
    assert RepetitionPenalty()([s], CTX) == pytest.approx([-0.05 * 40])            # -2.0
    assert RepetitionPenalty(penalty=-1.0, per_token=False)([s], CTX) == pytest.approx([-1 / 41])
    assert RepetitionPenalty()([Sample("p", 0, completion=block)], CTX) == [0.0]
    assert RepetitionPenalty()([Sample("p", 0, completion="")], CTX) == [0.0]


def test_token_ids_are_used_when_present():
    s = Sample("p", 0, completion="all different words here", completion_ids=[5] * 45)
    # 40-grams of 45 equal ids: 6 total; repeats at 1..5 cover positions 1..44 -> 44 tokens -> -2.2
    assert RepetitionPenalty()([s], CTX) == pytest.approx([-2.2])
    assert RepetitionPenalty(unit="words")([s], CTX) == [0.0]
    assert completion_tokens(s, "words") == ["all", "different", "words", "here"]
    with pytest.raises(ValueError, match="completion_ids=None"):
        completion_tokens(Sample("p", 0, completion="x"), "ids")


def test_parameter_checks():
    with pytest.raises(Exception, match="penalty"):
        build_reward({"name": "repetition_penalty", "penalty": 0.5})
    with pytest.raises(Exception, match="unit"):
        build_reward({"name": "repetition_penalty", "unit": "chars"})
    assert build_reward({"name": "repetition_penalty", "ngram_size": 3})[1].ngram_size == 3
