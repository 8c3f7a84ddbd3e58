"""What the trainer needs from accelerate's DeepSpeed (ZeRO-2/3) and FSDP back-ends, in one place.

- :func:`make_accelerator` builds the ``Accelerator`` (DeepSpeed on CPU too: its CPU accelerator
  with gloo, which is how the tests run it) and :func:`patch_deepspeed_config` fills what accelerate
  cannot infer without a DataLoader: the micro-batch size, one gradient-accumulation step per
  engine step (the trainer accumulates its own micro-batches, see :func:`backward`) and gradient
  clipping from ``train.max_grad_norm``.
- :func:`backward` marks the accumulation boundary: under DeepSpeed the engine steps on the last
  micro-batch of an optimizer step only; elsewhere it is ``accelerator.backward``.
- :func:`full_weights` yields the policy with its full weights for rollouts and weight pushes
  (ZeRO-3: all parameters gathered and ZeRO-3's hooks lifted; FSDP2 gathers per module in its forward hooks,
  and the vLLM weight push reads ``DTensor.full_tensor()``).
- :func:`model_state_for_saving` the full state dict for ``final/`` (``accelerator.get_state_dict``).

With DDP or one process every function here is the plain accelerate call, so that path is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from datetime import timedelta
from typing import Any, Iterator

import torch

from rl.run.rng import seeded


def deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def make_accelerator(train_cfg) -> Any:
    """The run's ``Accelerator``. Without a GPU, plain runs use accelerate's CPU mode (gloo under
    torchrun); DeepSpeed refuses ``cpu=True``, so there it runs as a non-CPU back-end with gloo on
    DeepSpeed's CPU accelerator (``DS_ACCELERATOR=cpu``)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import InitProcessGroupKwargs

    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and AcceleratorState._shared_state:
        # accelerate's state is process-wide: an earlier Accelerator in this process (a TRL trainer
        # in the same notebook: its GRPOConfig turns on bf16) would hand its mixed precision to
        # this run. A single-process run starts from a fresh state, as configured by its launcher.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    cpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    # train.ddp_timeout: how long a process waits in a collective (processes whose work differs, e.g. a
    # reference pass over unequal completions, wait for the slowest); torch's NCCL default is 10 minutes
    group = {"timeout": timedelta(seconds=train_cfg.ddp_timeout)}
    if cpu and deepspeed_requested():
        cpu = False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            group["backend"] = "gloo"
    acc = Accelerator(cpu=cpu, log_with=train_cfg.report_to or None, project_dir=train_cfg.output_dir,
                      kwargs_handlers=[InitProcessGroupKwargs(**group)])
    if acc.distributed_type.value == "DEEPSPEED":
        plugin = acc.state.deepspeed_plugin
        patch_deepspeed_config(plugin.deepspeed_config, micro_batch_size=train_cfg.micro_batch_size,
                               max_grad_norm=train_cfg.max_grad_norm, num_processes=acc.num_processes)
    if acc.distributed_type.value == "FSDP" and not getattr(acc, "is_fsdp2", False):
        raise ValueError("FSDP version 1 is not supported by the trainer (rollouts generate from the unwrapped "
                         "model, which FSDP1 leaves sharded): set fsdp_version: 2 in the accelerate config "
                         "(recipes/accelerate/fsdp.yaml)")
    return acc


def patch_deepspeed_config(ds: dict, *, micro_batch_size: int, max_grad_norm: float, num_processes: int) -> dict:
    """Fill a DeepSpeed config dict in place for the trainer's update loop (and return it).

    The trainer does its own accumulation: one optimizer step per ``algo.updates_per_rollout``
    chunk, over micro-batches of ``train.micro_batch_size`` sequences, with the loss already
    normalized over the whole step. So DeepSpeed's ``gradient_accumulation_steps`` must be 1 (else
    the engine would divide every micro-batch's loss by it once more); the boundary is set per
    micro-batch by :func:`backward`. ``train_batch_size`` is then micro x 1 x processes (DeepSpeed
    checks that product; it does not bound the number of micro-batches per step).
    """
    gas = ds.get("gradient_accumulation_steps", "auto")
    if gas not in ("auto", 1, None):
        warnings.warn(f"DeepSpeed gradient_accumulation_steps={gas} is replaced by 1: the trainer accumulates "
                      "its micro-batches (train.micro_batch_size) into one optimizer step itself", stacklevel=2)
    clip = ds.get("gradient_clipping", "auto")
    if clip not in ("auto", None) and float(clip) != float(max_grad_norm):
        warnings.warn(f"DeepSpeed gradient_clipping={clip} is replaced by train.max_grad_norm={max_grad_norm}",
                      stacklevel=2)
    ds["train_micro_batch_size_per_gpu"] = int(micro_batch_size)
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = int(micro_batch_size) * num_processes
    ds["gradient_clipping"] = float(max_grad_norm)
    return ds


def is_deepspeed(acc) -> bool:
    return acc.distributed_type.value == "DEEPSPEED"


def zero_stage(acc) -> int:
    return int(acc.state.deepspeed_plugin.zero_stage) if is_deepspeed(acc) else 0


def backward(acc, model, loss: torch.Tensor, boundary: bool) -> None:
    """Backward of one micro-batch; ``boundary`` marks the last micro-batch of an optimizer step.

    DeepSpeed: the engine reduces gradients and steps (clipping, optimizer, zero_grad) only at
    the boundary, so exactly one engine step happens per trainer optimizer step. Its ZeRO
    reduction averages gradients over processes like DDP does, so the caller's ``loss * world``
    scaling holds for both. Elsewhere: ``accelerator.backward`` (DDP's ``no_sync`` is the caller's).
    """
    if not is_deepspeed(acc):
        acc.backward(loss)
        return
    model.set_gradient_accumulation_boundary(boundary)
    model.backward(loss)
    if boundary:
        model.step()


@contextlib.contextmanager
def full_weights(acc, model) -> Iterator[torch.nn.Module]:
    """The unwrapped policy, its full weights materialized while the context is open.

    ZeRO-3 partitions every parameter; gathering them all once makes generation and a weight push
    read whole tensors (otherwise ZeRO-3 gathers layer by layer on every forward, per generated
    token, in lockstep across processes). FSDP2 needs nothing: its per-module hooks unshard in forward, and vLLM pushes
    read ``full_tensor()``. Everything else holds full weights already.
    """
    unwrapped = acc.unwrap_model(model)
    if zero_stage(acc) == 3:
        with _zero3_gathered(model):
            yield unwrapped
    else:
        yield unwrapped


def rollout_weights(acc, model, engine) -> contextlib.AbstractContextManager:
    """What generation needs around it: :func:`full_weights` for an engine that samples from the
    policy itself (``engine.reads_policy``, the transformers engine), nothing for the vLLM engines,
    which sample from their own copy (pushed bucket by bucket, :func:`rl.engines.base.merged_state_items`):
    under ZeRO-3 a rollout then never holds the whole model gathered next to vLLM's KV cache."""
    if getattr(engine, "reads_policy", True):
        return full_weights(acc, model)
    return contextlib.nullcontext(acc.unwrap_model(model))


@contextlib.contextmanager
def _zero3_gathered(engine) -> Iterator[None]:
    """Every ZeRO-3 parameter gathered, and ZeRO-3's module hooks lifted while the context is open.

    Entering and leaving are collectives (all processes, same order); inside, forward passes do
    no communication, so processes may generate different numbers of tokens and batches. Without
    lifting the hooks, each forward would re-partition and re-gather modules, and the start-of-
    forward hook checks the recorded module order across processes (a broadcast) until ZeRO-3 has
    traced a full step, so a process that generates alone would wait forever. DeepSpeed's own
    ``deepspeed.zero.unwrap_model_for_generation`` (0.19) leaves that start-of-forward hook in place.
    """
    import deepspeed
    from deepspeed.runtime.zero import parameter_offload

    offload = getattr(engine.optimizer, "parameter_offload", engine.optimizer)
    with deepspeed.zero.GatheredParameters(list(engine.module.parameters())):
        offload._remove_module_hooks()  # forward, backward and start-of-forward hooks
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            depth = len(parameter_offload.FWD_MODULE_STACK)
            offload.setup_zero_stage3_hooks()  # registers all three again ...
            del parameter_offload.FWD_MODULE_STACK[depth:]  # ... and would push the root module once more each time


COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_reference(acc, policy, model_cfg):
    """The frozen KL reference (:func:`rl.models.load.make_reference`), its weights in the compute dtype:
    bf16 (fp16) under accelerate's / DeepSpeed's mixed precision, else the policy's. Its forward
    runs under ``acc.autocast()`` like the policy's (:func:`rl.train.update.update_policy`), so no float32
    copy of the whole model is kept or run.

    Under ZeRO-3 it is sharded like the policy: a DeepSpeed inference engine (no optimizer) with the
    run's ZeRO-3 config (the pattern of TRL's ``prepare_deepspeed``, trl/models/utils.py), built from
    the policy's weights gathered one parameter at a time (transformers loads the policy partitioned,
    so a deep copy would hold empty tensors). Its forward passes are collectives, like the policy's:
    every process runs the same number of micro-batches (:func:`rl.train.update.update_policy`)."""
    from rl.models.load import make_reference as plain_reference

    dtype = COMPUTE_DTYPES.get(str(getattr(acc, "mixed_precision", "no")))
    if zero_stage(acc) != 3 or model_cfg.lora_r > 0:
        return plain_reference(policy, model_cfg, dtype)
    import deepspeed

    with seeded():  # its random init must not shift the run's sampling
        ref = type(policy)(policy.config)
    for (name, r), (_, p) in zip(ref.named_parameters(), policy.named_parameters(), strict=True):
        with deepspeed.zero.GatheredParameters([p]):
            r.data = p.data.detach().to("cpu", dtype=dtype or p.dtype, copy=True)
    ref.eval().requires_grad_(False)
    engine, *_ = deepspeed.initialize(model=ref, config=_inference_config(acc.state.deepspeed_plugin.deepspeed_config))
    engine.eval()
    return engine


def _inference_config(ds: dict) -> dict:
    """The run's DeepSpeed config without optimizer and scheduler, and without the "auto" values
    that accelerate fills only when it prepares a model (DeepSpeed's defaults apply)."""
    def drop_auto(d):
        return {k: drop_auto(v) if isinstance(v, dict) else v for k, v in d.items() if v != "auto"}

    return drop_auto({k: v for k, v in ds.items() if k not in ("optimizer", "scheduler")})


def prepare_engine(acc, engine) -> None:
    """ZeRO-3: rollouts run inside :func:`full_weights` (no collectives in forward), so transformers'
    ``generate`` must not keep processes in lockstep (it would, by default, under ZeRO-3).
    FSDP2: every forward all-gathers, so processes must run the same number of forwards; the
    transformers engine's own decoder stops when its rows are done (a different step count per
    process), so ``model.generate`` is used, which keeps processes in lockstep under FSDP."""
    if zero_stage(acc) == 3 and hasattr(engine, "synced_gpus"):
        engine.synced_gpus = False
    if acc.distributed_type.value == "FSDP" and hasattr(engine, "drop_finished"):
        engine.drop_finished = False


def is_sharded(acc) -> bool:
    return zero_stage(acc) == 3 or acc.distributed_type.value == "FSDP"


def model_state_for_saving(acc, model) -> dict[str, torch.Tensor] | None:
    """The full state dict for ``final/`` under ZeRO-3 / FSDP (a collective: call it on every
    process; the main process gets the tensors); None where the unwrapped model holds them."""
    if not is_sharded(acc):
        return None
    return acc.get_state_dict(model)


def gather(acc, items: list) -> list:
    """All processes' lists concatenated in process order (the list itself with one process)."""
    if acc.num_processes == 1:
        return items
    from accelerate.utils import gather_object

    return gather_object(items)


def agree_max(acc):
    """``n -> the largest n over all processes`` (an all-gather), or None with one process: how the
    processes agree on a count of collective calls (micro-batches, head chunks) when their work differs."""
    if acc.num_processes == 1:
        return None
    return lambda n: int(acc.gather(torch.tensor([n], device=acc.device)).max())


def sharded_agree(acc):
    """:func:`agree_max` where every forward gathers parameters (ZeRO-3, FSDP), so the processes must
    make the same number of forwards and head calls; None where weights are whole (DDP, ZeRO-2)."""
    return agree_max(acc) if is_sharded(acc) else None
