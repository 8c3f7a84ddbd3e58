"""builtin:toy-think (rl/toy_think.py): traces, slips, forced re-checks. The trained model's curve is
a slow test (it builds the toy: minutes)."""

import random
from collections import Counter

import pytest
import torch

from rl.tasks import _parse_operands
from rl.toy import build_tokenizer, sft_example
from rl.toy_think import (ForceChecks, chain, count_checks, first_chain_total, forced_check_curve, slip,
                          think_trace, think_traces)


def test_slip_is_a_forgotten_carry_or_a_units_digit_off_by_one():
    assert slip(random.Random(0), 17, 5) == 12  # 7 + 5 overflows: the carry is lost
    assert slip(random.Random(0), 38, 9) == 37
    for seed in range(20):
        assert slip(random.Random(seed), 21, 3) in (23, 25)


def test_one_digit_steps_never_slip_so_two_operand_traces_are_always_right():
    rng = random.Random(0)
    for a in range(10):
        for b in range(10):
            trace = think_trace(f"{a}+{b}", 0, rng, slip_rate=1.0)
            assert trace == f"{a}+{b}={a + b}.A:{a + b}"


def test_a_slip_is_carried_on_and_the_last_chain_gives_the_answer():
    # 17+6 loses its carry (13), then 13+4 is off by one (16 instead of 17): the wrong total goes on
    assert chain([9, 8, 6, 4], random.Random(1), slip_rate=1.0).text == "9+8=17,17+6=13,13+4=16."
    trace = think_trace("9+8+6", 2, random.Random(1), slip_rate=1.0)
    assert trace == "9+8=17,17+6=13.check1:6+9=15,15+8=23.check2:6+9=15,15+8=23.A:23"
    assert first_chain_total(trace) == 13 and count_checks(trace) == 2


def test_without_slips_every_chain_is_right_and_checks_start_from_the_last_operand():
    assert think_trace("3+5+2", 1) == "3+5=8,8+2=10.check1:2+3=5,5+5=10.A:10"
    assert think_trace("1+2+3+4", 1) == "1+2=3,3+3=6,6+4=10.check1:4+1=5,5+2=7,7+3=10.A:10"
    assert think_trace("7+4", 0) == "7+4=11.A:11"
    with pytest.raises(ValueError):
        think_trace("7+4", -1)


def test_sft_pairs_slip_more_often_with_more_operands_and_checks_always_fix_them():
    rng = random.Random(0)
    wrong, total, fixed = Counter(), Counter(), 0
    for _ in range(4000):
        prompt, completion = sft_example(rng, "think")
        question = prompt[2:-1]
        n, answer = len(question.split("+")), sum(_parse_operands(question))
        total[n] += 1
        slipped = first_chain_total(completion) != answer
        wrong[n] += slipped
        final = int(completion.rsplit("A:", 1)[1])
        if count_checks(completion):
            assert final == answer  # a re-check never slips
            fixed += slipped
        else:
            assert final == first_chain_total(completion)
    rate = {n: wrong[n] / total[n] for n in total}
    assert rate[2] == 0
    assert rate[3] < rate[4] < rate[5]
    assert 0.2 < rate[5] < 0.4
    assert fixed > 100


def test_think_variants_compose_with_the_tag_and_the_budget():
    from rl.toy import TAGS, budget_example

    prompt, completion = sft_example(random.Random(3), "think-tagged")
    assert prompt.startswith("Q:") and completion[:6] in TAGS and "A:" in completion
    prompt, completion = sft_example(random.Random(3), "think-budget")
    budget = int(prompt[1:prompt.index("Q")])
    assert len(completion) + 1 <= budget  # the trace fits its budget (L1-Max's sense)
    traces = think_traces("9+8+6", random.Random(1), slip_rate=1.0)
    for k in range(5):  # the budget picks exactly k re-checks from toy-think's own trace lengths
        b = budget_example(random.Random(k), "9+8+6", k, traces)
        assert max(i for i in range(5) if len(traces[i]) + 1 <= b or i == 0) == k


def _scores_after(text_so_far: str, n_checks: int, prompt: str = "Q:1+2=") -> torch.Tensor:
    tok = build_tokenizer()
    ids = tok(prompt + text_so_far, add_special_tokens=False, return_tensors="pt")["input_ids"]
    proc = ForceChecks(tok, n_checks, prompt_width=len(prompt))
    scores = proc(ids, torch.zeros(1, len(tok)))
    return tok.convert_ids_to_tokens([int(scores[0].argmax())])[0], int(torch.isfinite(scores[0]).sum())


def test_force_checks_forces_the_token_after_each_chain_only():
    assert _scores_after("1+2=3.", 2) == ("c", 1)  # no check yet: start one
    assert _scores_after("1+2=3.check1:2+1=3.", 2) == ("c", 1)
    assert _scores_after("1+2=3.check1:2+1=3.check2:2+1=3.", 2) == ("A", 1)  # two written: answer
    assert _scores_after("1+2=3.", 0) == ("A", 1)
    assert _scores_after("1+2=", 1)[1] == len(build_tokenizer())  # mid-chain: the model's own choice
    assert _scores_after("", 1)[1] == len(build_tokenizer())


@pytest.mark.slow
def test_the_trained_toy_pays_for_checking_on_hard_problems_only(tmp_path):
    """The toy's premise: +5 pt or more from 0 to 2 forced re-checks at 5 operands, no gain (< 1 pt) at 2
    operands (measured: +12.9 pt and -1.1 pt at 1600 samples a cell: on easy problems an extra chain is
    only one more chance of a T=1 sampling slip)."""
    from rl.toy import ensure_toy

    rows = forced_check_curve(str(ensure_toy(variant="think")), checks=(0, 2), operands=(2, 5), problems=100,
                              samples=8)
    acc = {(r["operands"], r["checks"]): r["accuracy"] for r in rows}
    assert acc[(5, 2)] - acc[(5, 0)] >= 0.05
    assert acc[(2, 2)] - acc[(2, 0)] < 0.01
