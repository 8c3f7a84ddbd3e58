r"""Held-out evaluation: accuracy and length metrics (the trainer's eval and ``laconic eval``).

:func:`evaluate` is the trainer's eval: prompts are sharded over processes; results are gathered
so every process returns the same numbers. Evaluation runs under its own seed inside
``torch.random.fork_rng``: it neither consumes nor depends on the training RNG, so training is
reproducible with or without it.

The metric functions below are pure (samples in, numbers out) and shared with ``laconic eval``
(:mod:`rl.eval_cli`). Definitions, for a prompt with ``n`` samples of which ``c`` are correct:

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
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from statistics import mean
from typing import Any, Hashable, Sequence

import torch

from rewards.repetition import completion_tokens, repeated_ngram_stats
from rewards.verify import extract_answer

from .data import Prompt
from .facts import make_samples
from .rollout import RolloutEngine, SamplingParams

__all__ = [
    "DEGENERATION_DEFAULTS",
    "eval_report",
    "evaluate",
    "is_degenerate",
    "k_values",
    "length_stats",
    "majority_vote",
    "pass_at_k",
    "percentile",
    "repeat_mask",
    "summarize",
    "to_markdown",
]

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


# --------------------------------------------------------------------------- pure metric functions


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


# ------------------------------------------------------------------------------------ reports


def _nan_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _prompt_records(samples, delimiter: str | None, degeneration: dict[str, Any]) -> list[dict[str, Any]]:
    """Samples grouped by ``Sample.group`` (order of first appearance), with per-sample facts."""
    groups: dict[Any, list] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    records = []
    for g, rows in groups.items():
        records.append({
            "group": g,
            "samples": rows,
            "meta": dict(rows[0].meta),
            "correct": [bool(s.correct) for s in rows],
            "answers": [extract_answer(s.completion, delimiter=delimiter, fallback_last_number=True) for s in rows],
            "lengths": [s.length for s in rows],
            "truncated": [bool(s.truncated) for s in rows],
            "degenerate": [is_degenerate(s, **degeneration) for s in rows],
        })
    return records


def _maj_at(record: dict[str, Any], k: int) -> float:
    blocks = len(record["answers"]) // k
    votes = [majority_vote(record["answers"][b * k : (b + 1) * k], record["correct"][b * k : (b + 1) * k])[1]
             for b in range(blocks)]
    return _nan_mean([float(v) for v in votes])


def _headline(records: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    lengths = [x for r in records for x in r["lengths"]]
    pass1 = _nan_mean([pass_at_k(len(r["correct"]), sum(r["correct"]), 1) for r in records])
    mean_tokens = _nan_mean(lengths)
    return {
        "n_prompts": len(records),
        "n_completions": len(lengths),
        "pass@1": pass1,
        "pass@k": {str(k): _nan_mean([pass_at_k(len(r["correct"]), sum(r["correct"]), k) for r in records])
                   for k in ks},
        "maj@k": {str(k): _nan_mean([_maj_at(r, k) for r in records]) for k in ks},
        "mean_tokens": mean_tokens,
        "median_tokens": percentile(lengths, 50),
        "p90_tokens": percentile(lengths, 90),
        "truncation_rate": _nan_mean([float(t) for r in records for t in r["truncated"]]),
        "accuracy_per_1k_tokens": pass1 / (mean_tokens / 1000) if mean_tokens > 0 else float("nan"),
        "degeneration_rate": _nan_mean([float(d) for r in records for d in r["degenerate"]]),
        "mean_length_std": _nan_mean([length_stats(r["lengths"])["std"] for r in records]),
    }


def _sort_key(value: str) -> tuple[int, float, str]:
    try:
        return 0, float(value), value
    except ValueError:
        return 1, 0.0, value


def _breakdown(records: list[dict[str, Any]], key: str, ks: list[int]) -> dict[str, Any]:
    by: dict[str, list] = defaultdict(list)
    for r in records:
        if key in r["meta"]:
            by[str(r["meta"][key])].append(r)
    return {name: _headline(by[name], ks) for name in sorted(by, key=_sort_key)}


def eval_report(samples, k: int | None = None, *, delimiter: str | None = "</think>", source_key: str = "source",
                degeneration: dict[str, Any] | None = None, per_prompt: bool = True) -> dict[str, Any]:
    """Headline metrics (module docstring) of ``samples`` (``rewards.base.Sample``), with
    ``by_difficulty`` (``meta["difficulty"]``), ``by_source`` (``meta[source_key]``) and,
    with ``per_prompt``, one entry per prompt.

    A prompt is a ``Sample.group``; its samples are taken in list order (generation order). pass@k
    and maj@k are reported for :func:`k_values` of ``k`` (default: the smallest number of samples
    of any prompt; it may not exceed that). ``delimiter`` is where answers are read after (for
    maj@k, as in correctness); ``degeneration`` overrides :data:`DEGENERATION_DEFAULTS`.
    Breakdowns contain only prompts that have the meta key; prompts are grouped by ``str(value)``.

    Keys: ``n_prompts, n_completions, pass@1, pass@k {"1": .., "2": ..}, maj@k {..}, mean_tokens,
    median_tokens, p90_tokens, truncation_rate, accuracy_per_1k_tokens, degeneration_rate,
    mean_length_std, by_difficulty {d: headline}, by_source {s: headline}, per_prompt [..]``;
    a ``per_prompt`` entry: ``id, group, n, n_correct, n_truncated, n_degenerate, mean, std, p10,
    p50, p90, min, max`` (tokens, :func:`length_stats`) and ``difficulty`` / ``source`` if known.
    """
    deg = {**DEGENERATION_DEFAULTS, **(degeneration or {})}
    unknown = set(deg) - set(DEGENERATION_DEFAULTS) - {"unit"}
    if unknown:
        raise ValueError(f"unknown degeneration options {sorted(unknown)} (known: {sorted(DEGENERATION_DEFAULTS)})")
    records = _prompt_records(samples, delimiter, deg)
    n_min = min((len(r["correct"]) for r in records), default=0)
    if k is None:
        k = n_min
    elif records and not 1 <= k <= n_min:
        raise ValueError(f"eval_report: k={k} but some prompt has only {n_min} samples")
    ks = k_values(k)
    out = _headline(records, ks)
    out["by_difficulty"] = _breakdown(records, "difficulty", ks)
    out["by_source"] = _breakdown(records, source_key, ks)
    if per_prompt:
        out["per_prompt"] = []
        for r in records:
            entry: dict[str, Any] = {
                "id": r["samples"][0].prompt_id,
                "group": r["group"],
                "n": len(r["correct"]),
                "n_correct": sum(r["correct"]),
                "n_truncated": sum(r["truncated"]),
                "n_degenerate": sum(r["degenerate"]),
                **length_stats(r["lengths"]),
            }
            for key, name in (("difficulty", "difficulty"), (source_key, "source")):
                if key in r["meta"]:
                    entry[name] = r["meta"][key]
            out["per_prompt"].append(entry)
    return out


# ----------------------------------------------------------------------------------- markdown


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def _row_cells(h: dict[str, Any], k_max: str | None) -> list[str]:
    return [
        _fmt(h["n_prompts"]), _fmt(h["n_completions"]), _fmt(h["pass@1"]),
        _fmt(h["pass@k"].get(k_max)) if k_max else "-", _fmt(h["maj@k"].get(k_max)) if k_max else "-",
        _fmt(h["mean_tokens"], 1), _fmt(h["median_tokens"], 1), _fmt(h["p90_tokens"], 1),
        _fmt(h["truncation_rate"]), _fmt(h["accuracy_per_1k_tokens"]), _fmt(h["degeneration_rate"]),
    ]


def _table(title: str, groups: dict[str, dict[str, Any]], k_max: str | None) -> list[str]:
    k = k_max or "k"
    header = [title, "prompts", "completions", "pass@1", f"pass@{k}", f"maj@{k}", "mean tok", "median tok",
              "p90 tok", "trunc", "acc/1k tok", "degen"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, h in groups.items():
        lines.append("| " + " | ".join([str(name)] + _row_cells(h, k_max)) + " |")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    """A markdown summary of :func:`eval_report`'s (or ``laconic eval``'s) report: a headline
    table (metric | value, every pass@k and maj@k), then by-difficulty and by-source tables
    (columns at the largest k). Rates with 3 decimals, token counts with 1."""
    lines = []
    if report.get("model") is not None:
        where = f" on {report['data']}" if report.get("data") else ""
        split = f" ({report['split']})" if report.get("split") else ""
        lines += [f"## {report['model']}{where}{split}", ""]
    rows = [("prompts", _fmt(report["n_prompts"])), ("completions", _fmt(report["n_completions"]))]
    if "1" not in report["pass@k"]:
        rows.append(("pass@1", _fmt(report["pass@1"])))
    rows += [(f"pass@{k}", _fmt(v)) for k, v in report["pass@k"].items()]
    rows += [(f"maj@{k}", _fmt(v)) for k, v in report["maj@k"].items()]
    rows += [("mean tokens", _fmt(report["mean_tokens"], 1)), ("median tokens", _fmt(report["median_tokens"], 1)),
             ("p90 tokens", _fmt(report["p90_tokens"], 1)), ("truncation rate", _fmt(report["truncation_rate"])),
             ("accuracy per 1k tokens", _fmt(report["accuracy_per_1k_tokens"])),
             ("degeneration rate", _fmt(report["degeneration_rate"])),
             ("mean per-prompt length std", _fmt(report["mean_length_std"], 1))]
    lines += ["| metric | value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in rows]
    k_max = list(report["pass@k"])[-1] if report["pass@k"] else None
    for key, title in (("by_difficulty", "difficulty"), ("by_source", "source")):
        if report.get(key):
            lines += ["", *_table(title, report[key], k_max)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ trainer's eval


def evaluate(engine: RolloutEngine, prompts: list[Prompt], params: SamplingParams, tokenizer,
             accelerator=None, delimiter: str | None = "</think>", seed: int = 1234) -> dict[str, Any]:
    """``n, accuracy, mean_tokens, truncation_rate`` (:func:`summarize`), ``by_difficulty``
    (summarize per difficulty, when known) and the scalar/dict headline metrics of
    :func:`eval_report` (``pass@1, pass@k, maj@k, median_tokens, ...``; no per-prompt list)."""
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    mine = prompts[rank::world]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + rank)
        rollouts = engine.generate([p.ids for p in mine], params) if mine else []
    samples = make_samples(rollouts, mine, 0, tokenizer, delimiter=delimiter)
    for s, r in zip(samples, rollouts):
        s.group = rank + world * s.group  # the prompt's global index: groups never collide across ranks
        s.completion_ids = list(r.completion_ids)
    if accelerator is not None:
        from .sampling import gather

        samples = gather(accelerator, samples)
    out = summarize(samples)
    report = eval_report(samples, delimiter=delimiter, per_prompt=False)
    out.update({k: report[k] for k in HEADLINE_KEYS if k not in ("n_prompts", "n_completions")})
    by_diff: dict[Any, list] = defaultdict(list)
    for s in samples:
        if "difficulty" in s.meta:
            by_diff[s.meta["difficulty"]].append(s)
    if by_diff:
        out["by_difficulty"] = {str(k): summarize(v) for k, v in sorted(by_diff.items())}
    return out
