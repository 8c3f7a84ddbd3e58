"""The policy loss: clipped surrogate (or KL-Cov) + optional k3 KL + optional entropy bonus, aggregated.

Per completion token t of sample i (shapes ``[B, T]``, ``mask`` = 1 on completion tokens):

    ratio_it = exp(logp_it - old_logp_it)
    pg_it    = max(-A_i * ratio_it, -A_i * clip(ratio_it, 1 - clip_low, 1 + clip_high))   (PPO, DAPO clip-higher)
    kl_it    = exp(ref_it - logp_it) - (ref_it - logp_it) - 1                            (k3, Schulman 2020)
    l_it     = w_it * pg_it + kl_coef * kl_it - entropy_coef * H_it

KL-Cov (``algo.policy_loss: kl_cov``; arXiv 2505.22617, DOT's release, :mod:`rl.algo.kl_cov`) replaces
``pg_it`` by the unclipped ``-A_i * ratio_it``, plus ``coef * |logp_it - old_logp_it|`` on the tokens
of a given selection mask ``s_it`` (the step's highest-covariance tokens, chosen by :func:`rl.algo.kl_cov.select`):

    pg_it    = -A_i * ratio_it + coef * s_it * |logp_it - old_logp_it|

``w_it`` is 1, or with truncated importance sampling (``algo.tis_cap``; Yao et al. 2025, "Your
efficient RL framework secretly brings you off-policy RL training") the detached correction for
the sampler/trainer mismatch: ``w_it = min(exp(old_logp_it - sampler_logp_it), cap)``, where
``old_logp`` is the trainer's log-prob of the behaviour policy and ``sampler_logp`` what the rollout
engine (vLLM) reported for the same token (:func:`tis_weights`). ``algo.tis_mode`` (TRL's
``vllm_importance_sampling_mode``) picks the ratio (per token, or one per sequence: the product over
its trained tokens) and what the cap does (truncate, or mask: weight 0 above the cap).

Aggregation (``algo.loss_agg``), with *global* normalizers (all micro-batches and processes of one
optimizer step, see docs/design.md, "What token-mean means"):

- ``token-mean``:              sum_it l_it m_it / N_tokens
- ``seq-mean-token-mean``:     sum_i (sum_t l_it m_it / n_i) / N_seqs
- ``seq-mean-token-sum-norm``: sum_it l_it m_it / (N_seqs * L_norm)       (Dr.GRPO; L_norm = max tokens)

With ``N_tokens``/``N_seqs`` equal to the local counts this is the ordinary mean; passing the global
counts makes the sum of micro-batch losses equal the loss of the whole step, however it is split.

Sequence-level ratios (``algo.ratio_level: sequence``; GSPO, Zheng et al., arXiv 2507.18071): every
token of sample i carries the sequence's importance ratio, the geometric mean of its token ratios,

    s_i = exp( sum_t m_it (logp_it - old_logp_it) / n_i )

clipped per sequence with GSPO's own range (``algo.seq_clip_low`` / ``seq_clip_high``, 3e-4 / 4e-4).
The aggregation then picks the objective:

- ``seq-mean-token-mean`` gives GSPO: each sequence's clipped term counts once, its gradient spread
  over its tokens (d s_i / d logp_it = s_i / n_i);
- ``token-mean`` gives LUSPO (arXiv 2602.05261): each sequence's term weighted by its length n_i
  (sum_i n_i l_i / N_tokens), so the objective does not favour short answers. LUSPO's released
  normalizer could not be read; ours divides by the step's tokens, which keeps the loss on the
  scale of the token-level objective (all n_i equal: exactly GSPO's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
RATIO_LEVELS = ("token", "sequence")
TIS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@dataclass
class Normalizer:
    """Global counts of one optimizer step."""

    num_tokens: float
    num_seqs: float
    norm_len: float = 1.0  # L_norm for seq-mean-token-sum-norm


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, norm: Normalizer) -> torch.Tensor:
    """Sum of this micro-batch's share of the step loss (see module docstring)."""
    mask = mask.to(per_token.dtype)
    if mode == "token-mean":
        return (per_token * mask).sum() / max(norm.num_tokens, 1.0)
    if mode == "seq-mean-token-mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / max(norm.num_seqs, 1.0)
    if mode == "seq-mean-token-sum-norm":
        return (per_token * mask).sum() / (max(norm.num_seqs, 1.0) * norm.norm_len)
    raise ValueError(f"unknown loss aggregation '{mode}', expected one of {AGG_MODES}")


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(z) - sum softmax(z) * z over the last axis, computed in float32."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position, in float32; logits [B,T,V], targets [B,T]."""
    logits = logits.float()
    return torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def _tis_ratios(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mode: str,
                mask: torch.Tensor | None) -> torch.Tensor:
    """``rho`` of :func:`tis_weights`, before the cap: per token, or per sequence on all its tokens."""
    if mode not in TIS_MODES:
        raise ValueError(f"unknown TIS mode '{mode}', expected one of {TIS_MODES}")
    diff = old_logp.detach().float() - sampler_logp.float()
    if mask is not None:
        diff = diff * mask.to(diff.dtype)
    elif mode.startswith("sequence"):
        raise ValueError(f"TIS mode '{mode}' sums over each sequence's trained tokens: it needs their mask")
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True).expand_as(diff)
    return torch.exp(diff)


def tis_weights(old_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float, mode: str = "token_truncate",
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Importance weights for the sampler/trainer mismatch (``algo.tis_cap``, ``algo.tis_mode``), without
    gradient; ``[..., T]`` like the log-probs, the last axis a sequence's tokens. ``m`` is ``mask``: 1 on
    the tokens that enter the loss, 0 on padding and forced prefixes (``None``: 1 everywhere)::

        d_it = m_it (old_logp_it - sampler_logp_it)
        token_*:     rho_it = exp(d_it)
        sequence_*:  rho_it = exp(sum_t' d_it')       the same on every token of sequence i
        *_truncate:  w_it = min(rho_it, cap)
        *_mask:      w_it = rho_it if rho_it <= cap else 0

    The sequence ratio is the *product* of the token ratios over the trained tokens (a sum of log
    ratios, not the geometric mean of ``algo.ratio_level: sequence``), so it drifts with the length
    of the trace; masked tokens add 0 to the sum and get ``rho = 1`` in the token modes. ``*_mask``
    zeroes the weight only: the masked tokens stay in the loss's normaliser. This is TRL's
    ``vllm_importance_sampling_mode`` with ``vllm_importance_sampling_clip_max = cap`` and no lower
    bound (``trl/trainer/grpo_trainer.py``, TRL 1.16; tests/algo/test_tis.py runs TRL's lines),
    following Yao et al. 2025 ("Your efficient RL framework secretly brings you off-policy RL
    training": truncated IS, masked IS) and verl's rollout correction (``docs/algo/rollout_corr.md``:
    token/sequence IS weights truncated at ``rollout_is_threshold``, rejection of outliers). A sequence
    mode needs ``mask``.

    Row 0: d = 0.5, 0.5 and a padded token; row 1: d = -0.2, -0.1, 0.8 (sum 0.5); cap 2. Token modes cut
    row 1's last token (e^0.8 = 2.23); sequence modes cut row 0 (e^1 = 2.72) and give row 1 e^0.5 = 1.65:

    >>> old = torch.tensor([[0.0, -1.0, -3.0], [-1.0, -2.0, -0.2]])
    >>> sampler = torch.tensor([[-0.5, -1.5, -12.0], [-0.8, -1.9, -1.0]])
    >>> mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    >>> for mode in TIS_MODES:
    ...     print(mode, tis_weights(old, sampler, 2.0, mode, mask).tolist())  # doctest: +ELLIPSIS
    token_truncate [[1.648..., 1.648..., 1.0], [0.818..., 0.904..., 2.0]]
    token_mask [[1.648..., 1.648..., 1.0], [0.818..., 0.904..., 0.0]]
    sequence_truncate [[2.0, 2.0, 2.0], [1.648..., 1.648..., 1.648...]]
    sequence_mask [[0.0, 0.0, 0.0], [1.648..., 1.648..., 1.648...]]
    >>> tis_weights(torch.tensor([0.0, -1.0]), torch.tensor([-1.0, 0.0]), cap=2.0)
    tensor([2.0000, 0.3679])
    """
    ratio = _tis_ratios(old_logp, sampler_logp, mode, mask)
    if mode.endswith("truncate"):
        return ratio.clamp(max=cap)
    return ratio.masked_fill(ratio > cap, 0.0)


def tis_rejected(old_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float, mode: str,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Where a ``*_mask`` mode of :func:`tis_weights` sets the weight to 0 (``rho > cap``), as a bool
    tensor; all False in the ``*_truncate`` modes."""
    ratio = _tis_ratios(old_logp, sampler_logp, mode, mask)
    return (ratio > cap) if mode.endswith("mask") else torch.zeros_like(ratio, dtype=torch.bool)


def entropy_shaped_advantages(advantages: torch.Tensor, entropy: torch.Tensor, weight: torch.Tensor,
                              alpha: float = 0.4, kappa: float = 2.0) -> torch.Tensor:
    """Entropy-based advantage shaping (Cheng et al., arXiv 2506.14758; CEEH's release,
    QinwenLuo/CEEH ``actor/edlao_dp_actor.py``, with alpha 0.4, kappa 2), per token::

        A'_it = A_it + d_i * min(alpha * H_it, |A_it| / kappa)

    ``advantages`` ``[B, T]`` (or ``[B]``, one per sequence), ``entropy`` ``[B, T]`` (detached here: the bonus carries no gradient of
    its own), ``weight`` ``[B]`` (d_i: 1 where the shaping applies, CEEH: hard prompts). The bonus
    is never negative and at most half of |A|, so it never flips an advantage's sign.

    >>> entropy_shaped_advantages(torch.tensor([[1.0, -1.0, 0.0]]), torch.tensor([[0.5, 5.0, 1.0]]),
    ...                           torch.tensor([1.0]))
    tensor([[ 1.2000, -0.5000,  0.0000]])
    """
    if advantages.dim() == 1:  # one per sequence: the same on each of its tokens
        advantages = advantages.unsqueeze(1).expand(-1, entropy.shape[1])
    bonus = torch.minimum(alpha * entropy.detach().to(advantages.dtype), advantages.abs() / kappa)
    return advantages + weight.to(advantages.dtype).reshape(-1, 1) * bonus


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    agg: str,
    norm: Normalizer,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float | torch.Tensor = 0.0,
    is_weight: torch.Tensor | None = None,
    ratio_level: str = "token",
    kl_cov_mask: torch.Tensor | None = None,
    kl_cov_coef: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one micro-batch (already divided by the step's global normalizer) and its stats.

    ``advantages`` is ``[B]`` (one per sequence) or ``[B, T]``; ``entropy_coef`` a float or a
    per-sequence ``[B]`` tensor (CEEH: the bonus only on hard prompts). Stats are masked token means of
    this micro-batch, detached: ``pg_loss``, ``kl``, ``entropy``, ``clip_frac_low`` (ratio below
    1 - clip_low with A < 0), ``clip_frac_high`` (ratio above 1 + clip_high with A > 0), ``ratio``,
    and ``tis_weight`` when ``is_weight`` (``[B, T]``, the TIS weights) multiplies the
    policy-gradient term. ``ratio_level="sequence"``: the GSPO ratio ``s_i`` on every token (module
    docstring); ``clip_low``/``clip_high`` are then the sequence-level clip range.

    ``kl_cov_mask`` (``[B, T]``, 0/1) switches to KL-Cov (module docstring): no clipping, and
    ``kl_cov_coef * |logp - old_logp|`` on the selected tokens; the clip fractions are then not
    reported, and ``kl_cov_fraction`` (selected share of the tokens) and ``kl_cov_abs_diff_mass``
    (token mean of ``s * |logp - old_logp|``; divided by the fraction it is the mean on the
    selected tokens) are.
    """
    adv = advantages if advantages.dim() == 2 else advantages.unsqueeze(-1)
    adv = adv.to(logp.dtype)
    if ratio_level == "token":
        ratio = torch.exp(logp - old_logp)
    elif ratio_level == "sequence":
        m = mask.to(logp.dtype)
        seq_log_ratio = ((logp - old_logp) * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        ratio = torch.exp(seq_log_ratio).unsqueeze(-1).expand_as(logp)
    else:
        raise ValueError(f"unknown ratio level '{ratio_level}', expected one of {RATIO_LEVELS}")
    unclipped = -adv * ratio
    stats = {}
    if kl_cov_mask is not None:
        if ratio_level != "token":
            raise ValueError("KL-Cov is a token-level loss: it needs ratio_level='token'")
        selected = kl_cov_mask.to(logp.dtype) * mask.to(logp.dtype)
        abs_diff = (logp - old_logp).abs()
        per_token = unclipped + kl_cov_coef * selected * abs_diff
        stats["kl_cov_fraction"] = masked_mean(selected, mask)
        stats["kl_cov_abs_diff_mass"] = masked_mean((selected * abs_diff).detach(), mask)
    else:
        clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
        per_token = torch.maximum(unclipped, clipped)
        stats["clip_frac_low"] = masked_mean(((ratio < 1.0 - clip_low) & (adv < 0)).float(), mask)
        stats["clip_frac_high"] = masked_mean(((ratio > 1.0 + clip_high) & (adv > 0)).float(), mask)
    if is_weight is not None:
        per_token = per_token * is_weight.detach().to(per_token.dtype)
    stats["pg_loss"] = masked_mean(per_token.detach(), mask)
    stats["ratio"] = masked_mean(ratio.detach(), mask)
    if is_weight is not None:
        stats["tis_weight"] = masked_mean(is_weight.detach().to(per_token.dtype), mask)
    if ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1.0
        stats["kl"] = masked_mean(kl.detach(), mask)
        if kl_coef:
            per_token = per_token + kl_coef * kl
    if entropy is not None:
        stats["entropy"] = masked_mean(entropy.detach(), mask)
        if isinstance(entropy_coef, torch.Tensor):
            per_token = per_token - entropy_coef.to(entropy.dtype).reshape(-1, 1) * entropy
        elif entropy_coef:
            per_token = per_token - entropy_coef * entropy
    return aggregate(per_token, mask, agg, norm), stats
