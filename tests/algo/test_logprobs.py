"""The chunked log-probs (rl/algo/logprobs.py) against hand-computed values and against the full-logits
computation they replace (``logits / T``, ``log_softmax``, gather; entropy from the softmax): values,
gradients and the update's loss for every aggregation, to 1e-5 in float32."""

import math

import pytest
import torch

from rl.algo.logprobs import UnsupportedHead, _LogpEntropy, chunked_logprobs, sequence_logprobs
from rl.algo.loss import entropy_from_logits, token_logprobs
from rl.config import AlgoConfig
from rl.engines.base import Rollout
from rl.train.update import Batch, make_batch, update_policy


def full_logits_reference(model, batch: Batch, temperature: float, with_entropy=False, entropy_grad=True):
    """The computation before rl/algo/logprobs.py (commit 6cfc30f), the reference here."""
    C = batch.completion_ids.shape[1]
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                logits_to_keep=C + 1, use_cache=False)
    logits = out.logits[:, :-1, :] / temperature
    logp = token_logprobs(logits, batch.completion_ids)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = entropy_from_logits(logits if entropy_grad else logits.detach())
    m = batch.completion_mask.float()
    return logp * m, (entropy * m if entropy is not None else None)


def test_hand_values_and_gradients():
    """logits (0, ln 3) at T=1: p = (1/4, 3/4), logp[1] = ln 3/4, H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623.
    dlogp[1]/dz = onehot - p = (-1/4, 1/4); dH/dz_v = -p_v (ln p_v + H): (0.2058, -0.2058).
    At T=2 the same logits are halved: z/2 = (0, ln 3 / 2) -> p = (1, sqrt 3) / (1 + sqrt 3)."""
    z = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    logp, ent = _LogpEntropy.apply(z, torch.tensor([1]), 1.0, True)
    H = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert logp.item() == pytest.approx(math.log(0.75), abs=1e-7) and ent.item() == pytest.approx(H, abs=1e-7)
    (g_lp,) = torch.autograd.grad(logp.sum(), z, retain_graph=True)
    assert g_lp.tolist()[0] == pytest.approx([-0.25, 0.25], abs=1e-7)
    (g_h,) = torch.autograd.grad(ent.sum(), z)
    assert g_h.tolist()[0] == pytest.approx([-0.25 * (math.log(0.25) + H), -0.75 * (math.log(0.75) + H)], abs=1e-7)
    logp2, _ = _LogpEntropy.apply(z, torch.tensor([1]), 2.0, False)
    s3 = math.sqrt(3.0)
    assert logp2.item() == pytest.approx(math.log(s3 / (1 + s3)), abs=1e-7)
    (g2,) = torch.autograd.grad(logp2.sum(), z)  # (onehot - p) / T
    assert g2.tolist()[0] == pytest.approx([-0.5 / (1 + s3), 0.5 / (1 + s3)], abs=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunks_match_the_full_softmax_in_value_and_gradient(temperature):
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=True)
    h = torch.randn(13, 8, requires_grad=True)
    t = torch.randint(0, 50, (13,))
    wl, we = torch.randn(13), torch.randn(13)
    z = head(h) / temperature
    ref_lp, ref_h = token_logprobs(z, t), entropy_from_logits(z)
    ref_grads = torch.autograd.grad((wl * ref_lp + we * ref_h).sum(), [h, head.weight, head.bias])
    for chunk in (1, 4, 13, 100):
        lp, ent = chunked_logprobs(h, t, head, temperature, with_entropy=True, entropy_grad=True, chunk=chunk)
        assert torch.allclose(lp, ref_lp, atol=1e-5) and torch.allclose(ent, ref_h, atol=1e-5)
        grads = torch.autograd.grad((wl * lp + we * ent).sum(), [h, head.weight, head.bias])
        for a, b in zip(grads, ref_grads):
            assert torch.allclose(a, b, atol=1e-5), chunk
    lp, ent = chunked_logprobs(h, t, head, temperature, with_entropy=True, entropy_grad=False, chunk=4)
    assert lp.requires_grad and not ent.requires_grad and torch.allclose(ent, ref_h, atol=1e-5)
    lp, ent = chunked_logprobs(h, t, head, temperature, with_entropy=False, chunk=4)
    assert ent is None


def _toy(untrained_toy):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(untrained_toy)


def _smollm2_like():
    """SmolLM2-135M-Instruct's architecture (Llama, tied embeddings, vocab 49,152), 2 layers, random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, rms_norm_eps=1e-5)
    return LlamaForCausalLM(cfg)


def _qwen2_like():
    """R1-Distill-Qwen's architecture (Qwen2, untied head, vocab 151,936), hidden 64, 2 layers."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(2)
    cfg = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg)


def _batch(vocab: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    rows = [(3, 9), (5, 2), (1, 6)]  # (prompt, completion) lengths: left/right padding both exercised
    rs = [Rollout(i, torch.randint(1, vocab, (p,), generator=g).tolist(),
                  torch.randint(1, vocab, (c,), generator=g).tolist(), "", "stop", None) for i, (p, c) in enumerate(rows)]
    return make_batch(rs, pad_id=0)


def _lora(model, head=False):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    targets = ["q_proj", "v_proj"] + (["lm_head"] if head else [])
    m = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    for n, p in m.named_parameters():  # LoRA B starts at 0: make the adapter matter
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)
    return m


MODELS = {"toy": None, "smollm2": _smollm2_like, "qwen2": _qwen2_like}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("lora", [False, True])
def test_sequence_logprobs_match_the_full_logits(name, lora, untrained_toy):
    model = _toy(untrained_toy) if name == "toy" else MODELS[name]()
    if lora:
        model = _lora(model, head=name == "toy")
    batch = _batch(model.config.vocab_size if not lora else model.get_base_model().config.vocab_size)
    m = batch.completion_mask.float()
    wl, we = torch.randn(batch.completion_ids.shape), torch.randn(batch.completion_ids.shape)
    params = [p for p in model.parameters() if p.requires_grad]
    for temperature in (1.0, 0.6):
        ref_lp, ref_h = full_logits_reference(model, batch, temperature, with_entropy=True)
        ref_g = torch.autograd.grad((m * (wl * ref_lp + we * ref_h)).sum(), params)
        lp, ent = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids,
                                    batch.completion_ids, batch.completion_mask, temperature,
                                    with_entropy=True, entropy_grad=True, chunk=5)
        # entropies ~ log V = 11.9 at V = 152k: float32 sums over V differ by ~1e-5 between the two paths
        assert torch.allclose(lp, ref_lp, atol=1e-5) and torch.allclose(ent, ref_h, atol=1e-5, rtol=1e-5)
        g = torch.autograd.grad((m * (wl * lp + we * ent)).sum(), params)
        for a, b in zip(g, ref_g):  # float32 accumulation error grows with the gradient's size (up to ~6 here)
            assert torch.allclose(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-4)
    with torch.no_grad():  # the scoring pass
        lp, ent = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids,
                                    batch.completion_ids, batch.completion_mask, 0.6, with_entropy=True)
    assert torch.allclose(lp, ref_lp.detach(), atol=1e-5) and torch.allclose(ent, ref_h.detach(), atol=1e-5, rtol=1e-5)


def test_a_head_the_chunks_cannot_reproduce_is_refused(untrained_toy):
    """A soft-capped / scaled head (here Granite's ``logits_scaling``) makes the model's logits differ
    from head(hidden): the error names the field."""
    from transformers import GraniteConfig, GraniteForCausalLM

    cfg = GraniteConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=4, logits_scaling=4.0)
    model = GraniteForCausalLM(cfg)
    batch = _batch(100)
    with pytest.raises(UnsupportedHead, match="logits_scaling"):
        sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.completion_ids,
                          batch.completion_mask, 1.0)


def _update(model, ref, rollouts, agg, kl, ent, monkeypatch, reference: bool):
    from accelerate import Accelerator

    import rl.train.update

    if reference:
        monkeypatch.setattr(rl.train.update, "completion_logprobs",
                            lambda mdl, b, T, with_entropy=False, entropy_grad=True, agree=None, chunk_bytes=None, head_fp32=False:
                            full_logits_reference(mdl, b, T, with_entropy, entropy_grad))
    else:
        monkeypatch.setattr("rl.algo.logprobs.CHUNK_BYTES", 4 * 7 * model.config.vocab_size)  # 7-token chunks
    torch.manual_seed(0)
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5][: len(rollouts)])
    stats = update_policy(Accelerator(cpu=True), policy, ref, opt, sched, rollouts, adv,
                          AlgoConfig(loss_agg=agg, kl_coef=kl, entropy_coef=ent), pad_id=0, temperature=0.7,
                          micro_batch_size=2, max_grad_norm=1e9, norm_len=16)
    monkeypatch.undo()
    return torch.cat([p.detach().flatten() for p in policy.parameters()]), stats


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_update_matches_the_full_logits_update(agg, untrained_toy, monkeypatch):
    """Loss, stats (KL to a perturbed reference, entropy) and the updated weights, for every loss_agg."""
    model = _toy(untrained_toy)
    ref = _toy(untrained_toy)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g = torch.Generator().manual_seed(5)
    rollouts = [Rollout(i, torch.randint(1, 40, (p,), generator=g).tolist(),
                        torch.randint(1, 40, (c,), generator=g).tolist(), "", "stop", None)
                for i, (p, c) in enumerate([(3, 20), (6, 4), (2, 11), (4, 1)])]
    w_ref, s_ref = _update(model, ref, rollouts, agg, 0.1, 0.01, monkeypatch, reference=True)
    w_new, s_new = _update(model, ref, rollouts, agg, 0.1, 0.01, monkeypatch, reference=False)
    assert s_ref.keys() == s_new.keys() and s_ref["kl"] > 0
    for k in s_ref:
        assert s_new[k] == pytest.approx(s_ref[k], abs=1e-5), k
    assert torch.allclose(w_new, w_ref, atol=1e-5)
    assert not torch.allclose(w_new, torch.cat([p.detach().flatten() for p in model.parameters()]))


def test_the_chunks_run_under_the_models_autocast(untrained_toy):
    """accelerate's mixed precision wraps the model's forward in bf16 autocast; the head's chunks run
    outside that forward, under the autocast state it had: bf16 matmuls as the model's own head
    call was, same numbers as the full logits to bf16 precision."""
    model = _toy(untrained_toy)
    model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)  # as accelerate.prepare does
    batch = _batch(model.config.vocab_size)
    dtypes = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    with torch.no_grad():
        ref_lp, _ = full_logits_reference(model, batch, 0.7)
        dtypes.clear()
        lp, _ = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids,
                                  batch.completion_ids, batch.completion_mask, 0.7, chunk=4)
    hook.remove()
    assert len(dtypes) > 3 and set(dtypes) == {torch.bfloat16}
    assert torch.allclose(lp, ref_lp, atol=2e-2)


def test_the_chunk_budget_sets_the_head_calls_not_the_values():
    """``budget`` bytes of one float32 ``[n, V]`` buffer: n = budget // 4V tokens a head call
    (``train.logits_chunk_mib``; 1 GiB on GPU: 1,766 tokens at V = 151,936 instead of 110). The 17
    completion tokens of the batch take ceil(17 / n) head calls, plus two one-position ones (the model's own
    forward and the head check)."""
    from rl.algo.logprobs import chunk_budget, chunk_tokens

    assert chunk_tokens(151936, chunk_budget(None, "cuda")) == 1766 and chunk_tokens(151936, chunk_budget(None, "cpu")) == 110
    assert chunk_budget(8, "cuda") == 8 << 20
    model = _qwen2_like()
    batch = _batch(model.config.vocab_size)
    calls = []
    model.get_output_embeddings().register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    results = {}
    for tokens in (3, 17):
        calls.clear()
        with torch.no_grad():
            results[tokens] = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids,
                                                batch.completion_ids, batch.completion_mask, 0.7,
                                                budget=tokens * 4 * model.config.vocab_size)[0]
        assert len(calls) == 2 + math.ceil(17 / tokens), calls
    assert torch.allclose(results[3], results[17], atol=1e-6)
