"""Merging fine-tuned models into their base: DLER's update-selective merge, and long-to-short merging.

Source: DLER, "Doing Length pEnalty Right" (arXiv 2510.15110, NVlabs/DLER), section
"Update-selective merging". After RL toward short reasoning, most of the accuracy lost on hard
problems is recovered by keeping only the largest weight updates and shrinking them:

    Δ        = θ_RL − θ_base
    mask     = 1 on the top k% of entries of Δ by |Δ|, 0 elsewhere
    θ_merged = θ_base + λ · mask ⊙ Δ

Defaults: k = 25% (``top_k=0.25``) and λ = 0.7 (``scale=0.7``).

Scope of the top-k:

* ``scope="tensor"`` (default): each weight tensor keeps its own ``ceil(k · numel)`` largest
  updates, so every layer is touched in proportion to its size ("keeping only the top-k%
  largest updates per tensor"). One tensor's Δ is in memory at a time.
* ``scope="global"``: one threshold over all floating-point tensors together; layers whose
  updates are small may lose all of them. Needs about three float32 copies of all |Δ| in memory
  (per-tensor magnitudes, their concatenation, and the copy ``kthvalue`` makes).

Exactly ``ceil(k · n)`` entries are kept (``k`` read as the decimal it prints as, so 0.3 of 10 is
3, not 4). Ties at the threshold are broken deterministically: entries strictly above the k-th
largest |Δ| are kept, then tied entries in flat (row-major) index order — with global scope, in
state-dict key order first. Non-floating tensors (integer buffers) are copied from the tuned
model. Tensors sharing storage (tied embeddings) are merged once. ``top_k=1, scale=1`` gives the
tuned model exactly and ``top_k=0`` (or ``scale=0``) the base model exactly.

Long-to-short merging of task vectors (task arithmetic, TIES, DARE) is in :mod:`rl.models.task_vectors`.

Usage (Python)::

    from rl.models.merge import merge_model_dirs
    info = merge_model_dirs("Qwen/base", "runs/dler/final", "runs/dler/merged", top_k=0.25, scale=0.7)
    print(info["stats"]["kept_fraction"])

or from the shell::

    python scripts/merge_updates.py BASE TUNED OUT --top-k 0.25 --scale 0.7 --scope tensor
"""

from __future__ import annotations

import json
import math
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SCOPES = ("tensor", "global")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INFO_FILE = "merge_info.json"
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


def check_merge_args(top_k: float, scale: float, scope: str) -> None:
    """Raise ``ValueError`` naming the bad argument (``top_k``, ``scale`` or ``scope``)."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, float)) or not 0.0 <= top_k <= 1.0:
        raise ValueError(f"top_k must be a number in [0, 1], got {top_k!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")


def n_keep(top_k: float, n: int) -> int:
    """``ceil(top_k · n)``, with ``top_k`` taken as the decimal it prints as (0.3 · 10 = 3)."""
    return min(n, max(0, math.ceil(Fraction(repr(float(top_k))) * n)))


def _storage_id(t: Tensor) -> tuple:
    """Identity of the memory a tensor views: equal for tied weights."""
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _select(magnitudes: list[Tensor], k: int) -> list[Tensor]:
    """Boolean masks keeping exactly the ``k`` largest entries over the flat ``magnitudes``
    taken together; ties at the threshold go to the earliest (list order, then flat index)."""
    total = sum(m.numel() for m in magnitudes)
    if k <= 0:
        return [torch.zeros_like(m, dtype=torch.bool) for m in magnitudes]
    if k >= total:
        return [torch.ones_like(m, dtype=torch.bool) for m in magnitudes]
    flat = magnitudes[0] if len(magnitudes) == 1 else torch.cat(magnitudes)
    threshold = flat.kthvalue(total - k + 1).values  # the k-th largest
    del flat
    masks = [m > threshold for m in magnitudes]
    missing = k - sum(int(m.sum()) for m in masks)
    for m, mask in zip(magnitudes, masks):
        if missing <= 0:
            break
        tied = (m == threshold).nonzero().flatten()[:missing]
        mask[tied] = True
        missing -= tied.numel()
    return masks


def _check_pair(base: dict[str, Tensor], tuned: dict[str, Tensor], name: str = "tuned") -> None:
    """Same keys, shapes and floating-ness, else ``ValueError`` naming the keys."""
    only_base, only_tuned = sorted(set(base) - set(tuned)), sorted(set(tuned) - set(base))
    if only_base or only_tuned:
        raise ValueError(f"state dict keys differ: only in base {only_base}, only in {name} {only_tuned}")
    bad_shape = [
        f"{k} {tuple(base[k].shape)} vs {tuple(tuned[k].shape)}" for k in base if base[k].shape != tuned[k].shape
    ]
    if bad_shape:
        raise ValueError(f"shape mismatch for key(s): {', '.join(bad_shape)}")
    bad_kind = [k for k in base if base[k].is_floating_point() != tuned[k].is_floating_point()]
    if bad_kind:
        raise ValueError(f"floating vs non-floating dtype mismatch for key(s): {', '.join(bad_kind)}")


def _plan(base: dict[str, Tensor], tuned: list[dict[str, Tensor]]):
    """``(merged, keys, aliases, copied)``: non-floating tensors copied from ``tuned[0]`` and empty
    ones from base into ``merged``; the floating tensors to merge (``keys``, tied copies once);
    ``aliases`` (tied key -> first key); ``copied`` (non-floating keys)."""
    merged: dict[str, Tensor] = {}
    first_of: dict[tuple, str] = {}  # storages of (base, *tuned) -> first key seen
    aliases: dict[str, str] = {}
    keys: list[str] = []  # floating, deduplicated, non-empty: the tensors actually merged
    copied: list[str] = []
    for key, b in base.items():
        if not b.is_floating_point():
            merged[key] = tuned[0][key].detach().clone()
            copied.append(key)
            continue
        ident = (_storage_id(b), *(_storage_id(t[key]) for t in tuned))
        if ident in first_of:
            aliases[key] = first_of[ident]
            continue
        first_of[ident] = key
        if b.numel() == 0:
            merged[key] = b.detach().clone()
            continue
        keys.append(key)
    return merged, keys, aliases, copied


def _delta(base: dict[str, Tensor], tuned: dict[str, Tensor], key: str) -> Tensor:
    """``tuned[key] − base[key]`` in float32 (float64 if either is), finite or ``ValueError``."""
    b, t = base[key].detach(), tuned[key].detach()
    work = torch.float64 if torch.float64 in (b.dtype, t.dtype) else torch.float32
    d = t.to(work) - b.to(work)
    if not torch.isfinite(d).all():
        raise ValueError(f"non-finite update (NaN/inf) in key {key}")
    return d


def merge_updates(
    base: dict[str, Tensor],
    tuned: dict[str, Tensor],
    top_k: float = 0.25,
    scale: float = 0.7,
    scope: str = "tensor",
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """DLER update-selective merge of two state dicts: ``θ_base + scale · mask(Δ) ⊙ Δ``.

    ``Δ = tuned − base`` is computed in float32 (float64 if either side is float64); ``mask``
    keeps the ``ceil(top_k · numel)`` largest ``|Δ|`` per tensor (``scope="tensor"``) or over all
    floating tensors at once (``scope="global"``). Results are cast to the base tensor's dtype.
    Returns ``(merged_state_dict, stats)``; the inputs are not modified.

    Raises ``ValueError`` for bad ``top_k``/``scale``/``scope``, keys present on one side only,
    shape mismatches, floating vs non-floating mismatches and non-finite updates.
    """
    check_merge_args(top_k, scale, scope)
    _check_pair(base, tuned)
    merged, keys, aliases, copied = _plan(base, [tuned])

    def delta(key: str) -> Tensor:
        return _delta(base, tuned, key)

    def apply(key: str, d: Tensor, mask: Tensor) -> None:
        b = base[key].detach()
        if scale == 1:  # take the tuned values themselves: exact, no b + (t - b) rounding
            new = torch.where(mask, tuned[key].detach().to(d.dtype), b.to(d.dtype))
        else:
            new = torch.where(mask, b.to(d.dtype) + scale * d, b.to(d.dtype))
        merged[key] = new.to(b.dtype)

    per_tensor: dict[str, dict[str, Any]] = {}
    sums = {"kept": 0, "numel": 0, "changed": 0, "abs_kept": 0.0, "abs_dropped": 0.0, "sq_kept": 0.0, "sq_all": 0.0}

    def record(key: str, d: Tensor, mask: Tensor) -> None:
        a = d.abs()
        a_kept = a[mask]
        kept, numel, changed = a_kept.numel(), d.numel(), int((d != 0).sum())
        abs_kept, abs_all = float(a_kept.sum()), float(a.sum())
        sq_kept, sq_all = float(a_kept.square().sum()), float(a.square().sum())
        per_tensor[key] = {
            "numel": numel,
            "kept": kept,
            "kept_fraction": kept / numel,
            "min_abs_delta_kept": float(a_kept.min()) if kept else None,
            "mean_abs_delta": abs_all / numel,
            "changed_fraction": changed / numel,
        }
        sums["kept"] += kept
        sums["numel"] += numel
        sums["changed"] += changed
        sums["abs_kept"] += abs_kept
        sums["abs_dropped"] += abs_all - abs_kept
        sums["sq_kept"] += sq_kept
        sums["sq_all"] += sq_all

    if scope == "tensor":
        for key in keys:  # one tensor in memory at a time
            d = delta(key)
            (mask,) = _select([d.abs().flatten()], n_keep(top_k, d.numel()))
            mask = mask.view_as(d)
            apply(key, d, mask)
            record(key, d, mask)
    else:  # one float32 |Δ| per tensor, concatenated once to find the threshold
        mags = [delta(key).abs().flatten().float() for key in keys]
        masks = _select(mags, n_keep(top_k, sum(m.numel() for m in mags)))
        del mags
        for key, mask in zip(keys, masks):
            d = delta(key)  # recomputed: cheaper in memory than keeping every Δ
            mask = mask.view_as(d)
            apply(key, d, mask)
            record(key, d, mask)

    for alias, first in aliases.items():
        merged[alias] = merged[first]  # keep the tie: same tensor object
    merged = {key: merged[key] for key in base}  # base key order

    n, kept = sums["numel"], sums["kept"]
    stats: dict[str, Any] = {
        "top_k": top_k,
        "scale": scale,
        "scope": scope,
        "n_tensors": len(keys),
        "n_params": n,
        "n_kept": kept,
        "kept_fraction": kept / n if n else 0.0,
        "changed_fraction": sums["changed"] / n if n else 0.0,
        "mean_abs_delta_kept": sums["abs_kept"] / kept if kept else 0.0,
        "mean_abs_delta_dropped": sums["abs_dropped"] / (n - kept) if n - kept else 0.0,
        "delta_energy_kept": sums["sq_kept"] / sums["sq_all"] if sums["sq_all"] else 1.0,
        "tied_aliases": aliases,
        "copied_non_floating": copied,
        "per_tensor": per_tensor,
    }
    return merged, stats


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).exists() for f in _TOKENIZER_FILES)


def is_hub_id(name: str) -> bool:
    """``name`` looks like a Hub model id (``model`` or ``org/model``), not a filesystem path."""
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and not Path(name).exists()


def _check_dirs(base_dir, tuned_dirs: list, out_dir, overwrite: bool, dtype):
    """Validated ``(base_id, base_dir, tuned_dirs, out_dir, dtype)``; errors name the bad path."""
    base_id = str(base_dir)  # a local directory, or a Hugging Face Hub id such as "org/model"
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    tuned_dirs = [Path(t) for t in tuned_dirs]
    for tuned_dir in tuned_dirs:
        if not tuned_dir.is_dir():
            raise FileNotFoundError(f"tuned_dir is not a directory: {tuned_dir}")
    if not base_dir.is_dir() and not is_hub_id(base_id):
        raise FileNotFoundError(f"base_dir is neither a directory nor a Hub model id: {base_dir}")
    if out_dir.resolve() in (base_dir.resolve(), *(t.resolve() for t in tuned_dirs)):
        raise ValueError(f"out_dir must differ from base_dir and tuned_dir: {out_dir}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FileExistsError(f"out_dir exists and is not empty (use overwrite): {out_dir}")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    return base_id, base_dir, tuned_dirs, out_dir, dtype


def _load_tuned(base_src, tuned_dir: Path):
    """A full model directory, or a LoRA adapter merged into a float32 copy of the base."""
    from transformers import AutoModelForCausalLM

    if (tuned_dir / "adapter_config.json").exists():
        from peft import PeftModel

        host = AutoModelForCausalLM.from_pretrained(base_src, dtype=torch.float32)
        return PeftModel.from_pretrained(host, tuned_dir).merge_and_unload(), True
    return AutoModelForCausalLM.from_pretrained(tuned_dir, dtype="auto"), False


def _write_atomically(model, tok_src: Path | None, info: dict[str, Any], out_dir: Path) -> None:
    """Model, tokenizer and ``merge_info.json`` into a temporary sibling, then renamed into place."""
    from transformers import AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        if tok_src is not None:
            AutoTokenizer.from_pretrained(tok_src).save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if out_dir.exists():  # overwrite (or empty dir): move the old one aside, then swap in
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def save_merged(model, info: dict[str, Any], out_dir: Path, *tokenizer_dirs: Path) -> dict[str, Any]:
    """Write ``model`` atomically with the first of ``tokenizer_dirs`` that has a tokenizer and
    ``merge_info.json`` (``info`` plus the saved dtype and the tokenizer's source); returns the record."""
    tok_src = _tokenizer_source(*tokenizer_dirs)
    info = {**info, "dtype": str(model.dtype).removeprefix("torch."), "tokenizer_from": str(tok_src) if tok_src else None}
    _write_atomically(model, tok_src, info, out_dir)
    return info


def _tokenizer_source(*dirs: Path) -> Path | None:
    return next((d for d in dirs if _has_tokenizer(d)), None)


def merge_model_dirs(
    base_dir: str | os.PathLike,
    tuned_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    top_k: float = 0.25,
    scale: float = 0.7,
    scope: str = "tensor",
    dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Merge two Hugging Face causal-LM directories with :func:`merge_updates` and save the result.

    ``θ_merged = θ_base + scale · mask(θ_tuned − θ_base)`` written to ``out_dir`` (model from
    ``save_pretrained``, tokenizer from ``tuned_dir`` — else ``base_dir`` — and ``merge_info.json``).
    ``tuned_dir`` may be a full model or a LoRA adapter (``adapter_config.json``), which is merged
    into a float32 copy of the base first. ``dtype`` ("float32", "bfloat16", "float16" or a torch
    dtype) sets the dtype the base is loaded and saved in; ``None`` keeps its stored dtype.

    The output is written to a temporary sibling directory and renamed into place, so an
    interrupted merge never leaves a half-written ``out_dir``. An existing non-empty ``out_dir``
    is an error unless ``overwrite``. Returns the dict written to ``merge_info.json``.
    """
    check_merge_args(top_k, scale, scope)
    base_id, base_dir, (tuned_dir,), out_dir, dtype = _check_dirs(base_dir, [tuned_dir], out_dir, overwrite, dtype)

    from transformers import AutoModelForCausalLM

    base_src = base_dir if base_dir.is_dir() else base_id
    base_model = AutoModelForCausalLM.from_pretrained(base_src, dtype=dtype or "auto")
    tuned_model, lora = _load_tuned(base_src, tuned_dir)
    with torch.no_grad():
        merged, stats = merge_updates(
            base_model.state_dict(), tuned_model.state_dict(), top_k=top_k, scale=scale, scope=scope
        )
        del tuned_model
        base_model.load_state_dict(merged, strict=True)
    del merged

    info = {"method": "DLER update-selective merging (arXiv 2510.15110)", "base": str(base_dir),
            "tuned": str(tuned_dir), "lora": lora, "top_k": top_k, "scale": scale, "scope": scope, "stats": stats}
    return save_merged(base_model, info, out_dir, tuned_dir, base_dir)
