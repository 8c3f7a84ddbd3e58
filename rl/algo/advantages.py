"""Advantages of one step: the registered estimator (:mod:`rl.algo.estimators`, where the formulas
are) called with the facts and options it declares, checked first.

:func:`compute_advantages` takes rewards and group ids as lists or tensors and returns float32
``[N]``. :func:`table_advantages` does it for the trainer's global sample table, and spreads
per-token rewards (DECS) over ``[N, T_max]``.
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, Mapping

import torch

from rl.algo.estimators import FACTS, TOKEN_OPTIONS, check_token_option, get_estimator, keyword_params


def _check_option(name: str, key: str, value: Any, default: Any) -> Any:
    """Light type check of an option value against its default's type; ints pass for floats."""
    bad = f"advantage estimator '{name}': option '{key}' must be"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{bad} a bool, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{bad} a finite number, got {value!r}")
        return float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{bad} an int, got {value!r}")
    return value


def compute_advantages(
    name: str,
    rewards: list[float] | torch.Tensor,
    groups: list[int] | torch.Tensor,
    eps: float = 1e-6,
    *,
    lengths: list[float] | torch.Tensor | None = None,
    correct: list[bool] | torch.Tensor | None = None,
    max_length: int | None = None,
    entropies: list[float] | torch.Tensor | None = None,
    step: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """Advantages (float32 tensor[N]) of estimator ``name``.

    ``lengths``/``correct``/``max_length``/``entropies``/``step`` are the per-step facts; each is handed to the estimator
    only if it declares it (and it is an error to leave out one it requires). ``options`` are the
    estimator's own settings (``algo.advantage_options``); unknown keys are an error. The per-token
    options (:data:`rl.algo.estimators.TOKEN_OPTIONS`, e.g. ``token_positions``) are accepted and
    checked but do nothing here: :func:`table_advantages` reads them.
    """
    fn = get_estimator(name)
    r = torch.as_tensor(rewards, dtype=torch.float64)
    g = torch.as_tensor(groups)
    if r.dim() != 1 or g.shape != r.shape:
        raise ValueError(f"advantage estimator '{name}': rewards and groups must be 1-D of equal length")
    n = r.numel()

    facts: dict[str, Any] = {}
    if lengths is not None:
        lt = torch.as_tensor(lengths, dtype=torch.float64)
        if lt.shape != (n,):
            raise ValueError(f"advantage estimator '{name}': lengths has shape {tuple(lt.shape)}, expected ({n},)")
        if not bool(torch.isfinite(lt).all()) or bool((lt < 0).any()):
            raise ValueError(f"advantage estimator '{name}': lengths must be finite and >= 0")
        facts["lengths"] = lt
    if correct is not None:
        ct = torch.as_tensor(correct).to(torch.bool)
        if ct.shape != (n,):
            raise ValueError(f"advantage estimator '{name}': correct has shape {tuple(ct.shape)}, expected ({n},)")
        facts["correct"] = ct
    if max_length is not None:
        if isinstance(max_length, bool) or int(max_length) != max_length or max_length <= 0:
            raise ValueError(f"advantage estimator '{name}': max_length must be a positive int, got {max_length!r}")
        facts["max_length"] = int(max_length)
    if entropies is not None:
        et = torch.as_tensor(entropies, dtype=torch.float64)
        if et.shape != (n,):
            raise ValueError(f"advantage estimator '{name}': entropies has shape {tuple(et.shape)}, expected ({n},)")
        if not bool(torch.isfinite(et).all()):
            raise ValueError(f"advantage estimator '{name}': entropies must be finite")
        facts["entropies"] = et
    if step is not None:
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ValueError(f"advantage estimator '{name}': step must be an int >= 0, got {step!r}")
        facts["step"] = int(step)

    kwargs: dict[str, Any] = {}
    params = {p.name: p for p in keyword_params(fn)}
    for key, p in params.items():
        if key not in FACTS:
            continue
        if key in facts:
            kwargs[key] = facts[key]
        elif p.default is inspect.Parameter.empty:
            hint = (" (each sample's mean policy entropy: the trainer computes them when advantage_needs() "
                    "says 'entropy')") if key == "entropies" else ""
            raise ValueError(f"advantage estimator '{name}' needs {key}{hint}")

    valid = [k for k in params if k not in FACTS]
    for key, value in (options or {}).items():
        if key in TOKEN_OPTIONS:
            check_token_option(key, value)
            continue
        if key not in valid:
            close = difflib.get_close_matches(key, valid + list(TOKEN_OPTIONS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = f" (options: {sorted(valid)}" if valid else " (it takes no options of its own"
            raise ValueError(f"advantage estimator '{name}' has no option '{key}'{hint}{known}; "
                             f"per-token: {sorted(TOKEN_OPTIONS)})")
        kwargs[key] = _check_option(name, key, value, params[key].default)

    return fn(r, g, eps, **kwargs).to(torch.float32)


def table_advantages(algo, totals: list[float], table: list, max_length: int | None, step: int,
                     token_totals: list[list[float]] | None = None,
                     components: Mapping[str, list[float]] | None = None,
                     weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """:func:`compute_advantages` over the step's sample table with the facts the trainer has
    (``algo``: the recipe's ``algo`` section; entropies when the entropy pass ran): ``[N]``.
    ``algo.reward_aggregation: normalize_then_sum`` replaces the weighted sum ``totals`` by
    :func:`normalize_then_sum` of the ``components`` (unweighted, per reward) with their ``weights``.

    With per-token rewards (``token_totals``: per sample a list of ``sample.length`` values R[i, t])
    the advantages are ``[N, T_max]``, 0 past each sample's end (positions the loss mask excludes).
    Every (sample i, token position t) is scored as one pseudo-sample of the group "(group of i, t)",
    so a group estimator normalizes each token position within its group, and a batch statistic runs
    over the pseudo-samples (DECS, arXiv 2509.25827). ``algo.advantage_options.token_positions``
    says which pseudo-samples there are (formulas: :mod:`rl.algo.estimators`, "Per-token rewards"):

    - ``padded`` (default, as the DECS release pixas/DECS ``src_valid/valid_ray_trainer.py``,
      ``compute_grpo_proc_length_advantage_return``): each row is padded past its end with its
      first value R[i, 0] (DECS: r(1 + beta), or 0 for a wrong completion; the release's s(1 + beta))
      up to its group's longest completion, and all G rows of the group count at every position:
      ``grpo`` gives A[i, t] = (R[i, t] - mean_{g,t}) / (std_{g,t} + eps), mean and unbiased std
      over the G padded values;
    - ``reached``: only the completions that reach position t count (laconic before issue 24).

    The two agree when each group's completions have equal lengths. The pads enter the statistics
    only: their advantages are set to 0. The other facts (length, correctness, entropy) are the sample's.
    """
    if getattr(algo, "reward_aggregation", "sum_then_normalize") == "normalize_then_sum":
        if token_totals is not None:
            raise ValueError("algo.reward_aggregation=normalize_then_sum normalises scalar rewards; a reward returned "
                             "per-token values (DECS): use sum_then_normalize")
        if components is None or weights is None:
            raise ValueError("algo.reward_aggregation=normalize_then_sum needs each reward's values (components)")
        totals = normalize_then_sum(components, weights, [s.group for s in table], algo.reward_norm, algo.adv_eps).tolist()
    options = dict(algo.advantage_options or {})
    positions = check_token_option("token_positions", options.get("token_positions", TOKEN_OPTIONS["token_positions"]))
    ents = [s.entropy_mean for s in table]
    facts = dict(max_length=max_length, step=step, options=options)
    lengths = torch.tensor([s.length for s in table], dtype=torch.float64)
    correct = torch.tensor([bool(s.correct) for s in table])
    entropies = torch.tensor(ents, dtype=torch.float64) if ents and all(e is not None for e in ents) else None
    groups = torch.unique(torch.tensor([s.group for s in table], dtype=torch.long), return_inverse=True)[1]
    if token_totals is None:
        return compute_advantages(algo.advantage, totals, groups, algo.adv_eps, lengths=lengths, correct=correct,
                                  entropies=entropies, **facts)
    if len(token_totals) != len(table):
        raise ValueError(f"table_advantages: {len(token_totals)} per-token rows for {len(table)} samples")
    n_tok = torch.tensor([len(row) for row in token_totals], dtype=torch.long)  # [N] L_i
    T = int(n_tok.max()) if len(table) else 0
    pos = torch.arange(T)                                                          # [T]
    own = pos.unsqueeze(0) < n_tok.unsqueeze(1)                                    # [N, T] the sample's tokens
    if positions == "reached":
        counted = own
    else:  # every row of the group, up to the group's longest completion
        longest = torch.zeros(int(groups.max()) + 1 if len(table) else 0, dtype=torch.long)
        longest = longest.scatter_reduce(0, groups, n_tok, reduce="amax")         # [n_groups] T_g
        counted = pos.unsqueeze(0) < longest[groups].unsqueeze(1)                  # [N, T]
    pad = torch.tensor([row[0] if row else totals[i] for i, row in enumerate(token_totals)], dtype=torch.float64)
    rewards = pad.unsqueeze(1).expand(-1, T).clone()                               # [N, T] p_i everywhere ...
    for i, row in enumerate(token_totals):
        rewards[i, : len(row)] = torch.tensor(row, dtype=torch.float64)           # ... R[i, t] for t < L_i

    def spread(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, T)[counted]

    flat = compute_advantages(algo.advantage, rewards[counted], (groups.unsqueeze(1) * T + pos)[counted],
                              algo.adv_eps, lengths=spread(lengths), correct=spread(correct),
                              entropies=None if entropies is None else spread(entropies), **facts)
    out = torch.zeros(len(table), T, dtype=flat.dtype)
    out[counted] = flat
    return out.masked_fill(~own, 0.0)                                              # pads: never trained


def normalize_then_sum(components: Mapping[str, list[float]], weights: Mapping[str, float], groups: list[int],
                       scope: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GDPO's aggregation (arXiv 2601.05242; TRL ``multi_objective_aggregation: normalize_then_sum``):
    each reward k normalised on its own before the weighted sum, so no term swamps another whatever
    its scale, and the balance does not drift as the group's accuracy moves::

        z_k,i = (r_k,i - mean_k) / (std_k + eps)      over i's group (scope "group") or the batch ("batch")
        R_i   = sum_k w_k z_k,i

    (unbiased std; an all-equal set gives z = 0). ``R`` then goes to ``algo.advantage`` as the
    reward: with ``batch_std`` (group mean removed, batch std) this is TRL's and GDPO's advantage,
    the sum normalised over the batch. ``components``: per reward, one value per sample; ``[N]``.

    >>> z = normalize_then_sum({"c": [1, 0, 1, 1], "len": [0.2, 0.8, 0.5, 0.3]}, {"c": 1.0, "len": 0.5},
    ...                        [0, 0, 1, 1], eps=0.0)  # c: +-0.7071 then 0, 0; len: -+0.7071, +-0.7071, halved
    >>> [round(v, 6) for v in z.tolist()]
    [0.353553, -0.353553, 0.353553, -0.353553]
    """
    from rl.algo.estimators import group_stats

    if scope not in ("group", "batch"):
        raise ValueError(f"algo.reward_norm: '{scope}' is not one of ['group', 'batch']")
    g = torch.as_tensor(groups) if scope == "group" else torch.zeros(len(groups), dtype=torch.long)
    total = torch.zeros(len(groups), dtype=torch.float64)
    for name, values in components.items():
        r = torch.as_tensor(values, dtype=torch.float64)
        mean, std = group_stats(r, g)
        z = torch.where(std == 0, torch.zeros_like(r), (r - mean) / (std + eps))
        total += float(weights[name]) * z
    return total
