"""Dynamic sampling (rl/train/sampling.py): drop zero-std groups, refill from fresh prompts, give up
after ``algo.max_sampling_rounds`` with a warning; per-step metrics by difficulty."""

from __future__ import annotations

import types

import pytest

from rewards import build_rewards
from rewards.base import Context
from rl.config import load_config
from rl.data import Prompt, PromptSampler
from rl.engines.base import Rollout, SamplingParams
from rl.train.sampling import by_difficulty, collect, group_zero_std_fraction, zero_std_groups


class ScriptedEngine:
    """Answers prompt ``P<i>`` correctly in completions whose index j is in ``pattern[i]``."""

    pad_id = 0

    def __init__(self, tokenizer, patterns: dict[int, set[int]]):
        self.tok, self.patterns, self.calls = tokenizer, patterns, []

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Rollout]:
        out = []
        for pi, ids in enumerate(prompts):
            i = int(self.tok.decode(ids).split("P")[1].rstrip("="))
            self.calls.append(i)
            for j in range(params.n):
                text = f"A:{i if j in self.patterns[i] else i + 1}"
                cids = self.tok.encode(text, add_special_tokens=False) + [self.tok.eos_token_id]
                out.append(Rollout(pi, ids, cids, text, "stop", None))
        return out


def make_run(tokenizer, patterns, n_prompts=12, per_step=4, group=4, rounds=10, metric="correctness"):
    cfg = load_config(None, [f"rollout.prompts_per_step={per_step}", f"rollout.group_size={group}",
                             f"algo.dynamic_sampling={metric}", f"algo.max_sampling_rounds={rounds}",
                             "data.delimiter=null", "rewards=[{name: correctness}]"])
    prompts = [Prompt(f"p{i}", f"P{i}", str(i), f"P{i}=", tokenizer.encode(f"P{i}=", add_special_tokens=False),
                      {"difficulty": 2 + i % 2}) for i in range(n_prompts)]
    run = types.SimpleNamespace(
        cfg=cfg, acc=types.SimpleNamespace(num_processes=1, process_index=0), tokenizer=tokenizer,
        engine=ScriptedEngine(tokenizer, patterns), rewards=build_rewards(cfg.rewards), train_prompts=prompts,
        sampler=PromptSampler(n_prompts, 0), ctx=Context(max_length=16, group_size=group), policy=None)
    return run


def params(n=4):
    return SamplingParams(max_new_tokens=16, n=n)


def test_refill_keeps_only_groups_with_signal(toy_tokenizer):
    # prompts 0-5 all correct or all wrong (zero std), 6-11 mixed: rounds of 4 prompts must be
    # refilled until 4 mixed groups are pooled
    patterns = {i: ({0, 1, 2, 3} if i % 2 else set()) for i in range(6)}
    patterns |= {i: {0, 2} for i in range(6, 12)}
    run = make_run(toy_tokenizer, patterns)
    order = run.sampler._order[:]
    batch = collect(run, 1, params())
    mixed_positions = [k for k, i in enumerate(order) if i >= 6]
    rounds_needed = mixed_positions[3] // 4 + 1  # the round that yields the 4th mixed prompt
    assert batch.stats["sampling/rounds"] == rounds_needed
    assert len(run.engine.calls) == 4 * rounds_needed  # fresh prompts each round
    kept_ids = {s.prompt_id for s in batch.table}
    assert kept_ids == {f"p{i}" for i in [order[k] for k in mixed_positions[:4]]}
    assert sorted({s.group for s in batch.table}) == [0, 1, 2, 3]  # renumbered
    assert len(batch.table) == len(batch.rollouts) == 16
    for s, r in zip(batch.samples, batch.rollouts):  # rollouts stay aligned with their samples
        assert s.completion == r.text
    assert len(batch.generated) == 16 * rounds_needed
    seen = order[: 4 * rounds_needed]
    assert batch.stats["sampling/kept_fraction"] == pytest.approx(sum(i >= 6 for i in seen) / len(seen))
    assert batch.stats["sampling/zero_std_fraction"] == pytest.approx(1 - batch.stats["sampling/kept_fraction"])
    assert all(0 < sum(s.correct for s in batch.table if s.group == g) < 4 for g in range(4))


def test_gives_up_after_max_rounds_with_a_warning(toy_tokenizer):
    patterns = {i: ({0, 1, 2, 3} if i < 11 else {1}) for i in range(12)}  # a single mixed prompt
    run = make_run(toy_tokenizer, patterns, rounds=2)
    order = run.sampler._order[:]
    with pytest.warns(UserWarning, match="only .* of 4 groups .* after 2 rounds"):
        batch = collect(run, 1, params())
    assert batch.stats["sampling/rounds"] == 2
    expect = 1 if 11 in order[:8] else 0
    assert batch.stats["sampling/kept_groups"] == expect
    assert len(batch.table) == 4 * expect and len(batch.generated) == 32


def test_reward_metric_uses_the_scored_rewards(toy_tokenizer):
    # all-correct groups of identical completions: the scored reward has zero std in every group
    patterns = {i: {0, 1, 2, 3} for i in range(12)}
    run = make_run(toy_tokenizer, patterns, rounds=1, metric="reward")
    with pytest.warns(UserWarning):
        batch = collect(run, 1, params())
    assert batch.stats["sampling/kept_groups"] == 0 and batch.rollouts == []


def test_without_dynamic_sampling_one_round_keeps_everything(toy_tokenizer):
    patterns = {i: {0, 1, 2, 3} for i in range(12)}
    run = make_run(toy_tokenizer, patterns)
    run.cfg.algo.dynamic_sampling = None
    batch = collect(run, 1, params())
    assert batch.stats == {"sampling/rounds": 1.0}
    assert len(batch.table) == 16 and batch.generated is batch.table


def test_zero_std_helpers():
    S = types.SimpleNamespace
    table = [S(group=g, correct=c, length=n, meta={"difficulty": d})
             for g, c, n, d in [(0, 1, 10, 2), (0, 1, 20, 2), (1, 0, 30, 3), (1, 1, 40, 3), (2, 0, 5, 3), (2, 0, 5, 3)]]
    assert zero_std_groups(table, [1, 1, 0, 1, 0, 0]) == {0, 2}
    assert group_zero_std_fraction(table, [1, 1, 0, 1, 0, 0]) == pytest.approx(2 / 3)
    assert by_difficulty(table) == {"by_difficulty/2/accuracy": 1.0, "by_difficulty/2/tokens": 15.0,
                                    "by_difficulty/3/accuracy": 0.25, "by_difficulty/3/tokens": 20.0}
