"""Long-to-short merging (Wu et al., "Unlocking Efficient Long-to-Short LLM Reasoning with Model
Merging", arXiv 2503.20641; code hahahawu/Long-to-Short-via-Model-Merging ``src/merging_methods.py``)
combines task vectors Δ_k = θ_k − θ_base of one or more models with :func:`merge_task_vectors`
(for long-to-short: θ_base = the short model, θ_1 = the long-CoT model of the same architecture):

* ``task_arithmetic`` (Ilharco et al., arXiv 2212.04089): θ = θ_base + λ · Σ_k w_k Δ_k.
* ``ties`` (Yadav et al., arXiv 2306.01708): trim each Δ_k to its ``ceil(density · numel)``
  largest |entries| per tensor (ties at the threshold in flat index order, as in :mod:`rl.models.merge`); elect a sign
  per entry, γ = sign(Σ_k w_k Δ̂_k), 0 read as +1 (as the release); disjoint mean over the models
  that agree, τ = Σ_{k: sign(w_k Δ̂_k) = γ ≠ 0} w_k Δ̂_k / #agreeing (0 where none agrees);
  θ = θ_base + λ τ. The release's ``param_value_mask_rate`` k is the fraction *dropped*: its
  k = 0.8 is ``density = 0.2``.
* ``dare`` (Yu et al., arXiv 2311.03099): drop each entry of each Δ_k with probability p
  (``drop_rate``) and rescale the survivors by 1/(1 − p), then task arithmetic; ``dare_ties``
  combines the DARE-ed vectors with TIES' sign election and disjoint mean (no trim).

Published (the release's table, all sizes 1.5B-14B): task arithmetic λ = 0.7; TIES k = 0.8
(density 0.2), λ = 1.0 for 1.5B/7B; DARE p = 0.3. DARE draws its masks from a ``torch.Generator``
seeded with ``seed``, tensor by tensor in state-dict order (reproducible for the same inputs).

Outputs are written like DLER's merge (:mod:`rl.models.merge`): atomically, with ``merge_info.json``.

    python scripts/merge_updates.py SHORT LONG OUT --method ties --density 0.2 --scale 1.0
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from rl.models.merge import _check_dirs, _check_pair, _delta, _load_tuned, _plan, _select, n_keep, save_merged

METHODS = ("task_arithmetic", "ties", "dare", "dare_ties")


def check_task_vector_args(method: str, scale: float, weights, n_models: int, density: float,
                           drop_rate: float) -> list[float]:
    """Raise ``ValueError`` naming the bad argument; returns the weights (default all 1)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if n_models < 1:
        raise ValueError("merge_task_vectors needs at least one tuned model")
    weights = [1.0] * n_models if weights is None else list(weights)
    if len(weights) != n_models or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights):
        raise ValueError(f"weights must be {n_models} finite number(s), one per tuned model, got {weights!r}")
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be a number in [0, 1], got {density!r}")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate <= 1.0:
        raise ValueError(f"drop_rate must be a number in [0, 1], got {drop_rate!r}")
    return [float(w) for w in weights]


def _dare(d: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Drop each entry with probability ``p``, rescale the rest by 1/(1 − p)."""
    if p <= 0:
        return d
    if p >= 1:
        return torch.zeros_like(d)
    keep = torch.rand(d.shape, generator=gen, dtype=torch.float64) >= p
    return torch.where(keep, d / (1.0 - p), torch.zeros_like(d))


def _ties_combine(vectors: list[Tensor], weights: list[float]) -> tuple[Tensor, int]:
    """Sign election (sign of the weighted sum, 0 -> +) and disjoint mean of the weighted entries
    whose sign agrees (divided by how many agree); also how many nonzero entries disagreed."""
    weighted = [w * v for w, v in zip(weights, vectors)]
    sign = torch.sign(sum(weighted))
    sign[sign == 0] = 1
    total = torch.zeros_like(vectors[0])
    count = torch.zeros_like(vectors[0])
    conflicts = 0
    for wv in weighted:
        agree = (torch.sign(wv) == sign) & (wv != 0)
        total += torch.where(agree, wv, torch.zeros_like(wv))
        count += agree.to(count.dtype)
        conflicts += int(((wv != 0) & ~agree).sum())
    return total / count.clamp(min=1), conflicts


def merge_task_vectors(
    base: dict[str, Tensor],
    tuned: list[dict[str, Tensor]],
    method: str = "task_arithmetic",
    scale: float = 1.0,
    weights: list[float] | None = None,
    density: float = 0.2,
    drop_rate: float = 0.3,
    seed: int = 0,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Task arithmetic / TIES / DARE / DARE-TIES merge of ``tuned`` into ``base`` (module docstring).

    Per tensor, in float32 (float64 if any side is): Δ_k = tuned_k − base; ``ties`` trims each Δ_k
    to ``ceil(density · numel)`` entries, ``dare``/``dare_ties`` drop with ``drop_rate``; then the
    weighted sum (``task_arithmetic``, ``dare``) or TIES' sign election and disjoint mean
    (``ties``, ``dare_ties``); θ = base + ``scale`` · τ, cast to the base dtype. A negative weight
    on a *short* model's task vector is how the paper's "subtract" variants are written.
    Non-floating tensors come from ``tuned[0]``; tied tensors are merged once. Returns
    ``(merged_state_dict, stats)``; the inputs are not modified.
    """
    weights = check_task_vector_args(method, scale, weights, len(tuned), density, drop_rate)
    for i, t in enumerate(tuned):
        _check_pair(base, t, name=f"tuned[{i}]")
    merged, keys, aliases, copied = _plan(base, tuned)
    gen = torch.Generator().manual_seed(int(seed))
    sums = {"numel": 0, "kept": 0, "changed": 0, "conflicts": 0}
    for key in keys:
        deltas = [_delta(base, t, key) for t in tuned]
        if method == "ties":
            masks = [_select([d.abs().flatten()], n_keep(density, d.numel()))[0].view_as(d) for d in deltas]
            deltas = [torch.where(m, d, torch.zeros_like(d)) for d, m in zip(deltas, masks)]
        elif method in ("dare", "dare_ties"):
            deltas = [_dare(d, drop_rate, gen) for d in deltas]
        if method in ("ties", "dare_ties"):
            tau, conflicts = _ties_combine(deltas, weights)
        else:
            tau, conflicts = sum(w * d for w, d in zip(weights, deltas)), 0
        b = base[key].detach()
        merged[key] = (b.to(tau.dtype) + scale * tau).to(b.dtype)
        sums["numel"] += tau.numel()
        sums["kept"] += sum(int((d != 0).sum()) for d in deltas)
        sums["changed"] += int((tau != 0).sum())
        sums["conflicts"] += conflicts
    for alias, first in aliases.items():
        merged[alias] = merged[first]
    merged = {key: merged[key] for key in base}
    n, entries = sums["numel"], sums["numel"] * len(tuned)
    stats: dict[str, Any] = {
        "method": method,
        "scale": scale,
        "weights": weights,
        "density": density if method == "ties" else None,
        "drop_rate": drop_rate if method in ("dare", "dare_ties") else None,
        "seed": seed if method in ("dare", "dare_ties") else None,
        "n_models": len(tuned),
        "n_tensors": len(keys),
        "n_params": n,
        "kept_fraction": sums["kept"] / entries if entries else 0.0,  # nonzero Δ entries after trim / drop
        "changed_fraction": sums["changed"] / n if n else 0.0,  # entries the merge moves
        "sign_conflict_fraction": sums["conflicts"] / entries if entries else 0.0,
        "tied_aliases": aliases,
        "copied_non_floating": copied,
    }
    return merged, stats


def merge_task_vector_dirs(
    base_dir: str | os.PathLike,
    tuned_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """:func:`merge_task_vectors` (``options``: its method, scale, weights, density, drop_rate,
    seed) on Hugging Face model directories (each tuned one a full model or a LoRA adapter), saved
    like :func:`rl.models.merge.merge_model_dirs`: atomically, tokenizer from the first tuned directory
    that has one (else the base), and ``merge_info.json``. Returns that record."""
    merge_task_vectors({}, [{}] * len(tuned_dirs), **options)  # the options checked before any model loads
    base_id, base_dir, tuned_dirs, out_dir, dtype = _check_dirs(base_dir, tuned_dirs, out_dir, overwrite, dtype)

    from transformers import AutoModelForCausalLM

    base_src = base_dir if base_dir.is_dir() else base_id
    base_model = AutoModelForCausalLM.from_pretrained(base_src, dtype=dtype or "auto")
    loaded = [_load_tuned(base_src, d) for d in tuned_dirs]
    with torch.no_grad():
        merged, stats = merge_task_vectors(base_model.state_dict(), [m.state_dict() for m, _ in loaded], **options)
        lora = [is_lora for _, is_lora in loaded]
        del loaded
        base_model.load_state_dict(merged, strict=True)
    del merged

    info = {"method": f"{stats['method']} (long-to-short merging, arXiv 2503.20641)", "base": str(base_dir),
            "tuned": [str(d) for d in tuned_dirs], "lora": lora, "stats": stats}
    return save_merged(base_model, info, out_dir, *tuned_dirs, base_dir)
