"""The KL reference: a frozen copy in the compute dtype (bf16 under mixed precision), run under the
policy's autocast; no float32 copy of the model."""

import pytest
import torch

from rl.config import AlgoConfig, ModelConfig
from rl.engines.base import Rollout
from rl.models.load import make_reference
from rl.train.update import update_policy


@pytest.fixture(scope="module")
def toy(untrained_toy):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(untrained_toy)


def test_reference_in_the_compute_dtype_keeps_ties_and_buffers(toy):
    ref = make_reference(toy, ModelConfig(), torch.bfloat16)
    assert {p.dtype for p in ref.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    assert ref.get_output_embeddings().weight is ref.get_input_embeddings().weight  # still tied
    assert ref.model.rotary_emb.inv_freq.dtype == torch.float32  # buffers keep their dtype
    assert all(p.dtype == torch.float32 for p in toy.parameters())  # the policy is untouched
    for a, b in zip(ref.parameters(), toy.parameters()):
        assert torch.equal(a, b.to(torch.bfloat16)) and a.data_ptr() != b.data_ptr()
    assert make_reference(toy, ModelConfig()).get_output_embeddings().weight.dtype == torch.float32
    assert make_reference(toy, ModelConfig(lora_r=4)) is None


@pytest.fixture
def fresh_accelerate():
    """accelerate's state is a per-process singleton: a test with another mixed precision resets it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_distributed_reference_follows_the_mixed_precision(toy):
    from types import SimpleNamespace

    from rl.run.distributed import make_reference as dist_reference

    for mp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("no", torch.float32)):
        acc = SimpleNamespace(mixed_precision=mp, distributed_type=SimpleNamespace(value="MULTI_GPU"))
        ref = dist_reference(acc, toy, ModelConfig())
        assert {p.dtype for p in ref.parameters()} == {dtype}, mp


def test_bf16_reference_under_autocast_in_the_update(toy, toy_tokenizer, fresh_accelerate):
    """Under bf16 mixed precision the float32 policy and its bf16 reference see the same weights in
    their bf16 matmuls: the KL at the start is bf16 rounding noise, not a model difference; the
    reference pass runs under autocast (a float32 reference outside autocast would be the old path)."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True, mixed_precision="bf16")
    policy = type(toy)(toy.config)
    policy.load_state_dict(toy.state_dict())
    ref = make_reference(policy, ModelConfig(), torch.bfloat16)
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    policy, opt = acc.prepare(policy, opt)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    tok = toy_tokenizer
    rs = [Rollout(i, tok(q)["input_ids"], tok(a)["input_ids"], a, "stop", None)
          for i, (q, a) in enumerate([("Q:1+2=", "3.A:3"), ("Q:4+4=", "8.8.A:8")])]
    seen = []
    hook = ref.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.append((out.dtype, torch.is_autocast_enabled("cpu"))))
    stats = update_policy(acc, policy, ref, opt, sched, rs, torch.tensor([1.0, -1.0]), AlgoConfig(kl_coef=0.1),
                          pad_id=tok.pad_token_id, temperature=1.0, micro_batch_size=2, max_grad_norm=1.0, norm_len=8)
    hook.remove()
    assert seen and set(seen) == {(torch.bfloat16, True)}
    assert 0.0 <= stats["kl"] < 1e-3
