"""Truncated importance sampling (``algo.tis_cap``, ``algo.tis_mode``) and the sampler/trainer log-prob
gap (``rollout/logprob_diff``), against hand-computed numbers and against TRL's own lines."""

import importlib.util
import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rl.algo.loss import TIS_MODES, Normalizer, policy_loss, tis_rejected, tis_weights
from rl.config import CHOICES, AlgoConfig, ConfigError, load_config
from rl.engines.base import Rollout
from rl.train.record import FIRST_FORCED_LOGP
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


# Row 0: d = old - sampler = 0.3, -0.1, 0.2 and a padded token whose d = 5 must count nowhere (in the
# sequence sum it would make 5.4); row 1: d = -0.4 on all four tokens (sum -1.6). Cap 1.3.
HAND_OLD = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.3, -0.3, -0.3, -0.3]])
HAND_SAMPLER = torch.tensor([[-1.3, -1.9, -0.7, -5.0], [0.1, 0.1, 0.1, 0.1]])
HAND_MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
E = math.exp
HAND = {  # padded token: d = 0 there, so rho = 1 in the token modes
    "token_truncate": [[1.3, E(-0.1), E(0.2), 1.0], [E(-0.4)] * 4],  # e^0.3 = 1.35 cut to 1.3
    "token_mask": [[0.0, E(-0.1), E(0.2), 1.0], [E(-0.4)] * 4],  # e^0.3 > 1.3: weight 0
    "sequence_truncate": [[1.3] * 4, [E(-1.6)] * 4],  # e^0.4 = 1.49 cut; e^-1.6 = 0.20 kept (no lower bound)
    "sequence_mask": [[0.0] * 4, [E(-1.6)] * 4],  # row 0 masked whole
}


@pytest.mark.parametrize("mode", TIS_MODES)
def test_each_mode_against_hand_numbers(mode):
    w = tis_weights(HAND_OLD, HAND_SAMPLER, 1.3, mode, HAND_MASK)
    assert torch.allclose(w, torch.tensor(HAND[mode]), atol=1e-5), w
    rejected = tis_rejected(HAND_OLD, HAND_SAMPLER, 1.3, mode, HAND_MASK)
    expect = {"token_mask": [[True] + [False] * 3, [False] * 4], "sequence_mask": [[True] * 4, [False] * 4]}
    assert rejected.tolist() == expect.get(mode, [[False] * 4] * 2)


def test_token_truncate_is_todays_default():
    """No mode, no mask: the weights tis_cap always gave (on trained tokens)."""
    plain = tis_weights(HAND_OLD, HAND_SAMPLER, 1.3)
    masked = tis_weights(HAND_OLD, HAND_SAMPLER, 1.3, "token_truncate", HAND_MASK)
    m = HAND_MASK.bool()
    assert torch.equal(plain[m], masked[m]) and AlgoConfig().tis_mode == "token_truncate"


def test_sequence_modes_need_the_mask_and_modes_are_checked():
    with pytest.raises(ValueError, match="needs their mask"):
        tis_weights(HAND_OLD, HAND_SAMPLER, 1.3, "sequence_mask")
    with pytest.raises(ValueError, match="unknown TIS mode"):
        tis_weights(HAND_OLD, HAND_SAMPLER, 1.3, "geometric_mask", HAND_MASK)
    assert CHOICES["algo.tis_mode"] == TIS_MODES


def test_config_refuses_a_mode_without_a_cap():
    with pytest.raises(ConfigError, match="algo.tis_mode=sequence_mask bounds the importance ratio by algo.tis_cap"):
        load_config(overrides=["algo.tis_mode=sequence_mask"])
    with pytest.raises(ConfigError, match="is not one of"):
        load_config(overrides=["algo.tis_mode=sequence", "algo.tis_cap=2"])
    assert load_config(overrides=["algo.tis_mode=token_mask", "algo.tis_cap=2"]).algo.tis_mode == "token_mask"


# --- TRL's own lines ---------------------------------------------------------------------------------
# trl 1.16.0, trl/trainer/grpo_trainer.py, GRPOTrainer._generate_and_score_completions, lines 2662-2707
# (unchanged in substance since v0.26.0, huggingface/trl#4530; clip_min came in #4732, nan_to_num later).
# laconic's tis_cap is TRL's vllm_importance_sampling_clip_max; it has no clip_min (None here).
def trl_importance_sampling_ratio(old_per_token_logps, sampling_per_token_logps, mask, mode, clip_max, clip_min=None):
    """TRL's formula lines, transcribed: (B, T) for token_* modes, (B, 1) for sequence_* modes."""
    per_token_logps_diff = (old_per_token_logps - sampling_per_token_logps) * mask
    per_token_logps_diff = torch.nan_to_num(per_token_logps_diff, nan=0.0)
    if mode in ["sequence_mask", "sequence_truncate"]:
        logps_diff = per_token_logps_diff.sum(dim=-1, keepdim=True)
    else:
        logps_diff = per_token_logps_diff
    ratio = torch.exp(logps_diff)
    if mode in ["sequence_truncate", "token_truncate"]:
        ratio = torch.clamp(ratio, min=clip_min, max=clip_max)
    else:
        min_val = clip_min if clip_min is not None else -math.inf
        max_val = clip_max if clip_max is not None else math.inf
        ratio = ratio.masked_fill((ratio < min_val) | (ratio > max_val), value=0.0)
    return ratio


def _random_batch(seed=0, B=8, T=12):
    """Random trainer/sampler log-probs (gap ~ N(0, 0.15) per token), right padding with wild values
    on the padded tokens (|d| up to 8), and a forced-prefix-like hole in one row."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g) * 3
    sampler = old - 0.15 * torch.randn(B, T, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
    mask[1, 1:3] = 0.0
    sampler = torch.where(mask.bool(), sampler, old - 8 * torch.randn(B, T, generator=g))
    return old, sampler, mask


@pytest.mark.parametrize("mode", TIS_MODES)
@pytest.mark.parametrize("cap", [1.05, 1.3, 3.0])
def test_weights_equal_trls_lines(mode, cap):
    seen_masked = 0
    for seed in range(4):
        old, sampler, mask = _random_batch(seed)
        ours = tis_weights(old, sampler, cap, mode, mask)
        theirs = trl_importance_sampling_ratio(old, sampler, mask, mode, cap).expand_as(old)
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=0), (mode, cap, seed)
        seen_masked += int(((theirs == 0) & mask.bool()).any())
    if mode.endswith("mask") and cap < 3.0:
        assert seen_masked, "no weight was masked: the comparison would not test the mask"


def _trl_block() -> str:
    """The importance-sampling block of the installed TRL's GRPOTrainer, as source text."""
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        pytest.skip("trl is not installed (pip install -e .[dev])")
    lines = (Path(spec.origin).parent / "trainer" / "grpo_trainer.py").read_text().splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if "per_token_logps_diff = (old_per_token_logps - sampling_per_token_logps) * mask" in ln), None)
    msg = next((i for i, ln in enumerate(lines) if "Unknown vLLM importance sampling level" in ln), None)
    if start is None or msg is None or msg < start:
        pytest.fail("the installed TRL's importance-sampling block moved: re-read grpo_trainer.py and update "
                    "trl_importance_sampling_ratio above")
    end = next(i for i in range(msg, len(lines)) if lines[i].strip() == ")")
    return textwrap.dedent("\n".join(lines[start : end + 1]))


@pytest.mark.parametrize("mode", TIS_MODES)
def test_weights_equal_the_installed_trls_code(mode):
    """The block of the installed TRL itself, run on the same tensors: the transcription above is
    still TRL's, and laconic's weights are what TRL's trainer would multiply its loss by."""
    block = compile(_trl_block(), "trl/trainer/grpo_trainer.py", "exec")
    for cap in (1.05, 1.3):
        for seed in range(3):
            old, sampler, mask = _random_batch(seed)
            trainer = SimpleNamespace(vllm_importance_sampling_mode=mode, vllm_importance_sampling_clip_max=cap,
                                      vllm_importance_sampling_clip_min=None)
            ns = {"torch": torch, "math": math, "self": trainer, "old_per_token_logps": old,
                  "sampling_per_token_logps": sampler, "mask": mask}
            exec(block, ns)
            theirs = ns["vllm_importance_sampling_ratio"].expand_as(old)
            assert torch.allclose(theirs, trl_importance_sampling_ratio(old, sampler, mask, mode, cap).expand_as(old))
            assert torch.allclose(tis_weights(old, sampler, cap, mode, mask), theirs, rtol=1e-6, atol=0)


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


def _rollouts(model, tok, shift):
    """Fixed completions whose "sampler" log-probs are the trainer's minus ``shift`` (one for all, or
    one per rollout)."""
    rows = [("Q:1+2=", "3.A:3"), ("Q:4+4=", "8.A:8"), ("Q:9+1+1=", "11")]
    shifts = shift if isinstance(shift, (list, tuple)) else [shift] * len(rows)
    rollouts = [Rollout(i, tok(p)["input_ids"], tok(c)["input_ids"] + [tok.eos_token_id], c, "stop", None)
                for i, (p, c) in enumerate(rows)]
    with torch.no_grad():
        logp, _ = completion_logprobs(model.eval(), make_batch(rollouts, tok.pad_token_id), 1.0)
    for i, r in enumerate(rollouts):
        r.logprobs = (logp[i, : r.length] - shifts[i]).tolist()
    return rollouts


def _update(model, tok, rollouts, tis_cap, tis_mode="token_truncate", adv=(1.0, -0.5, 2.0)):
    from accelerate import Accelerator

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return update_policy(Accelerator(cpu=True), model, None, opt, sched, rollouts, torch.tensor(adv),
                         AlgoConfig(tis_cap=tis_cap, tis_mode=tis_mode), pad_id=tok.pad_token_id, temperature=1.0,
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


def test_update_sequence_mask_drops_one_completion_like_a_zero_advantage(toy):
    """Sampler log-probs 0.3 below the trainer's on every token of completion 1 only: its sequence ratio
    e^(0.3 n_1) > cap 1.5, the others' is 1. sequence_mask then gives completion 1 weight 0 (its tokens
    still count in the token-mean's N, as in TRL), which is the uncorrected update with A_1 = 0."""
    model, tok = toy
    rollouts = _rollouts(model, tok, shift=[0.0, 0.3, 0.0])
    n = [r.length for r in rollouts]
    masked = _update(model, tok, rollouts, tis_cap=1.5, tis_mode="sequence_mask")
    zero_adv = _update(model, tok, rollouts, tis_cap=None, adv=(1.0, 0.0, 2.0))
    assert masked["loss"] == pytest.approx(zero_adv["loss"], rel=1e-5)
    assert masked["grad_norm"] == pytest.approx(zero_adv["grad_norm"], rel=1e-4)
    assert masked["tis_masked_frac"] == pytest.approx(n[1] / sum(n))
    assert masked["tis_weight"] == pytest.approx((n[0] + n[2]) / sum(n), rel=1e-5)
    # the same gap per token, token-level: every e^0.3 = 1.35 < 1.5 is kept, nothing masked
    token = _update(model, tok, rollouts, tis_cap=1.5, tis_mode="token_mask")
    assert token["tis_masked_frac"] == 0.0 and "tis_masked_frac" not in zero_adv
    # truncation instead: token-mean of -A_i w_i over tokens (on-policy ratio 1), w_1 = 1.5 vs e^0.3
    for mode, w1 in (("sequence_truncate", 1.5), ("token_truncate", math.exp(0.3))):
        s = _update(model, tok, rollouts, tis_cap=1.5, tis_mode=mode)
        assert s["loss"] == pytest.approx((-1.0 * n[0] + 0.5 * w1 * n[1] - 2.0 * n[2]) / sum(n), rel=1e-5), mode
        assert "tis_masked_frac" not in s


def test_update_sequence_ratio_is_the_product_over_the_completion(toy):
    """A gap of 0.1 on every token: completion i's sequence weight is e^(0.1 n_i) (not the geometric
    mean e^0.1), on each of its n_i tokens."""
    model, tok = toy
    rollouts = _rollouts(model, tok, shift=0.1)
    n = [r.length for r in rollouts]
    w = [math.exp(0.1 * k) for k in n]
    s = _update(model, tok, rollouts, tis_cap=10.0, tis_mode="sequence_truncate")
    assert s["tis_weight"] == pytest.approx(sum(wi * k for wi, k in zip(w, n)) / sum(n), rel=1e-5)
    assert s["loss"] == pytest.approx((-1.0 * w[0] * n[0] + 0.5 * w[1] * n[1] - 2.0 * w[2] * n[2]) / sum(n), rel=1e-5)


@pytest.mark.parametrize("mode", ["sequence_mask", "sequence_truncate"])
def test_sequence_modes_leave_forced_prefix_tokens_out_of_the_sum(toy, mode):
    """AdaptThink's forced prefix "A:" (rl/train/record.py forced_old_logps): the sampler reports
    placeholders (log 0.5 for the first, 0 for the masked second). The masked token's gap
    (trainer log-prob - 0 < 0) must not enter the sequence sum: the weight is exactly 1."""
    model, tok = toy
    ids = tok("A:7")["input_ids"] + [tok.eos_token_id]
    r = Rollout(0, tok("Q:3+4=")["input_ids"], ids, "A:7", "stop", None, forced_tokens=2)
    with torch.no_grad():
        logp, _ = completion_logprobs(model.eval(), make_batch([r], tok.pad_token_id), 1.0)
    assert float(logp[0, 1]) < -0.01  # so the placeholder 0 would show if it counted
    r.logprobs = [FIRST_FORCED_LOGP, 0.0] + logp[0, 2 : r.length].tolist()
    s = _update(model, tok, [r], tis_cap=1.01, tis_mode=mode, adv=(1.0,))
    plain = _update(model, tok, [r], tis_cap=None, adv=(1.0,))
    assert s["tis_weight"] == pytest.approx(1.0, abs=1e-5)
    assert s["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert s.get("tis_masked_frac", 0.0) == 0.0
