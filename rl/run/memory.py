"""The memory arithmetic behind ``laconic plan`` (:mod:`rl.run.plan`): model shapes, and one function per
term of a GPU's peak, each with its derivation. Sizes are bytes; lengths are tokens; ``N`` is the
parameter count, ``g`` the number of GPUs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rl.config import ConfigError


GiB = 1 << 30


@dataclass(frozen=True)
class Shape:
    """A Qwen2 / Llama decoder-only model, as far as memory is concerned."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool  # tie_word_embeddings: lm_head shares the embedding matrix
    qkv_bias: bool = False  # Qwen2: q/k/v projections carry a bias
    head_dim: int = 0  # 0: hidden // heads

    @property
    def d(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q(self) -> int:  # width of the query projection
        return self.heads * self.d

    @property
    def kv(self) -> int:  # width of the key (and of the value) projection
        return self.kv_heads * self.d

    def layer_params(self) -> int:
        h, q, kv, i = self.hidden, self.q, self.kv, self.intermediate
        return h * q + 2 * h * kv + q * h + (q + 2 * kv) * self.qkv_bias + 3 * h * i + 2 * h

    def params(self) -> int:
        """N = layers x (attention + MLP + 2 norms) + embeddings (x2 untied) + final norm."""
        return self.layers * self.layer_params() + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden


# From the models' config.json on the Hugging Face hub (deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B and
# -7B: Qwen2ForCausalLM, the Qwen2.5-Math-1.5B / -7B shapes, untied embeddings) and
# HuggingFaceTB/SmolLM2-135M-Instruct (LlamaForCausalLM, tied). Cross-check: Shape.params() gives
# 1,777,088,000 and 7,615,616,512, the 1.78B / 7.62B that the hub lists for the two R1 distills.
KNOWN_SHAPES: dict[str, Shape] = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": Shape(1536, 28, 12, 2, 8960, 151936, False, True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": Shape(3584, 28, 28, 4, 18944, 152064, False, True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Shape(576, 30, 9, 3, 1536, 49152, True, False),
}
KNOWN_SHAPES["builtin:smollm2"] = KNOWN_SHAPES["HuggingFaceTB/SmolLM2-135M-Instruct"]


def shape_from_config(c) -> Shape:
    """A :class:`Shape` from a transformers config (object or config.json dict)."""
    get = c.get if isinstance(c, dict) else lambda k, d=None: getattr(c, k, d)
    heads = get("num_attention_heads")
    return Shape(hidden=get("hidden_size"), layers=get("num_hidden_layers"), heads=heads,
                 kv_heads=get("num_key_value_heads") or heads, intermediate=get("intermediate_size"),
                 vocab=get("vocab_size"), tied=bool(get("tie_word_embeddings", False)),
                 qkv_bias=bool(get("attention_bias", get("model_type") == "qwen2")),
                 head_dim=get("head_dim") or 0)


def model_shape(name_or_path: str) -> Shape:
    """Shapes without downloading weights: :data:`KNOWN_SHAPES`, a local directory's
    ``config.json``, a built-in toy if already built, or the Hugging Face cache (no network)."""
    if name_or_path in KNOWN_SHAPES:
        return KNOWN_SHAPES[name_or_path]
    if name_or_path.startswith("builtin:toy"):  # tiny, built from code in an instant
        from rl.models.toy import build_model, build_tokenizer

        return shape_from_config(build_model(build_tokenizer()).config)
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return shape_from_config(json.loads((path / "config.json").read_text()))
    try:
        from transformers import AutoConfig

        return shape_from_config(AutoConfig.from_pretrained(name_or_path, local_files_only=True))
    except Exception as e:  # not cached, not a directory
        raise ConfigError(f"model.name_or_path: no shapes for '{name_or_path}': not in rl/run/memory.py KNOWN_SHAPES, "
                          f"no local config.json, not in the Hugging Face cache ({type(e).__name__})") from None


def lora_params(s: Shape, r: int, targets: list[str]) -> int:
    """Trainable LoRA parameters: r x (in + out) per targeted projection per layer."""
    dims = {"q_proj": (s.hidden, s.q), "k_proj": (s.hidden, s.kv), "v_proj": (s.hidden, s.kv),
            "o_proj": (s.q, s.hidden), "gate_proj": (s.hidden, s.intermediate),
            "up_proj": (s.hidden, s.intermediate), "down_proj": (s.intermediate, s.hidden)}
    return s.layers * sum(r * sum(dims[t]) for t in targets if t in dims)


@dataclass(frozen=True)
class Precision:
    """Bytes per element. ``param``: the weights the forward reads (fp32 under DDP, bf16 under
    DeepSpeed's bf16 mode); ``compute``: matmul inputs and outputs (2 under bf16 autocast);
    ``residual``: the residual stream (follows the embedding's dtype, i.e. ``param``);
    ``mixed``: bf16 autocast over fp32 weights (DDP under ``mixed_precision: bf16``)."""

    param: int
    compute: int
    residual: int
    mixed: bool = False


DS_BUCKET_ELEMENTS = 500_000_000  # DeepSpeed zero_optimization reduce/allgather_bucket_size default (5e8)


DS_MAX_LIVE_ELEMENTS = 1_000_000_000  # DeepSpeed stage3_max_live_parameters default (1e9)


CUDA_OVERHEAD = 1.5 * GiB  # CUDA context, cuBLAS workspaces, NCCL buffers per process (not measured here)


USABLE_FRACTION = 0.9  # head-room for the caching allocator's fragmentation


VLLM_MAX_NUM_SEQS = 1024  # vLLM's max_num_seqs default for the LLM class on >= 70 GiB GPUs (vllm/engine/arg_utils.py)


def training_state(n: int, trainable: int, zero: int, g: int, prec: Precision) -> dict[str, float]:
    """Weights, gradients, optimizer states and communication buffers per GPU, by strategy.

    With ``p = prec.param`` and T trainable of N parameters (ZeRO, arXiv 1910.02054, sec. 3 and 5):

    - DDP (zero 0): weights pN, gradients pT, AdamW's two moments 2pT; buffers: DDP's gradient
      buckets hold a second copy of the gradients (pT, torch DistributedDataParallel with
      gradient_as_bucket_view=False, accelerate's default) when g > 1, plus, under bf16 autocast
      over fp32 weights, the bf16 weight casts saved for backward (2N).
    - ZeRO-2: bf16 weights 2N; gradients: the bf16 partition and its fp32 copy for the step,
      (2 + 4)T/g; optimizer: fp32 master weights + two moments, 12T/g; buffers: the reduce and
      all-gather buckets, 2 x 5e8 bf16 elements (DeepSpeed's defaults).
    - ZeRO-3: as ZeRO-2 with the weights partitioned too, 2N/g, plus the parameters gathered
      for the current module, at most 2 x 1e9 bytes (``stage3_max_live_parameters``).
    """
    p = prec.param
    if zero == 0:
        buffers = (p * trainable if g > 1 else 0) + (2 * n if prec.mixed else 0)
        return {"weights": p * n, "gradients": p * trainable, "optimizer": 2 * p * trainable, "buffers": buffers}
    buckets = 2 * 2 * DS_BUCKET_ELEMENTS
    weights = 2 * n if zero == 2 else 2 * n / g + 2 * DS_MAX_LIVE_ELEMENTS
    return {"weights": weights, "gradients": 6 * trainable / g, "optimizer": 12 * trainable / g, "buffers": buckets}


def reference_bytes(n: int, kl: bool, lora: bool, ref_bytes: int, zero: int = 0, g: int = 1) -> float:
    """The frozen KL reference (rl/run/distributed.py ``make_reference``): a copy of the initial
    weights in the compute dtype (``ref_bytes``: bf16 under mixed precision, else the model's),
    whole on every GPU, or under ZeRO-3 sharded like the policy (``ref_bytes N / g``); none
    without KL, and none with LoRA (the base model with the adapter disabled is the reference)."""
    if not kl or lora:
        return 0
    return ref_bytes * n / g if zero == 3 else ref_bytes * n


def layer_activation_bytes(s: Shape, prec: Precision, width: int, packed: bool = False) -> int:
    """Bytes one token leaves saved for backward in one Qwen2/Llama decoder layer (transformers
    ``modeling_qwen2`` / ``modeling_llama``, SDPA attention), r = residual, c = compute bytes,
    rows of ``width`` tokens. Only what autograd saves counts (checked tensor by tensor with
    ``torch.autograd.graph.saved_tensors_hooks``, docs/memory.md):

    - 2 RMSNorms, each: its fp32 input (4h), the normalized x (rh, read by the weight multiply),
      the output as the projections' input (ch): ``2 (4 + r + c) h``;
    - attention: SDPA's query, keys and values repeated to all heads (GQA with a padding mask),
      and its output, which o_proj reads (the rotary multiply saves only cos/sin): ``4 c q``;
      SDPA's fp32 log-sum-exp per head, ``4 heads``; and the padding mask SDPA converts from
      boolean to the compute dtype at every call, ``c x width``;
    - SwiGLU MLP: gate, silu(gate), up, silu(gate) * up: ``4 c i``.

    ``packed`` (``train.packing``: one row, attention per sequence, rl/algo/logprobs.py
    ``_segment_attention``): no mask, and keys and values not repeated (SDPA's ``enable_gqa``); saved are
    the query, keys and values, each sequence's output and their concatenation that o_proj reads:
    ``3 c q + 2 c kv`` in place of ``4 c q + c width`` (checked the same way, tensor by tensor).

    >>> s = Shape(hidden=256, layers=1, heads=8, kv_heads=2, intermediate=1024, vocab=64, tied=True)
    >>> layer_activation_bytes(s, Precision(4, 4, 4), 270), layer_activation_bytes(s, Precision(4, 4, 4), 270, True)
    (27736, 26144)
    """
    h, c, r = s.hidden, prec.compute, prec.residual
    attention = 3 * c * s.q + 2 * c * s.kv if packed else 4 * c * s.q + c * width
    return 2 * (4 + r + c) * h + attention + 4 * s.heads + 4 * c * s.intermediate


def activation_bytes(s: Shape, prec: Precision, tokens: int, width: int, completion: int,
                     checkpointing: bool, packed: bool = False) -> dict[str, int]:
    """Activations of one micro-batch of ``tokens`` padded tokens in rows of ``width``, with
    ``completion`` completion tokens a row:

    - ``kept`` until backward: every layer's :func:`layer_activation_bytes`, or with
      checkpointing (transformers' per-layer ``gradient_checkpointing_enable``) only each layer's
      input (rh); model-level: the final norm (4h + rh), cos/sin of the rotary embedding
      (2 c head_dim), the boolean padding mask (``width`` bytes a token) and the completion
      positions' hidden states that the chunked log-probs gather into ``[N, H]`` (rh each);
    - ``working``: the layer being back-propagated, about one layer's worth (its gradients in
      flight; with checkpointing, its recomputed activations, whose gradients replace them).

    ``packed`` (``train.packing``): ``tokens`` are real tokens (no padding), the layers are
    :func:`layer_activation_bytes`' packed ones and there is no padding mask. The planner's widest case,
    every row ``width`` tokens, puts as many rows in a micro-batch either way.
    """
    layer = layer_activation_bytes(s, prec, width, packed)
    r, h = prec.residual, s.hidden
    rows = max(tokens // width, 1)
    mask = 0 if packed else width
    kept = tokens * (s.layers * (r * h if checkpointing else layer) + (4 + r) * h + 2 * prec.compute * s.d + mask)
    return {"kept": kept + rows * completion * r * h, "working": tokens * layer}


def reference_forward_bytes(s: Shape, prec: Precision, tokens: int, width: int, completion: int,
                            packed: bool = False) -> dict[str, int]:
    """The KL reference's no-grad forward, run while the policy's graph is alive. ``layer``: the
    live tensors of one layer, the residual and its normed copy plus the larger of attention's
    (q, k and v before and after the GQA repeat, the output, the converted mask:
    ``c (4q + 2kv + width)``) and the MLP's (gate, up, their product: ``3 c i``); ``gathered``:
    its completion hidden states (rh each), alive while its logits are chunked. ``packed``: q, k, v,
    the sequences' outputs and their concatenation, ``c (3q + 2kv)``."""
    r, c = prec.residual, prec.compute
    attention = c * (3 * s.q + 2 * s.kv) if packed else c * (4 * s.q + 2 * s.kv + width)
    per_token = 2 * r * s.hidden + max(attention, 3 * c * s.intermediate)
    return {"layer": tokens * per_token, "gathered": max(tokens // width, 1) * completion * r * s.hidden}


def logits_bytes(s: Shape, prec: Precision, budget: int | None = None, head_fp32: bool = False) -> int:
    """The chunked log-probs (rl/algo/logprobs.py): ``n = chunk_tokens(V, budget)`` (``budget // 4V``,
    ``train.logits_chunk_mib``: 64 MiB on CPU, 1 GiB on GPU by default) tokens at a time, whatever the
    rows and the completion length. At the peak (the backward recompute)
    one chunk holds the head's output ``[n, V]`` in the compute dtype, the float32 log-probs
    turned into the gradient, and the float32 probabilities: ``n V (c + 8)``.

    ``head_fp32`` (``train.head_fp32``, rl/algo/logprobs.py ``fp32_head``): the output is float32,
    ``n V 12``, plus the chunk's float32 copy of a head weight that is not float32: where the policy's
    weights are bf16 (``p`` < 4: DeepSpeed's bf16, a bf16 model) the copy and, in the backward pass, its
    float32 gradient before the cast to ``p``, ``8 V H`` (a bound for the forward pass, which holds the
    copy alone); under DDP's autocast the policy's head is float32 already, but the KL reference's (a bf16
    copy) is cast in its forward pass, ``4 V H`` (counted whether or not KL is on).

    >>> bf16, ddp = Precision(2, 2, 2), Precision(4, 2, 4, mixed=True)
    >>> s = Shape(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960, vocab=151936, tied=False)
    >>> [round(logits_bytes(s, p, 1 << 30, f) / 2**30, 2) for p in (bf16, ddp) for f in (False, True)]
    [2.5, 4.74, 2.5, 3.87]
    """
    from rl.algo.logprobs import chunk_tokens

    if not head_fp32:
        return chunk_tokens(s.vocab, budget) * s.vocab * (prec.compute + 8)
    copy = (8 if prec.param < 4 else 4 if prec.compute < 4 else 0) * s.vocab * s.hidden
    return chunk_tokens(s.vocab, budget) * s.vocab * 12 + copy


def micro_batch_count(rows: int, size: int, width: int, max_tokens: int | None = None) -> int:
    """Micro-batches one GPU runs for one optimizer step of ``rows`` rollouts, cut as
    ``rl.train.update.micro_batches`` cuts them when every row is ``width`` tokens wide (the
    widest case, the one the planner sizes): at most ``size`` rows a micro-batch and, with
    ``max_tokens``, at most ``max_tokens // width`` of them (one row at least).

    >>> micro_batch_count(1024, 8, 5024, 32768)  # 6 rows of 5024 tokens a micro-batch
    171
    >>> micro_batch_count(4, 4, 640), micro_batch_count(4, 2, 640), micro_batch_count(4, 4, 640, 1280)
    (1, 2, 2)
    """
    per = min(size, max(max_tokens // width, 1)) if max_tokens else size
    return -(-rows // per)


def update_peak_bytes(state: dict[str, float], reference: float, act: dict[str, int], logits: float,
                      head_grad: float, ref_forward: dict[str, int] | None, overhead: float,
                      accumulated: float = 0) -> tuple[float, str]:
    """The update phase's peak and where it falls. Resident: weights, optimizer states and
    buffers, the reference, the overhead. On top, the largest of:

    - ``forward``: kept activations + a chunk's logits, or with KL the larger of the reference's
      layer transient and its chunk's logits with its gathered hidden states;
    - ``head``: kept activations + the chunk's logits in backward + the head's gradient, or the
      head's gradient twice (a chunk's ``[V, H]`` contribution before it is accumulated);
    - ``layers``: kept activations + the head's gradient + the working layer (the top layer);
    - ``end``: all gradients + the working layer (the bottom layer, activations all freed);

    each of the first three plus ``accumulated``: the gradients held from the earlier
    micro-batches of the same optimizer step. The trainer (``rl.train.update.update_policy``)
    accumulates an optimizer step's gradients over its micro-batches (DDP: ``no_sync`` but for
    the last; DeepSpeed: the accumulation boundary at the last), so from the second micro-batch
    on every point holds them: ``state["gradients"]`` (DDP: the ``.grad`` tensors, pT; ZeRO-2/3:
    the gradient partitions; DDP's bucket copy is in ``buffers``) when there are two or more, 0
    with one. A GPU trains on ``ceil(ceil(prompts_per_step x group_size / g) / updates_per_rollout)``
    rollouts an optimizer step, in :func:`micro_batch_count` micro-batches. ``end`` holds all gradients
    either way. ``layers`` keeps the head's gradient on top of them, a bound: an untied head's may
    already be added in by then (at most ``V H p`` counted twice).

    Gradients accumulate while activations are freed, so the peak is at one of these points.
    """
    resident = state["weights"] + state["optimizer"] + state["buffers"] + reference + overhead
    kept, working, held = act["kept"], act["working"], accumulated
    ref = ref_forward or {"layer": 0, "gathered": 0}
    points = {"forward": held + kept + max(ref["layer"], logits + ref["gathered"]),
              "head": held + kept + max(logits + head_grad, 2 * head_grad),
              "layers": held + kept + head_grad + working,
              "end": state["gradients"] + working}
    where = max(points, key=points.get)
    return resident + points[where], where


def kv_bytes_per_token(s: Shape, dtype_bytes: int = 2) -> int:
    """vLLM's KV cache: keys and values of every layer, ``2 x layers x kv x dtype``."""
    return 2 * s.layers * s.kv * dtype_bytes


def vllm_activation_bytes(s: Shape, max_num_batched_tokens: int, max_num_seqs: int, dtype_bytes: int = 2) -> int:
    """vLLM's profiled activation peak: one forward over ``max_num_batched_tokens`` (nothing is
    saved; the widest live tensors are the residual and hidden states, q/k/v, gate_up and the
    activated MLP input: ``dtype x (4h + q + 2kv + 3i)`` a token) plus the sampler over
    ``max_num_seqs`` rows of fp32 logits (logits, processed log-probs, probabilities: 3 x 4V)."""
    per_token = dtype_bytes * (4 * s.hidden + s.q + 2 * s.kv + 3 * s.intermediate)
    return max_num_batched_tokens * per_token + max_num_seqs * 3 * 4 * s.vocab
