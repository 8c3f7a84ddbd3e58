r"""Held-out evaluation (the trainer's eval and ``laconic eval``): :func:`evaluate` generates and scores,
:func:`eval_report` turns samples into the report (overall, by source and by difficulty) and
:func:`to_markdown` prints it. The metrics and their definitions are in :mod:`rl.eval.metrics`.

:func:`evaluate` is the trainer's eval: prompts are sharded over processes; results are gathered
so every process returns the same numbers. Evaluation runs under its own seed
(:func:`rl.run.rng.seeded`: CPU and CUDA generators restored afterwards): it neither consumes nor
depends on the training RNG, so training is reproducible with or without it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any


from rewards.verify import extract_answer

from rl.data import Prompt
from rl.engines.base import RolloutEngine, SamplingParams
from rl.eval.metrics import (DEGENERATION_DEFAULTS, HEADLINE_KEYS, is_degenerate, k_values, length_stats, majority_vote,
                             nan_mean, pass_at_k, percentile, summarize)
from rl.facts import make_samples
from rl.run.rng import seeded

__all__ = ["eval_report", "evaluate", "to_markdown"]


# --------------------------------------------------------------------------- pure metric functions


# ------------------------------------------------------------------------------------ reports


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
    return nan_mean([float(v) for v in votes])


def _headline(records: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    lengths = [x for r in records for x in r["lengths"]]
    pass1 = nan_mean([pass_at_k(len(r["correct"]), sum(r["correct"]), 1) for r in records])
    mean_tokens = nan_mean(lengths)
    return {
        "n_prompts": len(records),
        "n_completions": len(lengths),
        "pass@1": pass1,
        "pass@k": {str(k): nan_mean([pass_at_k(len(r["correct"]), sum(r["correct"]), k) for r in records])
                   for k in ks},
        "maj@k": {str(k): nan_mean([_maj_at(r, k) for r in records]) for k in ks},
        "mean_tokens": mean_tokens,
        "median_tokens": percentile(lengths, 50),
        "p90_tokens": percentile(lengths, 90),
        "truncation_rate": nan_mean([float(t) for r in records for t in r["truncated"]]),
        "accuracy_per_1k_tokens": pass1 / (mean_tokens / 1000) if mean_tokens > 0 else float("nan"),
        "degeneration_rate": nan_mean([float(d) for r in records for d in r["degenerate"]]),
        "mean_length_std": nan_mean([length_stats(r["lengths"])["std"] for r in records]),
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
    with seeded(seed + rank):
        rollouts = engine.generate([p.ids for p in mine], params) if mine else []
    samples = make_samples(rollouts, mine, 0, tokenizer, delimiter=delimiter)
    for s, r in zip(samples, rollouts):
        s.group = rank + world * s.group  # the prompt's global index: groups never collide across ranks
        s.completion_ids = list(r.completion_ids)
    if accelerator is not None:
        from rl.run.distributed import gather

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
