"""A laconic run in a process that already made an Accelerator (a TRL trainer in the same notebook)
starts from its own accelerate state, not the earlier one's mixed precision (rl/run/distributed.py)."""

from datetime import timedelta

import pytest

from rl.config import ConfigError, TrainConfig, load_config


def test_make_accelerator_does_not_inherit_an_earlier_mixed_precision(tmp_path, monkeypatch):
    from accelerate import Accelerator

    from rl.run.distributed import make_accelerator

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    earlier = Accelerator(cpu=True, mixed_precision="bf16")  # what TRL's GRPOConfig (bf16=True) leaves
    assert earlier.mixed_precision == "bf16"
    acc = make_accelerator(TrainConfig(output_dir=str(tmp_path), micro_batch_size=2, max_grad_norm=1.0))
    assert acc.mixed_precision == "no"
    assert acc.state.mixed_precision == "no"


def test_ddp_timeout_reaches_the_process_group(tmp_path):
    """train.ddp_timeout (default 1800 s, as HF's TrainingArguments) is the process group's timeout: a
    process waits that long in a collective for slower ones (torch's NCCL default is 10 minutes)."""
    from rl.run.distributed import make_accelerator

    assert TrainConfig().ddp_timeout == 1800
    acc = make_accelerator(TrainConfig(output_dir=str(tmp_path), ddp_timeout=7200))
    assert acc.init_handler.timeout == timedelta(seconds=7200)
    assert acc.init_handler.to_kwargs() == {"timeout": timedelta(seconds=7200)}  # the backend stays accelerate's
    with pytest.raises(ConfigError, match="train.ddp_timeout must be >= 1"):
        load_config(None, ["train.ddp_timeout=0"])
