"""The ``sums`` built-in task (word-problem sums for SmolLM2, recipes/smollm2/sums.yaml)."""

import re

import pytest

from rl.tasks import TASKS, arithmetic, make_task_dataset, split_of, sums, sums_question


def _numbers(question: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", question)]


def test_registered_and_answers_are_the_sums():
    assert "sums" in TASKS
    rows = make_task_dataset("sums", 300, "train", seed=3)
    for r in rows:
        ops = _numbers(r["question"])
        assert r["answer"] == str(sum(ops)) and r["difficulty"] == len(ops) == 2
        assert all(1 <= x <= 9 for x in ops) and r["source"] == "sums"


def test_word_question_text():
    assert sums_question([3, 4], "word", "Ava", "coins") == \
        "Ava has 3 coins. Ava gets 4 more coins. How many coins does Ava have now?"
    assert sums_question([3, 4, 5], "plain") == "3 + 4 + 5"
    with pytest.raises(ValueError, match="phrasing"):
        sums_question([1, 2], "poem")


def test_default_split_is_by_question_text_and_test_is_unique():
    test = sums(256, "test")
    train = sums(2000, "train")
    assert len({r["question"] for r in test}) == 256
    assert all(split_of(r["question"]) == "test" for r in test)
    assert not {r["question"] for r in test} & {r["question"] for r in train}


def test_split_by_sum_holds_out_the_sum_whatever_the_phrasing():
    kw = dict(max_operands=3, min_value=2, max_value=30, split_by="sum")
    test, train = sums(200, "test", **kw), sums(1000, "train", **kw)
    canon = lambda r: "+".join(map(str, _numbers(r["question"])))  # noqa: E731
    assert not {canon(r) for r in test} & {canon(r) for r in train}
    assert len({canon(r) for r in test}) == 200
    assert {r["difficulty"] for r in test} == {2, 3}


def test_deterministic_and_prefix():
    assert sums(50, "test", seed=7) == sums(50, "test", seed=7)
    assert sums(80, "train", seed=7)[:30] == sums(30, "train", seed=7)
    assert sums(50, "train", seed=7) != sums(50, "train", seed=8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_operands=1), "min_operands"),
    (dict(min_value=5, max_value=4), "min_value"),
    (dict(split_by="hash"), "split_by"),
    (dict(phrasing="verse"), "phrasing"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sums(4, "train", **kwargs)


def test_too_many_unique_test_questions_is_refused():
    with pytest.raises(ValueError, match="unique"):
        sums(100, "test", phrasing="plain")  # 81 digit pairs: too few for 100 unique held-out sums
    with pytest.raises(ValueError, match="unique"):
        sums(100, "test", split_by="sum")


def test_arithmetic_task_unchanged():
    """Adding the task leaves the toy's arithmetic rows as they were (first rows pinned)."""
    assert [r["question"] for r in arithmetic(3, "train", seed=0)] == ["8+8+9+3", "6+1+2", "9+8+5+9"]
    assert [r["question"] for r in arithmetic(3, "test", seed=0)] == ["4+5+6+1+4", "6+8", "9+7+8+8+6"]
