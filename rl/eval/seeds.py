"""Seeds in ``laconic compare`` (:mod:`rl.eval.compare`): runs that differ only by seed, grouped.

A training run whose directory is named ``seed<k>`` (``scripts/toy_pareto.sh`` writes
``<out>/<method>/seed<k>``) is seed ``k`` of the run labelled by its parent directory (or by
``--labels``). Runs with the same label and a seed form one group; every other input is a group of
its own. A group is reported as the mean and the sample standard deviation (``n - 1`` in the
denominator) over its seeds of the held-out accuracy, mean tokens and truncation rate, overall and
per difficulty (``by_difficulty`` in summary.json, :func:`rl.eval.evaluate.evaluate`; the operand count
on the toy). A single seed has no standard deviation: its cells show the value alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rl.eval.runs import Point, RunData, eval_set_of, pareto_front


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation ``sqrt(sum (v - mean)^2 / (n - 1))``; sd is None for one value.

    >>> mean_sd([90.0, 92.0, 94.0])
    (92.0, 2.0)
    """
    if not values:
        return math.nan, None
    n = len(values)
    m = math.fsum(values) / n
    if n < 2:
        return m, None
    return m, math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))


@dataclass
class Stat:
    """Per-seed values of one number, in the seeds' order."""

    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return mean_sd(self.values)[0] if self.values else None

    @property
    def sd(self) -> float | None:
        return mean_sd(self.values)[1]

    def fmt(self, spec: str = ".1f") -> str:
        """``92.3 ± 0.4`` (two or more seeds), ``92.3`` (one), ``–`` (none)."""
        if not self.values:
            return "–"
        m, s = mean_sd(self.values)
        return f"{m:{spec}}" if s is None else f"{m:{spec}} ± {s:{spec}}"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n, "values": list(self.values)}


def _difficulty_order(key: str) -> tuple:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


@dataclass
class SeedGroup:
    """One method: its runs (indices into the compared runs) and the statistics over their seeds.
    Accuracy and truncation are in %, tokens in tokens; ``before`` is the group's start."""

    label: str
    runs: list[int]
    seeds: list[int | None]
    kind: str
    accuracy: Stat = field(default_factory=Stat)
    tokens: Stat = field(default_factory=Stat)
    truncation: Stat = field(default_factory=Stat)
    before: Point | None = None
    by_difficulty: dict[str, tuple[Stat, Stat]] = field(default_factory=dict)  # accuracy %, tokens
    steps: int | None = None
    notes: list[str] = field(default_factory=list)
    apart: bool = False  # its seeds start from different models (a later phase): ``before`` is their mean

    @property
    def seeded(self) -> bool:
        return any(s is not None for s in self.seeds)


def group_runs(runs: list[RunData]) -> list[SeedGroup]:
    """Seeded runs with the same label as one group (in order of first appearance, seeds ascending);
    every other run alone. Only runs with an "after" point enter the statistics."""
    keyed: dict[Any, list[int]] = {}
    for i, r in enumerate(runs):
        keyed.setdefault(("seeds", r.label) if r.seed is not None else ("run", i), []).append(i)
    groups = []
    for idxs in keyed.values():
        idxs = sorted(idxs, key=lambda i: (runs[i].seed is None, runs[i].seed or 0))
        first = runs[idxs[0]]
        g = SeedGroup(first.label, idxs, [runs[i].seed for i in idxs], first.kind)
        starts = {_key(runs[i].before): runs[i].before for i in idxs if runs[i].before is not None}
        if len(starts) > 1:  # a later phase: each seed starts from its own seed's earlier model
            g.before, g.apart = mean_point(list(starts.values())), True
            g.notes.append(f"each seed starts from its own model ({len(starts)} starts): their mean")
        diff_keys: list[str] = []
        for i in idxs:
            r = runs[i]
            if g.before is None and r.before is not None:
                g.before = r.before
            own = f"start from {g.label} seed"  # a seed sharing the start of another seed of its own group
            g.notes += [n for n in r.notes if n not in g.notes and not n.startswith(own)]
            if r.after is None:
                if r.seed is not None:
                    g.notes.append(f"seed{r.seed}: no evaluated point")
                continue
            g.accuracy.values.append(r.after.accuracy * 100.0)
            g.tokens.values.append(r.after.mean_tokens)
            if r.after.truncation_rate is not None:
                g.truncation.values.append(r.after.truncation_rate * 100.0)
            g.steps = r.steps if g.steps is None else g.steps
            diff_keys += [k for k in r.after.by_difficulty if k not in diff_keys]
        for k in sorted(diff_keys, key=_difficulty_order):
            acc, tok = Stat(), Stat()
            for i in idxs:
                p = runs[i].after.by_difficulty.get(k) if runs[i].after else None
                if p is not None:
                    acc.values.append(p.accuracy * 100.0)
                    tok.values.append(p.mean_tokens)
            g.by_difficulty[k] = (acc, tok)
        groups.append(g)
    return groups


def _key(p: Point) -> tuple[float, float]:
    return round(p.mean_tokens, 6), round(p.accuracy, 9)


def mean_point(points: Sequence[Point]) -> Point:
    """The mean of several evaluations (accuracy, tokens, truncation where all have it, and each
    difficulty over the points that have it): the start of a group whose seeds start apart."""
    trunc = [p.truncation_rate for p in points]
    keys = list(dict.fromkeys(k for p in points for k in p.by_difficulty))
    return Point(sum(p.accuracy for p in points) / len(points), sum(p.mean_tokens for p in points) / len(points),
                 None if None in trunc else sum(trunc) / len(trunc),
                 by_difficulty={k: mean_point([p.by_difficulty[k] for p in points if k in p.by_difficulty]) for k in keys})


def mean_trajectory(runs: list[RunData], idxs: Sequence[int]) -> list[Point]:
    """The held-out evaluations logged during training, averaged over the seeds at the steps every
    seed logged (a single run: its own trajectory)."""
    trajs = [{q.step: q for q in runs[i].trajectory if q.step is not None} for i in idxs]
    if not trajs:
        return []
    common = sorted(set.intersection(*(set(t) for t in trajs)))
    return [Point(mean_sd([t[s].accuracy for t in trajs])[0], mean_sd([t[s].mean_tokens for t in trajs])[0], step=s)
            for s in common]


# ---------------------------------------------------------------------------------------------- tables


def _by_tokens(g: SeedGroup) -> tuple[bool, float]:
    return g.tokens.mean is None, g.tokens.mean or 0.0


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def group_table(runs: list[RunData], groups: list[SeedGroup], front_runs: set[int]) -> list[str]:
    """The markdown table with one row per group, sorted by mean tokens."""
    lines = ["| run | seeds | steps | accuracy after (%) | Δ accuracy | tokens after | Δ tokens | truncated after (%) "
             "| frontier | note |",
             "|---|--:|--:|--:|--:|--:|--:|--:|:-:|---|"]
    for g in sorted(groups, key=_by_tokens):
        b = g.before
        d_acc = f"{g.accuracy.mean - b.accuracy * 100:+.1f} pt" if b and g.accuracy.n else "–"
        d_tok = (f"{(g.tokens.mean - b.mean_tokens) / b.mean_tokens * 100:+.1f}%"
                 if b and g.tokens.n and b.mean_tokens > 0 else "–")
        lines.append("| " + " | ".join([
            _cell(g.label), str(g.accuracy.n) if g.seeded else "–", "–" if g.steps is None else str(g.steps),
            g.accuracy.fmt(), d_acc, g.tokens.fmt(), d_tok, g.truncation.fmt(),
            "–" if not g.accuracy.n else ("yes" if g.runs[0] in front_runs else "no"),
            _cell("; ".join(g.notes)),
        ]) + " |")
    return lines


def by_group(rows: list[dict[str, Any]], runs: list[RunData], groups: list[SeedGroup]) -> list[dict[str, Any]]:
    """:func:`rl.eval.compare.table_rows` rows with each method's seeds together (in seed order), methods
    by mean tokens."""
    order = sorted(groups, key=_by_tokens)
    rank = {(runs[i].label, runs[i].seed): k for k, g in enumerate(order) for i in g.runs}
    return sorted(rows, key=lambda row: (rank[row["method"], row["seed"]], row["seed"] is None, row["seed"] or 0))


def difficulty_tables(runs: list[RunData], groups: list[SeedGroup], starts: Sequence[tuple[str, Point]]) -> list[str]:
    """Accuracy (%) and mean tokens by difficulty, one row per start and per group (with seeds: mean ±
    sd over them, and their number); empty when no run's summary has a difficulty breakdown."""
    keys: list[str] = []
    for g in groups:
        keys += [k for k in g.by_difficulty if k not in keys]
    if not keys:
        return []
    keys.sort(key=_difficulty_order)
    seeded = any(g.seeded for g in groups)
    ordered = sorted((g for g in groups if g.by_difficulty), key=_by_tokens)
    starts = [(name, p) for name, p in starts if p is not None and p.by_difficulty]
    out = ["## By difficulty", "",
           "Held-out accuracy and mean tokens per difficulty (on the toy: the operand count)"
           + (", mean ± sd over seeds; seeds: how many have an evaluation." if seeded else "."), ""]
    for title, which in (("Accuracy (%)", 0), ("Mean tokens", 1)):
        out += [f"{title} by difficulty:", "",
                "| run |" + (" seeds |" if seeded else "") + " " + " | ".join(_cell(k) for k in keys) + " |",
                "|---|" + ("--:|" if seeded else "") + "--:|" * len(keys)]
        for name, p in starts:
            vals = [p.by_difficulty.get(k) for k in keys]
            out.append(f"| {_cell(name)} |" + (" – |" if seeded else "") + " " + " | ".join(
                "–" if q is None else (f"{q.accuracy * 100:.1f}" if which == 0 else f"{q.mean_tokens:.1f}")
                for q in vals) + " |")
        for g in ordered:
            cells = [g.by_difficulty[k][which].fmt() if k in g.by_difficulty else "–" for k in keys]
            n = f" {g.accuracy.n if g.seeded else '–'} |" if seeded else ""
            out.append(f"| {_cell(g.label)} |{n} " + " | ".join(cells) + " |")
        out.append("")
    return out


def group_json(groups: list[SeedGroup], runs: list[RunData], front_runs: set[int]) -> list[dict[str, Any]]:
    """compare.json's ``groups``: the statistics with each seed's value (``values``, in ``seeds`` order)."""
    out = []
    for g in groups:
        out.append({
            "label": g.label,
            "seeds": [runs[i].seed for i in g.runs if runs[i].after is not None],
            "paths": [str(runs[i].path) for i in g.runs],
            "steps": g.steps,
            "accuracy_pct": g.accuracy.to_json(),
            "mean_tokens": g.tokens.to_json(),
            "truncation_pct": g.truncation.to_json(),
            "before": None if g.before is None else {"accuracy_pct": g.before.accuracy * 100,
                                                      "mean_tokens": g.before.mean_tokens},
            "by_difficulty": {k: {"accuracy_pct": a.to_json(), "mean_tokens": t.to_json()}
                              for k, (a, t) in g.by_difficulty.items()},
            "frontier": g.runs[0] in front_runs if g.accuracy.n else None,
            "note": "; ".join(g.notes),
        })
    return out


# ---------------------------------------------------------------------------------------------- sweeps


def start_evaluators(recipes: Sequence[str | Path], overrides: Sequence[str] = ()) -> list[str]:
    """The recipes (by file stem) whose first seed should evaluate the starting model in a sweep
    (``scripts/toy_pareto.sh``): the first recipe of each distinct start, i.e. each model, data
    template and eval settings (:func:`rl.eval.runs.share_starts` hands that start to the others)."""
    from rl.config import load_config
    from rl.eval.runs import start_key

    first: dict[str | None, str] = {}
    for path in recipes:
        cfg = load_config(path, list(overrides)).to_dict()
        key = start_key(RunData(label=Path(path).stem, path=Path(path), kind="train", config=cfg))
        first.setdefault(key, Path(path).stem)
    return list(first.values())


@dataclass
class PlotPoint:
    name: str
    tokens: float
    accuracy: float  # fraction
    kind: str  # "start", "train" or "eval"
    runs: list[int]  # indices into runs (a seed group: its seeds with a point, in seed order)
    tokens_sd: float | None = None  # sample sd over seeds (two or more)
    accuracy_sd: float | None = None  # fraction
    start: Point | None = None  # a start's evaluation (with several seeds' starts: their mean)


def plot_points(runs: list[RunData]) -> list[PlotPoint]:
    """The Pareto plot's main points: one start per distinct "before" (shared by runs; a method whose seeds
    start apart: one at their mean), then each run's point; the seeds of one method (rl/eval/seeds.py) as one
    point at their mean, with their sd."""
    starts: dict[tuple[float, float], PlotPoint] = {}
    groups = group_runs(runs)
    for g in groups:  # a group whose seeds start apart (a later phase): one start, at their mean
        for b, idxs in ([(g.before, g.runs)] if g.apart else
                        [(runs[i].before, [i]) for i in g.runs if runs[i].before is not None]):
            if _key(b) in starts:
                starts[_key(b)].runs.extend(idxs)
            else:
                starts[_key(b)] = PlotPoint("start", b.mean_tokens, b.accuracy, "start", list(idxs), start=b)
    pts = list(starts.values())
    if len(pts) > 1:  # different starting numbers (other base model or eval set): say whose
        for p in pts:
            p.name = "start: " + ", ".join(dict.fromkeys(runs[i].label for i in p.runs))
    for g in groups:
        if g.tokens.n:
            pts.append(PlotPoint(g.label, g.tokens.mean, g.accuracy.mean / 100.0, g.kind,
                                 [i for i in g.runs if runs[i].point is not None], g.tokens.sd,
                                 None if g.accuracy.sd is None else g.accuracy.sd / 100.0))
    return pts


def eval_sets(runs: list[RunData]) -> list[tuple[tuple[str, Any], ...]]:
    """The distinct evaluation sets among the runs (:func:`rl.eval.runs.eval_set_of`), in order of first
    appearance; runs without an "after" point do not count."""
    return list(dict.fromkeys(k for r in runs if r.point is not None and (k := eval_set_of(r))))


def frontiers(runs: list[RunData], pts: list[PlotPoint]) -> list[list[int]]:
    """One Pareto frontier per evaluation set: points measured on different data or settings are
    never compared (a start belongs to the set of its first run; a run whose set is not recorded, to the
    first set). Indices into ``pts``."""
    sets = eval_sets(runs) or [()]
    members: list[list[int]] = [[] for _ in sets]
    for k, p in enumerate(pts):
        key = eval_set_of(runs[p.runs[0]]) if p.runs else ()
        members[sets.index(key) if key in sets else 0].append(k)
    return [[m[j] for j in pareto_front([(pts[k].tokens, pts[k].accuracy) for k in m])] for m in members]


def frontier(runs: list[RunData], pts: list[PlotPoint]) -> list[int]:
    """The points on their evaluation set's frontier (:func:`frontiers`), set by set."""
    return [k for f in frontiers(runs, pts) for k in f]


if __name__ == "__main__":  # python -m rl.eval.seeds RECIPE... [-- OVERRIDE...]: start_evaluators
    import sys

    from rl.config import ConfigError

    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    try:
        print(" ".join(start_evaluators(argv[:cut], argv[cut + 1:])))
    except (ConfigError, OSError) as e:
        print(f"rl.eval.seeds: {e}", file=sys.stderr)
        sys.exit(2)
