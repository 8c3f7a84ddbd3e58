"""RoRecomp's split (rl/algo/recompose.py) against hand-picked batches, and its options' checks."""

import pytest

from rl.algo.recompose import check_options, split
from rl.config import ConfigError, load_config


def test_priority_is_the_short_correct_and_long_wrong_share_of_each_group():
    # group 0: correct lengths 5, 9, 3, 8 and wrong 7, 2, 6 at alpha 0.5: ceil(2) = 2 shortest correct (3, 5),
    # ceil(1.5) = 2 longest wrong (7, 6); buffered: 9, 8, 2
    groups = [0] * 7
    correct = [True, True, True, True, False, False, False]
    lengths = [5, 9, 3, 8, 7, 2, 6]
    priority, buffered = split(groups, correct, lengths, [True] * 7, 0.5)
    assert priority == [True, False, True, False, True, False, True]
    assert buffered == [False, True, False, True, False, True, False]
    # alpha 1: everything is priority, nothing waits
    assert split(groups, correct, lengths, [True] * 7, 1.0) == ([True] * 7, [False] * 7)
    # a small alpha still takes one of each non-empty class (the ceiling)
    assert split(groups, correct, lengths, [True] * 7, 0.1)[0] == [False, False, True, False, True, False, False]


def test_groups_without_signal_are_neither_trained_nor_buffered_and_ties_keep_the_earlier():
    groups = [0, 0, 1, 1, 1]
    correct = [True, True, True, False, True]
    lengths = [4, 4, 6, 6, 6]
    priority, buffered = split(groups, correct, lengths, [False, False, True, True, True], 0.5)
    assert priority == [False, False, True, True, False]  # group 1: first of the two equal-length correct ones
    assert buffered == [False, False, False, False, True]


def test_all_correct_group_with_a_length_signal_trains_its_shortest_half():
    priority, buffered = split([0] * 4, [True] * 4, [10, 20, 30, 40], [True] * 4, 0.5)
    assert priority == [True, True, False, False] and buffered == [False, False, True, True]


@pytest.mark.parametrize("options, message", [
    ({"alpha": 0}, "alpha must be in (0, 1]"), ({"alpha": 1.5}, "alpha must be in (0, 1]"),
    ({"batch": 0}, "batch must be an integer >= 1"), ({"max_age": 2.5}, "max_age must be an integer >= 1"),
    ({"prob": 0}, "prob must be in (0, 1]"),
])
def test_bad_options_are_one_line(options, message):
    assert message in check_options(options)
    key, value = next(iter(options.items()))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(None, [f"algo.recompose={{{key}: {value}}}"])


def test_unknown_option_names_the_closest():
    with pytest.raises(ConfigError, match="unknown option 'alfa'.*alpha"):
        load_config(None, ["algo.recompose={alfa: 0.5}"])
    assert load_config(None, ["algo.recompose={alpha: 0.25, batch: 8}"]).algo.recompose == {"alpha": 0.25, "batch": 8}
