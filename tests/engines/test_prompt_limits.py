"""Per-prompt generation limits in ``generate`` (``limits=``): the transformers engine (untrained toy,
greedy: a completion cut at its limit k is the first k tokens of the uncut one, finish reason
``length``). The vLLM engines, against real vLLM: tests/engines/test_vllm.py and
tests/engines/test_vllm_server.py (``laconic serve``: each prompt's request carries its own
``max_tokens``, capped at the step's; a 0 limit sends nothing)."""

from __future__ import annotations

import pytest

from rl.engines.base import SamplingParams, prompt_limits

QUESTIONS = ["Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0="]
GREEDY = SamplingParams(max_new_tokens=12, greedy=True)


def check_cut(full, cut, limits, n=1):
    """``cut`` (generated with ``limits``) against ``full`` (without): prefix, finish reason, log-probs."""
    assert [r.prompt_index for r in cut] == [r.prompt_index for r in full]
    shortened = 0
    for f, c in zip(full, cut):
        k = limits[c.prompt_index]
        if f.length > k:
            assert c.completion_ids == f.completion_ids[:k] and c.finish_reason == "length"
            if c.logprobs is not None:
                assert c.logprobs == pytest.approx(f.logprobs[:k], abs=1e-4)
            shortened += 1
        else:
            assert (c.completion_ids, c.finish_reason) == (f.completion_ids, f.finish_reason)
    return shortened


def test_prompt_limits_helper():
    p = SamplingParams(max_new_tokens=10)
    assert prompt_limits(None, p, 2) is None
    assert prompt_limits([10, 30], p, 2) is None  # none below the step's limit: the usual path
    assert prompt_limits([3, 30, -2], p, 3) == [3, 10, 0]
    with pytest.raises(ValueError, match="2 generation limits for 3 prompts"):
        prompt_limits([1, 2], p, 3)


@pytest.fixture(scope="module")
def toy(untrained_toy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(untrained_toy)
    return AutoModelForCausalLM.from_pretrained(untrained_toy), tok


@pytest.mark.parametrize("drop_finished", [True, False])
def test_transformers_engine_honours_each_prompts_limit(toy, drop_finished):
    from rl.engines.transformers import TransformersEngine

    model, tok = toy
    engine = TransformersEngine(model, tok, batch_size=3, drop_finished=drop_finished)  # batches split groups
    prompts = [tok(q)["input_ids"] for q in QUESTIONS]
    params = SamplingParams(max_new_tokens=12, greedy=True, n=2)
    full = engine.generate(prompts, params)
    limits = [3, 12, 7, 1]
    cut = engine.generate(prompts, params, limits=limits)
    assert check_cut(full, cut, limits) >= 4, "no completion reached its limit: the test is vacuous"
    assert all(r.length <= k for r, k in zip(cut, [k for k in limits for _ in range(2)]))
    same = engine.generate(prompts, params, limits=[12, 50, 12, 12])  # none below the step's: unchanged
    assert [(r.completion_ids, r.finish_reason) for r in same] == [(r.completion_ids, r.finish_reason) for r in full]
    zero = engine.generate(prompts[:2], params, limits=[0, 2])
    assert [(r.completion_ids, r.finish_reason) for r in zero[:2]] == [([], "length")] * 2
    assert [r.length for r in zero[2:]] == [2, 2]
