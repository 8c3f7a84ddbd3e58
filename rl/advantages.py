"""Advantage estimators: one scalar per sample from the global rewards and group ids.

Registered by name (``algo.advantage`` in a recipe), in the spirit of verl's ``register_adv_est``.
Every estimator is a pure function ``(rewards[N], groups[N], eps) -> advantages[N]``.

- ``grpo``      A_i = (r_i - mean_g) / (std_g + eps)          (GRPO, DeepSeekMath; std unbiased)
- ``batch_std`` A_i = (r_i - mean_g) / (std_B(r - mean_g) + eps)  (DLER, arXiv 2510.15110: group
                baseline, then one scale for the whole batch, so easy and hard groups keep
                their relative weight; see METHODS.md "Truncation — DLER")
- ``none``      A_i = r_i - mean_g                             (Dr.GRPO: no std scaling)

``mean_g``/``std_g`` are over the sample's group; ``std_B`` over all samples of the step.
Standard deviations use Bessel's correction (``torch.std``), as TRL and verl do; a group or batch
with a single sample has std 0 by convention (advantage 0 after centring).
"""

from __future__ import annotations

from typing import Callable

import torch

AdvantageFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
ADVANTAGES: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def deco(fn: AdvantageFn) -> AdvantageFn:
        ADVANTAGES[name] = fn
        return fn

    return deco


def _std(x: torch.Tensor) -> torch.Tensor:
    return x.std() if x.numel() > 1 else torch.zeros((), dtype=x.dtype)


def group_stats(rewards: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and std of the sample's group."""
    mean = torch.empty_like(rewards)
    std = torch.empty_like(rewards)
    for g in torch.unique(groups):
        idx = groups == g
        mean[idx] = rewards[idx].mean()
        std[idx] = _std(rewards[idx])
    return mean, std


@register_advantage("grpo")
def grpo(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, std = group_stats(rewards, groups)
    return (rewards - mean) / (std + eps)


@register_advantage("batch_std")
def batch_std(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    centred = rewards - mean
    return centred / (_std(centred) + eps)


@register_advantage("none")
def no_std(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    return rewards - mean


def compute_advantages(
    name: str, rewards: list[float] | torch.Tensor, groups: list[int] | torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    if name not in ADVANTAGES:
        import difflib

        close = difflib.get_close_matches(name, list(ADVANTAGES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown advantage estimator '{name}'{hint} (known: {sorted(ADVANTAGES)})")
    r = torch.as_tensor(rewards, dtype=torch.float64)
    g = torch.as_tensor(groups)
    return ADVANTAGES[name](r, g, eps).to(torch.float32)
