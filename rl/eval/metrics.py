r"""Evaluation metrics: pure functions, samples in, numbers out, shared by the trainer's eval and
``laconic eval`` (:mod:`rl.eval.evaluate` builds the report from them).

Definitions, for a prompt with ``n`` samples of which ``c`` are correct:

* **pass@1** - mean over prompts of ``c / n`` (the accuracy averaged over the k samples).
* **pass@k** - the unbiased estimator of Chen et al. 2021 (HumanEval, arXiv 2107.03374):
  ``E_prompts[1 - C(n-c, k) / C(n, k)]``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``
  (:func:`pass_at_k`); reported for k in 1, 2, 4, ... (powers of two <= n) and n itself
  (:func:`k_values`).
* **maj@k** - majority vote over the extracted answers of k samples (:func:`majority_vote`);
  for k < n averaged over the ``n // k`` disjoint consecutive blocks of k samples (in
  generation order), so maj@n is the vote over all samples.
* **tokens** - mean / median / p90 of completion lengths over all completions (EOS included);
  percentiles by linear interpolation (:func:`percentile`).
* **accuracy per 1k tokens** - ``pass@1 / (mean_tokens / 1000)``.
* **degeneration rate** - share of completions that :func:`is_degenerate` flags.
* **per prompt** (CASTILLO, arXiv 2505.16881): the length distribution of each prompt's samples
  (:func:`length_stats`); ``mean_length_std`` is the mean over prompts of the per-prompt std.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from statistics import mean
from typing import Any, Hashable, Sequence

from rewards.repetition import completion_tokens, repeated_ngram_stats


#: Defaults of :func:`is_degenerate` (also ``laconic eval``'s): n-gram size, repeated-n-gram
#: fraction threshold, tail window (tokens) and repeated share of the tail for a truncated loop.
DEGENERATION_DEFAULTS: dict[str, Any] = {"ngram": 4, "threshold": 0.5, "tail": 64, "tail_threshold": 0.5}


HEADLINE_KEYS = ("n_prompts", "n_completions", "pass@1", "pass@k", "maj@k", "mean_tokens", "median_tokens",
                 "p90_tokens", "truncation_rate", "accuracy_per_1k_tokens", "degeneration_rate", "mean_length_std")


def summarize(samples) -> dict[str, Any]:
    """accuracy, mean_tokens, truncation_rate over samples (each a rewards.base.Sample)."""
    if not samples:
        return {"n": 0, "accuracy": float("nan"), "mean_tokens": float("nan"), "truncation_rate": float("nan")}
    return {
        "n": len(samples),
        "accuracy": mean(float(bool(s.correct)) for s in samples),
        "mean_tokens": mean(s.length for s in samples),
        "truncation_rate": mean(float(s.truncated) for s in samples),
    }


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt with ``n`` samples, ``c`` correct: ``1 - C(n-c, k) / C(n, k)``.

    Computed stably as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (1 when ``n - c < k``).

    >>> pass_at_k(4, 1, 2), pass_at_k(5, 0, 3), pass_at_k(5, 5, 5), pass_at_k(4, 2, 1)
    (0.5, 0.0, 1.0, 0.5)
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def k_values(n: int) -> list[int]:
    """The k reported for ``n`` samples per prompt: powers of two <= n, and n itself.

    >>> k_values(1), k_values(4), k_values(6)
    ([1], [1, 2, 4], [1, 2, 4, 6])
    """
    if n < 1:
        return []
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


_NUM_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def vote_key(answer: str | None) -> str | None:
    """The form in which answers are compared by :func:`majority_vote`: whitespace collapsed, a
    final period, ``$..$`` and thousands separators dropped, numbers by value (``8.0`` = ``8``).
    Answers equivalent only mathematically (``1/2`` vs ``0.5``) stay different votes.

    >>> vote_key(" 1,234. "), vote_key("$8.0$"), vote_key("x +  1"), vote_key(None)
    ('1234', '8', 'x + 1', None)
    """
    if answer is None:
        return None
    a = " ".join(str(answer).split()).rstrip(".").strip()
    if len(a) >= 2 and a.startswith("$") and a.endswith("$"):
        a = a.strip("$").strip()
    plain = a.replace(",", "")
    if _NUM_RE.fullmatch(plain):
        try:
            d = Decimal(plain)
            d = d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()
            return str(d) if str(d) != "-0" else "0"
        except InvalidOperation:
            pass
    return a


def majority_vote(answers: Sequence[str | None], flags: Sequence[bool]) -> tuple[str | None, bool]:
    """Majority vote over extracted answers; returns ``(voted answer, whether it is correct)``.

    Answers are compared by :func:`vote_key`. The most frequent answer wins; a tie goes to the
    answer seen first. An unextractable answer (``None``) never wins unless every answer is
    ``None`` (then the vote is ``(None, False)``). ``flags[i]`` is whether sample i verified
    against the gold answer; the voted answer is correct iff its first occurrence verified.

    >>> majority_vote(["3", "5", "5", None, None, None], [False, True, True, False, False, False])
    ('5', True)
    >>> majority_vote(["3", "5", "5", "3"], [False, True, True, False])   # tie: "3" seen first
    ('3', False)
    """
    if len(answers) != len(flags):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(flags)} flags")
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, a in enumerate(answers):
        key = vote_key(a)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None, False
    best = min(counts, key=lambda key: (-counts[key], first[key]))  # most votes, then earliest seen
    i = first[best]
    return answers[i], bool(flags[i])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default ``method="linear"``): with ``x`` sorted and ``h = (len(x) - 1) * q / 100``,
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``. NaN when empty.

    >>> percentile([4, 1, 3, 2], 90), percentile([4, 1, 3, 2], 50), percentile([7], 10)
    (3.7, 2.5, 7.0)
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    x = sorted(float(v) for v in values)
    if not x:
        return float("nan")
    h = (len(x) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


def length_stats(lengths: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std`` (population, ddof=0), ``p10``/``p50``/``p90`` (:func:`percentile`),
    ``min`` and ``max`` of a list of lengths (all NaN when empty).

    >>> length_stats([1, 2, 3, 4])
    {'mean': 2.5, 'std': 1.118033988749895, 'p10': 1.3, 'p50': 2.5, 'p90': 3.7, 'min': 1.0, 'max': 4.0}
    """
    if not lengths:
        return dict.fromkeys(("mean", "std", "p10", "p50", "p90", "min", "max"), float("nan"))
    x = [float(v) for v in lengths]
    m = sum(x) / len(x)
    return {
        "mean": m,
        "std": math.sqrt(sum((v - m) ** 2 for v in x) / len(x)),
        "p10": percentile(x, 10),
        "p50": percentile(x, 50),
        "p90": percentile(x, 90),
        "min": min(x),
        "max": max(x),
    }


def repeat_mask(tokens: Sequence[Hashable], n: int) -> list[bool]:
    """Per position: whether it lies inside an n-gram occurrence that already occurred earlier
    (the positions counted as ``covered`` by :func:`rewards.repetition.repeated_ngram_stats`).

    >>> repeat_mask([1, 2, 3, 1, 2, 3, 1], 3)
    [False, False, False, True, True, True, True]
    """
    if n <= 0:
        raise ValueError(f"n-gram size must be a positive integer, got {n!r}")
    mask = [False] * len(tokens)
    seen: set[tuple[Hashable, ...]] = set()
    for start in range(len(tokens) - n + 1):
        gram = tuple(tokens[start : start + n])
        if gram in seen:
            mask[start : start + n] = [True] * n
        else:
            seen.add(gram)
    return mask


def is_degenerate(sample, ngram: int = 4, threshold: float = 0.5, tail: int = 64,
                  tail_threshold: float = 0.5, unit: str = "auto") -> bool:
    """Whether a completion degenerated into repetition. Tokens are
    :func:`rewards.repetition.completion_tokens` (``completion_ids`` when attached, else the
    lower-cased whitespace words). A completion is degenerate iff either

    1. **heavy repetition**: its fraction of repeated ``ngram``-grams (``1 - unique / total``,
       :func:`rewards.repetition.repeated_ngram_stats`) is ``> threshold``; or
    2. **truncated while looping**: it hit the length limit (``sample.truncated``) and more than
       ``tail_threshold`` of its last ``tail`` tokens lie inside ``ngram``-grams that already
       occurred earlier in the completion (:func:`repeat_mask`).

    >>> from rewards.base import Sample
    >>> is_degenerate(Sample("p", 0, completion_ids=[1, 2] * 10))      # 17 4-grams, 2 unique
    True
    >>> is_degenerate(Sample("p", 0, completion_ids=list(range(20))))
    False
    """
    tokens = completion_tokens(sample, unit)
    if repeated_ngram_stats(tokens, ngram)[0] > threshold:
        return True
    if sample.truncated and tokens:
        window = repeat_mask(tokens, ngram)[-tail:]
        return sum(window) / len(window) > tail_threshold
    return False


def nan_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


#: ThinkDial's beta_m of :func:`act`: accuracy only in high mode, accuracy and cost equally in the others.
ACT_BETAS: dict[str, float] = {"high": 1.0, "medium": 0.5, "low": 0.5}


def act(results: dict[str, tuple[float, float]], peak: tuple[float, float],
        betas: dict[str, float] | None = None) -> dict[str, float]:
    """ThinkDial's Accuracy-Cost Trade-off (arXiv 2508.18773; no released code): per mode m,
    ``beta_m * A_m + (1 - beta_m) * C_m`` with ``A_m = Acc_m / Acc_peak`` and ``C_m = 1 - Cost_m / Cost_peak``,
    and ``average`` = their mean over the modes (ACT). ``results`` maps a mode to its (accuracy, cost) -
    cost in tokens, e.g. a mean completion length - and ``peak`` is the (accuracy, cost) of the peak model (the
    paper: its phase-1 checkpoint). The paper reports it x 100; A_m may exceed 1.

    >>> r = act({"high": (0.82, 9000), "medium": (0.76, 5000), "low": (0.72, 2500)}, peak=(0.8, 10000))
    >>> {k: round(v, 6) for k, v in r.items()}
    {'high': 1.025, 'medium': 0.725, 'low': 0.825, 'average': 0.858333}
    """
    betas = ACT_BETAS if betas is None else betas
    acc_peak, cost_peak = peak
    if not results or acc_peak <= 0 or cost_peak <= 0:
        raise ValueError(f"act needs results for at least one mode and a peak with accuracy > 0 and cost > 0, "
                         f"got {len(results)} mode(s) and peak {peak}")
    unknown = [m for m in results if m not in betas]
    if unknown:
        raise ValueError(f"act: no beta for mode(s) {unknown} (betas: {betas})")
    out = {m: betas[m] * acc / acc_peak + (1 - betas[m]) * (1 - cost / cost_peak) for m, (acc, cost) in results.items()}
    out["average"] = math.fsum(out.values()) / len(results)
    return out


def act_summary(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """``{"act": ...}`` of a run evaluated with ``eval.modes``: :func:`act` of each mode "after" against the
    "before" evaluation in high mode, the peak (ThinkDial's phase 2 starts from the phase-1 model, which the
    paper takes as the peak); cost = mean completion tokens. ``{}`` without per-mode evaluations or a
    high-mode "before".

    >>> act_summary({"modes": {"high": {"accuracy": 0.8, "mean_tokens": 100.0}}},
    ...             {"modes": {"high": {"accuracy": 0.8, "mean_tokens": 90.0}, "low": {"accuracy": 0.6, "mean_tokens": 25.0}}})
    {'act': {'high': 1.0, 'low': 0.75, 'average': 0.875}}
    """
    peak = ((before or {}).get("modes") or {}).get("high")
    modes = (after or {}).get("modes")
    if not peak or not modes or not peak["accuracy"] > 0 or not peak["mean_tokens"] > 0:
        return {}
    return {"act": act({m: (e["accuracy"], e["mean_tokens"]) for m, e in modes.items()},
                       peak=(peak["accuracy"], peak["mean_tokens"]))}
