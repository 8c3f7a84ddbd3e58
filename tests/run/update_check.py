"""``python tests/run/update_check.py MODEL OUT TAG``, alone or under ``accelerate launch`` (2 processes):
the trainer's update (:func:`rl.train.update.update_policy`) on 8 fixed rollouts of unequal lengths,
with the old-log-prob pass before it (:func:`rl.train.update.score_pass`), 2 optimizer steps, KL to the
reference and an entropy bonus. With 2 processes each takes its half, as the trainer does; alone, one
process takes all 8, ordered so that each optimizer step sees the same rollouts as the 2-process run
(each process cuts its share into ``updates_per_rollout`` consecutive slices). The main process writes
``OUT/weights-TAG.pt`` (the updated weights, gathered under ZeRO-3) and ``OUT/stats-TAG.json``.
tests/run/test_deepspeed.py compares them. ``python tests/run/update_check.py MODEL OUT TAG packed``: the
same with ``train.packing`` (packed rows; with 2 processes each optimizer step's 4 rollouts are dealt
to the processes by tokens, rl/train/update.py ``balance_processes``).
"""

import json
import sys
from pathlib import Path

import torch

from rl.config import AlgoConfig, ModelConfig, TrainConfig
from rl.engines.base import Rollout
from rl.models.load import load_policy
from rl.run.distributed import make_accelerator, make_reference, model_state_for_saving, sharded_agree
from rl.train.update import score_pass, update_policy

LENGTHS = [(4, 3), (7, 9), (2, 14), (5, 5), (3, 20), (6, 2), (8, 11), (1, 7)]  # (prompt, completion) tokens
ALGO = AlgoConfig(kl_coef=0.05, entropy_coef=0.01, updates_per_rollout=2)


def rollouts(vocab: int) -> list[Rollout]:
    g = torch.Generator().manual_seed(0)
    return [Rollout(i, torch.randint(3, vocab, (p,), generator=g).tolist(),
                    torch.randint(3, vocab, (c,), generator=g).tolist(), "", "stop", None)
            for i, (p, c) in enumerate(LENGTHS)]


def main(model_dir: str, out_dir: str, tag: str, mode: str = "padded") -> None:
    packing = mode == "packed"
    acc = make_accelerator(TrainConfig(output_dir=out_dir, micro_batch_size=2, max_grad_norm=1.0))
    torch.manual_seed(0)
    policy = load_policy(ModelConfig(name_or_path=model_dir), model_dir)
    every = rollouts(policy.config.vocab_size)
    ref = make_reference(acc, policy, ModelConfig(name_or_path=model_dir))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    policy, opt = acc.prepare(policy, opt)
    adv = torch.linspace(-1.0, 1.0, len(every))
    if acc.num_processes == 1:  # the 2-process run's optimizer steps: {0, 1, 4, 5}, then {2, 3, 6, 7}
        order = [0, 1, 4, 5, 2, 3, 6, 7]
    else:
        k = len(every) // acc.num_processes
        order = list(range(acc.process_index * k, (acc.process_index + 1) * k))
    mine = [every[i] for i in order]
    old, _ = score_pass(policy, mine, 0, 0.7, 2, False, agree=sharded_agree(acc), packing=packing)
    stats = update_policy(acc, policy, ref, opt, sched, mine, adv[order], ALGO, pad_id=0, temperature=0.7,
                          micro_batch_size=2, max_grad_norm=1.0, norm_len=20, old_logps=old, packing=packing)
    state = model_state_for_saving(acc, policy)
    if state is None:
        state = acc.unwrap_model(policy).state_dict()
    if acc.is_main_process:
        torch.save({k: v.detach().float().cpu() for k, v in state.items()}, Path(out_dir) / f"weights-{tag}.pt")
        (Path(out_dir) / f"stats-{tag}.json").write_text(json.dumps(stats))
    acc.wait_for_everyone()
    print("ok", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
