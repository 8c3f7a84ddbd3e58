"""Per-prompt generation limits in the rollout round (rl/train/sampling.py): a reward's
``prompt_limits`` hook and a ``max_new_tokens`` data column set each prompt's limit before
generation, the engine receives them, every Sample of the prompt carries the limit it was written
under, and truncation is relative to it. PALU's budgets go through the same path."""

from __future__ import annotations

import dataclasses

import pytest

from rewards.base import Reward, sample_limit
from rl.engines.base import Rollout, SamplingParams
from rl.train.sampling import (LIMIT_KEY, collect, generate_forced, limit_setters, reward_metrics,
                               with_prompt_limits)

from tests.train.test_sampling import make_run

NATURAL = 6  # tokens every scripted completion would write without a limit


class LimitEngine:
    """Writes ``NATURAL`` tokens per completion, or its prompt's limit if lower (then ``length``);
    records the limits it was given per call."""

    pad_id = 0

    def __init__(self, tokenizer):
        self.tok, self.calls = tokenizer, []

    def generate(self, prompts, params, limits=None):
        self.calls.append(limits)
        out = []
        for i, ids in enumerate(prompts):
            cap = params.max_new_tokens if limits is None else min(limits[i], params.max_new_tokens)
            n = int(self.tok.decode(ids).split("P")[1].rstrip("="))
            answer = self.tok.encode(f"A:{n}", add_special_tokens=False)
            full = (answer + answer * NATURAL)[: NATURAL - 1] + [self.tok.eos_token_id]  # "A:nA:n..." then EOS
            for _ in range(params.n):
                ids_out = full[:cap]
                out.append(Rollout(i, ids, ids_out, self.tok.decode(ids_out, skip_special_tokens=True),
                                   "length" if cap < len(full) else "stop", None))
        return out


class FixedLimits(Reward):
    name = "fixed_limits"

    def __init__(self, limits):
        self.limits, self.seen = limits, []

    def __call__(self, samples, ctx):
        return [float(bool(s.correct)) for s in samples]

    def prompt_limits(self, prompts, ctx):
        self.seen.append([(p.prompt_id, p.group, p.meta.get("difficulty")) for p in prompts])
        return {pid: k for pid, k in self.limits.items()}


def run_with(tokenizer, reward=None, per_step=4, column=None):
    run = make_run(tokenizer, {i: {0, 1, 2, 3} for i in range(12)}, per_step=per_step)
    run.cfg.algo.dynamic_sampling = None
    run.engine = LimitEngine(tokenizer)
    if reward is not None:
        run.rewards.rewards.append(reward)
        run.rewards.names.append(reward.name)
        run.rewards.weights.append(0.0)
    if column is not None:
        run.train_prompts = [dataclasses.replace(p, meta={**p.meta, LIMIT_KEY: column(i)})
                             for i, p in enumerate(run.train_prompts)]
    return run


def params(limit=16, n=4):
    return SamplingParams(max_new_tokens=limit, n=n)


def test_without_a_source_nothing_changes(toy_tokenizer):
    run = run_with(toy_tokenizer)
    batch = collect(run, 1, params())
    assert run.engine.calls == [None]  # generate(prompts, params): no limits argument
    assert all(LIMIT_KEY not in s.meta for s in batch.table) and batch.stats == {"sampling/rounds": 1.0}
    assert all(sample_limit(s, run.ctx) == 16 for s in batch.table)


def test_reward_hook_limits_its_prompts_and_samples_carry_the_limit(toy_tokenizer):
    run = run_with(toy_tokenizer)
    order = run.sampler._order[:4]
    reward = FixedLimits({f"p{order[0]}": 3, f"p{order[1]}": 40, "p-unknown": 2})
    run.rewards.rewards.append(reward)
    batch = collect(run, 1, params())
    assert run.engine.calls == [[3, 16, 16, 16]]  # capped at the step's limit; ids not drawn are ignored
    assert reward.seen == [[(f"p{i}", g, 2 + i % 2) for g, i in enumerate(order)]]  # stubs: id, group, meta
    by_prompt = {s.prompt_id: s for s in batch.table}
    cut = by_prompt[f"p{order[0]}"]
    assert cut.meta[LIMIT_KEY] == 3 and cut.length == 3 and cut.truncated  # truncated at its own limit
    assert sample_limit(cut, run.ctx) == 3
    full = by_prompt[f"p{order[1]}"]
    assert full.meta[LIMIT_KEY] == 16 and full.length == NATURAL and not full.truncated
    assert batch.stats["rollout/limit_mean"] == pytest.approx((3 + 16 * 3) / 4)
    assert batch.stats["rollout/limited_share"] == 0.25
    assert all(LIMIT_KEY not in p.meta for p in run.train_prompts)  # the data set itself is untouched


def test_data_column_limits_and_the_smallest_source_wins(toy_tokenizer):
    run = run_with(toy_tokenizer, column=lambda i: 4 if i % 2 else 50)
    order = run.sampler._order[:4]
    run.rewards.rewards.append(FixedLimits({f"p{i}": 2 for i in order[:1]}))
    collect(run, 1, params())
    expect = [4 if i % 2 else 16 for i in order]
    expect[0] = 2
    assert run.engine.calls == [expect]


def test_bad_limits_are_named(toy_tokenizer):
    run = run_with(toy_tokenizer, column=lambda i: 0)
    with pytest.raises(ValueError, match="data column 'max_new_tokens' must be a whole number"):
        collect(run, 1, params())
    run = run_with(toy_tokenizer, FixedLimits({f"p{i}": 2.5 for i in range(12)}))
    with pytest.raises(ValueError, match="reward 'fixed_limits': prompt_limits"):
        collect(run, 1, params())


def test_forced_prefixes_share_the_prompt_limit():
    calls = []

    class Eng:
        def generate(self, prompts, params, limits=None):
            calls.append((params.n, params.max_new_tokens, limits))
            return [Rollout(i, p, [9], "x", "stop", [0.0]) for i, p in enumerate(prompts) for _ in range(params.n)]

    class Tok:
        def encode(self, text, add_special_tokens=False):
            return [5] * len(text)

        def decode(self, ids, skip_special_tokens=True):
            return "t" * len(ids)

    prefixes = [{"text": "ab", "fraction": 0.5, "max_new_tokens": 8}]
    generate_forced(Eng(), [[1], [2]], SamplingParams(max_new_tokens=20, n=4), prefixes, Tok(), limits=[5, 12])
    # forced share: min(limit, 8) - 2 tokens after the prefix; free share: the prompt's limit
    assert calls == [(2, 6, [3, 6]), (2, 20, [5, 12])]


def test_palu_budgets_drive_generation_and_refuse_partial(toy_tokenizer):
    from rewards.palu import PALU

    palu = PALU(floor=2)
    run = run_with(toy_tokenizer, palu)
    order = run.sampler._order[:4]
    palu.load_state_dict({"budgets": {f"p{order[2]}": 4}})
    batch = collect(run, 1, params())
    assert run.engine.calls == [[16, 16, 4, 16]]
    palu.update(batch.generated, run.ctx)
    assert reward_metrics(run.rewards)["palu/budget_mean"] == pytest.approx((16 * 3 + 4) / 4)
    assert limit_setters(run.rewards) == [palu]
    soft = PALU(hard_cap=False)
    assert limit_setters(run_with(toy_tokenizer, soft).rewards) == []
    run.cfg.rollout.partial = True
    with pytest.raises(NotImplementedError, match="reward 'palu' sets per-prompt generation limits"):
        collect(run, 2, params())


def test_with_prompt_limits_returns_none_without_sources(toy_tokenizer):
    run = run_with(toy_tokenizer)
    prompts = run.train_prompts[:3]
    assert with_prompt_limits(run, prompts, 16) == (prompts, None)
