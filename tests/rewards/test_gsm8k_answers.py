"""Every GSM8K test answer through the verifier: gold parses to a number, right answers in both
the boxed and the ``#### X`` style verify as correct, an off-by-one answer does not.

GSM8K (openai/gsm8k, MIT licence) is not shipped with the project: these tests read its jsonl test
split from the directory ``$LACONIC_GSM8K_DIR`` names and skip without it.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conftest import GSM8K, GSM8K_SKIP

from rewards.verify import answers_match, extract_answer, is_correct, math_verify_match, parse_gold

TEST_FILE = GSM8K / "test.jsonl"

pytestmark = pytest.mark.skipif(
    not TEST_FILE.is_file(), reason=GSM8K_SKIP
)


@pytest.fixture(scope="module")
def golds() -> list[str]:
    rows = [json.loads(line) for line in TEST_FILE.read_text().splitlines() if line.strip()]
    assert len(rows) > 1000
    return [parse_gold(row["answer"]) for row in rows]


def _plus_one(gold: str) -> str:
    return str(Decimal(gold) + 1)


def test_every_gold_is_a_plain_number(golds):
    for gold in golds:
        Decimal(gold)  # raises on anything but a plain number (thousands commas are gone)
        assert "," not in gold


def test_every_row_verifies_right_and_rejects_wrong(golds):
    for gold in golds:
        wrong = _plus_one(gold)
        for answer, expected in ((gold, True), (wrong, False)):
            boxed = f"<think>Let me compute step by step.</think>... so the answer is \\boxed{{{answer}}}"
            hashes = f"Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### {answer}"
            assert is_correct(boxed, gold) is expected, (boxed, gold)
            assert is_correct(hashes, gold) is expected, (hashes, gold)
            assert extract_answer(hashes) == answer


def test_thousands_separators_in_completions(golds):
    big = [g for g in golds if abs(Decimal(g)) >= 1000]
    assert big, "GSM8K test has answers >= 1000"
    for gold in big:
        with_commas = f"{int(Decimal(gold)):,}"
        assert is_correct(f"#### {with_commas}", gold)
        assert is_correct(f"The answer is ${with_commas}.", gold)


def test_sample_through_math_verify(golds):
    """The symbolic path (bypassing the numeric fast path) agrees on ~50 rows."""
    sample = golds[:: max(1, len(golds) // 50)]
    assert len(sample) >= 50
    for gold in sample:
        assert math_verify_match(gold, gold), gold
        assert math_verify_match(f"\\boxed{{{gold}}}", gold), gold
        assert not math_verify_match(_plus_one(gold), gold), gold
        assert answers_match(f"{gold}.0", gold)
