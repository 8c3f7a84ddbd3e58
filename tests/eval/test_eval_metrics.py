"""Metric functions of rl/eval/evaluate.py (laconic eval), against hand-computed numbers."""

import itertools
import math

import pytest

from rewards.base import Sample
from rl.engines.base import Rollout
from rl.eval.evaluate import eval_report, evaluate, to_markdown
from rl.eval.metrics import (is_degenerate, k_values, length_stats, majority_vote, pass_at_k, percentile, repeat_mask,
                             vote_key)


# ------------------------------------------------------------------------------------ pass@k
def test_pass_at_k_hand_computed():
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2)) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(8, 3, 4) == pytest.approx(1 - math.comb(5, 4) / math.comb(8, 4))  # 1 - 5/70
    for k in range(1, 6):
        assert pass_at_k(5, 0, k) == 0.0
        assert pass_at_k(5, 5, k) == 1.0
    assert pass_at_k(5, 1, 5) == 1.0 and pass_at_k(5, 0, 5) == 0.0  # k = n: any correct sample


def test_pass_at_k_equals_brute_force_over_subsets():
    for n in range(1, 8):
        for c in range(n + 1):
            flags = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(flags[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_rejects_bad_arguments():
    for n, c, k in [(4, 5, 1), (4, -1, 1), (4, 1, 5), (4, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_k_values_are_powers_of_two_and_n():
    assert k_values(1) == [1]
    assert k_values(2) == [1, 2]
    assert k_values(6) == [1, 2, 4, 6]
    assert k_values(8) == [1, 2, 4, 8]
    assert k_values(16) == [1, 2, 4, 8, 16]
    assert k_values(0) == []


# ------------------------------------------------------------------------------------- maj@k
def test_majority_vote_most_frequent_wins():
    assert majority_vote(["3", "5", "5"], [False, True, True]) == ("5", True)
    assert majority_vote(["5", "3", "3"], [True, False, False]) == ("3", False)


def test_majority_vote_tie_goes_to_earliest_seen():
    assert majority_vote(["7", "5", "5", "7"], [False, True, True, False]) == ("7", False)
    assert majority_vote(["5", "7", "7", "5"], [True, False, False, True]) == ("5", True)


def test_majority_vote_unextractable_never_wins_unless_all_are():
    assert majority_vote([None, None, None, "4"], [False, False, False, True]) == ("4", True)
    assert majority_vote([None, "2", None, "4"], [False, False, False, True]) == ("2", False)
    assert majority_vote([None, None], [False, False]) == (None, False)


def test_majority_vote_normalizes_numbers_and_uses_first_occurrences_flag():
    assert vote_key("1,234.") == "1234" and vote_key("8.0") == vote_key("8") == "8" and vote_key("$-0$") == "0"
    assert vote_key("0.50") == "0.5" and vote_key("x+1") != vote_key("1+x")
    # "8.0" and "8" are one answer with 2 votes against "9"'s one; the first "8.0" decides correctness
    assert majority_vote(["9", "8.0", "8"], [False, True, True]) == ("8.0", True)
    with pytest.raises(ValueError):
        majority_vote(["1"], [True, False])


# ------------------------------------------------------------------------ percentiles, lengths
def test_percentile_linear_interpolation_by_hand():
    x = [4, 1, 3, 2]  # sorted 1 2 3 4, h = 3q/100
    assert percentile(x, 90) == pytest.approx(3.7)  # h = 2.7 -> 3 + 0.7
    assert percentile(x, 10) == pytest.approx(1.3)  # h = 0.3
    assert percentile(x, 50) == pytest.approx(2.5)  # h = 1.5
    assert percentile(x, 0) == 1 and percentile(x, 100) == 4
    assert percentile([10, 20, 30], 90) == pytest.approx(28.0)  # h = 1.8 -> 20 + 0.8 * 10
    assert percentile([7], 90) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(x, 101)


def test_length_stats_by_hand():
    st = length_stats([2, 4, 4, 4, 5, 5, 7, 9])  # mean 5, population std 2 (sample std would be 2.14)
    assert st["mean"] == 5 and st["std"] == pytest.approx(2.0)
    assert st["p10"] == pytest.approx(3.4)  # h = 0.7: 2 + 0.7 * (4 - 2)
    assert st["p50"] == pytest.approx(4.5)  # h = 3.5: 4 + 0.5 * (5 - 4)
    assert st["p90"] == pytest.approx(7.6)  # h = 6.3: 7 + 0.3 * (9 - 7)
    assert (st["min"], st["max"]) == (2, 9)
    assert length_stats([3])["std"] == 0.0
    assert all(math.isnan(v) for v in length_stats([]).values())


# ------------------------------------------------------------------------------ degeneration
def ids_sample(ids, truncated=False):
    return Sample("p", 0, completion_ids=list(ids), length=len(ids), truncated=truncated)


def test_repeat_mask_marks_positions_of_repeated_ngrams():
    assert repeat_mask([1, 2, 3, 1, 2, 3, 1], 3) == [False, False, False, True, True, True, True]
    assert repeat_mask([1, 2, 3, 4], 2) == [False] * 4
    assert repeat_mask([1, 2], 4) == [False, False]


def test_degenerate_by_heavy_repetition():
    assert is_degenerate(ids_sample([1, 2] * 10))  # 17 4-grams, 2 unique: fraction 0.88 > 0.5
    assert not is_degenerate(ids_sample(range(20)))
    assert not is_degenerate(ids_sample(range(300), truncated=True))  # cut off, but no loop
    # words when there are no ids: "a b c d" x3 -> 9 4-grams, 4 unique: fraction 5/9 > 0.5
    assert is_degenerate(Sample("p", 0, completion="a b c d a b c d a b c d"))
    assert not is_degenerate(Sample("p", 0, completion="a b c d a b c d"))  # 5 4-grams, 4 unique: 0.2


def test_degenerate_truncated_loop_and_threshold_option():
    # 200 distinct tokens, then the last 70 again: 67 of 267 4-grams repeat (fraction 0.25), and the
    # last 64 tokens all lie in repeated 4-grams
    ids = list(range(200)) + list(range(130, 200))
    assert not is_degenerate(ids_sample(ids))  # finished: a quote, not a loop
    assert is_degenerate(ids_sample(ids, truncated=True))  # hit the limit while looping
    assert not is_degenerate(ids_sample(ids, truncated=True), tail_threshold=1.0)
    assert is_degenerate(ids_sample(ids), threshold=0.2)  # 0.25 > 0.2
    assert not is_degenerate(ids_sample(ids), threshold=0.3)
    # a short loop at the end of a long truncated text: 30 of the last 64 tokens repeat (< half)
    short = list(range(300)) + list(range(290, 300)) * 3  # 330 tokens; the last 30 loop
    assert not is_degenerate(ids_sample(short, truncated=True))
    assert is_degenerate(ids_sample(short, truncated=True), tail=40)  # 30 of the last 40


# --------------------------------------------------------------------------------- the report
def s(group, answer_given, length, correct, truncated=False, gold="5", **meta):
    text = "" if answer_given is None else f"{'x' * 3}.A:{answer_given}"
    return Sample(f"p{group}", group, completion=text, answer=gold, length=length, truncated=truncated,
                  correct=correct, meta=meta)


def test_report_headline_numbers():
    samples = [s(0, "4", 300, False, truncated=True, difficulty=1), s(0, "5", 100, True, difficulty=1),
               s(1, "5", 200, True, difficulty=2), s(1, "5", 400, True, difficulty=2)]
    r = eval_report(samples, delimiter=None)
    assert (r["n_prompts"], r["n_completions"]) == (2, 4)
    assert r["pass@1"] == pytest.approx(0.75)  # (1/2 + 2/2) / 2
    assert r["pass@k"] == {"1": pytest.approx(0.75), "2": pytest.approx(1.0)}
    assert r["maj@k"]["1"] == pytest.approx(0.75)
    assert r["maj@k"]["2"] == pytest.approx(0.5)  # prompt 0: tie 4/5 -> "4" seen first (wrong); prompt 1: right
    assert r["mean_tokens"] == 250 and r["median_tokens"] == 250
    assert r["p90_tokens"] == pytest.approx(370.0)  # 300 + 0.7 * 100
    assert r["truncation_rate"] == 0.25
    assert r["accuracy_per_1k_tokens"] == pytest.approx(3.0)  # 0.75 / (250 / 1000)
    assert r["degeneration_rate"] == 0.0
    assert r["mean_length_std"] == pytest.approx(100.0)  # per-prompt std 100 and 100
    p0 = r["per_prompt"][0]
    assert p0["id"] == "p0" and p0["n"] == 2 and p0["n_correct"] == 1 and p0["n_truncated"] == 1
    assert (p0["mean"], p0["std"], p0["min"], p0["max"]) == (200, 100, 100, 300)
    assert p0["p10"] == pytest.approx(120) and p0["p50"] == 200 and p0["p90"] == pytest.approx(280)
    assert p0["difficulty"] == 1


def test_report_maj_at_k_blocks_ties_and_unextractable():
    # gold 5; answers 3 5 5 - : maj@4 = vote(3,5,5,-) = 5 right; maj@2: (3,5) tie -> 3 wrong,
    # (5,-) -> 5 right => 0.5; maj@1: 0 1 1 0 => 0.5
    samples = [s(0, "3", 10, False), s(0, "5", 10, True), s(0, "5", 10, True), s(0, None, 10, False)]
    r = eval_report(samples, delimiter=None)
    assert r["maj@k"] == {"1": 0.5, "2": 0.5, "4": 1.0}
    assert r["pass@k"]["4"] == 1.0
    # majority wrong answer beats a single right one
    samples = [s(0, "5", 10, True), s(0, "7", 10, False), s(0, "7", 10, False), s(0, None, 10, False)]
    assert eval_report(samples, delimiter=None)["maj@k"]["4"] == 0.0


def test_report_counts_degenerate_completions():
    loop = Sample("p0", 0, completion_ids=[1, 2] * 10, length=20, correct=False)
    ok = Sample("p0", 0, completion_ids=list(range(20)), length=20, correct=True)
    r = eval_report([loop, ok, ok, ok])
    assert r["degeneration_rate"] == 0.25 and r["per_prompt"][0]["n_degenerate"] == 1
    assert eval_report([loop, ok, ok, ok], degeneration={"threshold": 0.95})["degeneration_rate"] == 0.0
    with pytest.raises(ValueError):
        eval_report([ok], degeneration={"nrgam": 3})


def test_report_breakdowns_by_difficulty_and_source():
    samples = [s(0, "5", 10, True, difficulty=2, source="a"), s(0, "5", 30, True, difficulty=2, source="a"),
               s(1, "4", 20, False, difficulty=10, source="b"), s(1, "5", 40, True, difficulty=10, source="b"),
               s(2, "4", 50, False, difficulty=2, source="b"), s(2, "4", 50, False, difficulty=2, source="b"),
               s(3, "5", 60, True, source="c", ds="x"), s(3, "5", 60, True, source="c", ds="x")]
    r = eval_report(samples, delimiter=None)
    assert list(r["by_difficulty"]) == ["2", "10"]  # numeric order; prompt 3 has no difficulty
    d2, d10 = r["by_difficulty"]["2"], r["by_difficulty"]["10"]
    assert (d2["n_prompts"], d2["n_completions"], d2["pass@1"], d2["mean_tokens"]) == (2, 4, 0.5, 35)
    assert (d10["n_prompts"], d10["pass@1"], d10["pass@k"]["2"]) == (1, 0.5, 1.0)
    assert d2["accuracy_per_1k_tokens"] == pytest.approx(0.5 / 0.035)
    assert list(r["by_source"]) == ["a", "b", "c"]
    assert r["by_source"]["b"]["n_prompts"] == 2 and r["by_source"]["b"]["pass@1"] == pytest.approx(0.25)
    assert r["by_source"]["c"]["mean_tokens"] == 60
    assert list(eval_report(samples, delimiter=None, source_key="ds")["by_source"]) == ["x"]


def test_report_k_argument_and_empty_input():
    samples = [s(0, "5", 10, True)] * 4 + [s(1, "4", 10, False)] * 2
    assert list(eval_report(samples, delimiter=None)["pass@k"]) == ["1", "2"]  # smallest group: 2
    assert list(eval_report(samples, 1, delimiter=None)["pass@k"]) == ["1"]
    with pytest.raises(ValueError):
        eval_report(samples, 4, delimiter=None)
    empty = eval_report([])
    assert empty["n_prompts"] == 0 and math.isnan(empty["pass@1"]) and empty["pass@k"] == {}
    assert "| prompts | 0 |" in to_markdown(empty)


def test_markdown_contains_the_numbers():
    samples = [s(0, "4", 300, False, truncated=True, difficulty=1), s(0, "5", 100, True, difficulty=1),
               s(1, "5", 200, True, difficulty=2), s(1, "5", 400, True, difficulty=2)]
    md = to_markdown({"model": "m", "data": "d", "split": "test", **eval_report(samples, delimiter=None)})
    assert md.startswith("## m on d (test)")
    for line in ("| pass@1 | 0.750 |", "| pass@2 | 1.000 |", "| maj@2 | 0.500 |", "| mean tokens | 250.0 |",
                 "| median tokens | 250.0 |", "| p90 tokens | 370.0 |", "| truncation rate | 0.250 |",
                 "| accuracy per 1k tokens | 3.000 |", "| degeneration rate | 0.000 |",
                 "| mean per-prompt length std | 100.0 |"):
        assert line in md, line
    assert md.count("\n| pass@1 |") == 1  # one headline row (pass@k["1"] is pass@1)
    # difficulty 1: pass@1 0.5, pass@2 1, maj@2 0 (tie 4/5 -> "4" seen first: wrong), mean 200 tokens
    assert "| 1 | 1 | 2 | 0.500 | 1.000 | 0.000 | 200.0 | 200.0 | 280.0 | 0.500 | 2.500 | 0.000 |" in md
    assert "| 2 | 1 | 2 | 1.000 | 1.000 | 1.000 | 300.0 | 300.0 | 380.0 | 0.000 | 3.333 | 0.000 |" in md


# ------------------------------------------------------------------------- trainer's evaluate()
class FakeEngine:
    """Prompt i's j-th completion: ``A:<i+j>``, 3 + j tokens, the last one cut off."""

    def generate(self, prompts, params):
        out = []
        for i, ids in enumerate(prompts):
            for j in range(params.n):
                out.append(Rollout(i, ids, [7] * (3 + j), f"A:{ids[0] + j}", "length" if j == params.n - 1 else "stop",
                                   None))
        return out


def test_evaluate_keeps_the_trainer_keys_and_adds_headline_metrics():
    from rl.data import Prompt
    from rl.engines.base import SamplingParams

    prompts = [Prompt(f"q{i}", "", str(i), "", [i], {"difficulty": 2 + i % 2}) for i in range(4)]
    out = evaluate(FakeEngine(), prompts, SamplingParams(max_new_tokens=8, n=2), tokenizer=None, delimiter=None)
    assert out["n"] == 8 and out["accuracy"] == 0.5 and out["mean_tokens"] == 3.5
    assert out["truncation_rate"] == 0.5
    assert out["by_difficulty"]["2"] == {"n": 4, "accuracy": 0.5, "mean_tokens": 3.5, "truncation_rate": 0.5}
    assert out["pass@1"] == 0.5 and out["pass@k"] == {"1": 0.5, "2": 1.0} and out["maj@k"]["2"] == 1.0
    assert out["accuracy_per_1k_tokens"] == pytest.approx(0.5 / 0.0035)
    assert "per_prompt" not in out and "median_tokens" in out and "degeneration_rate" in out
