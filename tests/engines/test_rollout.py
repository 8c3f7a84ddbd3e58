"""The transformers rollout engine and the training-batch layout agree with each other."""

import pytest
import torch

from rl.data import Prompt
from rl.engines.base import SamplingParams
from rl.engines.transformers import TransformersEngine, sample_next
from rl.facts import delimiter_span, make_samples
from rl.train.update import completion_logprobs, make_batch


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


@pytest.fixture
def eos_often(toy):
    """The untrained toy rarely stops: lift EOS to the top at about a third of the positions,
    picked by a pseudo-random function of the logits themselves (so the same rule holds in
    generation and in the training forward), so completions end at different steps."""
    model, tok = toy
    eos = tok.eos_token_id

    def hook(module, args, output):
        out = output.clone()
        top = out.max(-1)
        lift = (out.sum(-1) * 10).floor().long() % 3 == 0
        out[..., eos] = torch.where(lift, top.values + 8.0, out[..., eos])
        return out

    h = model.lm_head.register_forward_hook(hook)
    yield model, tok
    h.remove()


@pytest.mark.parametrize("drop_finished", [True, False])
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0)])
def test_sampler_logprobs_match_training_forward(eos_often, temperature, top_p, drop_finished):
    """Left-padded generation and the (left-pad prompt | right-pad completion) training layout
    give the same per-token log-probs: the batch layout and position ids are right, also when
    finished rows leave the batch (and its KV cache) at different steps."""
    model, tok = eos_often
    torch.manual_seed(1)
    rollouts = TransformersEngine(model, tok, drop_finished=drop_finished).generate(
        prompts(tok, ["Q:1+2=", "Q:3+4+5+6+7=", "Q:8="]),
        SamplingParams(max_new_tokens=12, n=6, temperature=temperature, top_p=top_p))  # 18 rows: drops wait for 2
    lengths = [r.length for r in rollouts]
    assert len(set(lengths)) >= 3 and min(lengths) < 12  # rows did finish at different steps
    batch = make_batch(rollouts, tok.pad_token_id)
    with torch.no_grad():
        logp, ent = completion_logprobs(model, batch, temperature, with_entropy=True)
    for i, r in enumerate(rollouts):
        assert torch.allclose(logp[i, : r.length], torch.tensor(r.logprobs), atol=1e-4)
        assert batch.completion_mask[i].sum() == r.length
    assert (ent[batch.completion_mask.bool()] > 0).all()


def test_own_decoder_equals_generate_greedy(eos_often):
    """Greedy: the decoder that drops finished rows writes exactly what ``model.generate`` writes."""
    model, tok = eos_often
    ps = prompts(tok, ["Q:1+2=", "Q:3+4+5+6+7=", "Q:8=", "Q:9+9="])
    params = SamplingParams(max_new_tokens=16, greedy=True)
    own = TransformersEngine(model, tok, drop_finished=True).generate(ps, params)
    hf = TransformersEngine(model, tok, drop_finished=False).generate(ps, params)
    assert len({r.length for r in own}) >= 2
    for a, b in zip(own, hf):
        assert a.completion_ids == b.completion_ids and a.finish_reason == b.finish_reason
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)


@pytest.mark.parametrize("top_p", [0.3, 0.9, 1.0])
def test_top_p_keeps_what_transformers_keeps(top_p):
    """The nucleus rule against transformers' ``TopPLogitsWarper`` on random logits: a sampled
    token is always in the kept set and its log-prob is the warped log-softmax."""
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(64, 30) * 3
    warped = TopPLogitsWarper(top_p)(None, logits / 0.8) if top_p < 1 else logits / 0.8
    expected = torch.log_softmax(warped, -1)
    for _ in range(5):
        token, logp = sample_next(logits, SamplingParams(8, temperature=0.8, top_p=top_p))
        assert torch.isfinite(warped.gather(-1, token.unsqueeze(-1))).all()
        assert torch.allclose(logp, expected.gather(-1, token.unsqueeze(-1)).squeeze(-1), atol=1e-5)


def test_delimiter_span_and_facts(toy_tokenizer):
    tok = toy_tokenizer
    ids = tok("abc</think>xy")["input_ids"] + [tok.eos_token_id]
    assert delimiter_span(ids, "abc</think>xy", "</think>", tok) == (3, 11)
    assert delimiter_span(ids, "abcxy", "</think>", tok) is None
    from rl.engines.base import Rollout

    p = Prompt("id1", "3+7", "10", "Q:3+7=", tok("Q:3+7=")["input_ids"], {"difficulty": 2})
    r = Rollout(0, p.ids, ids, "abc</think>A:10", "stop", None)
    (s,) = make_samples([r], [p], group_offset=5, tokenizer=tok)
    assert s.group == 5 and s.prompt_id == "id1" and s.length == len(ids) and not s.truncated
    assert s.correct is True  # answer read after </think>
    assert s.think_length == 3 and s.answer_length == len(ids) - 11
    assert s.meta == {"difficulty": 2}
