"""TRAAC's compression arithmetic (rl/algo/traac.py) against hand-computed numbers, its step splits (the
release's BPE matching and laconic's word matching) and the options' checks."""

import math

import pytest

from rl.algo.traac import (check_options, difficulty, eviction_share, evicted, step_importance, step_starts_release,
                           step_starts_words, uniformity)
from rl.config import ConfigError, load_config


def test_difficulty_thresholds():
    assert [difficulty(p) for p in (1.0, 0.8, 0.79, 0.3, 0.29, 0.0)] == ["easy", "easy", "medium", "medium", "hard", "hard"]


def test_uniformity_and_eviction_by_hand():
    # I = (3, 1): p = (0.75, 0.25), H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623, U = H / ln 2 = 0.8113
    assert uniformity([3.0, 1.0]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))
    assert eviction_share(0.8113, "easy") == 0.0  # above 0.8: keep everything
    # I = (8, 1, 1): p = (0.8, 0.1, 0.1), H = 0.6390, U = 0.5817; medium: e = 0.4 x 0.4183 = 0.1673, floor(3 e) = 0
    u = uniformity([8.0, 1.0, 1.0])
    assert u == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.1)) / math.log(3))
    assert evicted([8.0, 1.0, 1.0], "medium") == []
    # ten steps, one holding all the attention: U = 0, e = min(0.6, 0.8) = 0.6 on easy: 6 evicted, the earliest of the ties
    importance = [0.0] * 9 + [1.0]
    assert uniformity(importance) == 0.0 and evicted(importance, "easy") == [0, 1, 2, 3, 4, 5]
    assert evicted(importance, "hard") == [0, 1]  # e = 0.2: floor(10 x 0.2) = 2
    assert evicted(importance, "easy", max_evict=0.3) == [0, 1, 2]  # the cap


def test_release_split_misses_multiword_keywords_and_matches_inside_words():
    pieces = ["So", "Ġwe", "Ġsolve", ".", "ĠSolve", "Ġit", ".", "ĠLet", "Ġme", "Ġcheck", ".", "ĠWait", ",", "Ġok"]
    # "So" at token 0 and inside "ĠSolve" (token 4); "Let me" never matches ("LetĠme"); "Wait" at token 11
    assert step_starts_release(pieces) == [0, 4, 11]


def test_word_split_matches_whole_words_and_phrases():
    text = "So we solve. Solve it. Let me check. Wait, ok"
    pieces = ["So", " we", " solve", ".", " Solve", " it", ".", " Let", " me", " check", ".", " Wait", ",", " ok"]
    ends, total = [], 0
    for p in pieces:
        total += len(p)
        ends.append(total)
    assert "".join(pieces) == text
    assert step_starts_words(ends, text) == [0, 7, 11]  # "So", "Let me" (token 7: " Let"), "Wait"; not "Solve"
    assert step_starts_words(ends, text, keywords=["check"]) == [0, 9]


def test_step_importance_is_the_mean_attention_of_each_step():
    assert step_importance([0.5, 0.1, 0.2, 0.3, 0.0, 0.4], [0, 1, 4]) == pytest.approx([0.5, 0.2, 0.2])


@pytest.mark.parametrize("options, message", [
    ({"split": "bpe"}, "'bpe' is not one of"), ({"attention_model": "frozen"}, "'frozen' is not one of"),
    ({"close_tag": ""}, "close_tag must be a non-empty string"), ({"keywords": []}, "keywords must be a non-empty list"),
    ({"rho": {"easy": 0.6}}, "rho must map easy, medium, hard"), ({"max_evict": 1.5}, "max_evict must be in [0, 1]"),
])
def test_bad_options(options, message):
    assert message in check_options(options)


def test_refusals_are_one_line_before_any_model():
    with pytest.raises(ConfigError, match="unknown option 'clos_tag'.*close_tag"):
        load_config(None, ["rollout.compress={clos_tag: A}"])
    for extra, needle in ((["rollout.partial=true"], "rollout.partial is not supported"),
                          (["algo.tis_cap=2.0"], "no sampler log-probs")):
        with pytest.raises(ConfigError, match=needle):
            load_config(None, ["rollout.compress={}", *extra])
    assert load_config(None, ["rollout.compress={split: release}"]).rollout.compress == {"split": "release"}
