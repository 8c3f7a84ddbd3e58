"""Truncated importance sampling (``algo.tis_cap``) and the sampler/trainer log-prob gap
(``rollout/logprob_diff``), against hand-computed numbers."""

import math

import pytest
import torch

from rl.algo.loss import Normalizer, policy_loss, tis_weights
from rl.config import AlgoConfig
from rl.engines.base import Rollout
from rl.train.update import completion_logprobs, make_batch, update_policy


def test_tis_weights_are_truncated_ratios():
    old = torch.tensor([0.0, -1.0, -2.0, -0.3])
    sampler = torch.tensor([-0.5, -1.0, -1.0, -0.1])
    w = tis_weights(old, sampler, cap=1.5)
    # exp(0.5) = 1.6487 -> capped at 1.5; exp(0) = 1; exp(-1) = 0.3679; exp(-0.2) = 0.8187
    assert torch.allclose(w, torch.tensor([1.5, 1.0, math.exp(-1.0), math.exp(-0.2)]), atol=1e-6)


def test_tis_weights_carry_no_gradient():
    old = torch.tensor([-1.0, -2.0], requires_grad=True)
    w = tis_weights(old, torch.tensor([-1.5, -1.0]), cap=2.0)
    assert not w.requires_grad


def test_weight_multiplies_the_policy_gradient_term():
    """Two tokens, A = 2, on-policy (ratio 1): pg = -A = -2 per token; weights 0.5 and 2.0 give
    per-token losses -1 and -4, token-mean -2.5; d loss / d logp = -A * w * ratio / N = -0.5, -2."""
    logp = torch.tensor([[-1.0, -0.5]], requires_grad=True)
    old = logp.detach().clone()
    w = torch.tensor([[0.5, 2.0]])
    loss, stats = policy_loss(logp, old, torch.tensor([2.0]), torch.ones(1, 2), clip_low=0.2, clip_high=0.28,
                              agg="token-mean", norm=Normalizer(num_tokens=2, num_seqs=1), is_weight=w)
    assert loss.item() == pytest.approx(-2.5)
    assert stats["tis_weight"].item() == pytest.approx(1.25)
    assert stats["pg_loss"].item() == pytest.approx(-2.5)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -2.0]]))


def test_weight_leaves_clipped_tokens_without_gradient_and_masks_padding():
    """Token 1: ratio e^0.5 = 1.6487 > 1 + 0.28 with A = 1 -> clipped, loss -1.28 * w, no gradient.
    Token 2: ratio 1, loss -1 * w. Token 3 is padding (mask 0): its huge weight must not count."""
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    logp = torch.tensor([[-0.5, -1.0, -1.0]], requires_grad=True)
    w = torch.tensor([[3.0, 0.25, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), mask, clip_low=0.2, clip_high=0.28,
                              agg="token-mean", norm=Normalizer(num_tokens=2, num_seqs=1), is_weight=w)
    assert loss.item() == pytest.approx((-1.28 * 3.0 - 1.0 * 0.25) / 2)
    assert stats["tis_weight"].item() == pytest.approx((3.0 + 0.25) / 2)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.25 / 2, 0.0]]))


def test_no_weight_is_the_plain_loss():
    logp = torch.tensor([[-1.0, -0.7]])
    kw = dict(clip_low=0.2, clip_high=0.28, agg="token-mean", norm=Normalizer(num_tokens=2, num_seqs=1))
    plain, stats = policy_loss(logp, logp - 0.1, torch.tensor([1.5]), torch.ones(1, 2), **kw)
    ones, _ = policy_loss(logp, logp - 0.1, torch.tensor([1.5]), torch.ones(1, 2), is_weight=torch.ones(1, 2), **kw)
    assert plain.item() == pytest.approx(ones.item()) and "tis_weight" not in stats


@pytest.fixture(scope="module")
def toy(untrained_toy):
    from transformers import AutoModelForCausalLM

    from rl.models.load import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(untrained_toy), load_tokenizer(str(untrained_toy))


def _rollouts(model, tok, shift: float):
    """Fixed completions whose "sampler" log-probs are the trainer's minus ``shift``."""
    rows = [("Q:1+2=", "3.A:3"), ("Q:4+4=", "8.A:8"), ("Q:9+1+1=", "11")]
    rollouts = [Rollout(i, tok(p)["input_ids"], tok(c)["input_ids"] + [tok.eos_token_id], c, "stop", None)
                for i, (p, c) in enumerate(rows)]
    with torch.no_grad():
        logp, _ = completion_logprobs(model.eval(), make_batch(rollouts, tok.pad_token_id), 1.0)
    for i, r in enumerate(rollouts):
        r.logprobs = (logp[i, : r.length] - shift).tolist()
    return rollouts


def _update(model, tok, rollouts, tis_cap):
    from accelerate import Accelerator

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return update_policy(Accelerator(cpu=True), model, None, opt, sched, rollouts, torch.tensor([1.0, -0.5, 2.0]),
                         AlgoConfig(tis_cap=tis_cap), pad_id=tok.pad_token_id, temperature=1.0,
                         micro_batch_size=2, max_grad_norm=1.0, norm_len=8)


def test_update_logs_the_gap_and_scales_the_loss(toy):
    """Sampler log-probs 0.1 below the trainer's on every token: logprob_diff = 0.1, and every TIS
    weight is min(e^0.1, 1.05) = 1.05, so the pg loss is 1.05 times the uncorrected one."""
    model, tok = toy
    rollouts = _rollouts(model, tok, shift=0.1)
    plain = _update(model, tok, rollouts, tis_cap=None)
    tis = _update(model, tok, rollouts, tis_cap=1.05)
    assert plain["rollout/logprob_diff"] == pytest.approx(0.1, abs=1e-5)
    assert tis["rollout/logprob_diff"] == pytest.approx(0.1, abs=1e-5)
    assert "tis_weight" not in plain and tis["tis_weight"] == pytest.approx(1.05, abs=1e-6)
    assert tis["loss"] == pytest.approx(1.05 * plain["loss"], rel=1e-5)
    uncapped = _update(model, tok, rollouts, tis_cap=10.0)
    assert uncapped["tis_weight"] == pytest.approx(math.exp(0.1), abs=1e-5)


def test_tis_needs_sampler_logprobs(toy):
    model, tok = toy
    rollouts = _rollouts(model, tok, shift=0.0)
    rollouts[1].logprobs = None
    assert "rollout/logprob_diff" not in _update(model, tok, rollouts, tis_cap=None)
    with pytest.raises(ValueError, match="tis_cap needs sampler log-probs"):
        _update(model, tok, rollouts, tis_cap=2.0)
