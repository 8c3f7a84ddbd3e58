"""Run by tests/run/test_deepspeed.py under ``accelerate launch`` with every parameter partitioned
(tests/run/zero3_partitioned.yaml, 2 processes on CPU). Checks, and prints "ok" on success:

- a weight push (:func:`rl.engines.base.merged_state_items`) of the ZeRO-3 policy yields exactly the
  model's weights (with the names, dtypes and shapes :func:`rl.engines.base.merged_state_meta` declares
  without gathering), while holding at most one bucket gathered (the largest parameter or one decoder
  layer), never the whole model: the peak of gathered elements, read at every yielded tensor, is
  printed as ``push gathered <peak> of <total>``;
- :func:`rl.run.distributed.rollout_weights` gathers everything for the transformers engine and nothing
  for an engine with its own weights, and leaves DeepSpeed's module stack as it found it (each
  ``setup_zero_stage3_hooks`` pushes the root module onto it once more).
"""

import sys
from pathlib import Path

import torch

from rl.config import ModelConfig, TrainConfig
from rl.engines.base import merged_state_items, merged_state_meta, weight_buckets
from rl.models.load import load_policy
from rl.run.distributed import make_accelerator, rollout_weights


def gathered(model) -> int:
    return sum(p.data.numel() for p in model.parameters())


class OwnWeights:  # a vLLM-like engine: samples from its own copy
    reads_policy = False


class ReadsPolicy:  # the transformers engine
    reads_policy = True


def main(model_dir: str, out_dir: str) -> None:
    from deepspeed.runtime.zero import parameter_offload
    from safetensors.torch import load_file

    acc = make_accelerator(TrainConfig(output_dir=out_dir, micro_batch_size=2, max_grad_norm=1.0))
    policy = load_policy(ModelConfig(name_or_path=model_dir), model_dir)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    engine, opt = acc.prepare(policy, opt)
    model = acc.unwrap_model(engine)
    total = sum(p.ds_numel for p in model.parameters())
    assert gathered(model) == 0, "every parameter partitioned (stage3_param_persistence_threshold 0)"
    largest = max(sum(p.ds_numel for p in m.parameters(recurse=whole)) for _, m, whole in weight_buckets(model))

    expected = load_file(Path(model_dir) / "model.safetensors")
    peak, pushed = 0, {}
    for name, t in merged_state_items(model):
        peak = max(peak, gathered(model))
        pushed[name] = t
    assert gathered(model) == 0
    missing = set(expected) - set(pushed)
    assert not missing, missing
    for name, t in expected.items():
        assert torch.equal(pushed[name], t), name
    assert 0 < peak <= largest < total / 2, (peak, largest, total)
    meta = merged_state_meta(model)  # what vLLM's NCCL receiver is told first: read without gathering
    assert gathered(model) == 0
    assert meta == [(n, t.dtype, tuple(t.shape)) for n, t in pushed.items()]
    print(f"push gathered {peak} of {total}", flush=True)

    depth = len(parameter_offload.FWD_MODULE_STACK)
    for _ in range(3):
        with rollout_weights(acc, engine, ReadsPolicy()) as m:
            assert gathered(m) == total
        with rollout_weights(acc, engine, OwnWeights()) as m:
            assert gathered(m) == 0
    assert len(parameter_offload.FWD_MODULE_STACK) == depth, (depth, len(parameter_offload.FWD_MODULE_STACK))
    print("ok", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
