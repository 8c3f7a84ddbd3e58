"""Advantage estimators and their registry: one scalar per sample from the global rewards and group ids.

Registered by name (``algo.advantage`` in a recipe), in the spirit of verl's ``register_adv_est``.
Every estimator is a pure function ``(rewards[N], groups[N], eps, *, <facts>, <options>) ->
advantages[N]``; the keyword-only part is optional (see "Facts and options" below).

- ``grpo``      A_i = (r_i - mean_g) / (std_g + eps)          (GRPO, DeepSeekMath; std unbiased)
- ``batch_std`` A_i = (r_i - mean_g) / (std_B(r - mean_g) + eps)  (DLER, arXiv 2510.15110: group
                baseline, then one scale for the whole batch, so easy and hard groups keep
                their relative weight; NVlabs/DLER)
- ``none``      A_i = r_i - mean_g                             (Dr.GRPO: no std scaling)
- ``rloo``      A_i = r_i - mean_{j in g, j != i} r_j = G/(G-1) * (r_i - mean_g)
                (RLOO, Ahmadian et al. 2024 "Back to Basics", arXiv 2402.14740: leave-one-out
                baseline; a group of one sample has no baseline and gets 0)
- ``reinforce_pp_baseline``  (REINFORCE++-baseline, Hu et al., arXiv 2501.03262; OpenRLHF's
                ``reinforce_baseline``). Fact: ``lengths``. a_i = r_i - mean_g, then whitened
                over the batch's *tokens*: each sample's a_i counts once per completion token,
                    mu      = sum_i L_i a_i / sum_i L_i
                    sigma^2 = sum_i L_i (a_i - mu)^2 / sum_i L_i     (population variance)
                    A_i     = (a_i - mu) / (sigma + eps)
                This is OpenRLHF's masked mean/variance over action tokens when the per-token
                return is the sequence reward (gamma = 1, KL kept out of the reward). OpenRLHF
                scales by ``rsqrt(max(var, 1e-8))``; we use ``sigma + eps`` like the other
                estimators. Zero-length samples carry weight 0 but still get (a_i - mu)/(sigma+eps).
                If sum_i L_i = 0, or sigma = 0, the values are returned unscaled (a_i, resp.
                a_i - mu). Unlike the group-normalised estimators, a zero-variance group does
                *not* get 0 here (its samples are shifted by -mu/(sigma+eps)).
- ``drpo``      DRPO-style decoupling (Li et al., "DRPO: Efficient Reasoning via Decoupled Reward
                Policy Optimization", arXiv 2510.04474), adapted to a GRPO objective rather than
                the paper's DisCO one. Facts: ``lengths``, optionally ``max_length``. Option:
                ``temperature`` (lambda, default 0.1). With base advantages B = grpo(r), per
                group g the positive set P_g = {i in g : B_i > 0} shares its total mass:
                    r_len,i = 1 - L_i / C
                    w_i     = softmax_{i in P_g}(r_len,i / lambda)
                    A_i     = w_i * sum_{j in P_g} B_j      for i in P_g;   A_i = B_i otherwise
                C is the generation limit ``max_length`` when known, else the longest completion
                in the group (C = 0, i.e. all lengths 0, gives r_len = 1: an equal split).
                Consequences: a positive sample never gets a negative advantage (a correct but
                long answer is never pushed down, the paper's point); among positives, shorter
                gets more; the group's positive mass sum_{P_g} A is unchanged; non-positive
                samples keep their GRPO advantage; all-equal groups (all correct / all wrong) get
                0; lambda -> infinity gives an equal split. Positivity is taken from the base
                advantage rather than the ``correct`` fact so that the estimator works for any
                outcome reward (for 0/1 correctness P_g is exactly the correct completions; with
                e.g. DLER's 0 for truncated answers, P_g is whatever beat the group mean).
- ``canon``     CANON, conditional advantage estimation (Chen et al., arXiv 2509.23962; released
                code biuboomc/CANON ``verl/trainer/ppo/core_algos.py``,
                ``compute_dr_length_on_mean_group_outcome_advantage`` and
                ``compute_dr_entropy_per_token_group_outcome_advantage``). Option ``split``:
                ``length`` (fact ``lengths``) or ``entropy`` (fact ``entropies``, each sample's
                mean token entropy under the training policy; :func:`advantage_needs` tells the
                trainer to compute them, as for rewards that declare ``needs = {"entropy"}``).
                Each group is sorted by the key (stable: ties keep sample order) and split at
                n//2 into a lower half Lo (the n//2 smallest) and an upper half Up (the rest; the
                odd one out goes there), with reward means mu_Lo, mu_Up. Options ``alpha`` (1),
                ``beta`` (0), ``lam`` (lambda, 1). Length split (Lo = short, Up = long):
                    long  i in Up:  A_i = lam (alpha r_i - mu_Lo + beta) + (1 - lam)(r_i - mu_Up)
                    short i in Lo:  A_i = lam (r_i - alpha mu_Up - beta) + (1 - lam)(r_i - mu_Lo)
                Entropy split (alpha sits on the low side, as in the released code):
                    high  i in Up:  A_i = lam (r_i - alpha mu_Lo + beta) + (1 - lam)(r_i - mu_Up)
                    low   i in Lo:  A_i = lam (alpha r_i - mu_Up - beta) + (1 - lam)(r_i - mu_Lo)
                The first term compares across the halves (which trend earns more reward), the
                second within a half. lam = 1/2, alpha = 1, beta = 0 is Dr.GRPO (r_i - mean_g) for
                an even group. No std scaling. The paper's 1/L_max factor is not applied here: the
                released code divides by the response limit only with verl's
                "seq-mean-token-sum" loss, and laconic's ``algo.loss_agg:
                seq-mean-token-sum-norm`` already divides by L_norm (``rollout.max_new_tokens``).
                Our choices: a group of one sample gets 0 (the code gives it r_i); a group whose
                keys are all equal has no split and gets Dr.GRPO's r_i - mean_g.
                ``lambda_schedule`` (``constant`` | ``cosine_restart`` | ``accuracy``) replaces
                ``lam`` by a value per step (the code's ``*_cosine_restart[_r]`` and ``*_annel``):
                    cosine_restart (fact ``step``): after the warm-up (step >= W)
                        w = (1 + cos(pi e / C)) / 2, e = (step - W) mod C, C = (T - W) // K;
                        lam = lambda_base + (lambda_peak - lambda_base) w. During it (step < W)
                        lam = s + (lambda_peak - s) (step+1)/W, rising from s =
                        ``lambda_warmup_from``; by default the code's: 1 when the schedule falls
                        (peak < base), 0 when it rises (its ``cosine_annealing_with_restart``
                        warms up from 0, whatever its floor), so (step+1)/W for "cosine_restart_r".
                        W = ``lambda_warmup`` (30), T = ``lambda_steps`` (150), K = ``lambda_cycles``
                        (3). base 1, peak 0.4 is the code's "cosine_restart" (lam = 1 - 0.6 w);
                        base 0.4, peak 1 its "cosine_restart_r" (lam = 0.4 + 0.6 w).
                        ``lambda_warmup_from: 0.4`` (= base) gives "cosine_restart_r" a floor in the
                        warm-up (laconic's schedule before issue 24: 0.42 at step 0, not 1/30).
                    accuracy: lam = the batch's mean reward, clipped to [0, 1] (the code's "annel",
                        for 0/1 rewards; the clip is ours).

``mean_g``/``std_g`` are over the sample's group; ``std_B`` over all samples of the step.
Standard deviations use Bessel's correction (``torch.std``), as TRL and verl do; a group or batch
with a single sample has std 0 by convention (advantage 0 after centring). A group whose rewards
are all equal has mean exactly that value (no rounding residue) and std 0, and a zero std gives
advantage 0 even with ``eps = 0``.

Facts and options
-----------------
Keyword-only parameters of an estimator are of two kinds, told apart by name:

- facts (:data:`FACTS`): ``lengths`` (float64 tensor[N], completion tokens), ``correct`` (bool
  tensor[N]), ``max_length`` (int, the current generation limit), ``entropies`` (float64
  tensor[N], each sample's mean policy entropy over its completion tokens, ``Sample.entropy_mean``),
  ``step`` (int, the training step). A fact declared without a
  default is required: :func:`rl.algo.advantages.compute_advantages` raises if the caller did not supply it. A fact
  declared with a default is optional and passed only when supplied (not None).
- options: every other keyword-only parameter; it must have a default, and a recipe may override
  it through ``algo.advantage_options`` (the ``options`` dict). Unknown option keys are rejected
  with the closest valid name. :func:`advantage_option_names` lists them for the config validator.
- per-token options (:data:`TOKEN_OPTIONS`): accepted by every estimator in the same dict, but read
  by :func:`rl.algo.advantages.table_advantages`, never passed to the estimator; they only matter
  when a reward is per-token (DECS). An estimator may not declare a parameter of the same name.

Per-token rewards (DECS, arXiv 2509.25827)
------------------------------------------
With per-token rewards R[i, t] (sample i of length L_i, t < L_i) the estimator runs once over
pseudo-samples (i, t) whose group is (group of i, t): ``grpo`` then normalizes each token position
within its group. Option ``token_positions`` says which pseudo-samples there are:

- ``padded`` (default; the release, pixas/DECS ``src_valid/valid_ray_trainer.py``,
  ``compute_grpo_proc_length_advantage_return``, the estimator ``grpo_proc_length`` of its main
  script ``scripts/train/local/train_rl_chunk_local.sh``): every row is padded with its own value
  p_i past its end, and every position t < T_g (T_g = the group's longest completion) counts all
  G rows of the group, padding included:
      mean_{g,t} = (1/G) sum_{j in g} X[j, t]
      std_{g,t}  = sqrt( sum_{j in g} (X[j, t] - mean_{g,t})^2 / (G - 1) )      (unbiased, torch.std)
      A[i, t]    = (R[i, t] - mean_{g,t}) / (std_{g,t} + eps)       for t < L_i;  0 for t >= L_i
  with X[j, t] = R[j, t] for t < L_j and p_j after. p_i = R[i, 0], the row's first value: for
  DECS r(1 + beta) for a correct completion (its first token is never redundant) and 0 for a
  wrong one. That is the release's padding: it fills every row, to the batch's full response
  width, with s(1 + beta) (s: the sequence score, the row sum of the token-level rewards) and
  overwrites only the redundant span, which lies inside the response; the loss then multiplies
  by the response mask. ``grpo_proc_length`` always builds these full-width rows; the release's
  other variant, ``rpp_proc_length`` (defined, not dispatched), builds them (padded with s) only
  with ``no_zero_adv=True``, the setting of the main script, and with ``no_zero_adv=False`` takes
  the mean over the completions that reach t only, as ``reached`` below. A sample of length 0 is
  padded with its scalar total. Positions no completion of the group reaches (t >= T_g) are left
  out: the release's rows go on to the batch width, but there they train nothing and change no
  group statistic. eps is ``algo.adv_eps`` (default 1e-6, the release's fixed epsilon).
- ``reached`` (laconic before issue 24): only the completions that reach position t count,
  mean and std over {R[j, t] : j in g, L_j > t}; a position only one completion reaches is a
  group of one (advantage 0).

The two agree whenever the completions of each group have equal lengths. Either way the result is
``[N, T_max]`` with 0 past each sample's end, and the loss masks those positions: the pads enter
the statistics only, they are never trained. A batch statistic (``batch_std``,
``reinforce_pp_baseline``) runs over the pseudo-samples too, so with ``padded`` it counts the
pads within each group. Differences from the release: a group of one completion gets 0 (the
release: mean 0, std 1, i.e. A = R/(1 + eps)); a group whose values at t are all equal gets
exactly 0 (the release: 0 up to rounding).
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, Callable, Mapping

import torch

AdvantageFn = Callable[..., torch.Tensor]
ADVANTAGES: dict[str, AdvantageFn] = {}
FACTS: tuple[str, ...] = ("lengths", "correct", "max_length", "entropies", "step")
TOKEN_POSITIONS: tuple[str, ...] = ("padded", "reached")
#: Options of the per-token path (see "Per-token rewards" above), valid for every estimator, with defaults.
TOKEN_OPTIONS: dict[str, Any] = {"token_positions": "padded"}


def keyword_params(fn: AdvantageFn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def deco(fn: AdvantageFn) -> AdvantageFn:
        for p in keyword_params(fn):
            if p.name not in FACTS and p.default is inspect.Parameter.empty:
                raise TypeError(f"advantage estimator '{name}': option '{p.name}' needs a default")
            if p.name in TOKEN_OPTIONS:
                raise TypeError(f"advantage estimator '{name}': '{p.name}' is a per-token option of every estimator")
        ADVANTAGES[name] = fn
        return fn

    return deco


def get_estimator(name: str) -> AdvantageFn:
    if name not in ADVANTAGES:
        close = difflib.get_close_matches(name, list(ADVANTAGES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown advantage estimator '{name}'{hint} (known: {sorted(ADVANTAGES)})")
    return ADVANTAGES[name]


def advantage_option_names(name: str) -> list[str]:
    """The options (``algo.advantage_options`` keys) estimator ``name`` accepts, sorted: its own
    and the per-token ones (:data:`TOKEN_OPTIONS`)."""
    return sorted([p.name for p in keyword_params(get_estimator(name)) if p.name not in FACTS] + list(TOKEN_OPTIONS))


def advantage_option_defaults(name: str) -> dict[str, Any]:
    """The options of estimator ``name`` with their default values (the per-token ones included)."""
    own = {p.name: p.default for p in keyword_params(get_estimator(name)) if p.name not in FACTS}
    return {**own, **TOKEN_OPTIONS}


def check_token_option(key: str, value: Any) -> Any:
    """``value`` of per-token option ``key`` (:data:`TOKEN_OPTIONS`), checked."""
    if key == "token_positions" and value not in TOKEN_POSITIONS:
        raise ValueError(f"algo.advantage_options: token_positions must be one of {list(TOKEN_POSITIONS)}, "
                         f"got {value!r}")
    return value


def advantage_facts(name: str) -> dict[str, bool]:
    """The facts estimator ``name`` declares, each mapped to whether it is required."""
    return {
        p.name: p.default is inspect.Parameter.empty for p in keyword_params(get_estimator(name)) if p.name in FACTS
    }


def advantage_needs(name: str, options: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Expensive per-sample facts estimator ``name`` (with ``options``) needs, in the rewards'
    ``needs`` vocabulary: ``{"entropy"}`` when it requires ``entropies`` or its options ask for
    them (``canon`` with ``split: entropy``); the trainer then runs the entropy pass."""
    fn = get_estimator(name)
    needs = {"entropy"} if advantage_facts(name).get("entropies") else set()
    return frozenset(needs | set(getattr(fn, "needs_for", lambda o: ())(dict(options or {}))))


# ----------------------------------------------------------------------------- shared statistics
def _std(x: torch.Tensor) -> torch.Tensor:
    return x.std() if x.numel() > 1 else torch.zeros((), dtype=x.dtype)


def group_stats(rewards: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and std of the sample's group (exactly r and 0 for an all-equal group)."""
    mean = torch.empty_like(rewards)
    std = torch.empty_like(rewards)
    for g in torch.unique(groups):
        idx = groups == g
        r = rewards[idx]
        if bool((r == r[0]).all()):
            mean[idx] = r[0]
            std[idx] = 0.0
        else:
            mean[idx] = r.mean()
            std[idx] = _std(r)
    return mean, std


def _scale(x: torch.Tensor, std: torch.Tensor, eps: float) -> torch.Tensor:
    """x / (std + eps), with 0 where std is 0 (x is then 0 too, up to eps = 0 giving 0/0)."""
    return torch.where(std == 0, torch.zeros_like(x), x / (std + eps))


# ----------------------------------------------------------------------------- estimators
@register_advantage("grpo")
def grpo(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, std = group_stats(rewards, groups)
    return _scale(rewards - mean, std, eps)


@register_advantage("batch_std")
def batch_std(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    centred = rewards - mean
    return _scale(centred, _std(centred).expand_as(centred), eps)


@register_advantage("none")
def no_std(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    return rewards - mean


@register_advantage("identity")
def identity(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The reward itself, no baseline: for rewards that carry their own (AdaptThink, arXiv
    2505.13417: ``r - Rbar_ref(x)`` with the initial model's accuracy as the baseline)."""
    return rewards.clone()


@register_advantage("rloo")
def rloo(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    adv = torch.zeros_like(rewards)
    for g in torch.unique(groups):
        idx = groups == g
        n = int(idx.sum())
        if n > 1:
            adv[idx] = n / (n - 1) * (rewards[idx] - mean[idx])
    return adv


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline(
    rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6, *, lengths: torch.Tensor
) -> torch.Tensor:
    mean, _ = group_stats(rewards, groups)
    centred = rewards - mean
    w = lengths.to(centred.dtype)
    total = w.sum()
    if total <= 0:
        return centred
    carried = centred[w > 0]
    if bool((carried == carried[0]).all()):  # one value over all tokens: exact mean, no spread
        mu = carried[0]
        sigma = torch.zeros((), dtype=centred.dtype)
    else:
        mu = (w * centred).sum() / total
        sigma = ((w * (centred - mu) ** 2).sum() / total).sqrt()
    shifted = centred - mu
    if sigma == 0:
        return shifted
    return shifted / (sigma + eps)


@register_advantage("drpo")
def drpo(
    rewards: torch.Tensor,
    groups: torch.Tensor,
    eps: float = 1e-6,
    *,
    lengths: torch.Tensor,
    max_length: int | None = None,
    temperature: float = 0.1,
) -> torch.Tensor:
    if not temperature > 0:
        raise ValueError(f"advantage estimator 'drpo': temperature must be > 0, got {temperature}")
    base = grpo(rewards, groups, eps)
    adv = base.clone()
    lengths = lengths.to(base.dtype)
    for g in torch.unique(groups):
        idx = torch.nonzero(groups == g).flatten()
        pos = idx[base[idx] > 0]
        if pos.numel() == 0:
            continue
        cap = float(max_length) if max_length is not None else float(lengths[idx].max())
        r_len = 1.0 - lengths[pos] / cap if cap > 0 else torch.ones_like(lengths[pos])
        weights = torch.softmax(r_len / temperature, dim=0)
        adv[pos] = weights * base[pos].sum()
    return adv


LAMBDA_SCHEDULES = ("constant", "cosine_restart", "accuracy")
CANON_SPLITS = ("length", "entropy")


def _exact_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x``; exactly the value when all entries agree (no rounding residue)."""
    return x[0] if bool((x == x[0]).all()) else x.mean()


def canon_lambda(schedule: str, lam: float, step: int | None, rewards: torch.Tensor, base: float, peak: float,
                 warmup: int, steps: int, cycles: int, warmup_from: float | None = None) -> float:
    """CANON's lambda for this step (see the module docstring, ``canon``).

    >>> [round(canon_lambda("cosine_restart", 1.0, s, torch.zeros(1), 0.4, 1.0, 30, 150, 3), 4) for s in (0, 1, 29, 50)]
    [0.0333, 0.0667, 1.0, 0.7]
    """
    if schedule == "constant":
        return lam
    if schedule == "accuracy":
        return min(1.0, max(0.0, float(rewards.mean()))) if rewards.numel() else lam
    if schedule != "cosine_restart":
        raise ValueError(f"advantage estimator 'canon': lambda_schedule must be one of {LAMBDA_SCHEDULES}, got {schedule!r}")
    if step is None:
        raise ValueError("advantage estimator 'canon': lambda_schedule=cosine_restart needs step")
    if warmup < 0 or cycles < 1 or steps <= warmup:
        raise ValueError("advantage estimator 'canon': cosine_restart needs lambda_warmup >= 0, "
                         f"lambda_cycles >= 1 and lambda_steps > lambda_warmup (got {warmup}, {cycles}, {steps})")
    if step < warmup:  # the code's warm-up: from 1 (falling schedule) or 0 (rising), not from base
        start = warmup_from if warmup_from is not None else base if peak == base else 1.0 if peak < base else 0.0
        return start + (peak - start) * (step + 1) / warmup
    else:
        period = max(1, (steps - warmup) // cycles)
        w = 0.5 * (1.0 + math.cos(math.pi * ((step - warmup) % period) / period))
    return base + (peak - base) * w


def _canon(rewards: torch.Tensor, groups: torch.Tensor, key: torch.Tensor, alpha: float, beta: float,
           lam: float, alpha_on_upper: bool) -> torch.Tensor:
    """CANON with the halves split on ``key``; ``alpha_on_upper``: alpha weighs the upper half's
    rewards (length split) rather than the lower half's (entropy split)."""
    adv = torch.zeros_like(rewards)
    for g in torch.unique(groups):
        idx = torch.nonzero(groups == g).flatten()
        n = idx.numel()
        if n < 2:
            continue
        r, k = rewards[idx], key[idx]
        if bool((k == k[0]).all()):  # nothing to split on: Dr.GRPO
            adv[idx] = r - _exact_mean(r)
            continue
        order = torch.sort(k, stable=True).indices
        lower, upper = order[: n // 2], order[n // 2 :]
        mu_lo, mu_up = _exact_mean(r[lower]), _exact_mean(r[upper])
        a_up, a_lo = (alpha, 1.0) if alpha_on_upper else (1.0, alpha)
        out = torch.empty_like(r)
        out[upper] = lam * (a_up * r[upper] - a_lo * mu_lo + beta) + (1 - lam) * (r[upper] - mu_up)
        out[lower] = lam * (a_lo * r[lower] - a_up * mu_up - beta) + (1 - lam) * (r[lower] - mu_lo)
        adv[idx] = out
    return adv


@register_advantage("canon")
def canon(
    rewards: torch.Tensor,
    groups: torch.Tensor,
    eps: float = 1e-6,
    *,
    lengths: torch.Tensor | None = None,
    entropies: torch.Tensor | None = None,
    step: int | None = None,
    split: str = "length",
    alpha: float = 1.0,
    beta: float = 0.0,
    lam: float = 1.0,
    lambda_schedule: str = "constant",
    lambda_base: float = 1.0,
    lambda_peak: float = 0.4,
    lambda_warmup: int = 30,
    lambda_steps: int = 150,
    lambda_cycles: int = 3,
    lambda_warmup_from: float | None = None,
) -> torch.Tensor:
    if split not in CANON_SPLITS:
        raise ValueError(f"advantage estimator 'canon': split must be one of {CANON_SPLITS}, got {split!r}")
    key = lengths if split == "length" else entropies
    if key is None:
        fact = "lengths" if split == "length" else "entropies"
        raise ValueError(f"advantage estimator 'canon' with split={split} needs {fact}")
    lam = canon_lambda(lambda_schedule, lam, step, rewards, lambda_base, lambda_peak, lambda_warmup,
                       lambda_steps, lambda_cycles, lambda_warmup_from)
    return _canon(rewards, groups, key, alpha, beta, lam, alpha_on_upper=split == "length")


canon.needs_for = lambda options: frozenset({"entropy"}) if options.get("split") == "entropy" else frozenset()




