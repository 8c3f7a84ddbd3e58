"""The transformers rollout engine and the training-batch layout agree with each other."""

import pytest
import torch

from rl.facts import delimiter_span, make_samples
from rl.data import Prompt
from rl.rollout import SamplingParams, TransformersEngine
from rl.update import completion_logprobs, make_batch


@pytest.fixture(scope="module")
def toy(untrained_toy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(untrained_toy)
    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    return model, tok


def prompts(tok, texts):
    return [tok(t)["input_ids"] for t in texts]


def test_shapes_order_and_finish_reason(toy):
    model, tok = toy
    torch.manual_seed(0)
    out = TransformersEngine(model, tok, batch_size=4).generate(
        prompts(tok, ["Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9="]), SamplingParams(max_new_tokens=8, n=2))
    assert [r.prompt_index for r in out] == [0, 0, 1, 1, 2, 2]  # prompt-major, batches of 4 split a group
    for r in out:
        assert 1 <= r.length <= 8 and len(r.logprobs) == r.length
        assert all(lp <= 0 for lp in r.logprobs)
        ends_with_eos = r.completion_ids[-1] == tok.eos_token_id
        assert r.finish_reason == ("stop" if ends_with_eos else "length")
        assert r.finish_reason == "stop" or r.length == 8


def test_eos_stops_and_is_kept(toy):
    model, tok = toy
    eos = tok.eos_token_id

    def force_eos_after_two(module, args, output):
        # every position predicts "7" until 2 tokens are generated, then EOS
        seq_len = module._calls
        module._calls += 1
        logits = torch.full_like(output, -1e4)
        logits[..., tok.convert_tokens_to_ids("7") if seq_len < 2 else eos] = 0
        return logits

    model.lm_head._calls = 0
    h = model.lm_head.register_forward_hook(force_eos_after_two)
    try:
        out = TransformersEngine(model, tok).generate(prompts(tok, ["Q:1+2="]), SamplingParams(max_new_tokens=8, greedy=True))
    finally:
        h.remove()
    assert out[0].completion_ids == [tok.convert_tokens_to_ids("7")] * 2 + [eos]
    assert out[0].finish_reason == "stop" and out[0].text == "77" and out[0].length == 3


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_training_forward(toy, temperature):
    """Left-padded generation and the (left-pad prompt | right-pad completion) training layout
    give the same per-token log-probs: the batch layout and position ids are right."""
    model, tok = toy
    torch.manual_seed(1)
    rollouts = TransformersEngine(model, tok).generate(
        prompts(tok, ["Q:1+2=", "Q:3+4+5+6+7="]), SamplingParams(max_new_tokens=12, n=3, temperature=temperature))
    batch = make_batch(rollouts, tok.pad_token_id)
    with torch.no_grad():
        logp, ent = completion_logprobs(model, batch, temperature, with_entropy=True)
    for i, r in enumerate(rollouts):
        assert torch.allclose(logp[i, : r.length], torch.tensor(r.logprobs), atol=1e-4)
        assert batch.completion_mask[i].sum() == r.length
    assert (ent[batch.completion_mask.bool()] > 0).all()


def test_delimiter_span_and_facts(toy_tokenizer):
    tok = toy_tokenizer
    ids = tok("abc</think>xy")["input_ids"] + [tok.eos_token_id]
    assert delimiter_span(ids, "abc</think>xy", "</think>", tok) == (3, 11)
    assert delimiter_span(ids, "abcxy", "</think>", tok) is None
    from rl.rollout import Rollout

    p = Prompt("id1", "3+7", "10", "Q:3+7=", tok("Q:3+7=")["input_ids"], {"difficulty": 2})
    r = Rollout(0, p.ids, ids, "abc</think>A:10", "stop", None)
    (s,) = make_samples([r], [p], group_offset=5, tokenizer=tok)
    assert s.group == 5 and s.prompt_id == "id1" and s.length == len(ids) and not s.truncated
    assert s.correct is True  # answer read after </think>
    assert s.think_length == 3 and s.answer_length == len(ids) - 11
    assert s.meta == {"difficulty": 2}
