"""The selection rules of the length baselines, on hand-computed candidate lists."""

import pytest

from rl.baselines.select import (Candidate as C, kimi_pairs, select_pairs, shortest_correct, shortest_longest_pairs,
                                 tops_pairs)


def test_shortest_correct_ties_go_to_the_first_sampled():
    assert shortest_correct([C(12, True), C(7, True), C(7, True), C(3, False)]) == 1


def test_shortest_correct_never_picks_a_truncated_sample():
    # the verifier said "correct" for the 5-token one, but it hit the limit: not a right answer
    assert shortest_correct([C(5, True, truncated=True), C(9, True)]) == 1
    assert C(5, True, truncated=True).ok is False


def test_no_correct_sample_drops_the_prompt_everywhere():
    cands = [C(5, False), C(9, False), C(20, True, truncated=True)]
    assert shortest_correct(cands) is None
    for rule in ("kimi", "tops", "shortest_longest"):
        assert select_pairs(rule, cands) == []


def test_kimi_boundary_at_one_and_a_half_times():
    # L_w = 10: a correct 15 (= 1.5 x 10) is rejected, a correct 14 is not
    cands = [C(10, True), C(14, True), C(15, True), C(16, True)]
    assert kimi_pairs(cands) == [(0, 2), (0, 3)]
    # with an odd L_w the boundary is fractional: 1.5 x 7 = 10.5, so 10 stays, 11 goes
    assert kimi_pairs([C(7, True), C(10, True), C(11, True)]) == [(0, 2)]


def test_kimi_rejects_every_longer_wrong_or_truncated_response_one_pair_each():
    cands = [C(30, False), C(10, True), C(11, False), C(9, False), C(40, True, truncated=True), C(10, False)]
    # longer than L_w = 10 and wrong: 30 (index 0), 11 (index 2), the truncated 40 (index 4);
    # the wrong 9 and the wrong 10 (not longer) are not pairs
    assert kimi_pairs(cands) == [(1, 0), (1, 2), (1, 4)]


def test_kimi_ratio_is_a_parameter_and_the_cap_keeps_the_first_pairs():
    cands = [C(10, True), C(12, True), C(20, False), C(30, False)]
    assert kimi_pairs(cands, ratio=1.2) == [(0, 1), (0, 2), (0, 3)]
    assert select_pairs("kimi", cands, max_pairs=1) == [(0, 2)]
    with pytest.raises(ValueError, match="max_pairs"):
        select_pairs("kimi", cands, max_pairs=0)


def test_tops_longest_wrong_and_shortest_wrong_below_the_chosen():
    cands = [C(20, True), C(50, False), C(12, True), C(8, False), C(5, False), C(5, False), C(50, False)]
    # y_w = 12 (index 2); longest wrong 50 (first: index 1); shortest wrong < 12: 5 (first: index 4)
    assert tops_pairs(cands) == [(2, 1), (2, 4)]


def test_tops_truncated_is_wrong_and_no_duplicate_pair():
    # the only wrong sample is both the longest wrong and shorter than y_w: one pair
    assert tops_pairs([C(10, True), C(4, False)]) == [(0, 1)]
    # a truncated sample counts as wrong (it is the longest wrong here)
    assert tops_pairs([C(10, True), C(60, True, truncated=True), C(30, False)]) == [(0, 1)]
    # all correct: no wrong sample, no pairs
    assert tops_pairs([C(10, True), C(30, True)]) == []


def test_shortest_longest_needs_a_strictly_longer_correct():
    assert shortest_longest_pairs([C(9, True), C(30, False), C(15, True), C(15, True)]) == [(0, 2)]
    assert shortest_longest_pairs([C(9, True), C(9, True)]) == []
    assert shortest_longest_pairs([C(9, True), C(99, True, truncated=True)]) == []


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown pair rule"):
        select_pairs("longest", [C(1, True)])
