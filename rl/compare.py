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
* ``compare.md`` / ``compare.json``  one row per run, sorted by mean tokens.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: pyplot is never imported, no
window opens and no global backend is changed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


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
    return Point(_frac(acc), float(tok), float(trunc) if _finite(trunc) else None,
                 int(n) if _finite(n) else None)


def _default_label(d: Path) -> str:
    d = d.resolve()
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
    """Read one input (training run dir, eval output dir, eval.json or summary.json); CompareError if unusable."""
    p = Path(path)
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
    known = {_start_key(r): r for r in runs if r.kind == "train" and r.before is not None and _start_key(r)}
    for r in runs:
        src = known.get(_start_key(r)) if r.kind == "train" and r.before is None else None
        if src is not None:
            r.before = Point(**{**src.before.__dict__})
            r.notes.append(f"start from {src.label} (same model and eval settings)")


def _unique_labels(runs: list[RunData]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        k = seen.get(r.label, 0)
        seen[r.label] = k + 1
        if k:
            r.label = f"{r.label} ({k + 1})"


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
    runs: list[int]  # indices into runs


def plot_points(runs: list[RunData]) -> list[PlotPoint]:
    """The Pareto plot's main points: one start per distinct "before" (shared by runs), then each run's point."""
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
            p.name = "start: " + ", ".join(runs[i].label for i in p.runs)
    for i, r in enumerate(runs):
        if r.point is not None:
            pts.append(PlotPoint(r.label, r.point.mean_tokens, r.point.accuracy, r.kind, [i]))
    return pts


def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100.0


def table_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """One row per run (accuracy in %), sorted by mean tokens after; runs without a point last."""
    pts = plot_points(runs)
    front = set(pareto_front([(p.tokens, p.accuracy) for p in pts]))
    on_front = {p.runs[0] for k, p in enumerate(pts) if p.kind != "start" and k in front}
    rows = []
    for i, r in enumerate(runs):
        b, a = r.before, r.after
        row = {
            "label": r.label,
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


def markdown(runs: list[RunData], title: str) -> str:
    rows = table_rows(runs)
    pts = plot_points(runs)
    front = pareto_front([(p.tokens, p.accuracy) for p in pts])
    lines = [f"# {title}", "",
             "| run | steps | accuracy before | accuracy after | Δ accuracy | tokens before | tokens after "
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
    lines += ["", "Pareto frontier (fewest tokens first): "
              + (", ".join(f"{pts[k].name} ({pts[k].tokens:.1f} tokens, {pts[k].accuracy * 100:.1f}%)" for k in front)
                 or "–")]
    starts = [p for p in pts if p.kind == "start"]
    for p in starts:
        lines.append(f"Start ({', '.join(runs[i].label for i in p.runs)}): {p.accuracy * 100:.1f}% at "
                     f"{p.tokens:.1f} tokens")
    lines += ["", "Accuracy and tokens are held-out evaluation numbers (summary.json / eval.json); "
              "Δ accuracy in percentage points, Δ tokens relative to the start.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- plots


def _colors(n: int) -> list:
    """Distinct run colours; tab10's grey is left out (grey and black mark the start and the frontier)."""
    from matplotlib import colormaps

    base = [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
    if n > len(base):
        t20 = colormaps["tab20"]
        base += [t20(i) for i in range(1, 20, 2) if i not in (15,)]
    return [base[i % len(base)] for i in range(n)]


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


# (dx, dy) in points, horizontal and vertical alignment; tried in this order, then twice as far
_OFFSETS = [((7, 5), "left", "bottom"), ((7, -5), "left", "top"), ((-7, 5), "right", "bottom"),
            ((-7, -5), "right", "top"), ((0, 9), "center", "bottom"), ((0, -9), "center", "top"),
            ((9, 0), "left", "center"), ((-9, 0), "right", "center")]


def _place_labels(fig, ax, items: list[tuple[str, float, float, dict]],
                  extra: Sequence[tuple[float, float]] = ()) -> None:
    """Annotate (text, x, y, style) items, greedily avoiding each other, all markers and the axes edges.

    Each label is kept closer to its own marker than to any other (so it cannot be read as another
    point's), moves further out only when it must, and then gets a thin leader line.
    ``extra`` are minor markers (trajectory points) to avoid where it costs nothing.
    """
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()  # run the layout once, then freeze it so display coordinates stay valid
    fig.set_layout_engine("none")
    inside = ax.get_window_extent(renderer)
    px = fig.dpi / 72.0

    def box(x, y, r):
        cx, cy = ax.transData.transform((x, y))
        return Bbox.from_extents(cx - r * px, cy - r * px, cx + r * px, cy + r * px)

    centers = [ax.transData.transform((x, y)) for _, x, y, _ in items]
    markers = [box(x, y, 5) for _, x, y, _ in items]
    minor = [box(x, y, 2.5) for x, y in extra]

    def dist(bb, c):
        dx = max(bb.x0 - c[0], 0.0, c[0] - bb.x1)
        dy = max(bb.y0 - c[1], 0.0, c[1] - bb.y1)
        return math.hypot(dx, dy)

    placed = []
    for k, (text, x, y, style) in enumerate(items):
        ann = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=8,
                          zorder=6, annotation_clip=False, **style)
        best = None
        for scale in (1, 2, 3.5, 5.5):
            for (dx, dy), ha, va in _OFFSETS:
                pos = (dx * scale, dy * scale)
                ann.set_position(pos)
                ann.set_ha(ha)
                ann.set_va(va)
                bb = ann.get_window_extent(renderer)
                cost = sum(_overlap(bb, o) for o in placed) + sum(_overlap(bb, m) for m in markers)
                cost += 0.3 * sum(_overlap(bb, m) for m in minor)
                cost += 4 * (bb.width * bb.height - _overlap(bb, inside))
                own = dist(bb, centers[k])
                if any(dist(bb, c) < own - 1 for j, c in enumerate(centers) if j != k):
                    cost += 400  # nearer to another point than to its own: ambiguous
                cost += (scale - 1) * 40
                if best is None or cost < best[0]:
                    best = (cost, pos, ha, va, bb)
        _, pos, ha, va, bb = best
        ann.remove()  # redraw at the chosen place, with a leader line when it ended up away from the point
        far = abs(pos[0]) + abs(pos[1]) > 13
        ax.annotate(text, (x, y), xytext=pos, textcoords="offset points", fontsize=8, ha=ha, va=va, zorder=6,
                    annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", lw=0.6, color="0.45", shrinkA=1, shrinkB=4) if far else None,
                    **style)
        placed.append(bb)


def plot_pareto(runs: list[RunData], path: str | Path, title: str = "Accuracy vs. tokens") -> Path:
    """Accuracy (%) against mean completion tokens: runs, the start, trajectories, the Pareto frontier."""
    from matplotlib.lines import Line2D

    colors = _colors(len(runs))
    pts = plot_points(runs)
    front = pareto_front([(p.tokens, p.accuracy) for p in pts])
    fig = _figure(7, 5)
    ax = fig.add_subplot()
    xs_all, ys_all = [p.tokens for p in pts], [p.accuracy * 100 for p in pts]

    has_traj = False
    for i, r in enumerate(runs):  # faint trajectories: start -> held-out evals during training -> after
        if r.kind != "train" or r.after is None:
            continue
        seq = ([r.before] if r.before else []) + sorted(r.trajectory, key=lambda q: q.step or 0) + [r.after]
        if len(seq) < 2:
            continue
        tx, ty = [q.mean_tokens for q in seq], [q.accuracy * 100 for q in seq]
        xs_all += tx
        ys_all += ty
        mid = r.trajectory
        ax.plot(tx, ty, color=colors[i], alpha=0.35 if mid else 0.25, lw=1.2 if mid else 1.0,
                ls="-" if mid else ":", zorder=1)
        if mid:
            has_traj = True
            ax.scatter([q.mean_tokens for q in mid], [q.accuracy * 100 for q in mid], s=12,
                       color=colors[i], alpha=0.45, lw=0, zorder=2)

    if front:  # the frontier: the best accuracy reachable at a given token count
        fx = [pts[k].tokens for k in front]
        fy = [pts[k].accuracy * 100 for k in front]
        ax.step(fx, fy, where="post", color="0.25", lw=1.1, ls="--", zorder=2)

    for k, p in enumerate(pts):
        y = p.accuracy * 100
        if p.kind == "start":
            ax.scatter([p.tokens], [y], marker="*", s=230, color="black", zorder=5, lw=0)
        else:
            c = colors[p.runs[0]]
            ax.scatter([p.tokens], [y], marker="o" if p.kind == "train" else "D", s=55 if p.kind == "train" else 45,
                       color=c, edgecolor="black" if k in front else "white", lw=1.2 if k in front else 0.6,
                       zorder=4)

    # limits with room for the labels
    if xs_all:
        x0, x1, y0, y1 = min(xs_all), max(xs_all), min(ys_all), max(ys_all)
        dx = (x1 - x0) or max(abs(x1) * 0.1, 1.0)
        dy = (y1 - y0) or 2.0
        ax.set_xlim(max(0.0, x0 - 0.12 * dx) if x0 >= 0 else x0 - 0.12 * dx, x1 + 0.18 * dx)
        ax.set_ylim(max(0.0, y0 - 0.14 * dy) if y0 >= 0 else y0 - 0.14 * dy, min(y1 + 0.14 * dy, 101.0)
                    if y1 <= 100 else y1 + 0.14 * dy)
    ax.set_xlabel("mean completion tokens (held-out eval)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_axisbelow(True)

    handles = []
    if any(p.kind == "start" for p in pts):
        handles.append(Line2D([], [], marker="*", color="black", ls="", ms=11, label="start (before training)"))
    if any(p.kind == "train" for p in pts):
        handles.append(Line2D([], [], marker="o", color="0.5", ls="", ms=7, label="after training"))
    if any(p.kind == "eval" for p in pts):
        handles.append(Line2D([], [], marker="D", color="0.5", ls="", ms=6, label="eval.json"))
    if has_traj:
        handles.append(Line2D([], [], marker=".", color="0.5", alpha=0.6, label="evals during training"))
    if front:
        names = ", ".join(pts[k].name for k in front)
        lab = f"Pareto frontier: {names}" if len(names) <= 45 else f"Pareto frontier ({len(front)} points)"
        handles.append(Line2D([], [], color="0.25", ls="--", marker="o", mfc="none", mec="black", ms=6, label=lab))
    if handles:  # below the axes: never on top of a point or a label
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=7.5,
                   frameon=False)

    items = []
    for p in pts:
        style = {"color": "black", "fontweight": "bold"} if p.kind == "start" else {"color": "0.15"}
        items.append((p.name, p.tokens, p.accuracy * 100, style))
    extra = [(q.mean_tokens, q.accuracy * 100) for r in runs if r.kind == "train" for q in r.trajectory]
    for a, b in zip(front, front[1:]):  # keep labels off the frontier line too
        (xa, ya), (xb, yb) = (pts[a].tokens, pts[a].accuracy * 100), (pts[b].tokens, pts[b].accuracy * 100)
        extra += [(xa + (xb - xa) * t / 12, ya) for t in range(1, 13)] + [(xb, ya + (yb - ya) * t / 12) for t in range(12)]
    _place_labels(fig, ax, items, extra)
    path = Path(path)
    fig.savefig(path, dpi=150)
    return path


def _ema(values: list[float], span: int) -> list[float]:
    a = 2.0 / (span + 1)
    out, m, w = [], 0.0, 0.0
    for v in values:
        m = (1 - a) * m + a * v
        w = (1 - a) * w + a
        out.append(m / w)  # bias-corrected: the first values are not pulled toward 0
    return out


def _series(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        if _finite(r.get(key)):
            xs.append(r["step"])
            ys.append(r[key] * scale)
    return xs, ys


def plot_curves(runs: list[RunData], path: str | Path, title: str = "Training curves") -> Path | None:
    """Reward, accuracy (%) and mean tokens against step, one colour per run; None if no run has a log."""
    from matplotlib.lines import Line2D

    colors = _colors(len(runs))
    logged = [i for i, r in enumerate(runs) if r.metrics]
    if not logged:
        return None
    fig = _figure(7, 8)
    axes = fig.subplots(3, 1, sharex=True)
    panels = [("reward/mean", 1.0, "reward (mean)"), ("accuracy", 100.0, "accuracy (%)"),
              ("tokens/mean", 1.0, "mean tokens")]
    smoothed = dashed = held_out = False
    for i in logged:
        r, c = runs[i], colors[i]
        for ax, (key, scale, _) in zip(axes, panels):
            xs, ys = _series(r.metrics, key, scale)
            if not xs:
                continue
            if len(xs) >= 15:
                ax.plot(xs, ys, color=c, lw=0.7, alpha=0.3)
                ax.plot(xs, _ema(ys, max(3, len(xs) // 15)), color=c, lw=1.8)
                smoothed = True
            else:
                ax.plot(xs, ys, color=c, lw=1.5, marker="o" if len(xs) < 6 else None, ms=3)
        lx, ly = _series(r.metrics, "length_limit")
        if ly and max(ly) > min(ly):
            axes[2].plot(lx, ly, color=c, lw=1.1, ls="--", alpha=0.8)
            dashed = True
        # held-out evaluations: before (step 0), during (eval.every), after (last step)
        ev = ([r.before] if r.before else []) + r.trajectory + ([r.after] if r.after and r.steps is not None else [])
        ev = sorted((q for q in ev if q.step is not None), key=lambda q: q.step)
        if ev:
            held_out = True
            for ax, vals in ((axes[1], [q.accuracy * 100 for q in ev]), (axes[2], [q.mean_tokens for q in ev])):
                ax.plot([q.step for q in ev], vals, color=c, lw=0.9, ls=":", marker="o", ms=5, mfc="white",
                        mec=c, mew=1.3, zorder=4)
    for ax, (_, _, ylabel) in zip(axes, panels):
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("training step")
    from matplotlib.ticker import MaxNLocator

    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    axes[0].set_title(title)

    handles = [Line2D([], [], color=colors[i], lw=2, label=runs[i].label) for i in logged]
    style = []
    if smoothed:
        style.append(Line2D([], [], color="0.4", lw=1.8, label="training batch (EMA; raw faint)"))
    else:
        style.append(Line2D([], [], color="0.4", lw=1.5, label="training batch"))
    if held_out:
        style.append(Line2D([], [], color="0.4", lw=0.9, ls=":", marker="o", mfc="white", mec="0.4",
                            label="held-out eval"))
    if dashed:
        style.append(Line2D([], [], color="0.4", lw=1.1, ls="--", label="length limit"))
    axes[0].legend(handles=handles, fontsize=7.5, loc="best", ncol=1 if len(handles) <= 4 else 2, framealpha=0.9)
    axes[2].legend(handles=style, fontsize=7.5, loc="best", framealpha=0.9)
    path = Path(path)
    fig.savefig(path, dpi=150)
    return path


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
    report = {
        "title": args.title,
        "runs": table_rows(runs),
        "frontier": [{"name": pts[k].name, "mean_tokens": pts[k].tokens, "accuracy_pct": pts[k].accuracy * 100,
                      "kind": pts[k].kind} for k in front],
        "starts": [{"runs": [runs[i].label for i in p.runs], "mean_tokens": p.tokens, "accuracy_pct": p.accuracy * 100}
                   for p in pts if p.kind == "start"],
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
