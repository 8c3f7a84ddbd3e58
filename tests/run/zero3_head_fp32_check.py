"""Run by tests/run/test_deepspeed.py under torchrun (2 processes, DeepSpeed's CPU accelerator with gloo):
``train.head_fp32`` (rl/algo/logprobs.py ``fp32_head``) under ZeRO-3 with bf16 weights, every parameter
partitioned (the toy's head is tied to its embedding). The chunks call the head module, so ZeRO-3's hooks
gather its weight for each call: the head's output is float32, the weight is a 0-element partition again
after each call, the log-probs equal those of a plain bf16 copy of the weights computed the same way, and
the tied weight's gradient (ZeRO averages it over the processes) equals the mean of the plain copy's
gradients on the two processes' batches. The processes' completions differ in length, so their head-chunk
counts differ (2-token chunks) and are agreed on, as the trainer does. Prints "ok" on success."""

import copy
import sys

import torch
import torch.distributed as dist

from rl.config import ModelConfig
from rl.engines.base import Rollout
from rl.models.load import load_policy
from rl.train.update import completion_logprobs, make_batch


def batch_of(rank: int, vocab: int):
    g = torch.Generator().manual_seed(rank)
    lengths = [(4, 7), (2, 3)] if rank == 0 else [(3, 12), (5, 9)]  # 10 and 21 completion tokens
    return make_batch([Rollout(i, torch.randint(3, vocab, (p,), generator=g).tolist(),
                               torch.randint(3, vocab, (c,), generator=g).tolist(), "", "stop", None)
                       for i, (p, c) in enumerate(lengths)], pad_id=0)


def loss_of(logp, ent, batch):
    m = batch.completion_mask.float()
    w = torch.linspace(-1.0, 1.0, m.numel()).view_as(m)
    return (m * (w * logp + 0.1 * ent)).sum()


def agree(n: int) -> int:
    counts = [None] * dist.get_world_size()
    dist.all_gather_object(counts, n)
    return max(counts)


def main(model_dir: str) -> None:
    import deepspeed
    from deepspeed.utils import safe_get_full_grad

    deepspeed.init_distributed(dist_backend="gloo")
    rank = dist.get_rank()
    policy = load_policy(ModelConfig(name_or_path=model_dir), model_dir)
    plain = copy.deepcopy(policy).to(torch.bfloat16)
    vocab = policy.config.vocab_size
    chunk_bytes = 2 * 4 * vocab  # 2-token chunks: 5 and 11 head calls, agreed on 11
    config = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "bf16": {"enabled": True},
              "zero_allow_untested_optimizer": True,
              "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}
    engine, *_ = deepspeed.initialize(model=policy, optimizer=torch.optim.SGD(policy.parameters(), lr=0.0),
                                      config=config)
    head = engine.module.get_output_embeddings()
    assert head.weight is engine.module.get_input_embeddings().weight and head.weight.dtype == torch.bfloat16
    sizes, dtypes = [], []  # the weight's size inside each head call (after ZeRO-3's gather), the output's dtype
    head.register_forward_pre_hook(lambda m, a: sizes.append(m.weight.numel()))
    head.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    hidden = []  # the decoder's output in this forward (bf16)
    engine.module.get_decoder().register_forward_hook(lambda m, a, out: hidden.append(out.last_hidden_state.detach()))
    batch = batch_of(rank, vocab)
    logp, ent = completion_logprobs(engine, batch, 0.7, with_entropy=True, agree=agree, chunk_bytes=chunk_bytes,
                                    head_fp32=True)
    engine.backward(loss_of(logp, ent, batch))
    grad = safe_get_full_grad(head.weight)
    # the model's own call and the head check in bf16, then 11 chunks in float32, recomputed in the backward pass
    assert dtypes == [torch.bfloat16] * 2 + [torch.float32] * 22, dtypes
    assert min(sizes) == head.weight.ds_numel and head.weight.numel() == 0, sizes  # gathered in each call only

    # the log-probs are the float32 head's on this forward's hidden states: against float64, to 1e-5
    weight = plain.get_output_embeddings().weight  # the same bf16 weights (DeepSpeed casts as .to(bfloat16) does)
    C = batch.completion_ids.shape[1]
    h = hidden[0][:, batch.input_ids.shape[1] - C - 1 : -1].double()
    ref = torch.log_softmax(h @ weight.double().T / 0.7, -1).gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    err = ((logp.detach().double() - ref) * batch.completion_mask).abs().max()
    assert err < 1e-5, err

    grads = []
    for r in (0, 1):  # the plain bf16 copy, the same computation on both processes' batches
        b = batch_of(r, vocab)
        plain.zero_grad(set_to_none=True)
        lp, en = completion_logprobs(plain, b, 0.7, with_entropy=True, chunk_bytes=chunk_bytes, head_fp32=True)
        loss_of(lp, en, b).backward()
        grads.append(plain.get_output_embeddings().weight.grad.float())
    expected = (grads[0] + grads[1]) / 2
    err = (grad.float() - expected).abs().max() / expected.abs().max()
    assert err < 2e-2, err  # 8.3e-3: bf16 gradients (the embedding's part through DeepSpeed's bf16 decoder)
    print("ok", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
