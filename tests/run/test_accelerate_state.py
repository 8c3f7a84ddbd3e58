"""A laconic run in a process that already made an Accelerator (a TRL trainer in the same notebook)
starts from its own accelerate state, not the earlier one's mixed precision (rl/run/distributed.py)."""

from types import SimpleNamespace


def test_make_accelerator_does_not_inherit_an_earlier_mixed_precision(tmp_path, monkeypatch):
    from accelerate import Accelerator

    from rl.run.distributed import make_accelerator

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    earlier = Accelerator(cpu=True, mixed_precision="bf16")  # what TRL's GRPOConfig (bf16=True) leaves
    assert earlier.mixed_precision == "bf16"
    acc = make_accelerator(SimpleNamespace(report_to=None, output_dir=str(tmp_path), micro_batch_size=2,
                                           max_grad_norm=1.0))
    assert acc.mixed_precision == "no"
    assert acc.state.mixed_precision == "no"
