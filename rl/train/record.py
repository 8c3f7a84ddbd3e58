"""The per-token rollout record (docs/long_tails.md, "The per-token record"): for every completion
token, the policy version that wrote it (``Rollout.versions``; ``GIVEN`` for a forced prefix), whether it
enters the loss (``Rollout.loss_mask``) and the sampler's log-prob (``Rollout.logprobs``), turned into
the update's ``[B, C]`` masks and old log-probs. AdaptThink's forced prefixes and partial rollouts'
tokens from older weights are both uses of it (rl/train/update.py reads it; rl/train/partial.py and
rl/train/prefetch.py write it).
"""

from __future__ import annotations

import math
import sys

import torch

from rl.engines.base import GIVEN, Rollout

FIRST_FORCED_LOGP = math.log(0.5)  # AdaptThink: the old policy's probability of a forced first token
CURRENT = sys.maxsize  # the version of a token the training step's own weights wrote (no older step's)


def default_record(r: Rollout) -> tuple[list[int], list[int]]:
    """``(versions, loss_mask)`` of ``r``'s tokens: as recorded, or for a rollout that records none, its
    forced prefix (``forced_tokens``; AdaptThink, arXiv 2505.13417, THU-KEG/AdaptThink
    ``src/adapt_think_core_algos.py``) GIVEN with only its first token in the loss, every other token
    the current policy's (version ``CURRENT``) and in the loss.

    >>> default_record(Rollout(0, [1], [5, 6, 7, 8], "", "stop", None, forced_tokens=3))
    ([-1, -1, -1, 9223372036854775807], [1, 0, 0, 1])
    """
    f = min(r.forced_tokens, r.length)
    versions = r.versions if r.versions is not None else [GIVEN] * f + [CURRENT] * (r.length - f)
    mask = r.loss_mask if r.loss_mask is not None else [1] * min(f, 1) + [0] * max(f - 1, 0) + [1] * (r.length - f)
    return versions, mask


def behaviour_logps(r: Rollout) -> list[float]:
    """The log-prob each token was written with (the sampler's); a GIVEN token without one: ``log 0.5``
    (AdaptThink's old-policy probability of a forced first token)."""
    versions, _ = default_record(r)
    if r.logprobs is not None and len(r.logprobs) == r.length:
        return list(r.logprobs)
    return [FIRST_FORCED_LOGP if v == GIVEN else 0.0 for v in versions]


def record_masks(rollouts: list[Rollout], width: int, current: int | None = None, offpolicy: str = "train",
                 dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-token record of a micro-batch as ``[B, width]`` tensors ``(keep, behave, off)``:

    - ``keep`` (``dtype``): the token enters the loss: its ``loss_mask``, its rollout trained
      (``algo.mask_truncated``), and, with ``offpolicy="mask"``, not written by older weights;
    - ``behave`` (bool): its ratio is against its behaviour log-prob (:func:`behaviour_logps`), not the
      trainer's: a GIVEN token in the loss always, an older one with ``offpolicy="behavior"``;
    - ``off`` (bool): written by weights older than ``current`` (the step that trains on it;
      ``rollout.partial``'s continued completions, rl/train/partial.py).

    >>> r = Rollout(0, [1], [5, 6, 7], "", "stop", None, versions=[3, 3, 4])
    >>> [t.tolist() for t in record_masks([r], 3, current=4, offpolicy="mask")]
    [[[0.0, 0.0, 1.0]], [[False, False, False]], [[True, True, False]]]
    >>> record_masks([r], 3, current=4, offpolicy="behavior")[1].tolist()
    [[True, True, False]]
    """
    B = len(rollouts)
    keep = torch.zeros(B, width, dtype=dtype)
    behave = torch.zeros(B, width, dtype=torch.bool)
    off = torch.zeros(B, width, dtype=torch.bool)
    for i, r in enumerate(rollouts):
        versions, mask = default_record(r)
        n = min(r.length, width)
        v = torch.tensor(versions[:n], dtype=torch.long)
        old = (v >= 0) & (v < current) if current is not None else torch.zeros(n, dtype=torch.bool)
        k = torch.tensor(mask[:n], dtype=dtype) * float(r.trained)
        if offpolicy == "mask":
            k = k * (~old).to(dtype)
        keep[i, :n], off[i, :n] = k, old
        behave[i, :n] = ((v == GIVEN) | (old if offpolicy == "behavior" else torch.zeros_like(old))) & (k > 0)
    return keep, behave, off


def trained_tokens(r: Rollout, current: int | None = None, offpolicy: str = "train") -> int:
    """Completion tokens that enter the loss (:func:`record_masks`' ``keep``): all but a forced prefix's
    after its first, none of a rollout that is not trained (``algo.mask_truncated``), and with
    ``offpolicy="mask"`` none written by older weights."""
    return int(record_masks([r], max(r.length, 1), current, offpolicy)[0].sum())


def loss_mask(old: torch.Tensor, mask: torch.Tensor, rollouts: list[Rollout], current: int | None = None,
              offpolicy: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[B, C]`` old log-probs, the mask of the tokens that enter the loss, and the off-policy tokens, from
    the rollouts' per-token record (:func:`record_masks`): ``old`` is the behaviour log-prob where the
    ratio is against it, the mask is ``mask`` (the completion's tokens) times ``keep``.

    >>> r = Rollout(0, [1], [5, 6], "", "length", None, trained=False)
    >>> loss_mask(torch.zeros(2, 2), torch.ones(2, 2), [r, Rollout(0, [1], [5, 6], "", "stop", None)])[1].tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    keep, behave, off = record_masks(rollouts, old.shape[1], current, offpolicy, mask.dtype)
    keep, behave, off = keep.to(mask.device), behave.to(old.device), off.to(old.device)
    if bool(behave.any()):
        behaviour = pad_rows([torch.tensor(behaviour_logps(r)) for r in rollouts], old.shape[1]).to(old)
        old = torch.where(behave, behaviour, old)
    return old, mask * keep, off


def forced_old_logps(old: torch.Tensor, mask: torch.Tensor, forced: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forced prefixes as the per-token record treats them (:func:`default_record`): the first forced
    token's old log-prob is ``log 0.5`` (its ratio ``pi(token) / 0.5``), the others leave the loss.

    >>> old, mask = forced_old_logps(torch.zeros(2, 4), torch.ones(2, 4), [3, 0])
    >>> old[0].exp().tolist(), mask.tolist()
    ([0.5, 1.0, 1.0, 1.0], [[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    """
    rows = [Rollout(0, [], [0] * old.shape[1], "", "stop", None, forced_tokens=f) for f in forced]
    new_old, new_mask, _ = loss_mask(old, mask, rows)
    return new_old, new_mask


def pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
