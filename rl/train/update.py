"""The policy update (docs/design.md, step 8): batching, forward passes, micro-batched clipped loss.

Layout of a training batch: prompts left-padded to a common width P, completions right-padded,
so every completion starts at column P and ``logits[:, P-1:-1]`` predict the completion tokens.
With ``train.packing`` the model sees one row of the micro-batch's sequences end to end instead
(:func:`make_packed_batch`), and the log-probs come back in the same ``[B, C]`` layout.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass

import torch

from rl.algo.kl_cov import select
from rl.algo.logprobs import sequence_logprobs
from rl.algo.loss import Normalizer, entropy_shaped_advantages, policy_loss, tis_rejected, tis_weights
from rl.config import AlgoConfig, kl_cov_options
from rl.engines.base import Rollout
from rl.models.load import reference_context
from rl.run.distributed import agree_max, backward
from rl.train.record import CURRENT, loss_mask, pad_rows, trained_tokens




class NoSchedule:
    """A scheduler stand-in for :func:`update_policy`'s extra optimizer steps (RoRecomp's compensation step,
    the gradient weighting's per-reward passes): the lr schedule counts training steps only."""

    def step(self) -> None:
        pass


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, P + C]; packed: [1, T]
    attention_mask: torch.Tensor | None  # [B, P + C]; packed: None
    position_ids: torch.Tensor  # [B, P + C]; packed: [1, T], from 0 in each sequence
    completion_ids: torch.Tensor  # [B, C]
    completion_mask: torch.Tensor  # [B, C], 1 on real completion tokens
    prompt_width: int  # packed: 0
    positions: torch.Tensor | None = None  # packed: [B, C], the row position that predicts each completion token
    cu_seqlens: torch.Tensor | None = None  # packed: [B + 1], where each sequence starts in the row, and T


def make_batch(rollouts: list[Rollout], pad_id: int) -> Batch:
    P = max(len(r.prompt_ids) for r in rollouts)
    C = max(max(len(r.completion_ids) for r in rollouts), 1)
    B = len(rollouts)
    ids = torch.full((B, P + C), pad_id, dtype=torch.long)
    att = torch.zeros((B, P + C), dtype=torch.long)
    for i, r in enumerate(rollouts):
        p, c = len(r.prompt_ids), len(r.completion_ids)
        ids[i, P - p : P] = torch.tensor(r.prompt_ids)
        ids[i, P : P + c] = torch.tensor(r.completion_ids, dtype=torch.long)
        att[i, P - p : P + c] = 1
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, att, pos, ids[:, P:], att[:, P:], P)


def make_packed_batch(rollouts: list[Rollout], pad_id: int) -> Batch:
    """``train.packing``: the rollouts' prompt + completion tokens end to end in one row, no padding
    (verl's ``use_remove_padding``, TRL's ``padding_free``); position ids restart at 0 in each sequence,
    so each sees the positions it has in :func:`make_batch`'s layout. The completions are also laid out
    ``[B, C]`` as there; ``positions[i, t]`` is the row position that predicts completion token ``t`` of
    rollout ``i`` (its start + prompt length - 1 + t; a padded column points at its sequence's last).

    >>> from rl.engines.base import Rollout
    >>> b = make_packed_batch([Rollout(0, [7, 8], [9], "", "stop", None), Rollout(0, [5], [6, 4], "", "stop", None)], 0)
    >>> b.input_ids.tolist(), b.position_ids.tolist(), b.positions.tolist(), b.cu_seqlens.tolist()
    ([[7, 8, 9, 5, 6, 4]], [[0, 1, 2, 0, 1, 2]], [[1, 1], [3, 4]], [0, 3, 6])
    """
    C = max(max(len(r.completion_ids) for r in rollouts), 1)
    B = len(rollouts)
    comp = torch.full((B, C), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, C), dtype=torch.long)
    positions = torch.zeros((B, C), dtype=torch.long)
    ids: list[int] = []
    pos: list[torch.Tensor] = []
    starts = [0]
    for i, r in enumerate(rollouts):
        p, c = len(r.prompt_ids), len(r.completion_ids)
        ids += list(r.prompt_ids) + list(r.completion_ids)
        pos.append(torch.arange(p + c))
        comp[i, :c] = torch.tensor(r.completion_ids, dtype=torch.long)
        cmask[i, :c] = 1
        positions[i] = starts[-1] + p - 1 + torch.arange(C).clamp(max=max(c - 1, 0))
        starts.append(starts[-1] + p + c)
    return Batch(torch.tensor([ids], dtype=torch.long), None, torch.cat(pos).unsqueeze(0), comp, cmask, 0,
                 positions, torch.tensor(starts, dtype=torch.long))


def completion_logprobs(model, batch: Batch, temperature: float, with_entropy: bool = False,
                        entropy_grad: bool = True, agree=None, chunk_bytes: int | None = None,
                        head_fp32: bool = False):
    """Per-token log-probs of the completion under ``model`` (logits / temperature), and
    optionally per-token entropies. Both ``[B, C]`` float32, 0 where ``completion_mask`` is 0.
    Computed in chunks from the final hidden states, never holding the ``[B, C, V]`` logits
    (:mod:`rl.algo.logprobs`). With ``entropy_grad=False`` the entropies are a statistic only,
    outside the autograd graph. ``agree`` (:func:`rl.run.distributed.agree_max`): the processes
    make the same number of head calls (ZeRO-3 gathers the head's weights on each); ``chunk_bytes``: the
    chunk budget (:func:`rl.algo.logprobs.chunk_budget`); ``head_fp32``: the head's matmul in float32
    (``train.head_fp32``, :func:`rl.algo.logprobs.fp32_head`)."""
    device = next(model.parameters()).device
    mask = None if batch.attention_mask is None else batch.attention_mask.to(device)  # packed: none
    return sequence_logprobs(model, batch.input_ids.to(device), mask,
                             batch.position_ids.to(device), batch.completion_ids.to(device),
                             batch.completion_mask.to(device), temperature, with_entropy=with_entropy,
                             entropy_grad=entropy_grad, agree=agree, budget=chunk_bytes, head_fp32=head_fp32,
                             positions=batch.positions, cu_seqlens=batch.cu_seqlens)


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def micro_batches(rollouts: list[Rollout], idx: list[int], size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Cut ``idx`` (indices into ``rollouts``) into micro-batches of at most ``size`` rollouts
    and, with ``max_tokens``, at most that many padded tokens (rows x (longest prompt + longest
    completion)), a single longer rollout excepted.

    Rollouts are taken in order of prompt + completion length, so each micro-batch pads to
    lengths close to its own: the forward/backward work follows the real tokens, not the
    longest completion of the step. The grouping does not change the loss (its normalizers are
    the step's global counts, :class:`~rl.algo.loss.Normalizer`).

    >>> from rl.engines.base import Rollout
    >>> rs = [Rollout(0, [1, 2], [3] * n, "", "stop", None) for n in (9, 1, 5, 2)]
    >>> micro_batches(rs, [0, 1, 2, 3], size=2)
    [[1, 3], [2, 0]]
    >>> micro_batches(rs, [0, 1, 2, 3], size=4, max_tokens=24)
    [[1, 3, 2], [0]]
    """
    out: list[list[int]] = []
    cur: list[int] = []
    width_p = width_c = 0
    for i in sorted(idx, key=lambda i: (len(rollouts[i].prompt_ids) + rollouts[i].length, i)):
        p, c = len(rollouts[i].prompt_ids), max(rollouts[i].length, 1)
        wp, wc = max(width_p, p), max(width_c, c)
        if cur and (len(cur) >= size or (max_tokens and (len(cur) + 1) * (wp + wc) > max_tokens)):
            out.append(cur)
            cur, wp, wc = [], p, c
        cur.append(i)
        width_p, width_c = wp, wc
    if cur:
        out.append(cur)
    return out


def balanced_partition(sizes: list[int], caps: list[int]) -> list[list[int]]:
    """The indices of ``sizes`` dealt to ``len(caps)`` bins of at most ``caps[j]`` items, largest first
    (ties: the lower index) into the bin with the smallest total that has room (ties: the lower bin): the
    longest-processing-time greedy, whose largest bin is within 4/3 of the best (verl's seqlen-balanced
    partitions use Karmarkar-Karp). Deterministic; each bin's indices come sorted.

    >>> balanced_partition([5, 1, 4, 2, 3, 3], [3, 3])
    [[0, 1, 5], [2, 3, 4]]
    """
    bins: list[list[int]] = [[] for _ in caps]
    totals = [0] * len(caps)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        j = min((j for j in range(len(caps)) if len(bins[j]) < caps[j]), key=lambda j: (totals[j], j))
        bins[j].append(i)
        totals[j] += sizes[i]
    return [sorted(b) for b in bins]


def packed_micro_batches(rollouts: list[Rollout], idx: list[int], size: int,
                         max_tokens: int | None = None) -> list[list[int]]:
    """``train.packing``: ``idx`` cut into micro-batches of at most ``size`` rollouts and, with
    ``max_tokens``, at most that many real tokens (prompt + completion: a packed row has no padding), a
    single longer rollout excepted, the tokens dealt evenly (:func:`balanced_partition`; verl's
    ``use_dynamic_bsz``). The count starts at ``max(ceil(n / size), ceil(tokens / max_tokens))`` and
    grows until the deal keeps every micro-batch within the caps. As with :func:`micro_batches`, the
    grouping does not change the loss.

    >>> from rl.engines.base import Rollout
    >>> rs = [Rollout(0, [1, 2], [3] * n, "", "stop", None) for n in (9, 1, 5, 2)]
    >>> packed_micro_batches(rs, [0, 1, 2, 3], size=4, max_tokens=14), packed_micro_batches(rs, [3, 0], size=1)
    ([[0, 1], [2, 3]], [[0], [3]])
    """
    if not idx:
        return []
    tokens = [len(rollouts[i].prompt_ids) + rollouts[i].length for i in idx]
    k = max(-(-len(idx) // size), -(-sum(tokens) // max_tokens) if max_tokens else 1)
    while True:
        k = min(k, len(idx))
        bins = balanced_partition(tokens, [size] * k)
        if k == len(idx) or not max_tokens or all(len(b) < 2 or sum(tokens[j] for j in b) <= max_tokens for b in bins):
            return [[idx[j] for j in b] for b in bins if b]
        k += 1


def balance_processes(accelerator, rollouts: list[Rollout], advantages: torch.Tensor, updates_per_rollout: int,
                      old_logps: list[torch.Tensor] | None = None, entropy_mask: torch.Tensor | None = None):
    """``train.packing`` with several processes: the rollouts of each optimizer step dealt to the
    processes again by tokens (:func:`balanced_partition`, every process keeping its count), so their
    forward/backward work is even (verl's ``balance_batch``). :func:`update_policy` cuts each process's
    rollouts into ``updates_per_rollout`` consecutive slices, slice ``j`` of every process being optimizer
    step ``j``; a rollout stays in its step, with its advantage, old log-probs and entropy-mask entry,
    and is trained once. The loss is normalised by the step's global counts and the processes' gradients
    are summed, so the step is the same, up to float summation order. One all-gather of the rollouts;
    every process computes the same deal. Returns this process's ``(rollouts, advantages, old_logps,
    entropy_mask)``."""
    from rl.run.distributed import gather

    n = len(rollouts)
    slices = chunks(list(range(n)), max(-(-n // updates_per_rollout), 1))
    mine = [[(rollouts[i], advantages[i].cpu(), None if old_logps is None else old_logps[i],
              None if entropy_mask is None else float(entropy_mask[i])) for i in sl] for sl in slices]
    every = gather(accelerator, [mine])  # one entry per process: its slices
    out = []
    for j in range(max(len(proc) for proc in every)):
        items = [it for proc in every for it in (proc[j] if j < len(proc) else [])]
        caps = [len(proc[j]) if j < len(proc) else 0 for proc in every]
        bins = balanced_partition([len(r.prompt_ids) + r.length for r, *_ in items], caps)
        out += [items[k] for k in bins[accelerator.process_index]]
    adv = torch.stack([it[1] for it in out]).to(advantages.device) if out else advantages[:0]
    return ([it[0] for it in out], adv, None if old_logps is None else [it[2] for it in out],
            None if entropy_mask is None else torch.tensor([it[3] for it in out]))


def split_to(micro: list[list[int]], count: int) -> list[list[int]]:
    """``micro`` with its largest micro-batches halved until there are ``count`` of them (the
    micro-batch count of the busiest process), each half where the whole was.

    >>> split_to([[1], [2, 0, 4, 5]], 3)
    [[1], [2, 0], [4, 5]]
    >>> split_to([[1], [2, 0, 4, 5]], 4)
    [[1], [2], [0], [4, 5]]
    """
    micro = [list(mb) for mb in micro]
    while len(micro) < count:
        j = max(range(len(micro)), key=lambda j: len(micro[j]))
        if len(micro[j]) < 2:
            raise ValueError(f"cannot cut {sum(map(len, micro))} rollouts into {count} micro-batches to match the "
                             "other processes: every process needs at least as many rollouts")
        half = len(micro[j]) // 2
        micro[j : j + 1] = [micro[j][:half], micro[j][half:]]
    return micro


@torch.no_grad()
def score_pass(model, rollouts: list[Rollout], pad_id: int, temperature: float, micro: int,
               with_entropy: bool, max_tokens: int | None = None, agree=None, chunk_bytes: int | None = None,
               head_fp32: bool = False, packing: bool = False
               ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """No-grad log-probs (and entropies) per rollout, unpadded, in rollout order; ``packing``
    (``train.packing``): packed rows (:func:`make_packed_batch`, :func:`packed_micro_batches`).

    ``agree`` (:func:`rl.run.distributed.agree_max`, for sharded weights: ZeRO-3, FSDP): every process
    runs the same number of micro-batches and head chunks, as in the update, because each forward
    gathers parameters. Without it each process runs its own counts; that is safe with whole weights
    (DDP broadcasts buffers only in the first forward after a backward:
    tests/run/test_deepspeed.py::test_unequal_micro_batch_counts_in_the_no_grad_pass)."""
    logps: list[torch.Tensor] = [torch.empty(0)] * len(rollouts)
    ents: list[torch.Tensor] = [torch.empty(0)] * len(rollouts)
    was_training = model.training
    model.eval()
    micro_idx = (packed_micro_batches if packing else micro_batches)(rollouts, list(range(len(rollouts))), micro,
                                                                     max_tokens)
    if agree is not None:
        micro_idx = split_to(micro_idx, agree(len(micro_idx)))
    for mb_idx in micro_idx:
        batch = (make_packed_batch if packing else make_batch)([rollouts[i] for i in mb_idx], pad_id)
        logp, ent = completion_logprobs(model, batch, temperature, with_entropy, agree=agree, chunk_bytes=chunk_bytes,
                                        head_fp32=head_fp32)
        for row, i in enumerate(mb_idx):
            logps[i] = logp[row, : rollouts[i].length].cpu()
            if with_entropy:
                ents[i] = ent[row, : rollouts[i].length].cpu()
    model.train(was_training)
    return logps, (ents if with_entropy else None)


def token_columns(adv: torch.Tensor, width: int) -> torch.Tensor:
    """``[B]`` advantages as they are; per-token ``[B, T_max]`` ones cut to the micro-batch's width."""
    return adv[:, :width] if adv.dim() == 2 else adv


def kl_cov_selection(rollouts: list[Rollout], idx: list[int], advantages: torch.Tensor,
                     old_logps: list[torch.Tensor], ratio: float, accelerator=None, current: int | None = None,
                     offpolicy: str = "train") -> dict[int, torch.Tensor]:
    """KL-Cov's tokens for the optimizer step over ``idx`` (:mod:`rl.algo.kl_cov`): chosen once, from the
    old log-probs of all the step's trained tokens (on every process), so no micro-batch sees a
    different choice. Returns, per rollout index, a bool tensor over its completion tokens."""
    width = max(max((rollouts[i].length for i in idx), default=1), 1)
    old = pad_rows([old_logps[i] for i in idx], width)
    mask = torch.zeros(len(idx), width)
    for row, i in enumerate(idx):
        mask[row, : rollouts[i].length] = 1.0
    old, mask, _ = loss_mask(old, mask, [rollouts[i] for i in idx], current, offpolicy)
    chosen = select(token_columns(advantages[idx].cpu(), width), old, mask, ratio, accelerator)
    return {i: chosen[row, : rollouts[i].length] for row, i in enumerate(idx)}


def update_policy(accelerator, policy, ref, optimizer, scheduler, rollouts: list[Rollout],
                  advantages: torch.Tensor, algo: AlgoConfig, *, pad_id: int, temperature: float,
                  micro_batch_size: int, max_grad_norm: float, norm_len: int,
                  micro_batch_tokens: int | None = None, old_logps: list[torch.Tensor] | None = None,
                  entropy_mask: torch.Tensor | None = None, chunk_bytes: int | None = None,
                  head_fp32: bool = False, version: int | None = None, offpolicy: str = "train",
                  offpolicy_cap: float = 2.0, packing: bool = False) -> dict[str, float]:
    """``algo.updates_per_rollout`` optimizer steps over this process's rollouts.

    ``packing`` (``train.packing``): each micro-batch is one packed row (:func:`make_packed_batch`), cut
    and balanced by real tokens (:func:`packed_micro_batches`), and with several processes each optimizer
    step's rollouts are first dealt to them by tokens (:func:`balance_processes`); the step is the same.

    The per-token record of each rollout (:func:`rl.train.record.record_masks`) decides which tokens enter the loss and
    which ratios are against their behaviour log-prob: ``version`` is the step being trained, a token
    written by an older one is off-policy and treated as ``offpolicy`` says (``rollout.offpolicy``:
    ``train``, ``mask``, ``behavior``, or ``tis``: its policy-gradient term weighted by
    ``min(exp(old_logp - behaviour_logp), offpolicy_cap)``, detached).

    ``old_logps`` (behaviour policy) are needed when there is more than one update per rollout;
    with a single update the ratio is 1 by construction, so ``logp.detach()`` is used and the
    extra forward pass is skipped. ``entropy_mask`` ([n], 0/1) limits the entropy bonus and the
    entropy-shaped advantages (``algo.entropy_advantage``) to some samples (CEEH: prompts that are
    currently hard).

    When the rollouts carry sampler log-probs, ``rollout/logprob_diff`` is the mean over completion
    tokens of ``|old_logp - sampler_logp|`` (trainer vs rollout engine, same weights: the numerics
    gap); ``algo.tis_cap`` turns on truncated importance sampling with those log-probs, per token or per
    sequence, truncated or masked (``algo.tis_mode``, :func:`rl.algo.loss.tis_weights`); a row of a
    micro-batch is one whole completion, so a sequence mode's sum runs over the row's trained tokens.
    ``tis_masked_frac`` (the mask modes) is the share of trained tokens whose weight was set to 0.

    ``algo.policy_loss: kl_cov``: the first optimizer step on a rollout batch is on-policy, so there
    ``old_logp = logp.detach()`` exactly and the penalty ``|logp - old_logp|`` and its gradient are
    0 (verl would use a separately computed old log-prob, so a numerics-sized difference whose sign
    decides the gradient); no tokens are chosen there. Each later step chooses its tokens once,
    from ``old_logps`` (:func:`kl_cov_selection`). ``kl_cov_fraction`` is the share of all trained
    tokens penalised (about ``(u - 1) / u * ratio`` with ``u`` updates per rollout, 0 with one) and
    ``kl_cov_abs_diff`` the mean ``|logp - old_logp|`` on them.
    """
    if packing and accelerator.num_processes > 1:  # even work per process (verl's balance_batch)
        rollouts, advantages, old_logps, entropy_mask = balance_processes(
            accelerator, rollouts, advantages, algo.updates_per_rollout, old_logps, entropy_mask)
    n = len(rollouts)
    sums: dict[str, float] = defaultdict(float)
    per_step: dict[str, float] = defaultdict(float)
    weight = 0.0
    world = accelerator.num_processes
    agree = agree_max(accelerator)  # the same number of forwards and head chunks on every process
    step_chunks = chunks(list(range(n)), -(-n // algo.updates_per_rollout))
    has_sampler = all(r.logprobs is not None and len(r.logprobs) == r.length for r in rollouts)
    tis_cap = getattr(algo, "tis_cap", None)
    tis_mode = getattr(algo, "tis_mode", "token_truncate")
    seq = algo.ratio_level == "sequence"  # GSPO / LUSPO: the sequence ratio has its own clip range
    clip_low, clip_high = (algo.seq_clip_low, algo.seq_clip_high) if seq else (algo.clip_low, algo.clip_high)
    if tis_cap is not None and not has_sampler:
        raise ValueError("algo.tis_cap needs sampler log-probs, but the rollout engine returned none")
    if offpolicy == "tis" and not has_sampler and any(r.versions for r in rollouts):
        raise ValueError("rollout.offpolicy=tis needs sampler log-probs, but the rollout engine returned none")
    kl_cov = algo.policy_loss == "kl_cov"
    ratio, coef = kl_cov_options(algo) if kl_cov else (0.0, 0.0)
    diff_sum = diff_tokens = 0.0
    for j, idx in enumerate(step_chunks):
        on_policy = old_logps is None or (kl_cov and j == 0)  # KL-Cov: exact zero penalty on the first step
        chosen = None
        if kl_cov and not on_policy:
            chosen = kl_cov_selection(rollouts, idx, advantages, old_logps, ratio, accelerator, version, offpolicy)
        counts = torch.tensor([float(sum(trained_tokens(rollouts[i], version, offpolicy) for i in idx)), float(len(idx))])
        counts = accelerator.reduce(counts.to(accelerator.device), reduction="sum").cpu()
        norm = Normalizer(num_tokens=counts[0].item(), num_seqs=counts[1].item(), norm_len=norm_len)
        micro = (packed_micro_batches if packing else micro_batches)(rollouts, idx, micro_batch_size, micro_batch_tokens)
        if agree is not None:  # ZeRO's forward/backward are collectives: the same number on every process
            micro = split_to(micro, agree(len(micro)))
        for k, mb_idx in enumerate(micro):
            mb = [rollouts[i] for i in mb_idx]
            batch = (make_packed_batch if packing else make_batch)(mb, pad_id)
            mask = batch.completion_mask.to(accelerator.device)
            sync = accelerator.no_sync(policy) if k < len(micro) - 1 else contextlib.nullcontext()
            with sync:
                logp, ent = completion_logprobs(policy, batch, temperature, with_entropy=True,
                                                entropy_grad=bool(algo.entropy_coef), agree=agree,
                                                chunk_bytes=chunk_bytes, head_fp32=head_fp32)
                old = logp.detach() if on_policy else pad_rows([old_logps[i] for i in mb_idx], logp.shape[1]).to(logp.device)
                old, mask, off = loss_mask(old, mask, mb, version, offpolicy)
                is_weight = None
                if has_sampler:
                    sampler = pad_rows([torch.tensor(r.logprobs) for r in mb], logp.shape[1]).to(logp.device)
                    fresh = mask * (~off).to(mask.dtype)  # the numerics gap: tokens of the current weights only
                    diff_sum += float(((old - sampler).abs() * fresh).sum())
                    diff_tokens += float(fresh.sum())
                    if tis_cap is not None:  # mask: the loss's tokens (no padding, no forced prefix) of each row
                        is_weight = tis_weights(old, sampler, tis_cap, tis_mode, mask)
                        if tis_mode.endswith("mask"):  # a token-weighted mean, as the stats below
                            rejected = tis_rejected(old, sampler, tis_cap, tis_mode, mask)
                            sums["tis_masked_frac"] += float((rejected.to(mask.dtype) * mask).sum())
                    if offpolicy == "tis" and bool(off.any()):  # older weights' tokens: truncated IS to them
                        w = tis_weights(old, sampler, offpolicy_cap)
                        is_weight = torch.where(off, w, torch.ones_like(w) if is_weight is None else is_weight)
                ref_logp = None
                if algo.kl_coef > 0:  # the reference runs under the policy's autocast (bf16 weights then)
                    with torch.no_grad(), accelerator.autocast():
                        ref_model, ctx = reference_context(accelerator.unwrap_model(policy), ref)
                        with ctx:
                            ref_logp, _ = completion_logprobs(ref_model, batch, temperature, agree=agree,
                                                              chunk_bytes=chunk_bytes, head_fp32=head_fp32)
                cov_mask = None  # KL-Cov: the step's chosen tokens (none on the on-policy first step)
                if kl_cov:
                    cov_mask = (torch.zeros_like(logp) if chosen is None
                                else pad_rows([chosen[i].float() for i in mb_idx], logp.shape[1]).to(logp.device))
                adv = token_columns(advantages[mb_idx], logp.shape[-1]).to(logp.device)
                if algo.entropy_advantage is not None:  # A + d_i min(alpha H, |A|/kappa), d_i: entropy_mask
                    d = torch.ones(len(mb_idx)) if entropy_mask is None else entropy_mask[mb_idx]
                    adv = entropy_shaped_advantages(adv, ent, d.to(adv.device), **algo.entropy_advantage)
                loss, stats = policy_loss(
                    logp, old, adv, mask,
                    clip_low=clip_low, clip_high=clip_high, agg=algo.loss_agg, norm=norm, ratio_level=algo.ratio_level,
                    ref_logp=ref_logp, kl_coef=algo.kl_coef, entropy=ent,
                    entropy_coef=algo.entropy_coef if entropy_mask is None else algo.entropy_coef * entropy_mask[mb_idx],
                    is_weight=is_weight, kl_cov_mask=cov_mask, kl_cov_coef=coef,
                )
                # DDP (and ZeRO) average gradients over processes; DeepSpeed steps at the boundary only
                backward(accelerator, policy, loss * world, boundary=k == len(micro) - 1)
            tokens = float(mask.sum())
            weight += tokens
            for key, v in stats.items():
                sums[key] += float(v) * tokens
            per_step["loss"] += float(loss.detach()) * world / len(step_chunks)
        grad_norm = accelerator.clip_grad_norm_(policy.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        per_step["grad_norm"] += float(grad_norm) / len(step_chunks)
    out = {k: v / max(weight, 1.0) for k, v in sums.items()}  # token-weighted means
    out.update(per_step)  # means over optimizer steps
    if has_sampler:
        out["rollout/logprob_diff"] = diff_sum / max(diff_tokens, 1.0)
    gathered = accelerator.reduce(torch.tensor(list(out.values())).to(accelerator.device), reduction="mean")
    result = dict(zip(out.keys(), gathered.cpu().tolist()))
    if "kl_cov_abs_diff_mass" in result:  # token mean of s|dlogp| over the chosen share: the mean on chosen tokens
        result["kl_cov_abs_diff"] = result.pop("kl_cov_abs_diff_mass") / max(result["kl_cov_fraction"], 1e-12)
    return result

