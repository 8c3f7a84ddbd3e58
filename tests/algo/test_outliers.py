"""DOT (dynamic outlier truncation) and its predictive oversampling against hand-computed values."""

import pytest
from hypothesis import given, settings, strategies as st

from rewards.base import Sample
from rl.algo.outliers import cutoff, outliers, oversample_factor
from rl.engines.base import Rollout, cut_rollout


def group(lengths, correct=True, g=0):
    flags = correct if isinstance(correct, list) else [correct] * len(lengths)
    return [Sample(prompt_id="p", group=g, length=n, correct=c) for n, c in zip(lengths, flags)]


def test_cutoff_by_hand():
    assert cutoff([100, 100, 100, 400], alpha=3.0) == 625  # mean 175 + 3 * 150 (sample std)
    assert cutoff([100, 100, 100, 400], alpha=0.5) == 250
    assert cutoff([10, 11], alpha=1.0) == 11  # floor(10.5 + 0.7071)


def test_only_the_long_tail_of_solved_groups_is_cut():
    samples = group([100, 100, 100, 400]) + group([100, 100, 100, 400], correct=[True, True, False, True], g=1)
    assert outliers(samples, alpha=0.5, min_excess=32) == {3: 250}  # group 1 is not all correct
    assert outliers(samples, alpha=0.5, min_excess=32, success_threshold=0.75) == {3: 250, 7: 250}
    assert outliers(samples, alpha=3.0, min_excess=32) == {}  # 400 < 625


def test_equal_lengths_and_the_margin():
    assert outliers(group([50, 50, 50, 50]), alpha=0.0, min_excess=1) == {}  # std 0: T = L, nothing beyond
    # T = floor(mean 60 + 0.5 * 20) = 70: 90 - 70 = 20 is cut only when the margin allows
    assert outliers(group([50, 50, 50, 90]), alpha=0.5, min_excess=32) == {}
    assert outliers(group([50, 50, 50, 90]), alpha=0.5, min_excess=20) == {3: 70}


def test_settings_read_as_the_release_reads_them():
    """issue 24 (A4), U-rara/DOT projects/dot/length_truncation.py: each case failed before."""
    # a margin between 0 and 1 is relative: max(floor(L * m), 16); T = 1434 here, L - T = 566
    tail = group([100] * 20 + [2000])
    assert outliers(tail, min_excess=0.2) == {20: 1434} and outliers(tail, min_excess=0.5) == {}
    # min_excess 0: only what is longer than T is cut (before: L == T was "cut" and marked truncated)
    assert outliers(group([50, 50, 50, 50]), alpha=0.0, min_excess=0) == {}
    # success_threshold 0: a group with no correct completion is still never cut (before: it was)
    assert outliers(group([100, 100, 100, 400], correct=False), alpha=0.5, min_excess=32, success_threshold=0) == {}
    assert outliers(group([100, 100, 100, 400], correct=[False] * 3 + [True]), alpha=0.5, min_excess=32,
                    success_threshold=0) == {3: 250}
    # the share of correct completions in floats, as the release: 7 of 25 qualifies at 0.28 (7 < 0.28 * 25 in floats)
    assert 7 < 0.28 * 25 and 7 / 25 >= 0.28
    lengths = [100] * 24 + [400]
    flags = [True] * 6 + [False] * 18 + [True]
    assert outliers(group(lengths, correct=flags), alpha=0.5, min_excess=32, success_threshold=0.28) != {}


def test_a_cut_that_removes_the_answer_is_rescored_wrong(toy_tokenizer):
    from rl.data import Prompt
    from rl.facts import make_samples

    text = "3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10"
    ids = toy_tokenizer(text, add_special_tokens=False)["input_ids"] + [toy_tokenizer.eos_token_id]
    r = Rollout(0, [1, 2], ids, text, "stop", [-0.1] * len(ids))
    prompt = Prompt("p", "3+5+2", "10", "Q:3+5+2=", [1, 2])
    whole, = make_samples([r], [prompt], 0, toy_tokenizer, delimiter=None)
    cut = cut_rollout(r, 6, toy_tokenizer)  # "3+5=8," : cut mid-chain, the answer is gone
    short, = make_samples([cut], [prompt], 0, toy_tokenizer, delimiter=None)
    assert whole.correct and not short.correct
    assert cut.text == "3+5=8," and cut.length == 6 and cut.finish_reason == "length"
    assert cut.logprobs == [-0.1] * 6 and r.length == len(ids)  # the original is untouched


def test_oversample_factor():
    assert oversample_factor([]) == 1.5
    assert oversample_factor([0.5, 0.25]) == pytest.approx(1 / 0.375)
    assert oversample_factor([0.9]) == 1.2 and oversample_factor([0.0]) == 5.0  # clamped
    assert oversample_factor([0.1] * 30 + [0.5] * 20, history=20) == 2.0  # only the last 20 steps


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(1, 500), min_size=1, max_size=8), min_size=1, max_size=5),
       st.floats(0, 4), st.integers(1, 64), st.integers(0, 2**16))
def test_outlier_properties(groups, alpha, margin, seed):
    import random

    rng = random.Random(seed)
    samples = [s for g, lengths in enumerate(groups) for s in group(lengths, [rng.random() < 0.8 for _ in lengths], g)]
    cuts = outliers(samples, alpha=alpha, min_excess=margin)
    for i, t in cuts.items():
        same = [s for s in samples if s.group == samples[i].group]
        assert all(s.correct for s in same)  # only solved groups
        assert t == cutoff([s.length for s in same], alpha) and samples[i].length - t >= margin
        assert t >= min(s.length for s in same)  # never below the group's shortest completion


def test_roll_round_trains_on_the_cut_and_reports_what_was_written(toy_tokenizer):
    """A fake engine writes one solved group (3 short, 1 long completion): the step trains on the
    cut completion, re-verified, while ``generated`` (the step metrics) keeps what was written."""
    from types import SimpleNamespace

    from rewards import build_rewards
    from rl.config import Config
    from rl.data import Prompt, PromptSampler
    from rl.train.sampling import collect

    short = "3+5=8,8+2=10.A:10"
    long = "3+5=8,8+2=10.check1:3+5=8,8+2=10.check2:3+5=8,8+2=10.check3:3+5=8,8+2=10.A:10"

    class Engine:
        pad_id = 0

        def generate(self, prompts, params):
            out = []
            for i, _ in enumerate(prompts):
                for text in [short] * 3 + [long]:
                    ids = toy_tokenizer(text, add_special_tokens=False)["input_ids"] + [toy_tokenizer.eos_token_id]
                    out.append(Rollout(i, [1, 2], ids, text, "stop", None))
            return out

    cfg = Config()
    cfg.rollout.prompts_per_step, cfg.rollout.group_size, cfg.data.delimiter = 1, 4, None
    cfg.algo.outlier_truncation = {"alpha": 1.0, "min_excess": 8}
    acc = SimpleNamespace(num_processes=1, process_index=0)
    run = SimpleNamespace(cfg=cfg, acc=acc, sampler=PromptSampler(1, 0), tokenizer=toy_tokenizer, engine=Engine(),
                          train_prompts=[Prompt("p", "3+5+2", "10", "Q:3+5+2=", [1, 2])],
                          rewards=build_rewards([{"name": "correctness"}]), ctx=SimpleNamespace(state={}))
    batch = collect(run, 1, SimpleNamespace(max_new_tokens=64))
    n_short = len(toy_tokenizer(short, add_special_tokens=False)["input_ids"]) + 1
    n_long = len(toy_tokenizer(long, add_special_tokens=False)["input_ids"]) + 1
    t = cutoff([n_short] * 3 + [n_long], 1.0)
    assert [s.length for s in batch.generated] == [n_short] * 3 + [n_long] and all(s.correct for s in batch.generated)
    assert [s.length for s in batch.table] == [n_short] * 3 + [t] and batch.rollouts[3].length == t
    assert batch.table[3].truncated and batch.rollouts[3].finish_reason == "length"
    assert batch.stats["dot/cut_fraction"] == 0.25 and batch.stats["dot/tokens_cut"] == n_long - t
