"""builtin:toy-think (rl/models/toy_think.py): traces, hidden wrong one-shot answers, forced re-checks. The trained
model's curve is a slow test (it builds the toy: minutes)."""

import random
from collections import Counter

import pytest
import torch

from rl.models.toy import build_tokenizer, sft_example
from rl.models.toy_build import collate_sft
from rl.models.toy_think import (ForceChecks, count_checks, forced_check_curve, one_shot_answer, think_example,
                                 think_trace, think_traces, wrong_guess)
from rl.tasks import _parse_operands


def test_a_trace_is_a_one_shot_answer_then_step_by_step_re_checks():
    assert think_trace("3+5+2", 0) == "10.A:10"
    assert think_trace("3+5+2", 1) == "10.check1:3+5=8,8+2=10.A:10"
    assert think_trace("1+2+3+4", 2) == "10.check1:1+2=3,3+3=6,6+4=10.check2:1+2=3,3+3=6,6+4=10.A:10"
    assert think_trace("7+4", 0) == "11.A:11"
    with pytest.raises(ValueError):
        think_trace("7+4", -1)


def test_the_answer_is_the_last_chain_s_total_so_a_re_check_corrects_a_wrong_one_shot_answer():
    assert think_traces("9+8+6", max_checks=2, guess=13) == [
        "13.A:13", "13.check1:9+8=17,17+6=23.A:23", "13.check1:9+8=17,17+6=23.check2:9+8=17,17+6=23.A:23"]
    assert one_shot_answer("13.check1:9+8=17,17+6=23.A:23") == 13
    assert count_checks("13.check1:9+8=17,17+6=23.check2:9+8=17,17+6=23.A:23") == 2


def test_a_wrong_one_shot_answer_is_off_by_1_to_3_and_never_negative():
    seen = set()
    for seed in range(200):
        for total in (0, 1, 9, 23, 45):
            g = wrong_guess(random.Random(seed), total)
            assert g != total and g >= 0 and abs(g - total) in (1, 2, 3)
            seen.add(g - total)
    assert seen == {-3, -2, -1, 1, 2, 3}


def test_wrong_one_shot_answers_and_the_check_they_precede_are_never_trained_on():
    rng = random.Random(0)
    hidden, trained, k = think_example(rng, "9+8+6", wrong_rate=1.0)
    assert hidden.endswith(".c") and int(hidden[:-2]) != 23 and trained.startswith("heck1:") and k >= 1
    assert hidden + trained == think_trace("9+8+6", k, int(hidden[:-2]))
    for seed in range(50):  # 2 operands: never a wrong one-shot answer
        assert think_example(random.Random(seed), "9+8", wrong_rate=1.0)[0] == ""
    # the hidden part sits on the prompt side of the SFT pair: no label
    prompt, completion = "Q:9+8+6=" + hidden, trained
    batch = collate_sft([(prompt, completion)], build_tokenizer())
    labelled = batch["labels"][0][batch["labels"][0] != -100]
    assert len(labelled) == len(completion) + 1  # the completion and EOS, nothing of the wrong answer


def test_sft_pairs_teach_right_one_shot_answers_and_checks_independent_of_difficulty():
    rng = random.Random(0)
    hidden, checks = Counter(), {n: Counter() for n in range(2, 6)}
    for _ in range(12000):
        prompt, completion = sft_example(rng, "think")
        question = prompt[2:prompt.index("=")]
        n, answer = len(question.split("+")), sum(_parse_operands(question))
        assert int(completion.rsplit("A:", 1)[1]) == answer  # every trained answer is right
        if prompt.endswith("="):  # the one-shot answer is trained: always right
            assert one_shot_answer(completion) == answer
            checks[n][count_checks(completion) > 0] += 1
            hidden[n, False] += 1
        else:  # a hidden wrong one-shot answer, always followed by a check
            assert one_shot_answer(prompt[prompt.index("=") + 1:]) != answer and completion.startswith("heck1:")
            assert 1 <= count_checks("c" + completion) <= 4
            hidden[n, True] += 1
    assert hidden[2, True] == 0
    for n in (3, 4, 5):
        assert 0.66 < hidden[n, True] / (hidden[n, True] + hidden[n, False]) < 0.74  # WRONG_GUESS_RATE
    share = {n: c[True] / sum(c.values()) for n, c in checks.items()}  # P(check) after a trained answer
    assert max(share.values()) - min(share.values()) < 0.08 and all(0.25 < v < 0.35 for v in share.values())


def test_think_variants_compose_with_the_tag_and_the_budget():
    from rl.models.toy import TAGS, budget_example

    rng = random.Random(3)
    for _ in range(50):
        prompt, completion = sft_example(rng, "think-tagged")
        assert prompt.startswith("Q:") and "A:" in completion
        assert completion[:6] in TAGS if prompt.endswith("=") else prompt[prompt.index("=") + 1:][:6] in TAGS
    for _ in range(50):
        prompt, completion = sft_example(rng, "think-budget")
        budget = int(prompt[1:prompt.index("Q")])
        visible = prompt[prompt.index("=") + 1:] + completion
        assert len(visible) + 1 <= budget + 2  # fits (a wrong one-shot answer may be a digit longer)
    traces = think_traces("9+8+6")
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
    assert _scores_after("3.", 2) == ("c", 1)  # no check yet: start one
    assert _scores_after("3.check1:1+2=3.", 2) == ("c", 1)
    assert _scores_after("3.check1:1+2=3.check2:1+2=3.", 2) == ("A", 1)  # two written: answer
    assert _scores_after("3.", 0) == ("A", 1)
    assert _scores_after("3.check1:1+2=", 1)[1] == len(build_tokenizer())  # mid-chain: the model's own choice
    assert _scores_after("", 1)[1] == len(build_tokenizer())


@pytest.mark.slow
def test_the_trained_toy_pays_for_checking_on_hard_problems_only(tmp_path):
    """The toy's premise: +5 pt or more from 0 to 2 forced re-checks at 5 operands, no gain (< 1 pt) at 2
    operands (measured: +49.2 pt and -1.0 pt at 1600 samples a cell: a 2-operand chain is the one-shot sum
    itself, and each extra chain is one more chance of a T=1 sampling error)."""
    from rl.models.toy_build import ensure_toy

    rows = forced_check_curve(str(ensure_toy(variant="think")), checks=(0, 2), operands=(2, 5), problems=100,
                              samples=8)
    acc = {(r["operands"], r["checks"]): r["accuracy"] for r in rows}
    assert acc[(5, 2)] - acc[(5, 0)] >= 0.05
    assert acc[(2, 2)] - acc[(2, 0)] < 0.01
