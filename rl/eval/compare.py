"""``laconic compare``: accuracy-vs-tokens Pareto plot, training curves and a table across runs.

Each input is a training run directory (``summary.json``, ``metrics.jsonl``, ``config.json``), an
evaluation output directory holding ``eval.json`` (from ``laconic eval``), or an ``eval.json`` /
``summary.json`` file. Writes into ``--out``:

* ``pareto.png``  x = mean completion tokens, y = accuracy (%): one point per run ("after", or the
  eval.json numbers), the shared starting model as a black star, the held-out evaluations logged
  during training (``eval/accuracy``, ``eval/mean_tokens`` every ``eval.every`` steps) as a faint
  trajectory from the start to the end of each run, and the Pareto frontier as a step line.
* ``curves.png``  reward, training-batch accuracy and mean length against step, one colour per run
  (the same colours as the Pareto plot), with the held-out evaluations as hollow markers.
* ``compare.md`` / ``compare.json``  one row per run, sorted by mean tokens; with the runs' summaries
  broken down by difficulty, accuracy and mean tokens per difficulty too.

Evaluation sets: each run records what its numbers were measured on (``summary.json``'s ``eval_set``:
data, split or held-out share, prompts; the eval section's sampling settings; ``eval.json``'s own).
Runs measured on different sets are never on one frontier: each set gets its own (a letter in the
table, a line style in the plot), and a run whose eval prompts are also training prompts is marked
"not held-out".

Seeds (:mod:`rl.eval.seeds`): runs in directories named ``seed<k>`` with the same label (by
default the parent directory's name, e.g. ``runs/toy_pareto/dler/seed0``) are one method run with
several seeds. Each is then one point at the mean over its seeds with ±1 sample-sd error bars in both
axes, one table row of ``mean ± sd`` cells with the number of seeds, and every seed's own row and
values stay in a "Runs" table and in ``compare.json``. A method whose seeds start from different models (a
later phase, each seed from its own seed's earlier run) has one start at their mean.

ThinkDial's modes (``eval.modes``): a run evaluated in several modes is one run per mode, labelled
``<run> [<mode>]``, each with its own start and point, and compare.md gets a table of the runs' ACT.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: pyplot is never imported, no
window opens and no global backend is changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rl.eval.runs import (CompareError, RunData, describe_eval_set, eval_set_of, load_run, share_starts,
                          split_modes, unique_labels)
from rl.eval.seeds import eval_sets, frontier, frontiers, plot_points


def _fmt(v: Any, spec: str, suffix: str = "") -> str:
    return "–" if v is None else f"{v:{spec}}{suffix}"


def _run_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | steps | accuracy before | accuracy after | Δ accuracy | tokens before | tokens after "
             "| Δ tokens | truncated after | frontier | note |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|---|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["label"].replace("|", "\\|"),
            _fmt(r["steps"], "d"),
            _fmt(r["acc_before_pct"], ".1f", "%"),
            _fmt(r["acc_after_pct"], ".1f", "%"),
            _fmt(r["acc_change_pt"], "+.1f", " pt"),
            _fmt(r["tokens_before"], ".1f"),
            _fmt(r["tokens_after"], ".1f"),
            _fmt(r["token_change_pct"], "+.1f", "%"),
            _fmt(r["trunc_after_pct"], ".1f", "%"),
            "–" if r["frontier"] is None else ("yes" if r["frontier"] else "no"),
            r["note"].replace("|", "\\|"),
        ]) + " |")
    return lines


def act_table(runs: list[RunData]) -> list[str]:
    """ThinkDial's ACT x 100 of the runs evaluated with ``eval.modes`` (summary.json's ``act``), one row per
    method: mean ± sd over its seeds."""
    from rl.eval.seeds import Stat

    by_method: dict[str, list[dict[str, float]]] = {}
    for r in runs:
        if r.act:
            by_method.setdefault(r.label.rsplit(" [", 1)[0], []).append(r.act)
    if not by_method:
        return []
    cols = [c for c in ("high", "medium", "low", "average") if any(c in a for v in by_method.values() for a in v)]
    lines = ["## ThinkDial ACT × 100 (each mode against the run's start in high mode, the peak)", "",
             "| run | seeds | " + " | ".join(cols) + " |", "|---|--:|" + "--:|" * len(cols)]
    for label, acts in by_method.items():
        cells = [Stat([a[c] * 100 for a in acts if c in a]).fmt() for c in cols]
        lines.append(f"| {label} | {len(acts)} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(runs: list[RunData], title: str) -> str:
    """compare.md: the table (with seeds: one row of mean ± sd per method, then every seed's row),
    the frontier and the starts, then accuracy and tokens by difficulty when the summaries have them."""
    from rl.eval.seeds import by_group, difficulty_tables, group_runs, group_table

    rows = table_rows(runs)
    pts = plot_points(runs)
    fronts = frontiers(runs, pts)
    front = [k for f in fronts for k in f]
    groups = group_runs(runs)
    seeded = any(g.seeded for g in groups)
    lines = [f"# {title}", ""]
    sets = eval_sets(runs)
    if len(sets) > 1:
        lines += [f"**The runs were evaluated on {len(sets)} different sets**: each has its own frontier, and "
                  "numbers from different sets are not comparable.", ""]
        lines += [f"- eval set {chr(65 + j)}: {describe_eval_set(key)}" for j, key in enumerate(sets)] + [""]
    if seeded:
        on_front = {i for k in front if pts[k].kind != "start" for i in pts[k].runs}
        lines += ["Mean ± sd over seeds (sample standard deviation, n − 1; a single seed shows its value alone); "
                  "each seed's run is under Runs.", ""]
        lines += group_table(runs, groups, on_front)
    else:
        lines += _run_table(rows)
    for j, f in enumerate(fronts):
        lines += ["", ("Pareto frontier" if len(fronts) == 1 else f"Pareto frontier of eval set {chr(65 + j)}")
                  + " (fewest tokens first): "
                  + (", ".join(f"{pts[k].name} ({pts[k].tokens:.1f} tokens, {pts[k].accuracy * 100:.1f}%)" for k in f)
                     or "–")]
    starts = [p for p in pts if p.kind == "start"]
    for p in starts:
        lines.append(f"Start ({', '.join(dict.fromkeys(runs[i].label for i in p.runs))}): {p.accuracy * 100:.1f}% at "
                     f"{p.tokens:.1f} tokens")
    shared = [r.name for r in runs if r.eval_set.get("held_out") is False]
    lines += ["", "Accuracy and tokens are evaluation numbers (summary.json / eval.json), held-out unless a run's "
              "note says otherwise; Δ accuracy in percentage points, Δ tokens relative to the start.", ""]
    if shared:
        lines += [f"Not held-out (the eval set shares prompts with the training data): {', '.join(shared)}.", ""]
    lines += act_table(runs)
    lines += difficulty_tables(runs, groups, [(p.name, p.start) for p in starts])
    if seeded:
        lines += ["## Runs", ""] + _run_table(by_group(rows, runs, groups)) + [""]
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="Pareto plot (accuracy vs. tokens), training curves and a table across runs",
        description="Compare training runs and evaluations: pareto.png, curves.png, compare.md, compare.json.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a training run directory, an eval output directory (eval.json), or an eval.json/summary.json")
    p.add_argument("--out", default="compare", help="output directory (default ./compare)")
    p.add_argument("--labels", default=None, help="comma-separated labels, one per RUN (default: directory names)")
    p.add_argument("--title", default="Accuracy vs. tokens", help="title of the Pareto plot and the table")
    return p


def run(args: argparse.Namespace) -> int:
    from rl.eval.plots import plot_curves, plot_pareto
    from rl.eval.seeds import group_json, group_runs

    labels: list[str | None] = [None] * len(args.runs)
    if args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(args.runs) or not all(labels):
            print(f"laconic compare: --labels has {len(labels)} names for {len(args.runs)} runs", file=sys.stderr)
            return 2
    try:
        runs = split_modes([load_run(p, lab) for p, lab in zip(args.runs, labels)])  # eval.modes: a run per mode
    except CompareError as e:
        print(f"laconic compare: {e}", file=sys.stderr)
        return 2
    unique_labels(runs)
    share_starts(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pts = plot_points(runs)
    front = frontier(runs, pts)
    written = []
    if pts:
        written.append(plot_pareto(runs, out / "pareto.png", title=args.title))
    else:
        print("laconic compare: no evaluated point among the inputs; pareto.png not written", file=sys.stderr)
    curves = plot_curves(runs, out / "curves.png")
    if curves:
        written.append(curves)
    else:
        print("laconic compare: no metrics.jsonl among the inputs; curves.png not written", file=sys.stderr)
    md = markdown(runs, args.title)
    (out / "compare.md").write_text(md)
    on_front = {i for k in front if pts[k].kind != "start" for i in pts[k].runs}
    report = {
        "title": args.title,
        "runs": table_rows(runs),
        "groups": group_json(group_runs(runs), runs, on_front),
        "frontier": [{"name": pts[k].name, "mean_tokens": pts[k].tokens, "accuracy_pct": pts[k].accuracy * 100,
                      "kind": pts[k].kind, "mean_tokens_sd": pts[k].tokens_sd,
                      "accuracy_pct_sd": None if pts[k].accuracy_sd is None else pts[k].accuracy_sd * 100}
                     for k in front],
        "starts": [{"runs": list(dict.fromkeys(runs[i].label for i in p.runs)), "mean_tokens": p.tokens,
                    "accuracy_pct": p.accuracy * 100} for p in pts if p.kind == "start"],
        "eval_sets": [dict(key) for key in eval_sets(runs)],
    }
    (out / "compare.json").write_text(json.dumps(report, indent=1))
    written += [out / "compare.md", out / "compare.json"]
    print(md)
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laconic")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))



def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100.0


def table_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """One row per run (accuracy in %), sorted by mean tokens after; runs without a point last.
    A seed's ``frontier`` is its method's (the mean over seeds)."""
    pts = plot_points(runs)
    front = set(frontier(runs, pts))
    sets = eval_sets(runs)
    on_front = {i for k, p in enumerate(pts) if p.kind != "start" and k in front for i in p.runs}
    rows = []
    for i, r in enumerate(runs):
        b, a = r.before, r.after
        row = {
            "label": r.name,
            "method": r.label,
            "seed": r.seed,
            "kind": r.kind,
            "path": str(r.path),
            "model": r.model,
            "rewards": r.rewards,
            "steps": r.steps,
            "acc_before_pct": _pct(b.accuracy) if b else None,
            "acc_after_pct": _pct(a.accuracy) if a else None,
            "acc_change_pt": (a.accuracy - b.accuracy) * 100.0 if a and b else None,
            "tokens_before": b.mean_tokens if b else None,
            "tokens_after": a.mean_tokens if a else None,
            "token_change_pct": ((a.mean_tokens - b.mean_tokens) / b.mean_tokens * 100.0
                                 if a and b and b.mean_tokens > 0 else None),
            "trunc_before_pct": _pct(b.truncation_rate) if b and b.truncation_rate is not None else None,
            "trunc_after_pct": _pct(a.truncation_rate) if a and a.truncation_rate is not None else None,
            "frontier": (i in on_front) if a else None,
            "mode": r.mode,  # ThinkDial (eval.modes): the mode this row was evaluated in
            "act": r.act or None,  # and summary.json's ACT (on the first mode's row)
            "eval_set": (chr(65 + sets.index(eval_set_of(r))) if len(sets) > 1 and eval_set_of(r) in sets else None),
            "note": "; ".join(r.notes + ([f"eval set {chr(65 + sets.index(eval_set_of(r)))}"]
                                         if len(sets) > 1 and eval_set_of(r) in sets else [])
                              + (["eval shares prompts with training: not held-out"]
                                 if r.eval_set.get("held_out") is False else [])),
        }
        rows.append(row)
    rows.sort(key=lambda row: (row["tokens_after"] is None, row["tokens_after"] or 0.0))
    return rows


if __name__ == "__main__":
    sys.exit(main())
