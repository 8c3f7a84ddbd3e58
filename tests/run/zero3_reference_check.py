"""Run by tests/run/test_deepspeed.py under ``accelerate launch`` with ZeRO-3 on CPU (2 processes): the KL
reference is a DeepSpeed engine whose parameters are partitioned (no full copy per process), and its
log-probs equal those of a plain float32 copy of the same weights. Prints "ok" on success."""

import sys
from pathlib import Path

import torch

from rl.config import ModelConfig, TrainConfig
from rl.engines.base import Rollout
from rl.models.load import load_policy
from rl.run.distributed import make_accelerator, make_reference
from rl.train.update import completion_logprobs, make_batch


def main(model_dir: str, out_dir: str) -> None:
    import deepspeed
    from safetensors.torch import load_file

    acc = make_accelerator(TrainConfig(output_dir=out_dir, micro_batch_size=2, max_grad_norm=1.0))
    policy = load_policy(ModelConfig(name_or_path=model_dir), model_dir)
    ref = make_reference(acc, policy, ModelConfig(name_or_path=model_dir))
    assert isinstance(ref, deepspeed.DeepSpeedEngine), type(ref)
    for name, p in ref.module.named_parameters():
        assert p.numel() == 0 and 0 < p.ds_tensor.numel() <= -(-p.ds_numel // acc.num_processes), name
    plain = type(policy)(policy.config)  # the plain constructor: no zero.Init
    plain.load_state_dict(load_file(Path(model_dir) / "model.safetensors"), strict=False)
    plain.tie_weights()
    g = torch.Generator().manual_seed(acc.process_index)  # different rows per process
    rs = [Rollout(i, torch.randint(1, 30, (4,), generator=g).tolist(), torch.randint(1, 30, (n,), generator=g).tolist(),
                  "", "stop", None) for i, n in enumerate((7, 3))]
    batch = make_batch(rs, pad_id=0)
    with torch.no_grad():
        a, _ = completion_logprobs(ref, batch, 0.7)
        b, _ = completion_logprobs(plain.eval(), batch, 0.7)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    print("ok", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
