"""``laconic plan``: predict each phase's peak memory per GPU before a run starts, and size vLLM.

    laconic plan recipes/gpu/dler_r1_7b.yaml --gpu-memory 80 --gpus 8 --zero 2

A step has two memory phases per GPU (docs/design.md, "The data path of one step"):

- **update**: the training state (weights, gradients, optimizer states, communication buffers)
  + the frozen KL reference + the activations of one micro-batch + the logits chunk;
  colocated vLLM is asleep (``sleep(level=2)`` frees its weights and KV cache).
- **rollout**: what stays resident from training (weights, optimizer states, buffers, reference;
  gradients are freed by ``zero_grad(set_to_none=True)``; ZeRO-3 gathers the full weights) + vLLM's
  share ``gpu_memory_utilization x total`` = its weights + activation peak + KV cache.

The formulas are in one place, the "Arithmetic" section below, one function per term, each with
its derivation. Sizes are bytes; lengths are tokens; ``N`` is the parameter count, ``g`` the
number of GPUs. Model shapes come from :data:`KNOWN_SHAPES` (no download) or a local
``config.json``. The activation and logits terms are checked against measured peak RSS on CPU
(``scripts/bench_plan.py``, docs/memory.md); the GPU-only terms (DDP buckets, DeepSpeed buffers,
CUDA context, vLLM) follow the cited sources and are not measured here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, ConfigError

GiB = 1 << 30


class PlanError(ConfigError):
    """The run would not fit; the message names the phase and the knob to change."""


# ----------------------------------------------------------------------------- model shapes
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
        from .toy import build_model, build_tokenizer

        return shape_from_config(build_model(build_tokenizer()).config)
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return shape_from_config(json.loads((path / "config.json").read_text()))
    try:
        from transformers import AutoConfig

        return shape_from_config(AutoConfig.from_pretrained(name_or_path, local_files_only=True))
    except Exception as e:  # not cached, not a directory
        raise ConfigError(f"model.name_or_path: no shapes for '{name_or_path}': not in rl/plan.py KNOWN_SHAPES, "
                          f"no local config.json, not in the Hugging Face cache ({type(e).__name__})") from None


def lora_params(s: Shape, r: int, targets: list[str]) -> int:
    """Trainable LoRA parameters: r x (in + out) per targeted projection per layer."""
    dims = {"q_proj": (s.hidden, s.q), "k_proj": (s.hidden, s.kv), "v_proj": (s.hidden, s.kv),
            "o_proj": (s.q, s.hidden), "gate_proj": (s.hidden, s.intermediate),
            "up_proj": (s.hidden, s.intermediate), "down_proj": (s.intermediate, s.hidden)}
    return s.layers * sum(r * sum(dims[t]) for t in targets if t in dims)


# ----------------------------------------------------------------------------- arithmetic
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
    """The frozen KL reference (rl/distributed.py ``make_reference``): a copy of the initial
    weights in the compute dtype (``ref_bytes``: bf16 under mixed precision, else the model's),
    whole on every GPU, or under ZeRO-3 sharded like the policy (``ref_bytes N / g``); none
    without KL, and none with LoRA (the base model with the adapter disabled is the reference)."""
    if not kl or lora:
        return 0
    return ref_bytes * n / g if zero == 3 else ref_bytes * n


def layer_activation_bytes(s: Shape, prec: Precision, width: int) -> int:
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
    """
    h, c, r = s.hidden, prec.compute, prec.residual
    return 2 * (4 + r + c) * h + 4 * c * s.q + 4 * s.heads + c * width + 4 * c * s.intermediate


def activation_bytes(s: Shape, prec: Precision, tokens: int, width: int, completion: int,
                     checkpointing: bool) -> dict[str, int]:
    """Activations of one micro-batch of ``tokens`` padded tokens in rows of ``width``, with
    ``completion`` completion tokens a row:

    - ``kept`` until backward: every layer's :func:`layer_activation_bytes`, or with
      checkpointing (transformers' per-layer ``gradient_checkpointing_enable``) only each layer's
      input (rh); model-level: the final norm (4h + rh), cos/sin of the rotary embedding
      (2 c head_dim), the boolean padding mask (``width`` bytes a token) and the completion
      positions' hidden states that the chunked log-probs gather into ``[N, H]`` (rh each);
    - ``working``: the layer being back-propagated, about one layer's worth (its gradients in
      flight; with checkpointing, its recomputed activations, whose gradients replace them).
    """
    layer = layer_activation_bytes(s, prec, width)
    r, h = prec.residual, s.hidden
    rows = max(tokens // width, 1)
    kept = tokens * (s.layers * (r * h if checkpointing else layer) + (4 + r) * h + 2 * prec.compute * s.d + width)
    return {"kept": kept + rows * completion * r * h, "working": tokens * layer}


def reference_forward_bytes(s: Shape, prec: Precision, tokens: int, width: int, completion: int) -> dict[str, int]:
    """The KL reference's no-grad forward, run while the policy's graph is alive. ``layer``: the
    live tensors of one layer, the residual and its normed copy plus the larger of attention's
    (q, k and v before and after the GQA repeat, the output, the converted mask:
    ``c (4q + 2kv + width)``) and the MLP's (gate, up, their product: ``3 c i``); ``gathered``:
    its completion hidden states (rh each), alive while its logits are chunked."""
    r, c = prec.residual, prec.compute
    per_token = 2 * r * s.hidden + max(c * (4 * s.q + 2 * s.kv + width), 3 * c * s.intermediate)
    return {"layer": tokens * per_token, "gathered": max(tokens // width, 1) * completion * r * s.hidden}


def logits_bytes(s: Shape, prec: Precision) -> int:
    """The chunked log-probs (rl/logprobs.py): ``n = chunk_tokens(V)`` (64 MiB // 4V) tokens at
    a time, whatever the rows and the completion length. At the peak (the backward recompute)
    one chunk holds the head's output ``[n, V]`` in the compute dtype, the float32 log-probs
    turned into the gradient, and the float32 probabilities: ``n V (c + 8)``."""
    from .logprobs import chunk_tokens

    return chunk_tokens(s.vocab) * s.vocab * (prec.compute + 8)


def update_peak_bytes(state: dict[str, float], reference: float, act: dict[str, int], logits: float,
                      head_grad: float, ref_forward: dict[str, int] | None, overhead: float) -> tuple[float, str]:
    """The update phase's peak and where it falls. Resident: weights, optimizer states and
    buffers, the reference, the overhead. On top, the largest of:

    - ``forward``: kept activations + a chunk's logits, or with KL the larger of the reference's
      layer transient and its chunk's logits with its gathered hidden states;
    - ``head``: kept activations + the chunk's logits in backward + the head's gradient, or the
      head's gradient twice (a chunk's ``[V, H]`` contribution before it is accumulated);
    - ``layers``: kept activations + the head's gradient + the working layer (the top layer);
    - ``end``: all gradients + the working layer (the bottom layer, activations all freed).

    Gradients accumulate while activations are freed, so the peak is at one of these points.
    """
    resident = state["weights"] + state["optimizer"] + state["buffers"] + reference + overhead
    kept, working = act["kept"], act["working"]
    ref = ref_forward or {"layer": 0, "gathered": 0}
    points = {"forward": kept + max(ref["layer"], logits + ref["gathered"]),
              "head": kept + max(logits + head_grad, 2 * head_grad),
              "layers": kept + head_grad + working,
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


# ----------------------------------------------------------------------------- the plan
STRATEGIES = {0: "DDP", 2: "ZeRO-2", 3: "ZeRO-3"}


@dataclass
class Plan:
    """Predicted per-GPU bytes of each term and phase for one recipe and one hardware setting."""

    label: str
    shape: Shape
    n: int
    trainable: int
    zero: int
    gpus: int
    total: float  # bytes per GPU
    prec: Precision
    width: int  # prompt + completion tokens of the longest row
    completion: int
    tokens: int  # padded tokens of the largest micro-batch
    checkpointing: bool
    kl: bool
    states: dict[int, dict[str, float]]  # strategy -> training_state terms
    reference: float
    logits: float
    head_grad: float
    overhead: float
    vllm: dict[str, float] | None = None
    knobs: dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> float:
        return USABLE_FRACTION * self.total

    def activations(self, tokens: int | None = None, checkpointing: bool | None = None) -> dict[str, int]:
        ck = self.checkpointing if checkpointing is None else checkpointing
        return activation_bytes(self.shape, self.prec, tokens or self.tokens, self.width, self.completion, ck)

    def update(self, tokens: int | None = None) -> tuple[float, str]:
        """(peak bytes, where) of the update phase, for ``tokens`` a micro-batch (default: the recipe's)."""
        tokens = tokens or self.tokens
        ref_fwd = reference_forward_bytes(self.shape, self.prec, tokens, self.width, self.completion) if self.kl else None
        return update_peak_bytes(self.states[self.zero], self.reference, self.activations(tokens), self.logits,
                                 self.head_grad, ref_fwd, self.overhead)

    def update_peak(self) -> float:
        return self.update()[0]

    def resident(self) -> float:
        """Training memory that stays during rollouts (gradients freed; ZeRO-3 gathers 2N)."""
        st = self.states[self.zero]
        gathered = 2 * self.n if self.zero == 3 else 0
        return st["weights"] + st["optimizer"] + st["buffers"] + self.reference + gathered + self.overhead

    def rollout_peak(self) -> float | None:
        return None if self.vllm is None else self.resident() + self.vllm["utilization"] * self.total

    def max_micro_batch_tokens(self) -> int:
        """Largest ``train.micro_batch_tokens`` (a multiple of 256) whose update phase fits."""
        lo, hi = 0, 1 << 24
        while hi - lo > 256:
            mid = (lo + hi) // 2 // 256 * 256
            lo, hi = (mid, hi) if self.update(max(mid, 1))[0] <= self.usable else (lo, mid)
        return lo

    def failure(self) -> str | None:
        """None when both phases fit, else one line naming the phase and the knob."""
        use = self.usable / GiB
        peak, where = self.update()
        if peak > self.usable:
            best = self.max_micro_batch_tokens()
            higher = f"use ZeRO-{3 if self.zero else 2} (recipes/accelerate/zero{3 if self.zero else 2}.yaml)"
            if self.update(1)[0] > self.usable:  # the training state alone
                knob = higher if self.zero < 3 and self.gpus > 1 else "use more GPUs or LoRA (model.lora_r)"
            elif best >= self.width:
                knob = f"set train.micro_batch_tokens={best} (the largest that fits)"
            elif not self.checkpointing:
                knob = "set model.gradient_checkpointing=true"
            elif self.zero < 3 and self.gpus > 1:
                knob = higher
            else:
                knob = "lower rollout.max_new_tokens"
            return (f"update phase needs {peak / GiB:.1f} GiB of {use:.1f} GiB usable per GPU "
                    f"({STRATEGIES[self.zero]}, {self.tokens} tokens a micro-batch, peak at the {where}): {knob}")
        if self.vllm is not None:
            v = self.vllm
            if v["kv_cache"] < v["max_model_len"] * v["kv_per_token"]:
                knob = (f"raise {self.knobs['utilization']}" if "utilization" in self.knobs
                        else "use a higher ZeRO stage or lower rollout.vllm_max_num_batched_tokens")
                return (f"rollout phase: vLLM's KV cache ({v['kv_cache'] / GiB:.1f} GiB) holds less than one "
                        f"sequence of max_model_len={v['max_model_len']} tokens: {knob}")
            if self.rollout_peak() > self.usable:
                knob = self.knobs.get("utilization", "rollout.vllm_gpu_memory_utilization")
                return (f"rollout phase needs {self.rollout_peak() / GiB:.1f} GiB of {use:.1f} GiB usable per GPU: "
                        f"lower {knob} (or unset it: the planner sizes vLLM's share)")
        return None


def precision(device: str, zero: int, model_dtype: str) -> Precision:
    """GPU: accelerate's ``mixed_precision: bf16`` (recipes/accelerate/*.yaml) -- autocast over the
    fp32 weights under DDP, bf16 weights with fp32 masters under DeepSpeed. CPU: the model dtype."""
    b = 4 if model_dtype == "float32" else 2
    if device == "cpu":
        return Precision(b, b, b)
    if zero:
        return Precision(2, 2, 2)
    return Precision(b, 2, b, mixed=b == 4)


def make_plan(cfg: Config, *, gpus: int, gpu_memory_gib: float, zero: int, prompt_tokens: int,
              device: str = "gpu", shape: Shape | None = None, label: str = "") -> Plan:
    """The plan for ``cfg`` on ``gpus`` GPUs of ``gpu_memory_gib`` GiB under ``zero`` (0: DDP)."""
    s = shape or model_shape(cfg.model.name_or_path)
    m, r, t = cfg.model, cfg.rollout, cfg.train
    n = s.params()
    lora = m.lora_r > 0
    trainable = lora_params(s, m.lora_r, m.lora_target_modules) if lora else n
    prec = precision(device, zero, m.dtype)
    completion = r.max_new_tokens
    width = prompt_tokens + completion
    rows = t.micro_batch_size
    tokens = rows * width if not t.micro_batch_tokens else min(rows * width, max(t.micro_batch_tokens, width))
    kl = cfg.algo.kl_coef > 0
    states = {z: training_state(n, trainable, z, gpus, precision(device, z, m.dtype)) for z in STRATEGIES}
    grad_bytes = prec.param if zero == 0 else 2  # DeepSpeed: bf16 gradients until reduced into its partitions
    plan = Plan(label=label or m.name_or_path, shape=s, n=n, trainable=trainable, zero=zero, gpus=gpus,
                total=gpu_memory_gib * GiB, prec=prec, width=width, completion=completion, tokens=tokens,
                checkpointing=m.gradient_checkpointing, kl=kl, states=states,
                reference=reference_bytes(n, kl, lora, prec.compute, zero, gpus),
                logits=logits_bytes(s, prec), head_grad=0 if lora else grad_bytes * s.vocab * s.hidden,
                overhead=CUDA_OVERHEAD if device == "gpu" else 0)
    if device == "gpu" and r.engine in ("vllm", "auto"):
        plan.vllm = plan_vllm(plan, cfg, prompt_tokens)
        if r.vllm_gpu_memory_utilization is not None or r.vllm_kv_cache_gb is not None:
            plan.knobs["utilization"] = ("rollout.vllm_kv_cache_gb" if r.vllm_kv_cache_gb is not None
                                         else "rollout.vllm_gpu_memory_utilization")
    return plan


def plan_vllm(plan: Plan, cfg: Config, prompt_tokens: int) -> dict[str, float]:
    """vLLM's share on each GPU: ``rollout.vllm_gpu_memory_utilization`` when the recipe sets it,
    else what the resident training state leaves of the usable memory (at most 0.9); the KV
    cache is that share minus vLLM's bf16 weights and its profiled activation peak
    (``rollout.vllm_kv_cache_gb``, when set, fixes the KV cache instead)."""
    s, r = plan.shape, cfg.rollout
    max_model_len = r.vllm_max_model_len or prompt_tokens + max(r.max_new_tokens, cfg.eval.max_new_tokens)
    util = r.vllm_gpu_memory_utilization
    if util is None:
        util = min(max(math.floor((plan.usable - plan.resident()) / plan.total * 100) / 100, 0.0), 0.9)
    dtype_bytes = 4 if r.vllm_dtype == "float32" else 2
    weights = dtype_bytes * plan.n
    act = vllm_activation_bytes(s, r.vllm_max_num_batched_tokens, VLLM_MAX_NUM_SEQS)
    kv_cache = max(util * plan.total - weights - act, 0)
    if r.vllm_kv_cache_gb is not None:  # a fixed KV cache (kv_cache_memory_bytes) instead of a share
        kv_cache = r.vllm_kv_cache_gb * GiB
        util = (weights + act + kv_cache) / plan.total
    per_tok = kv_bytes_per_token(s)
    return {"utilization": util, "weights": weights, "activations": act, "kv_cache": kv_cache,
            "kv_per_token": per_tok, "kv_tokens": kv_cache // per_tok, "max_model_len": max_model_len,
            "max_num_batched_tokens": r.vllm_max_num_batched_tokens}


# ----------------------------------------------------------------------------- the report
def check_run(cfg: Config, acc, prompt_tokens: int, model_config=None) -> Plan | None:
    """``laconic train`` on GPU: plan this accelerator's run and stop with one line
    (:class:`PlanError`) if it would not fit; else fill the vLLM settings the recipe leaves unset
    (``vllm_dtype`` auto -> bfloat16, ``vllm_max_model_len`` = the longest prompt + the longest
    generation limit, ``vllm_gpu_memory_utilization`` = the planned share). ``model_config``: the
    model's transformers config (its shapes, read before the weights load). CPU: nothing."""
    import torch

    if not torch.cuda.is_available():
        return None
    from .distributed import zero_stage

    zero = 3 if acc.distributed_type.value == "FSDP" else zero_stage(acc)
    r = cfg.rollout
    if r.vllm_dtype == "auto":
        r.vllm_dtype = "bfloat16"
    plan = make_plan(cfg, gpus=acc.num_processes, zero=zero, prompt_tokens=prompt_tokens,
                     shape=shape_from_config(model_config) if model_config is not None else None,
                     gpu_memory_gib=torch.cuda.get_device_properties(acc.device).total_memory / GiB)
    fail = plan.failure()
    if fail:
        raise PlanError(fail)
    if plan.vllm:
        r.vllm_max_model_len = r.vllm_max_model_len or int(plan.vllm["max_model_len"])
        r.vllm_gpu_memory_utilization = r.vllm_gpu_memory_utilization or plan.vllm["utilization"]
    rollout = f", rollout {plan.rollout_peak() / GiB:.1f}" if plan.vllm else ""
    acc.print(f"memory plan (rl/plan.py): update {plan.update_peak() / GiB:.1f} GiB{rollout} of "
              f"{plan.usable / GiB:.1f} usable per GPU")
    return plan
