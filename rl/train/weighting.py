"""Dynamic reward weighting, the gradient-based variant (``algo.reward_weighting``).

Paper: arXiv 2509.11452 (TACL 2026), "Learning to Optimize Multi-Objective Alignment Through Dynamic
Reward Weighting"; released code ``yining610/dynamic-reward-weighting`` @238fe65,
``verl/trainer/ppo/ray_trainer_optimization.py`` (the weight update) and ``verl/workers/actor/dp_actor.py``
(``compute_gradients``). Written from reading them. The hypervolume-guided variant is a reward
(``hypervolume_weight``, rewards/dynamic_weighting.py).

Every step, before the update, for each reward k of the composition (its terms, not a factor):

- ``A_k`` = the advantages of ``r_k`` alone (``algo.advantage`` on the component, summed not normalised
  per reward);
- ``g_k`` = the gradient of the whole actor loss with ``A_k`` (policy term and KL, one optimizer step's
  micro-batches, all-reduced across processes like any backward), clipped to norm 1 over all parameters,
  then flattened over the decoder layers ``layers: [first, last]`` (the release: 10 to 25; null: every
  trainable parameter);
- ``I_k = sum_j <g_k, g_j>`` (the Gram matrix's row sums, its diagonal included);
- ``w <- softmax(log w + eta I / mu)``, ``eta`` the actor's current learning rate, ``mu`` =
  ``regularization`` (the release: 1e-5 for Qwen3-8B, 1e-4 for DeepSeek-7B).

The same batch then trains on ``sum_k w_k r_k`` with the new ``w``. ``w`` starts from the recipe's
weights scaled to sum 1 (the release: 1/3 each) and lives in ``ctx.state`` (so in every checkpoint).
This costs one forward and backward pass over the batch per reward, and holds the K flat gradients on
the CPU. Not with DeepSpeed or FSDP (their optimizer steps and sharded gradients are not a plain
``p.grad``), nor with per-token rewards.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import torch

from rl.algo.advantages import table_advantages
from rl.algo.weighting import DEFAULTS, new_weights
from rl.train.update import NoSchedule, update_policy

LAYER = re.compile(r"\.layers\.(\d+)\.")


class Capture:
    """An optimizer stand-in for :func:`rl.train.update.update_policy`: ``step`` keeps the (already clipped)
    gradient of ``chosen`` as one flat CPU vector, ``zero_grad`` clears every parameter's."""

    def __init__(self, params: list[torch.nn.Parameter], chosen: list[torch.nn.Parameter]):
        self.params, self.chosen, self.flat = params, chosen, None

    def step(self) -> None:
        self.flat = torch.cat([(p.grad.detach().float().reshape(-1) if p.grad is not None
                                else torch.zeros(p.numel(), device=p.device)).cpu() for p in self.chosen])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def chosen_parameters(model: torch.nn.Module, layers: list[int] | None) -> list[torch.nn.Parameter]:
    """The trainable parameters of decoder layers ``first..last`` (names ``*.layers.<i>.*``), or all trainable ones."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layers is None:
        return [p for _, p in params]
    first, last = layers
    out = [p for n, p in params if (m := LAYER.search(n)) and first <= int(m.group(1)) <= last]
    if not out:
        raise ValueError(f"algo.reward_weighting.layers={layers}: the model has no trainable parameters in decoder "
                         f"layers {first}..{last}")
    return out


@dataclasses.dataclass
class GradientWeighting:
    options: dict[str, Any]

    @classmethod
    def build(cls, options: dict[str, Any] | None, acc) -> GradientWeighting | None:
        if options is None:
            return None
        if acc.distributed_type.value in ("DEEPSPEED", "FSDP"):
            raise ValueError(f"algo.reward_weighting (gradient) reads each reward's gradient from p.grad, which "
                             f"{acc.distributed_type.value} shards or steps itself: use DDP or one process")
        return cls({**DEFAULTS, **options})

    def reweigh(self, run, batch, components: dict[str, list[float]], token_totals, step: int,
                update_options: dict[str, Any]) -> tuple[list[float], dict[str, float]]:
        """New weights from this batch's per-reward gradients (set on ``run.rewards``), and the batch's totals
        under them; ``weighting/*`` metrics."""
        if token_totals is not None:
            raise ValueError("algo.reward_weighting (gradient) weighs scalar rewards; a reward returned per-token "
                             "values (DECS)")
        t0 = time.perf_counter()
        cfg, acc, composed = run.cfg, run.acc, run.rewards
        names = [n for n, _ in composed.terms()]
        saved = run.ctx.state.get("reward_weighting")
        if saved is None:
            start = [w for _, w in composed.terms()]
            weights = [w / sum(start) for w in start] if sum(start) > 0 else [1 / len(start)] * len(start)
        else:
            weights = [saved[n] for n in names]
        model = acc.unwrap_model(run.policy)
        capture = Capture([p for p in model.parameters() if p.requires_grad],
                          chosen_parameters(model, self.options["layers"]))
        algo = dataclasses.replace(cfg.algo, updates_per_rollout=1, reward_aggregation="sum_then_normalize")
        n = len(batch.samples)
        grads = []
        for name in names:
            adv = table_advantages(algo, components[name], batch.table, run.ctx.max_length, step)
            local = adv[acc.process_index * n : (acc.process_index + 1) * n]
            update_policy(acc, run.policy, run.ref, capture, NoSchedule(), batch.rollouts, local, algo,
                          **{**update_options, "max_grad_norm": 1.0})
            grads.append(capture.flat)
        lr = run.scheduler.get_last_lr()[0]
        weights, influence = new_weights(weights, torch.stack(grads), lr, self.options["regularization"])
        run.ctx.state["reward_weighting"] = dict(zip(names, weights))
        by_name = dict(zip(names, weights))
        composed.weights = [by_name.get(n, w) for n, w in zip(composed.names, composed.weights)]
        stats = {f"weighting/w_{k}": w for k, w in zip(names, weights)}
        stats.update({f"weighting/influence_{k}": v for k, v in zip(names, influence)})
        stats.update({"weighting/lr": lr, "time/weighting": time.perf_counter() - t0})
        return composed.combine(components), stats
