"""``train.head_fp32`` (rl/algo/logprobs.py ``fp32_head``): the chunked head's matmul in float32 whatever the
autocast and the weights' dtype. Against a float64 head on the same hidden states the log-probs are
float32-exact where the bf16 head is off by ~5e-2; the gradients (head weight, tied embedding, hidden
states) are the float32 computation's; the default path is the code before the option, bit for bit; the
option reaches the update, the scoring pass and the KL reference; a head it cannot reproduce is refused.
Under ZeRO-3: tests/run/test_deepspeed.py (tests/run/zero3_head_fp32_check.py)."""

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from rl.algo.logprobs import UnsupportedHead, _LogpEntropy, chunked_logprobs, sequence_logprobs
from rl.algo.loss import entropy_from_logits, token_logprobs
from rl.config import AlgoConfig, ConfigError, load_config
from rl.engines.base import Rollout

from tests.algo.test_logprobs import _batch, _lora, _smollm2_like, _toy, full_logits_reference

BF16 = (True, torch.bfloat16)  # the autocast state the chunks inherit under accelerate's bf16 mixed precision
U = 2.0**-8  # bf16's unit roundoff


def _head(weights: str) -> torch.nn.Linear:
    """The output head: "bf16" weights (a model loaded in bf16, DeepSpeed's bf16 mode) or "fp32" ones
    (DDP under bf16 autocast); logits of std ~2.4, as a trained model's."""
    torch.manual_seed(0)
    head = torch.nn.Linear(64, 4096)
    with torch.no_grad():
        head.weight.normal_(0, 0.3)
    return head.to(torch.bfloat16) if weights == "bf16" else head


def _inputs(n=37, vocab=4096):
    g = torch.Generator().manual_seed(1)
    h = torch.randn(n, 64, generator=g).to(torch.bfloat16).requires_grad_()  # a bf16 decoder's hidden states
    return h, torch.randint(0, vocab, (n,), generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g)


@pytest.mark.parametrize("weights", ["bf16", "fp32"])
def test_the_fp32_head_is_the_float32_computation_in_value_and_gradient(weights):
    """Max error against float64 (h, W, b as stored), T = 0.7, 8-token chunks:

    | weights | head | log-prob | entropy | grad W (of max) |
    | --- | --- | --: | --: | --: |
    | bf16 | bf16 (default) | 5.2e-2 | 6.4e-2 | 1.9e-2 |
    | bf16 | float32 | 1.9e-6 | 3.8e-6 | 3.1e-3 (bf16 grads summed over chunks; one chunk: one rounding) |
    | fp32, bf16 autocast | bf16 (default) | 4.1e-2 | 7.2e-2 | 2.0e-2 |
    | fp32, bf16 autocast | float32 | 1.9e-6 | 4.5e-6 | 1.9e-6 |
    """
    head = _head(weights)
    h, t, wl, we = _inputs()
    leaves = [x.detach().double().requires_grad_() for x in (h, head.weight, head.bias)]
    z = torch.nn.functional.linear(*leaves) / 0.7
    ref_lp, ref_h = token_logprobs(z, t), entropy_from_logits(z)
    ref_g = torch.autograd.grad((wl * ref_lp + we * ref_h).sum(), leaves)
    err = {}
    for fp32 in (False, True):
        lp, ent = chunked_logprobs(h, t, head, 0.7, with_entropy=True, entropy_grad=True, autocast=BF16, chunk=8,
                                   head_fp32=fp32)
        err[fp32] = max((lp.double() - ref_lp).abs().max().item(), (ent.double() - ref_h).abs().max().item())
    assert err[True] < 1e-5 and err[True] * 1000 < err[False], err
    for chunk in (37, 8):
        lp, ent = chunked_logprobs(h, t, head, 0.7, with_entropy=True, entropy_grad=True, autocast=BF16, chunk=chunk,
                                   head_fp32=True)
        g = torch.autograd.grad((wl * lp + we * ent).sum(), [h, head.weight, head.bias])
        assert [x.dtype for x in g] == [h.dtype, head.weight.dtype, head.bias.dtype]  # the weights' own dtype
        g_h, *g_head = [x.double() for x in g]
        # the hidden states' gradient: the float32 one, rounded once to bf16 (each row is in one chunk)
        assert ((g_h - ref_g[0]).abs() <= U * ref_g[0].abs() + 1e-6 * ref_g[0].abs().max()).all()
        for a, b in zip(g_head, ref_g[1:]):
            if weights == "fp32":  # float32 gradients of float32 weights: the float32 computation's
                assert (a - b).abs().max() < 1e-5 * b.abs().max(), chunk
            elif chunk == 37:  # one chunk: the float32 gradient rounded once to the bf16 weight's dtype
                assert ((a - b).abs() <= U * b.abs() + 1e-6 * b.abs().max()).all()
            else:  # bf16 gradients of the chunks, summed in bf16 (as autograd sums them for a bf16 weight)
                assert (a - b).abs().max() < 1e-2 * b.abs().max()


@pytest.mark.parametrize("weights", ["bf16", "fp32"])
def test_a_bf16_model_scores_with_the_float32_head(weights):
    """SmolLM2-135M's architecture (tied head), 2 layers: the log-probs against a float64 head on the decoder's
    hidden states of the same forward. Measured: bf16 weights 4.0e-3 (default) vs 1.9e-6; fp32 weights under
    bf16 autocast 3.6e-3 vs 9.5e-7."""
    model = _smollm2_like()
    if weights == "bf16":
        model = model.to(torch.bfloat16)
    else:
        model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)  # as accelerate.prepare does
    batch = _batch(model.config.vocab_size)
    hidden = []
    model.model.register_forward_hook(lambda m, a, out: hidden.append(out.last_hidden_state))
    m = batch.completion_mask.bool()
    err = {}
    for fp32 in (False, True):
        with torch.no_grad():
            lp, _ = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids,
                                      batch.completion_ids, batch.completion_mask, 0.7, chunk=5, head_fp32=fp32)
        C = batch.completion_ids.shape[1]
        z = hidden[-1][:, -C - 1 : -1].double() @ model.lm_head.weight.double().T / 0.7
        err[fp32] = (lp.double() - token_logprobs(z, batch.completion_ids))[m].abs().max().item()
    assert err[True] < 1e-5 and err[True] * 100 < err[False], err


def test_the_tied_weight_gets_the_float32_gradient():
    """In float32 the float32 head is the full-logits computation: log-probs, entropies and every gradient,
    the tied embedding's (head and input) included, to 1e-5 (the float32 head's path: forward swap, recompute)."""
    model = _smollm2_like()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    batch = _batch(model.config.vocab_size)
    m = batch.completion_mask.float()
    wl, we = torch.randn(batch.completion_ids.shape), torch.randn(batch.completion_ids.shape)
    params = list(model.parameters())
    ref_lp, ref_h = full_logits_reference(model, batch, 0.6, with_entropy=True)
    ref_g = torch.autograd.grad((m * (wl * ref_lp + we * ref_h)).sum(), params)
    lp, ent = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.completion_ids,
                                batch.completion_mask, 0.6, with_entropy=True, chunk=5, head_fp32=True)
    assert torch.allclose(lp, ref_lp, atol=1e-5) and torch.allclose(ent, ref_h, atol=1e-5, rtol=1e-5)
    g = torch.autograd.grad((m * (wl * lp + we * ent)).sum(), params)
    for a, b in zip(g, ref_g):
        assert torch.allclose(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-4)
    assert g[0].abs().max() > 0  # the tied weight (first parameter)


def _before(hidden, targets, head, temperature, autocast, chunk):
    """chunked_logprobs before ``train.head_fp32``: the head under the forward's autocast, checkpointed."""
    def piece(h, t):
        with torch.autocast(h.device.type, dtype=autocast[1], enabled=autocast[0]):
            z = head(h)
        return _LogpEntropy.apply(z, t, float(temperature), True)

    out = [checkpoint(piece, hidden[s : s + chunk], targets[s : s + chunk], use_reentrant=False,
                      preserve_rng_state=False) for s in range(0, hidden.shape[0], chunk)]
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


@pytest.mark.parametrize("weights", ["bf16", "fp32"])
def test_the_default_path_is_unchanged_bit_for_bit(weights):
    head = _head(weights)
    h, t, wl, we = _inputs()
    ref = _before(h, t, head, 0.7, BF16, 8)
    ref_g = torch.autograd.grad((wl * ref[0] + we * ref[1]).sum(), [h, head.weight, head.bias])
    for kw in ({}, {"head_fp32": False}):
        lp, ent = chunked_logprobs(h, t, head, 0.7, with_entropy=True, entropy_grad=True, autocast=BF16, chunk=8, **kw)
        assert torch.equal(lp, ref[0]) and torch.equal(ent, ref[1])
        g = torch.autograd.grad((wl * lp + we * ent).sum(), [h, head.weight, head.bias])
        assert all(torch.equal(a, b) for a, b in zip(g, ref_g))


def test_a_head_that_is_not_a_plain_linear_is_refused(untrained_toy):
    """A LoRA-wrapped lm_head: one line at the first call, and at config time; the head's forward is
    restored after every call, a failed one included."""
    model = _lora(_toy(untrained_toy), head=True)
    batch = _batch(model.get_base_model().config.vocab_size)
    with pytest.raises(UnsupportedHead, match="train.head_fp32=false"):
        sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.completion_ids,
                          batch.completion_mask, 1.0, head_fp32=True)
    with pytest.raises(ConfigError, match="lm_head"):
        load_config(None, ["train.head_fp32=true", "model.lora_r=4", "model.lora_target_modules=[q_proj,lm_head]"])
    head = _head("bf16")
    chunked_logprobs(torch.randn(3, 64), torch.tensor([1, 2, 3]), head, 1.0, chunk=2, head_fp32=True)
    with pytest.raises(RuntimeError):
        chunked_logprobs(torch.randn(3, 5), torch.tensor([1, 2, 3]), head, 1.0, chunk=2, head_fp32=True)
    assert "forward" not in vars(head)


def test_the_option_reaches_the_update_the_scoring_pass_and_the_reference(untrained_toy):
    """The head's chunk calls return float32 with ``head_fp32`` and bf16 without it, for the policy (fp32 weights
    under bf16 autocast) in the update and in the scoring pass, and for the KL reference (bf16 weights)."""
    from accelerate import Accelerator

    from rl.train.update import score_pass, update_policy

    g = torch.Generator().manual_seed(5)
    rollouts = [Rollout(i, torch.randint(1, 40, (p,), generator=g).tolist(),
                        torch.randint(1, 40, (c,), generator=g).tolist(), "", "stop", None)
                for i, (p, c) in enumerate([(3, 9), (5, 4)])]
    seen = {}
    for fp32 in (False, True):
        policy, ref = _toy(untrained_toy), _toy(untrained_toy).to(torch.bfloat16)
        policy.forward = torch.autocast("cpu", dtype=torch.bfloat16)(policy.forward)
        dtypes = {"policy": [], "ref": []}
        for name, model in (("policy", policy), ("ref", ref)):
            model.get_output_embeddings().register_forward_hook(lambda m, a, out, k=name: dtypes[k].append(out.dtype))
        score_pass(policy, rollouts, 0, 0.7, 8, True, head_fp32=fp32)
        scored = list(dtypes["policy"])
        opt = torch.optim.SGD(policy.parameters(), lr=0.1)
        update_policy(Accelerator(cpu=True), policy, ref, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
                      rollouts, torch.tensor([1.0, -1.0]), AlgoConfig(kl_coef=0.1), pad_id=0, temperature=0.7,
                      micro_batch_size=8, max_grad_norm=1.0, norm_len=16, head_fp32=fp32)
        seen[fp32] = (scored, dtypes["policy"][len(scored):], dtypes["ref"])
    # each pass: the model's own one-position call and the head check under the forward's dtype, then the chunk
    # (one here: a small vocabulary), recomputed in the backward pass of the update
    bf, f32 = torch.bfloat16, torch.float32
    assert seen[False] == ([bf, bf, bf], [bf, bf, bf, bf], [bf, bf, bf])
    assert seen[True] == ([bf, bf, f32], [bf, bf, f32, f32], [bf, bf, f32])
