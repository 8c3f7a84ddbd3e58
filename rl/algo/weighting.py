"""The weight update of dynamic reward weighting's gradient-based variant (arXiv 2509.11452, TACL 2026;
released code ``yining610/dynamic-reward-weighting`` @238fe65, ``verl/trainer/ppo/ray_trainer_optimization.py``):
the options of ``algo.reward_weighting`` and ``w <- softmax(log w + eta (G G^T) 1 / mu)``. Where the
gradients come from: rl/train/weighting.py.
"""

from __future__ import annotations

import math
from typing import Any

import torch

DEFAULTS: dict[str, Any] = {"method": "gradient", "regularization": 1e-4, "layers": None}


def check_options(options: dict[str, Any]) -> str | None:
    """What is wrong with ``algo.reward_weighting`` (one line), or None.

    >>> check_options({"method": "hypervolume"})
    "algo.reward_weighting.method: 'hypervolume' is not one of ['gradient'] (the hypervolume variant is the reward hypervolume_weight)"
    """
    o = {**DEFAULTS, **options}
    if o["method"] != "gradient":
        return (f"algo.reward_weighting.method: '{o['method']}' is not one of ['gradient'] (the hypervolume variant "
                "is the reward hypervolume_weight)")
    mu = o["regularization"]
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not mu > 0:
        return f"algo.reward_weighting.regularization must be a number > 0, got {mu!r}"
    layers = o["layers"]
    if layers is not None and not (isinstance(layers, list) and len(layers) == 2 and all(isinstance(x, int) for x in layers)
                                   and 0 <= layers[0] <= layers[1]):
        return f"algo.reward_weighting.layers must be [first, last] decoder layer ids (0 <= first <= last) or null, got {layers!r}"
    return None


def new_weights(weights: list[float], grads: torch.Tensor, lr: float, mu: float) -> tuple[list[float], list[float]]:
    """``(w', I)``: ``I = (G G^T) 1`` over the ``[K, P]`` flat gradients, ``w' = softmax(log w + lr I / mu)``.

    Two objectives with gradients (1, 0) and (1, 1): G G^T = [[1, 1], [1, 2]], I = (2, 3); from w = (0.5, 0.5)
    with lr / mu = 1: w' = softmax(log 0.5 + (2, 3)) = (1, e) / (1 + e).

    >>> w, influence = new_weights([0.5, 0.5], torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 1e-4, 1e-4)
    >>> [round(x, 6) for x in w], influence
    ([0.268941, 0.731059], [2.0, 3.0])
    """
    g = grads.double()
    influence = (g @ g.T).sum(dim=1)
    logits = torch.tensor([math.log(max(x, 1e-300)) for x in weights], dtype=torch.float64) + lr * influence / mu
    return torch.softmax(logits, dim=0).tolist(), influence.tolist()
