"""Clipped surrogate, KL and aggregation modes against hand-computed values."""

import math

import pytest
import torch

from rl.algo.loss import Normalizer, aggregate, entropy_from_logits, policy_loss, token_logprobs

# sample 0: A=+1, ratios (1.0, 1.5) + one pad; sample 1: A=-1, ratios (0.5, 1.2, 1.0)
RATIOS = torch.tensor([[1.0, 1.5, 5.0], [0.5, 1.2, 1.0]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
ADV = torch.tensor([1.0, -1.0])
# per-token clipped losses (clip 0.2 / 0.28):
#   s0: -1*1 = -1 ; max(-1.5, -1.28) = -1.28
#   s1: max(0.5, 0.8) = 0.8 ; 1.2 ; 1.0
S0, S1 = -1 - 1.28, 0.8 + 1.2 + 1.0


def run(agg, norm=None, **kw):
    logp = torch.log(RATIOS)
    norm = norm or Normalizer(num_tokens=5, num_seqs=2, norm_len=4)
    return policy_loss(logp, torch.zeros_like(logp), ADV, MASK, clip_low=0.2, clip_high=0.28,
                       agg=agg, norm=norm, **kw)


@pytest.mark.parametrize("agg,expected", [
    ("token-mean", (S0 + S1) / 5),                          # 0.144
    ("seq-mean-token-mean", (S0 / 2 + S1 / 3) / 2),          # -0.07
    ("seq-mean-token-sum-norm", (S0 + S1) / (2 * 4)),        # 0.09
])
def test_aggregation_modes(agg, expected):
    loss, _ = run(agg)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_hand_values_spelled_out():
    assert (S0 + S1) / 5 == pytest.approx(0.144)
    assert (S0 / 2 + S1 / 3) / 2 == pytest.approx(-0.07)
    assert (S0 + S1) / 8 == pytest.approx(0.09)


def test_clip_fractions_and_masking():
    _, stats = run("token-mean")
    assert stats["clip_frac_high"].item() == pytest.approx(1 / 5)  # s0 token 1 (ratio 1.5 > 1.28, A>0)
    assert stats["clip_frac_low"].item() == pytest.approx(1 / 5)   # s1 token 0 (ratio 0.5 < 0.8, A<0)
    # the padded ratio 5.0 would be a third clipped token if the mask leaked
    assert stats["pg_loss"].item() == pytest.approx((S0 + S1) / 5)


def test_clipped_tokens_carry_no_gradient():
    logp = torch.log(RATIOS).requires_grad_(True)
    loss, _ = policy_loss(logp, torch.zeros_like(logp), ADV, MASK, clip_low=0.2, clip_high=0.28,
                          agg="token-mean", norm=Normalizer(5, 2))
    loss.backward()
    g = logp.grad
    assert g[0, 1] == 0 and g[1, 0] == 0 and g[0, 2] == 0  # clipped high, clipped low, padding
    assert g[0, 0].item() == pytest.approx(-1 / 5)  # d(-A r)/dlogp = -A r / N = -1/5
    assert g[1, 1].item() == pytest.approx(1.2 / 5)


def test_k3_kl():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    loss, stats = policy_loss(logp, logp.clone(), torch.zeros(1), torch.ones(1, 2), clip_low=0.2, clip_high=0.2,
                              agg="token-mean", norm=Normalizer(2, 1), ref_logp=ref, kl_coef=0.5)
    k3 = 2 - math.log(2) - 1  # exp(d) - d - 1 with d = log 2: 0.306853
    assert stats["kl"].item() == pytest.approx(k3 / 2)
    assert loss.item() == pytest.approx(0.5 * k3 / 2)


def test_entropy_bonus_and_value():
    logits = torch.zeros(1, 1, 4)  # uniform over 4: H = log 4
    h = entropy_from_logits(logits)
    assert h.item() == pytest.approx(math.log(4))
    loss, stats = policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1),
                              clip_low=0.2, clip_high=0.2, agg="token-mean", norm=Normalizer(1, 1),
                              entropy=h, entropy_coef=0.1)
    assert loss.item() == pytest.approx(-0.1 * math.log(4))
    assert stats["entropy"].item() == pytest.approx(math.log(4))


def test_token_logprobs():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (1/4, 3/4)
    assert token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_sum_to_full_batch(agg):
    """With the step's global counts, the split into micro-batches does not change the loss."""
    torch.manual_seed(0)
    B, T = 6, 7
    logp = torch.randn(B, T) * 0.1
    old = logp + torch.randn(B, T) * 0.1
    mask = (torch.rand(B, T) > 0.3).long()
    mask[:, 0] = 1
    adv = torch.randn(B)
    norm = Normalizer(num_tokens=float(mask.sum()), num_seqs=B, norm_len=T)
    kw = dict(clip_low=0.2, clip_high=0.28, agg=agg, norm=norm)
    full, _ = policy_loss(logp, old, adv, mask, **kw)
    parts = sum(policy_loss(logp[s], old[s], adv[s], mask[s], **kw)[0] for s in (slice(0, 1), slice(1, 4), slice(4, 6)))
    assert parts.item() == pytest.approx(full.item(), abs=1e-6)


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "mean", Normalizer(1, 1))


def test_per_sample_entropy_coefficient_masks_samples():
    """CEEH: the entropy bonus only on hard prompts -> a [B] coefficient tensor."""
    h = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    zeros = torch.zeros(2, 2)
    kw = dict(clip_low=0.2, clip_high=0.2, agg="token-mean", norm=Normalizer(4, 2), entropy=h)
    loss, _ = policy_loss(zeros, zeros, torch.zeros(2), torch.ones(2, 2), entropy_coef=torch.tensor([0.0, 0.5]), **kw)
    assert loss.item() == pytest.approx(-0.5 * (2 + 2) / 4)  # only sample 1's entropy counts
    full, _ = policy_loss(zeros, zeros, torch.zeros(2), torch.ones(2, 2), entropy_coef=0.5, **kw)
    assert full.item() == pytest.approx(-0.5 * (1 + 1 + 2 + 2) / 4)


# sequence-level ratios (GSPO / LUSPO), same tokens: geometric means of the masked token ratios
G0, G1 = math.sqrt(1.0 * 1.5), (0.5 * 1.2 * 1.0) ** (1 / 3)  # 1.224745, 0.843433


@pytest.mark.parametrize("agg,expected", [
    ("seq-mean-token-mean", (-G0 + G1) / 2),           # GSPO: each sequence once: -0.190656
    ("token-mean", (2 * -G0 + 3 * G1) / 5),            # LUSPO: weighted by length: 0.016162
])
def test_sequence_ratio_gspo_and_luspo(agg, expected):
    logp = torch.log(RATIOS).requires_grad_(True)
    loss, stats = policy_loss(logp, torch.zeros_like(logp), ADV, MASK, clip_low=0.2, clip_high=0.28, agg=agg,
                              norm=Normalizer(num_tokens=5, num_seqs=2), ratio_level="sequence")
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats["ratio"].item() == pytest.approx((2 * G0 + 3 * G1) / 5, abs=1e-6)
    loss.backward()
    if agg == "seq-mean-token-mean":  # d/dlogp_t of -A s_i / N_seqs = -A s_i / (n_i N_seqs), pad: 0
        want = torch.tensor([[-G0 / 2 / 2, -G0 / 2 / 2, 0.0], [G1 / 3 / 2] * 3])
        assert torch.allclose(logp.grad, want, atol=1e-6)


def test_sequence_ratio_is_clipped_per_sequence():
    logp = torch.log(RATIOS)
    # clip_high 0.1: s_0 = 1.2247 > 1.1 with A > 0 -> its term is -1.1; s_1 = 0.8434 is inside [0.8, 1.1]
    loss, stats = policy_loss(logp, torch.zeros_like(logp), ADV, MASK, clip_low=0.2, clip_high=0.1,
                              agg="seq-mean-token-mean", norm=Normalizer(num_tokens=5, num_seqs=2),
                              ratio_level="sequence")
    assert loss.item() == pytest.approx((-1.1 + G1) / 2, abs=1e-6)
    assert stats["clip_frac_high"].item() == pytest.approx(2 / 5)  # both tokens of sequence 0


def test_sequence_ratio_equals_token_ratio_for_one_token_answers():
    logp, old = torch.tensor([[-0.3], [-2.0]]), torch.tensor([[-0.5], [-1.0]])
    mask, adv, norm = torch.ones(2, 1), torch.tensor([0.7, -1.3]), Normalizer(num_tokens=2, num_seqs=2)
    a, _ = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, agg="token-mean", norm=norm)
    b, _ = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, agg="token-mean", norm=norm,
                       ratio_level="sequence")
    assert a.item() == pytest.approx(b.item(), abs=1e-7)


from hypothesis import given, settings, strategies as st


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 10_000))
def test_sequence_ratio_properties(B, T, seed):
    """Pad positions never matter; a sequence whose token ratios are all equal has that ratio, so
    the sequence-level loss equals the token-level one (same clip range)."""
    g = torch.Generator().manual_seed(seed)
    logp, old = -torch.rand(B, T, generator=g) * 3, -torch.rand(B, T, generator=g) * 3
    mask = (torch.rand(B, T, generator=g) < 0.7).long()
    mask[:, 0] = 1
    adv, norm = torch.randn(B, generator=g), Normalizer(num_tokens=float(mask.sum()), num_seqs=B)
    kw = dict(clip_low=0.2, clip_high=0.28, norm=norm, ratio_level="sequence")
    for agg in ("token-mean", "seq-mean-token-mean"):
        a, _ = policy_loss(logp, old, adv, mask, agg=agg, **kw)
        b, _ = policy_loss(torch.where(mask.bool(), logp, logp - 7.0), old, adv, mask, agg=agg, **kw)
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
    shift = torch.randn(B, 1, generator=g) * 0.3  # equal token ratios within each sequence
    seq, _ = policy_loss(old + shift, old, adv, mask, agg="seq-mean-token-mean", **kw)
    tok, _ = policy_loss(old + shift, old, adv, mask, agg="seq-mean-token-mean",
                         **{**kw, "ratio_level": "token"})
    assert seq.item() == pytest.approx(tok.item(), abs=1e-5)


def test_entropy_shaped_advantages_by_hand():
    """A + d_i min(alpha H, |A|/kappa) (arXiv 2506.14758; CEEH's release, alpha 0.4, kappa 2)."""
    from rl.algo.loss import entropy_shaped_advantages

    adv = torch.tensor([[1.0, 1.0, -0.5], [2.0, 0.0, -2.0]])
    ent = torch.tensor([[0.5, 10.0, 0.25], [1.0, 3.0, 1.0]], requires_grad=True)
    out = entropy_shaped_advantages(adv, ent, torch.tensor([1.0, 0.0]))
    # row 0: 1 + min(0.2, 0.5), 1 + min(4, 0.5), -0.5 + min(0.1, 0.25); row 1 (d = 0) unchanged
    assert torch.allclose(out, torch.tensor([[1.2, 1.5, -0.4], [2.0, 0.0, -2.0]]))
    assert not out.requires_grad  # the bonus carries no gradient
    assert torch.equal(entropy_shaped_advantages(adv, ent, torch.ones(2), alpha=1.0, kappa=4.0),
                       adv + torch.minimum(ent.detach(), adv.abs() / 4))
