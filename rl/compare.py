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

Seeds (:mod:`rl.compare_seeds`): runs in directories named ``seed<k>`` with the same label (by
default the parent directory's name, e.g. ``runs/toy_pareto/dler/seed0``) are one method run with
several seeds. Each is then one point at the mean over its seeds with ±1 sample-sd error bars in both
axes, one table row of ``mean ± sd`` cells with the number of seeds, and every seed's own row and
values stay in a "Runs" table and in ``compare.json``.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: pyplot is never imported, no
window opens and no global backend is changed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


SEED_DIR = re.compile(r"seed(\d+)")  # a run directory holding one seed of a method


class CompareError(ValueError):
    """Unusable input; the message is one line naming the path."""


@dataclass
class Point:
    """One held-out evaluation. ``accuracy`` is a fraction in [0, 1]."""

    accuracy: float
    mean_tokens: float
    truncation_rate: float | None = None
    n: int | None = None
    step: int | None = None
    by_difficulty: dict[str, "Point"] = field(default_factory=dict)  # difficulty -> its own numbers


@dataclass
class RunData:
    label: str
    path: Path
    kind: str  # "train" (a training run directory) or "eval" (an eval.json)
    before: Point | None = None
    after: Point | None = None
    trajectory: list[Point] = field(default_factory=list)  # eval/* logged during training, by step
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows
    steps: int | None = None
    model: str | None = None
    rewards: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # the run's config.json
    seed: int | None = None  # k for a run directory named seed<k> (rl/compare_seeds.py)

    @property
    def name(self) -> str:
        """The label, with the seed when there is one."""
        return self.label if self.seed is None else f"{self.label} seed{self.seed}"

    @property
    def point(self) -> Point | None:
        """The run's point on the Pareto plot."""
        return self.after


# ---------------------------------------------------------------------------------------------- loading


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _frac(v: Any) -> float:
    """Accuracy as a fraction; values above 1 are taken as percentages."""
    v = float(v)
    return v / 100.0 if v > 1.0 + 1e-9 else v


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CompareError(f"{path}: not readable JSON ({e.__class__.__name__}: {e})") from None


def _point(d: Any, path: Path, acc_keys: Sequence[str] = ("accuracy",)) -> Point:
    if not isinstance(d, dict):
        raise CompareError(f"{path}: expected an object with accuracy and mean_tokens")
    acc = next((d[k] for k in acc_keys if _finite(d.get(k))), None)
    tok = d.get("mean_tokens")
    if acc is None or not _finite(tok):
        raise CompareError(f"{path}: missing {' or '.join(acc_keys)} / mean_tokens")
    trunc = d.get("truncation_rate")
    n = d.get("n")
    diffs, by_diff = d.get("by_difficulty"), {}
    for k, v in diffs.items() if isinstance(diffs, dict) else ():
        try:
            by_diff[str(k)] = _point(v, path, acc_keys)
        except CompareError:
            continue  # an empty difficulty (n = 0, NaN numbers): left out
    return Point(_frac(acc), float(tok), float(trunc) if _finite(trunc) else None,
                 int(n) if _finite(n) else None, by_difficulty=by_diff)


def _default_label(d: Path) -> str:
    d = d.resolve()
    if SEED_DIR.fullmatch(d.name):  # <method>/seed<k>: the method
        return d.parent.name
    if d.name == "final" or d.name.startswith("checkpoint-"):
        return f"{d.parent.name}/{d.name}"
    return d.name or str(d)


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    from .tracking import read_metrics

    try:
        return read_metrics(path)
    except ValueError:  # a torn last line (killed run): keep what parses
        rows = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        notes.append("skipped unreadable lines in metrics.jsonl")
        return rows


def _load_train(d: Path, label: str) -> RunData:
    run = RunData(label=label, path=d, kind="train")
    if (d / "summary.json").exists():
        s = _read_json(d / "summary.json")
        if not isinstance(s, dict):
            raise CompareError(f"{d / 'summary.json'}: expected a JSON object")
        if s.get("before") is not None:
            run.before = _point(s["before"], d / "summary.json")
            run.before.step = 0
        if s.get("after") is not None:
            run.after = _point(s["after"], d / "summary.json")
        run.steps = s.get("steps") if isinstance(s.get("steps"), int) else None
        run.model = s.get("model")
        if run.after is None:
            run.notes.append("no 'after' evaluation in summary.json")
    else:
        run.notes.append("no summary.json: curves only")
    if (d / "metrics.jsonl").exists():
        run.metrics = sorted((r for r in _read_metrics(d / "metrics.jsonl", run.notes) if _finite(r.get("step"))),
                             key=lambda r: r["step"])
    for r in run.metrics:
        if _finite(r.get("eval/accuracy")) and _finite(r.get("eval/mean_tokens")):
            run.trajectory.append(Point(_frac(r["eval/accuracy"]), float(r["eval/mean_tokens"]),
                                        r.get("eval/truncation_rate") if _finite(r.get("eval/truncation_rate")) else None,
                                        int(r["eval/n"]) if _finite(r.get("eval/n")) else None, int(r["step"])))
    if run.steps is None and run.metrics:
        run.steps = int(run.metrics[-1]["step"])
    if run.after is not None:
        run.after.step = run.steps
    if (d / "config.json").exists():
        cfg = _read_json(d / "config.json")
        if isinstance(cfg, dict):
            run.config = cfg
            run.rewards = [r["name"] for r in cfg.get("rewards") or [] if isinstance(r, dict) and "name" in r]
            run.model = run.model or (cfg.get("model") or {}).get("name_or_path")
    return run


def _load_eval(f: Path, label: str) -> RunData:
    d = _read_json(f)
    p = _point(d, f, acc_keys=("pass@1", "accuracy"))
    return RunData(label=label, path=f, kind="eval", after=p, model=d.get("model"))


def load_run(path: str | Path, label: str | None = None) -> RunData:
    """Read one input (training run dir, eval output dir, eval.json or summary.json); CompareError if unusable.
    A training run in a directory named ``seed<k>`` gets ``seed = k``."""
    run = _load(Path(path), label)
    if run.kind == "train":
        m = SEED_DIR.fullmatch(run.path.resolve().name)
        run.seed = int(m.group(1)) if m else None
    return run


def _load(p: Path, label: str | None) -> RunData:
    if p.is_file():
        lab = label or _default_label(p.parent)
        if p.name in ("summary.json", "metrics.jsonl"):
            return _load_train(p.parent, lab)
        if p.suffix == ".json":
            d = _read_json(p)
            if isinstance(d, dict) and ("after" in d or "before" in d) and "mean_tokens" not in d:
                return _load_train(p.parent, lab)  # a summary.json under another name
            return _load_eval(p, lab)
        raise CompareError(f"{p}: not a run directory, eval.json or summary.json")
    if p.is_dir():
        lab = label or _default_label(p)
        if (p / "summary.json").exists() or (p / "metrics.jsonl").exists():
            return _load_train(p, lab)
        if (p / "eval.json").exists():
            return _load_eval(p / "eval.json", lab)
        raise CompareError(f"{p}: no summary.json, metrics.jsonl or eval.json there")
    raise CompareError(f"{p}: no such file or directory")


def _start_key(run: RunData) -> str | None:
    """What fixes a run's "before" evaluation: the model, its data template and the eval settings."""
    cfg = run.config
    if not cfg:
        return None
    data = cfg.get("data") or {}
    ev = {k: v for k, v in (cfg.get("eval") or {}).items() if k not in ("before", "after", "every")}
    parts = [(cfg.get("model") or {}).get("name_or_path"), ev,
             {k: data.get(k) for k in ("name", "prompt_template", "chat_template", "delimiter", "system_prompt")}]
    return json.dumps(parts, sort_keys=True, default=str)


def share_starts(runs: list[RunData]) -> None:
    """A training run evaluated without ``eval.before`` inherits the "before" of a run that has one
    with the same model, data template and eval settings (the evaluation is seeded, so it would
    give the same numbers)."""
    known: dict[str, RunData] = {}
    for r in runs:  # the first run that evaluated each start
        if r.kind == "train" and r.before is not None and _start_key(r):
            known.setdefault(_start_key(r), r)
    for r in runs:
        src = known.get(_start_key(r)) if r.kind == "train" and r.before is None else None
        if src is not None:
            r.before = Point(**{**src.before.__dict__})
            r.notes.append(f"start from {src.name} (same model and eval settings)")


def _unique_labels(runs: list[RunData]) -> None:
    """Runs with the same label get " (2)", " (3)", ...; except the seeds of one seeded label, which
    are a group (rl/compare_seeds.py) as long as their seeds differ."""
    taken: set[str] = set()
    seeds: dict[str, set[int]] = {}
    for r in runs:
        if r.seed is not None and r.label in seeds and r.seed not in seeds[r.label]:
            seeds[r.label].add(r.seed)
            continue
        label, k = r.label, 1
        while label in taken:
            k += 1
            label = f"{r.label} ({k})"
        r.label = label
        taken.add(label)
        if r.seed is not None:
            seeds[label] = {r.seed}


# ---------------------------------------------------------------------------------------------- analysis


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points among ``(tokens, accuracy)`` pairs, fewest tokens first.

    A point is dominated when another has accuracy >= and tokens <=, with at least one strict.
    Exact duplicates do not dominate each other (both stay). Points with NaN are never on the front.
    """
    ok = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
    front = [i for i in ok
             if not any(points[j][0] <= points[i][0] and points[j][1] >= points[i][1]
                        and (points[j][0] < points[i][0] or points[j][1] > points[i][1]) for j in ok)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


@dataclass
class PlotPoint:
    name: str
    tokens: float
    accuracy: float  # fraction
    kind: str  # "start", "train" or "eval"
    runs: list[int]  # indices into runs (a seed group: its seeds with a point, in seed order)
    tokens_sd: float | None = None  # sample sd over seeds (two or more)
    accuracy_sd: float | None = None  # fraction


def plot_points(runs: list[RunData]) -> list[PlotPoint]:
    """The Pareto plot's main points: one start per distinct "before" (shared by runs), then each run's
    point; the seeds of one method (rl/compare_seeds.py) as one point at their mean, with their sd."""
    from .compare_seeds import group_runs

    starts: dict[tuple[float, float], PlotPoint] = {}
    for i, r in enumerate(runs):
        if r.before is not None:
            key = (round(r.before.mean_tokens, 6), round(r.before.accuracy, 9))
            if key in starts:
                starts[key].runs.append(i)
            else:
                starts[key] = PlotPoint("start", r.before.mean_tokens, r.before.accuracy, "start", [i])
    pts = list(starts.values())
    if len(pts) > 1:  # different starting numbers (other base model or eval set): say whose
        for p in pts:
            p.name = "start: " + ", ".join(dict.fromkeys(runs[i].label for i in p.runs))
    for g in group_runs(runs):
        if g.tokens.n:
            pts.append(PlotPoint(g.label, g.tokens.mean, g.accuracy.mean / 100.0, g.kind,
                                 [i for i in g.runs if runs[i].point is not None], g.tokens.sd,
                                 None if g.accuracy.sd is None else g.accuracy.sd / 100.0))
    return pts


def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100.0


def table_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """One row per run (accuracy in %), sorted by mean tokens after; runs without a point last.
    A seed's ``frontier`` is its method's (the mean over seeds)."""
    pts = plot_points(runs)
    front = set(pareto_front([(p.tokens, p.accuracy) for p in pts]))
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
            "note": "; ".join(r.notes),
        }
        rows.append(row)
    rows.sort(key=lambda row: (row["tokens_after"] is None, row["tokens_after"] or 0.0))
    return rows


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


def markdown(runs: list[RunData], title: str) -> str:
    """compare.md: the table (with seeds: one row of mean ± sd per method, then every seed's row),
    the frontier and the starts, then accuracy and tokens by difficulty when the summaries have them."""
    from .compare_seeds import by_group, difficulty_tables, group_runs, group_table

    rows = table_rows(runs)
    pts = plot_points(runs)
    front = pareto_front([(p.tokens, p.accuracy) for p in pts])
    groups = group_runs(runs)
    seeded = any(g.seeded for g in groups)
    lines = [f"# {title}", ""]
    if seeded:
        on_front = {i for k in front if pts[k].kind != "start" for i in pts[k].runs}
        lines += ["Mean ± sd over seeds (sample standard deviation, n − 1; a single seed shows its value alone); "
                  "each seed's run is under Runs.", ""]
        lines += group_table(runs, groups, on_front)
    else:
        lines += _run_table(rows)
    lines += ["", "Pareto frontier (fewest tokens first): "
              + (", ".join(f"{pts[k].name} ({pts[k].tokens:.1f} tokens, {pts[k].accuracy * 100:.1f}%)" for k in front)
                 or "–")]
    starts = [p for p in pts if p.kind == "start"]
    for p in starts:
        lines.append(f"Start ({', '.join(dict.fromkeys(runs[i].label for i in p.runs))}): {p.accuracy * 100:.1f}% at "
                     f"{p.tokens:.1f} tokens")
    lines += ["", "Accuracy and tokens are held-out evaluation numbers (summary.json / eval.json); "
              "Δ accuracy in percentage points, Δ tokens relative to the start.", ""]
    lines += difficulty_tables(runs, groups, [(p.name, runs[p.runs[0]].before) for p in starts])
    if seeded:
        lines += ["## Runs", ""] + _run_table(by_group(rows, runs, groups)) + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command


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
    from .compare_plots import plot_curves, plot_pareto
    from .compare_seeds import group_json, group_runs

    labels: list[str | None] = [None] * len(args.runs)
    if args.labels:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(args.runs) or not all(labels):
            print(f"laconic compare: --labels has {len(labels)} names for {len(args.runs)} runs", file=sys.stderr)
            return 2
    try:
        runs = [load_run(p, lab) for p, lab in zip(args.runs, labels)]
    except CompareError as e:
        print(f"laconic compare: {e}", file=sys.stderr)
        return 2
    _unique_labels(runs)
    share_starts(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pts = plot_points(runs)
    front = pareto_front([(p.tokens, p.accuracy) for p in pts])
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


if __name__ == "__main__":
    sys.exit(main())
