"""``laconic plan``: predict each phase's peak memory per GPU before a run starts, and size vLLM.

    laconic plan recipes/gpu/dler_r1_7b.yaml --gpu-memory 80 --gpus 8 --zero 2

A step has two memory phases per GPU (docs/design.md, "The data path of one step"):

- **update**: the training state (weights, gradients, optimizer states, communication buffers)
  + the frozen KL reference + the activations of one micro-batch + the logits chunk; with two or
  more micro-batches per optimizer step, the gradients accumulated over them are held throughout;
  colocated vLLM is asleep (``sleep(level=2)`` frees its weights and KV cache).
- **rollout**: what stays resident from training (weights, optimizer states, buffers, reference;
  gradients are freed by ``zero_grad(set_to_none=True)``; ZeRO-3 gathers the full weights only for
  the transformers engine, which samples from the policy itself; vLLM samples from its own copy,
  pushed one gathered bucket at a time) + vLLM's
  share ``gpu_memory_utilization x total`` = its weights + activation peak + KV cache.

The formulas are in one place, :mod:`rl.run.memory`, one function per term, each with
its derivation. Sizes are bytes; lengths are tokens; ``N`` is the parameter count, ``g`` the
number of GPUs. Model shapes come from :data:`KNOWN_SHAPES` (no download) or a local
``config.json``. The activation and logits terms are checked against measured peak RSS on CPU
(``scripts/bench_plan.py``, docs/memory.md); the GPU-only terms (DDP buckets, DeepSpeed buffers,
CUDA context, vLLM) follow the cited sources and are not measured here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rl.algo.logprobs import chunk_budget
from rl.config import Config, ConfigError
from rl.run.memory import (CUDA_OVERHEAD, USABLE_FRACTION, VLLM_MAX_NUM_SEQS, GiB, Precision, Shape, activation_bytes,
                           kv_bytes_per_token, logits_bytes, lora_params, micro_batch_count, model_shape,
                           reference_bytes, reference_forward_bytes, shape_from_config, training_state,
                           update_peak_bytes, vllm_activation_bytes)


class PlanError(ConfigError):
    """The run would not fit; the message names the phase and the knob to change."""


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
    tokens: int  # padded tokens of the largest micro-batch (train.packing: real tokens)
    engine: str  # rollout.engine
    micro_batch_size: int  # train.micro_batch_size: rows a micro-batch at most
    step_rows: int  # rollouts one GPU trains on in one optimizer step
    checkpointing: bool
    kl: bool
    states: dict[int, dict[str, float]]  # strategy -> training_state terms
    reference: float
    logits: float
    head_grad: float
    overhead: float
    vllm: dict[str, float] | None = None
    knobs: dict[str, str] = field(default_factory=dict)
    packing: bool = False  # train.packing: one row a micro-batch, attention per sequence, no padding mask

    @property
    def usable(self) -> float:
        return USABLE_FRACTION * self.total

    def activations(self, tokens: int | None = None, checkpointing: bool | None = None) -> dict[str, int]:
        ck = self.checkpointing if checkpointing is None else checkpointing
        return activation_bytes(self.shape, self.prec, tokens or self.tokens, self.width, self.completion, ck,
                                self.packing)

    def micro_batches(self, tokens: int | None = None) -> int:
        """Micro-batches per optimizer step on one GPU with ``tokens`` a micro-batch at most (default: the recipe's)."""
        return micro_batch_count(self.step_rows, self.micro_batch_size, self.width, tokens or self.tokens)

    def update(self, tokens: int | None = None, accumulate: bool = True) -> tuple[float, str]:
        """(peak bytes, where) of the update phase, for ``tokens`` a micro-batch (default: the recipe's).
        With two or more micro-batches a step, the accumulated gradients are held at every point
        (``accumulate=False``: as if there were one, the planner before issue 23)."""
        tokens = tokens or self.tokens
        ref_fwd = (reference_forward_bytes(self.shape, self.prec, tokens, self.width, self.completion, self.packing)
                   if self.kl else None)
        state = self.states[self.zero]
        held = state["gradients"] if accumulate and self.micro_batches(tokens) > 1 else 0
        return update_peak_bytes(state, self.reference, self.activations(tokens), self.logits,
                                 self.head_grad, ref_fwd, self.overhead, held)

    def update_peak(self) -> float:
        return self.update()[0]

    def resident(self) -> float:
        """Training memory that stays during rollouts (gradients freed; ZeRO-3 with the transformers
        engine gathers 2N: ``rl.run.distributed.rollout_weights``)."""
        st = self.states[self.zero]
        gathered = 2 * self.n if self.zero == 3 and self.engine == "transformers" else 0
        return st["weights"] + st["optimizer"] + st["buffers"] + self.reference + gathered + self.overhead

    def rollout_peak(self) -> float | None:
        return None if self.vllm is None else self.resident() + self.vllm["utilization"] * self.total

    def max_micro_batch_tokens(self) -> int:
        """Largest ``train.micro_batch_tokens`` (a multiple of 256, below 2^24) whose update phase fits.
        The peak grows with the tokens but for one step down: from ``step_rows x width`` tokens on
        (if ``micro_batch_size`` allows that many rows) one micro-batch carries the optimizer step
        and no gradients are held across micro-batches. Each side is searched on its own, that one
        first."""
        fits = lambda k: self.update(max(k * 256, 1))[0] <= self.usable  # noqa: E731
        top = 1 << 16  # x 256 tokens
        one = -(-self.step_rows * self.width // 256) if self.step_rows <= self.micro_batch_size else top
        lo, hi = (one, top) if one < top and fits(one) else (0, min(one, top))
        while hi - lo > 1:  # lo fits (or is 0), hi does not (or ends the side)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo * 256

    def failure(self) -> str | None:
        """None when both phases fit, else one line naming the phase and the knob."""
        use = self.usable / GiB
        peak, where = self.update()
        if peak > self.usable:
            best = self.max_micro_batch_tokens()
            higher = f"use ZeRO-{3 if self.zero else 2} (recipes/accelerate/zero{3 if self.zero else 2}.yaml)"
            if best == 0 and self.update(1)[0] > self.usable:  # the training state (and held gradients) alone
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
                    f"({STRATEGIES[self.zero]}, {self.tokens} tokens a micro-batch, {self.micro_batches()} a step, "
                    f"peak at the {where}): {knob}")
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
    # rollouts one GPU trains on per optimizer step: its share of the step's, cut into
    # algo.updates_per_rollout optimizer steps (update_policy, rl/train/update.py)
    step_rows = math.ceil(math.ceil(r.prompts_per_step * r.group_size / gpus) / cfg.algo.updates_per_rollout)
    kl = cfg.algo.kl_coef > 0
    states = {z: training_state(n, trainable, z, gpus, precision(device, z, m.dtype)) for z in STRATEGIES}
    grad_bytes = prec.param if zero == 0 else 2  # DeepSpeed: bf16 gradients until reduced into its partitions
    plan = Plan(label=label or m.name_or_path, shape=s, n=n, trainable=trainable, zero=zero, gpus=gpus,
                total=gpu_memory_gib * GiB, prec=prec, width=width, completion=completion, tokens=tokens,
                engine=r.engine, micro_batch_size=rows, step_rows=step_rows, checkpointing=m.gradient_checkpointing, kl=kl,
                states=states, reference=reference_bytes(n, kl, lora, prec.compute, zero, gpus),
                logits=logits_bytes(s, prec, chunk_budget(t.logits_chunk_mib, "cuda" if device == "gpu" else "cpu"),
                                          t.head_fp32), head_grad=0 if lora else grad_bytes * s.vocab * s.hidden,
                overhead=CUDA_OVERHEAD if device == "gpu" else 0, packing=t.packing)
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
    from rl.run.distributed import zero_stage

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
    acc.print(f"memory plan (rl/run/plan.py): update {plan.update_peak() / GiB:.1f} GiB{rollout} of "
              f"{plan.usable / GiB:.1f} usable per GPU")
    return plan
