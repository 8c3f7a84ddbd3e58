"""KL-Cov token selection (Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning
Language Models", arXiv 2505.22617; released code PRIME-RL/Entropy-Mechanism-of-RL, also verl
``verl/trainer/ppo/core_algos.py: compute_policy_loss_kl_cov``). DOT (arXiv 2601.03969, code
U-rara/DOT ``projects/dot/runs/run_dot.sh``) trains with it at ratio 0.002, coefficient 1.0.

Over the N valid completion tokens of one optimizer step (mask 1), with advantage A_t and the
behaviour policy's log-prob logp_t of each token,

    cov_t = (A_t - mean A) * (logp_t - mean logp)          (means over the N valid tokens, detached)

and the k = max(1, floor(N * ratio)) tokens with the *largest* (signed) cov_t are selected. The loss
(:func:`rl.algo.loss.policy_loss` with ``kl_cov_mask``) is then, per token, with rho_t = exp(logp_t - old_logp_t),

    l_t = -A_t * rho_t + coef * |logp_t - old_logp_t|      on the k selected tokens
    l_t = -A_t * rho_t                                      elsewhere (no clipping anywhere)

aggregated by ``algo.loss_agg`` like the clipped loss.

Where laconic differs from verl:

- verl selects inside every micro-batch from the *current* log-probs of that micro-batch, so which
  tokens are penalised depends on how the step is cut. laconic selects once per optimizer step,
  over all its trained completion tokens on all processes (global means, global top k), from the
  *old* log-probs (the behaviour policy's no-grad scoring pass), and hands the selection to the
  loss as a ``[B, T]`` mask; the update then does not depend on the micro-batching. Ties are
  broken by position (process, then rollout order, then token), so the selection is deterministic.
- The first optimizer step on a rollout batch is on-policy: laconic uses ``old_logp = logp``
  exactly there, so the penalty and its gradient are 0 and nothing is selected
  (:func:`rl.train.update.update_policy`); verl's separately computed old log-prob leaves a
  numerics-sized difference whose sign sets a full ``coef`` gradient on the selected tokens. KL-Cov
  thus acts from the second of ``algo.updates_per_rollout > 1`` steps (DOT's release: 4).
"""

from __future__ import annotations

import torch

DEFAULT_RATIO = 2e-4  # verl's default kl_cov_ratio; DOT's release uses 0.002
DEFAULT_COEF = 1.0  # verl's default ppo_kl_coef (DOT: 1.0)


def top_count(num_tokens: int, ratio: float) -> int:
    """k = max(1, floor(N * ratio)) tokens, none without tokens.

    >>> top_count(12800, 0.002), top_count(100, 0.002), top_count(0, 0.002), top_count(5, 0.4)
    (25, 1, 0, 2)
    """
    return max(1, int(num_tokens * ratio)) if num_tokens > 0 else 0


def covariances(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor,
                mean_adv: float | None = None, mean_logp: float | None = None) -> torch.Tensor:
    """cov_t of the valid tokens, flattened in row-major order (float64). ``adv`` is ``[B]`` or
    ``[B, T]``; the means default to this batch's (pass the step's global means otherwise).

    >>> covariances(torch.tensor([1.0, -1.0]), torch.tensor([[-1.0, -3.0], [-2.0, 0.0]]),
    ...             torch.tensor([[1, 1], [1, 0]])).tolist()
    [0.6666666666666667, -0.6666666666666667, -0.0]
    """
    a, lp, valid = _valid(adv, logp, mask)
    ma = a.mean() if mean_adv is None else mean_adv
    ml = lp.mean() if mean_logp is None else mean_logp
    return (a - ma) * (lp - ml)


def _valid(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor):
    valid = mask.bool()
    adv = adv.detach().double()
    adv = adv.unsqueeze(-1).expand_as(logp) if adv.dim() == 1 else adv
    return adv[valid], logp.detach().double()[valid], valid


def select(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, ratio: float, accelerator=None) -> torch.Tensor:
    """The ``[B, T]`` boolean mask of the k highest-covariance valid tokens (module docstring).

    With an ``accelerator`` of several processes, the means and the top k are over the tokens of
    all processes (each passes its own share of the step); ties go to the lower process index,
    then to the earlier position.

    >>> select(torch.tensor([1.0, -1.0]), torch.tensor([[-1.0, -3.0], [-2.0, 0.0]]),
    ...        torch.tensor([[1, 1], [1, 0]]), ratio=0.5).tolist()
    [[True, False], [False, False]]
    """
    a, lp, valid = _valid(adv, logp, mask)
    world = 1 if accelerator is None else accelerator.num_processes
    sums = torch.stack([a.sum(), lp.sum(), torch.tensor(float(a.numel()), dtype=torch.float64)])
    if world > 1:
        sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
    n = int(sums[2].item())
    k = top_count(n, ratio)
    out = torch.zeros_like(valid)
    if k == 0:
        return out
    cov = (a - sums[0] / n) * (lp - sums[1] / n)
    order = torch.sort(cov, descending=True, stable=True).indices  # ties: earlier position first
    mine = k
    if world > 1:
        top = torch.full((k,), -torch.inf, dtype=torch.float64)
        top[: min(k, cov.numel())] = cov[order[:k]]
        every = accelerator.gather(top.to(accelerator.device)).cpu()  # [world * k], process-major
        winners = torch.sort(every, descending=True, stable=True).indices[:k]
        mine = int((winners // k == accelerator.process_index).sum())
    flat = torch.zeros(cov.numel(), dtype=torch.bool)
    flat[order[:mine]] = True
    out[valid] = flat
    return out
