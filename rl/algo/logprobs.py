"""Per-token log-probs and entropies of a causal LM without its full ``[rows, completion, vocab]`` logits.

The model runs as usual (through its DDP / DeepSpeed / accelerate wrapper, so autocast, gradient
sync and ZeRO-3 gathering are the wrapper's), but keeps the logits of one position only
(``logits_to_keep=1``). A forward hook on the decoder (``get_decoder()``) captures its final hidden
states; the completion positions that hold a real token are gathered into ``[N, H]`` and cut into
chunks of ``n`` tokens. Each chunk goes through the model's own output module
(``get_output_embeddings()``: bias, tied weights, a LoRA-wrapped head all stay the model's) under
the autocast state that the model's forward ran with, and then through :class:`_LogpEntropy`:

    zf   = float32(head(h) / T)                     [n, V]
    lse  = logsumexp(zf)                            [n]
    logp = zf[target] - lse                         [n]
    H    = -sum_v p_v log p_v,  p = exp(zf - lse)   [n]     (only when asked for)

backward (by hand, from the recomputed logits and the saved ``lse`` and ``H``):

    dL/dzf = g_logp * (onehot(target) - p) - g_H * p * (log p + H),   dL/dz = dL/dzf / T

With gradients the chunk runs under non-reentrant activation checkpointing
(``torch.utils.checkpoint``), so nothing of size ``n x V`` is kept between the forward and the
backward pass: the head is recomputed chunk by chunk in the backward pass, and its parameters get
their gradients through the ordinary autograd graph (one accumulation per backward, as DDP and
ZeRO expect).

Memory model (what the planner follows). With ``n = chunk_tokens(V)`` (``CHUNK_BYTES // (4 V)``,
110 tokens at V = 151,936):

- kept across the whole pass: the decoder's activations as usual (its last hidden state
  ``[B, P + C, H]``, or ``[1, T, H]`` for a packed row: ``train.packing``, :func:`packed_attention`), the gathered ``[N, H]`` hidden states and their chunks, ``[N]`` float32
  results (log-prob, entropy, lse) and the ``[B, 1, V]`` logits of the model's own head;
- alive at the peak, in one chunk only: the head's output ``z`` ``[n, V]`` in the compute dtype
  (bf16 under mixed precision, else float32), plus at most two ``[n, V]`` float32 buffers
  (forward: ``zf`` and ``p``; backward: ``log p`` turned in place into the gradient, and ``p``),
  plus the ``[n, V]`` float32 temporary of ``torch.logsumexp`` in the forward pass and the cast of
  the gradient to the compute dtype in the backward pass. So the peak is about
  ``n * V * (4 * 3 + bytes(dtype))`` bytes, independent of the number of rows and of the
  completion length; at V = 151,936 and n = 110 that is about 0.27 GB with float32 compute.

With ``head_fp32`` (``train.head_fp32``, :func:`fp32_head`) the head's matmul runs in float32 as
well, so ``z`` is float32 (``n * V * 12`` bytes) and, where the head's weight is not float32 (a model
loaded in bf16, DeepSpeed's bf16 weights), each chunk makes a float32 copy of it (``V * H * 4``
bytes: 0.93 GB at Qwen2-1.5B's 151,936 x 1,536), which the backward pass keeps next to its float32
gradient before that is cast to the weight's dtype: ``V * H * 8`` bytes more at the head.

The no-grad passes (old log-probs, PEAR/CEEH entropies, the KL reference) run the same chunks
without checkpointing; their peak is the forward part of the above. The entropy costs nothing when
not asked for (``with_entropy=False``) and has no backward cost when taken as a statistic only.

A head that is not ``head(hidden)`` (Gemma-2's ``final_logit_softcapping``, Cohere's
``logit_scale``, Granite's ``logits_scaling``, a custom head) is caught: each call compares the
model's own logits at its kept position with the chunked head's, and a mismatch raises
:class:`UnsupportedHead` naming the config field when it is one of those known ones.

Prior art: Liger-Kernel's fused linear cross-entropy (linkedin/Liger-Kernel,
src/liger_kernel/ops/fused_linear_cross_entropy.py) chunks the head the same way but computes
the gradient in the forward pass, which needs a loss known then; the PPO loss here needs the
log-probs of the whole micro-batch first, hence the recompute.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

CHUNK_BYTES = 64 * 2**20  # one float32 [n, V] buffer of a chunk

# config fields of heads that are not head(hidden) (transformers' Gemma2/3, Cohere, Granite)
HEAD_FIELDS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


class UnsupportedHead(ValueError):
    pass


def chunk_budget(mib: int | None, device_type: str) -> int:
    """Bytes of a chunk's float32 ``[n, V]`` buffer: ``train.logits_chunk_mib``, or by default 64 MiB
    on CPU and 1 GiB on a GPU, where fewer, larger head calls run faster and, under ZeRO-3, gather the
    head's weights fewer times (each call is a gather: 290 calls a 32k-token micro-batch at 64 MiB and
    a 152k vocabulary, 19 at 1 GiB; verl cuts 2,048 rows).

    >>> chunk_budget(None, "cpu") == CHUNK_BYTES, chunk_tokens(151936, chunk_budget(None, "cuda"))
    (True, 1766)
    """
    return (mib if mib else 1024 if device_type == "cuda" else CHUNK_BYTES >> 20) << 20


def chunk_tokens(vocab_size: int, budget: int | None = None) -> int:
    """Tokens per chunk: one float32 ``[n, vocab]`` buffer within ``budget`` bytes.

    >>> chunk_tokens(151936)
    110
    """
    return max(1, (budget or CHUNK_BYTES) // (4 * vocab_size))


def _fp32_scaled(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """A new float32 buffer holding ``z / T`` (divided in z's dtype first, as ``logits / T`` was)."""
    if temperature != 1.0:
        z = z / temperature
        return z if z.dtype == torch.float32 else z.float()
    return z.to(torch.float32, copy=True)


class _LogpEntropy(torch.autograd.Function):
    """``(z [n, V], targets [n]) -> (logp [n], entropy [n] or None)``; see the module docstring."""

    @staticmethod
    def forward(ctx, z, targets, temperature, with_entropy):
        zf = _fp32_scaled(z, temperature)
        lse = torch.logsumexp(zf, -1)
        logp = zf.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
        ent = None
        if with_entropy:
            logq = zf.sub_(lse.unsqueeze(-1))  # log p, in place
            ent = -(logq.exp().mul_(logq)).sum(-1)
        ctx.set_materialize_grads(False)
        ctx.temperature = temperature
        ctx.save_for_backward(z, targets, lse, ent if with_entropy else lse)
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        z, targets, lse, ent = ctx.saved_tensors
        grad = _fp32_scaled(z, ctx.temperature).sub_(lse.unsqueeze(-1))  # log p
        p = grad.exp()
        if g_ent is not None:  # -g_H p (log p + H) - g_logp p
            grad.add_(ent.unsqueeze(-1)).mul_(g_ent.unsqueeze(-1))
            if g_logp is not None:
                grad.add_(g_logp.unsqueeze(-1))
            grad.mul_(p).neg_()
        else:
            grad = p.mul_(-g_logp.unsqueeze(-1))
        del p
        if g_logp is not None:
            grad.scatter_add_(-1, targets.unsqueeze(-1), g_logp.unsqueeze(-1))
        if ctx.temperature != 1.0:
            grad.div_(ctx.temperature)
        return grad.to(z.dtype), None, None, None


def _unwrap(model):
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model)


def _decoder(module):
    """The module whose output is the last hidden state the head reads."""
    base = module.get_base_model() if hasattr(module, "get_base_model") else module  # peft
    return base.get_decoder()


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def _check_head(model, logits: torch.Tensor, hidden: torch.Tensor, head, autocast) -> None:
    """The model's own logits at its last position against ``head(hidden)``: raises where the model
    post-processes its head's output (which the chunks would then miss)."""
    with torch.no_grad(), torch.autocast(hidden.device.type, dtype=autocast[1], enabled=autocast[0]):
        ours = head(hidden[:, -1:, :])
    if ours.shape == logits.shape and torch.allclose(ours.float(), logits.float(), rtol=1e-3, atol=1e-3):
        return
    config = getattr(_unwrap(model), "config", None)
    fields = [f for f in HEAD_FIELDS if getattr(config, f, None) not in (None, 1, 1.0)]
    what = f"config field {', '.join(fields)}" if fields else "a custom output head"
    raise UnsupportedHead(f"the chunked log-probs (rl/algo/logprobs.py) compute head(hidden_states), but this model's "
                          f"logits differ from that ({what}): not supported")


def fp32_head(head, h: torch.Tensor) -> torch.Tensor:
    """``head(h)`` with the matmul in float32: ``F.linear(h.float(), W.float(), b.float())`` under
    ``torch.autocast(enabled=False)`` (``train.head_fp32``; TRL's ``cast_lm_head_to_fp32``, after
    ScaleRL, arXiv 2510.13786, and MiniMax-M1, arXiv 2506.13585, which traced its trainer/sampler
    probability mismatch to the head's precision; both run the sampler's head in float32 too, which
    this does not change).

    The head's weight stays as it is (bf16 when the model is, under DeepSpeed's bf16 mode, or float32
    under DDP's autocast): each call casts it, so the gradient flows through the cast into the weight,
    tied embedding included, in the weight's dtype. The call goes through the head module itself, its
    ``forward`` swapped for the float32 one for that call, so the module's hooks run as in ``head(h)``:
    DeepSpeed ZeRO-3 gathers the partitioned weight in its forward pre-hook and releases it afterwards
    (its gather/prefetch bookkeeping sees the same module calls as with ``head(h)``), which calling
    ``F.linear`` on ``head.weight`` directly would bypass (a 0-element partition). Only a plain
    ``torch.nn.Linear`` head is reproduced that way; any other head (a LoRA- or ``modules_to_save``-wrapped
    ``lm_head``, an already wrapped ``forward``) raises :class:`UnsupportedHead`."""
    if type(head).forward is not torch.nn.Linear.forward or "forward" in vars(head):
        what = type(head).__name__ + (" with a wrapped forward" if "forward" in vars(head) else "")
        raise UnsupportedHead(f"train.head_fp32 computes the output head as a float32 torch.nn.Linear, but this "
                              f"model's head is a {what} (lm_head in model.lora_target_modules?): "
                              "set train.head_fp32=false")

    def forward(x):
        b = head.bias
        return torch.nn.functional.linear(x.float(), head.weight.float(), None if b is None else b.float())

    head.forward = forward
    try:
        with torch.autocast(h.device.type, enabled=False):
            return head(h)
    finally:
        del head.forward


def chunked_logprobs(hidden: torch.Tensor, targets: torch.Tensor, head, temperature: float, *,
                     with_entropy: bool = False, entropy_grad: bool = False,
                     autocast: tuple[bool, torch.dtype] = (False, torch.float32),
                     chunk: int, min_chunks: int = 0, head_fp32: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``hidden [N, H]``, ``targets [N]`` -> float32 ``logp [N]`` and ``entropy [N]`` (or None),
    in chunks of ``chunk`` tokens. ``entropy_grad=False`` returns the entropy detached (a
    statistic); ``autocast`` is ``(enabled, dtype)`` for the head's calls; ``head_fp32``: the head's
    matmul in float32 instead (:func:`fp32_head`), whatever the autocast.

    ``min_chunks``: call the head at least that many times, the extra calls on the first token with
    their result times 0 added to the output, so they are in the autograd graph and recomputed in the
    backward pass too. Under ZeRO-3 every head call gathers the head's weights, a collective: processes
    whose completions differ in length must still make the same number of calls (the maximum over
    processes, :func:`sequence_logprobs`'s ``agree``), or the one with fewer chunks leaves the others
    waiting forever."""
    grad = torch.is_grad_enabled() and hidden.requires_grad

    def piece(h, t):
        if head_fp32:
            z = fp32_head(head, h)
        else:
            with torch.autocast(h.device.type, dtype=autocast[1], enabled=autocast[0]):
                z = head(h)
        return _LogpEntropy.apply(z, t, float(temperature), with_entropy)

    def run(h, t):  # with gradients: recomputed chunk by chunk in the backward pass
        return checkpoint(piece, h, t, use_reentrant=False, preserve_rng_state=False) if grad else piece(h, t)

    logps, ents = [], []
    for s in range(0, hidden.shape[0], chunk):
        lp, ent = run(hidden[s : s + chunk], targets[s : s + chunk])
        logps.append(lp)
        if with_entropy:
            ents.append(ent if entropy_grad else ent.detach())
    padding = [run(hidden[:1], targets[:1])[0].sum() * 0.0  # as many head calls as the busiest process
               for _ in range(min_chunks - len(logps))]
    logp = torch.cat(logps) if logps else hidden.new_zeros(0, dtype=torch.float32)
    if padding:
        logp = logp + torch.stack(padding).sum()
    ent = (torch.cat(ents) if ents else hidden.new_zeros(0, dtype=torch.float32)) if with_entropy else None
    return logp, ent


# ----------------------------------------------------------------------------- packed rows (train.packing)
VARLEN = "laconic_varlen_"  # + the model's own attention ("sdpa", "eager"): the name registered with transformers
_PACKED = threading.local()  # .active: this thread's forward is a packed row, whose padding mask is not built


def _config(model):
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).config


def _base_attention(module, base: str):
    if base == "eager":  # each modeling file has its own
        return sys.modules[type(module).__module__].eager_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[base]


def _segment_attention(module, query, key, value, attention_mask, *, base: str, dropout: float = 0.0,
                       scaling: float | None = None, cu_seq_lens_q: torch.Tensor | None = None, **kwargs):
    """Attention of a packed row ``[1, heads, T, d]``: one causal SDPA call per sequence, none across them
    (what flash-attention's varlen kernel computes, on any device, with no ``[T, T]`` mask and no padding).
    Without ``cu_seq_lens_q`` (a padded batch, generation) it is the model's own ``base`` attention."""
    if cu_seq_lens_q is None:
        return _base_attention(module, base)(module, query, key, value, attention_mask, dropout=dropout,
                                             scaling=scaling, **kwargs)
    lens = cu_seq_lens_q.diff().tolist()
    gqa = query.shape[1] != key.shape[1]
    out = [torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling,
                                                            enable_gqa=gqa).transpose(1, 2)
           for q, k, v in zip(query.split(lens, 2), key.split(lens, 2), value.split(lens, 2))]
    return torch.cat(out, 1), None  # [1, T, heads, d], as transformers' attention functions return


def _segment_mask(*args, base: str, **kwargs):
    if getattr(_PACKED, "active", False):
        return None
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    return ALL_MASK_ATTENTION_FUNCTIONS[base](*args, **kwargs)


def packed_attention(model, cu_seqlens: torch.Tensor) -> dict:
    """Make the (unwrapped) ``model`` attend within each sequence of a packed row that starts at
    ``cu_seqlens`` ``[B + 1]``, and return the forward's keyword arguments (transformers'
    ``cu_seq_lens_q/k``, ``max_length_q/k``).

    ``flash_attention_2/3``: transformers' own varlen path takes them. ``sdpa`` / ``eager``: the model's
    attention becomes ``laconic_varlen_<name>`` for good (registered with transformers'
    ``AttentionInterface`` and ``AttentionMaskInterface``; the config's ``_attn_implementation`` is not
    saved with the model), which runs :func:`_segment_attention` where these arguments are given (the
    forward, and its recomputation under gradient checkpointing) and the model's own attention and mask
    everywhere else; the thread's next mask (the packed row's) is not built. transformers' own packed
    path for SDPA (``position_ids`` without a mask) builds a ``[T, T]`` mask instead and attends over the
    whole row, which cost more time than padding on the measured CPU runs (docs/memory.md). Other
    attention implementations are refused."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    config = _config(model)
    impl = config._attn_implementation or "eager"
    if not impl.startswith(("flash_attention", VARLEN)):
        if impl not in ("sdpa", "eager"):
            raise ValueError(f"train.packing attends within each sequence with sdpa, eager or flash_attention_2/3; "
                             f"this model uses {impl!r}: set train.packing=false")
        AttentionInterface.register(VARLEN + impl, functools.partial(_segment_attention, base=impl))
        AttentionMaskInterface.register(VARLEN + impl, functools.partial(_segment_mask, base=impl))
        config._attn_implementation = VARLEN + impl
    _PACKED.active = True
    cu = cu_seqlens.to(dtype=torch.int32)
    longest = int(cu.diff().max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                      completion_ids: torch.Tensor, completion_mask: torch.Tensor, temperature: float, *,
                      with_entropy: bool = False, entropy_grad: bool = True, chunk: int | None = None,
                      agree: Callable[[int], int] | None = None,
                      budget: int | None = None, head_fp32: bool = False, positions: torch.Tensor | None = None,
                      cu_seqlens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) ``[B, C]`` float32 of the completion tokens, which fill the last
    ``C`` columns of ``input_ids`` ``[B, P + C]``; position ``P - 1 + t`` predicts token ``t``.
    Packed (``train.packing``): ``input_ids`` is one row ``[1, T]`` of whole sequences end to end,
    ``position_ids`` restart at 0 at each one, ``attention_mask`` is None, ``cu_seqlens`` ``[B + 1]``
    are where they start (:func:`packed_attention`), and ``positions`` ``[B, C]`` is the row position
    that predicts each completion token; the head and the result are the padded layout's.
    Positions where ``completion_mask`` is 0 hold 0. ``model`` is called as is (wrapped or not);
    ``chunk`` defaults to :func:`chunk_tokens` of the vocabulary within ``budget`` bytes. ``agree`` (several processes):
    this process's chunk count -> the maximum over processes, which every process then runs
    (:func:`chunked_logprobs`' ``min_chunks``); every process must make the same calls. ``head_fp32``:
    the chunks' head matmul in float32 (:func:`fp32_head`; ``train.head_fp32``)."""
    inner = _unwrap(model)
    head = inner.get_output_embeddings()
    captured: list = []

    def grab(_module, _args, out):
        hs = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        captured.append((hs, _autocast_state(hs.device.type)))

    varlen = packed_attention(inner, cu_seqlens.to(input_ids.device)) if cu_seqlens is not None else {}
    handle = _decoder(inner).register_forward_hook(grab)
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                    logits_to_keep=1, use_cache=False, **varlen)
    finally:
        handle.remove()
        _PACKED.active = False
    hidden, autocast = captured[-1]
    _check_head(model, out.logits, hidden, head, autocast)
    B, C = completion_ids.shape
    P = input_ids.shape[1] - C
    keep = completion_mask.bool()
    if not keep.any():  # nothing to score: one (masked-out) position keeps the autograd graph
        keep = torch.zeros_like(keep)
        keep[0, 0] = True
    if positions is None:
        h = hidden[:, P - 1 : P - 1 + C][keep]  # [N, H]
    else:  # packed: the row positions that predict the kept tokens
        h = hidden.reshape(-1, hidden.shape[-1])[positions.to(hidden.device)[keep]]
    chunk = chunk or chunk_tokens(out.logits.shape[-1], budget)
    logp, ent = chunked_logprobs(h, completion_ids[keep], head, temperature, with_entropy=with_entropy,
                                 entropy_grad=entropy_grad, autocast=autocast, chunk=chunk,
                                 min_chunks=agree(math.ceil(h.shape[0] / chunk)) if agree else 0,
                                 head_fp32=head_fp32)
    keep = keep & completion_mask.bool()
    full = torch.zeros(B, C, dtype=torch.float32, device=logp.device)
    scatter = (lambda x: full.masked_scatter(keep, x[: int(keep.sum())]))
    return scatter(logp), (scatter(ent) if with_entropy else None)
