"""Drawing for ``laconic compare`` (:mod:`rl.eval.compare`): the accuracy-vs-tokens Pareto plot with
non-overlapping labels, and the training curves. Matplotlib's object API with the Agg canvas:
importing or running this never changes the caller's backend or opens a window."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from rl.eval.runs import Point, RunData, finite
from rl.eval.seeds import frontiers, group_runs, mean_trajectory, plot_points


def _colors(n: int) -> list:
    """Distinct run colours; tab10's grey is left out (grey and black mark the start and the frontier)."""
    from matplotlib import colormaps

    base = [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
    if n > len(base):
        t20 = colormaps["tab20"]
        base += [t20(i) for i in range(1, 20, 2) if i not in (15,)]
    return [base[i % len(base)] for i in range(n)]


def _run_colors(runs: list[RunData]) -> list:
    """One colour per run; the seeds of one method (rl/eval/seeds.py) share theirs."""
    groups = group_runs(runs)
    out: list = [None] * len(runs)
    for g, c in zip(groups, _colors(len(groups))):
        for i in g.runs:
            out[i] = c
    return out


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
    """Accuracy (%) against mean completion tokens: runs, the start, trajectories, the Pareto frontier.
    A method run with several seeds is drawn at its mean over the seeds with ±1 sd error bars in both
    axes, each seed as a faint dot, and the trajectory averaged over the seeds."""
    from matplotlib.lines import Line2D

    colors = _run_colors(runs)
    pts = plot_points(runs)
    fronts = [f for f in frontiers(runs, pts) if f]  # one per evaluation set: different data never compete
    front = [k for f in fronts for k in f]
    fig = _figure(7, 5)
    ax = fig.add_subplot()
    xs_all, ys_all = [p.tokens for p in pts], [p.accuracy * 100 for p in pts]

    has_traj = False
    trajs: list[list[Point]] = []
    for p in pts:  # faint trajectories: start -> held-out evals during training (mean over seeds) -> after
        if p.kind != "train":
            continue
        c, members = colors[p.runs[0]], p.runs
        before = next((runs[i].before for i in members if runs[i].before is not None), None)
        mid = mean_trajectory(runs, members)
        seq = ([before] if before else []) + mid + [Point(p.accuracy, p.tokens)]
        if len(seq) < 2:
            continue
        tx, ty = [q.mean_tokens for q in seq], [q.accuracy * 100 for q in seq]
        xs_all += tx
        ys_all += ty
        ax.plot(tx, ty, color=c, alpha=0.35 if mid else 0.25, lw=1.2 if mid else 1.0,
                ls="-" if mid else ":", zorder=1)
        if mid:
            has_traj = True
            trajs.append(mid)
            ax.scatter([q.mean_tokens for q in mid], [q.accuracy * 100 for q in mid], s=12,
                       color=c, alpha=0.45, lw=0, zorder=2)

    seeds_drawn = bars = False
    seed_dots: list[tuple[float, float]] = []
    for p in pts:  # seeds: each seed's point faint, the spread as ±1 sd bars around the mean
        if p.kind == "start" or len(p.runs) < 2:
            continue
        c = colors[p.runs[0]]
        sx, sy = [runs[i].point.mean_tokens for i in p.runs], [runs[i].point.accuracy * 100 for i in p.runs]
        ax.scatter(sx, sy, s=14, facecolor="none", edgecolor=c, alpha=0.6, lw=0.8, zorder=3)
        seed_dots += list(zip(sx, sy))
        seeds_drawn = True
        if p.tokens_sd is not None and p.accuracy_sd is not None:
            ax.errorbar([p.tokens], [p.accuracy * 100], xerr=[p.tokens_sd], yerr=[p.accuracy_sd * 100], fmt="none",
                        ecolor=c, elinewidth=1.1, capsize=2.5, capthick=1.1, alpha=0.85, zorder=3)
            xs_all += [p.tokens - p.tokens_sd, p.tokens + p.tokens_sd]
            ys_all += [(p.accuracy - p.accuracy_sd) * 100, (p.accuracy + p.accuracy_sd) * 100]
            bars = True
    xs_all += [x for x, _ in seed_dots]
    ys_all += [y for _, y in seed_dots]

    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for j, f in enumerate(fronts):  # the frontier: the best accuracy reachable at a given token count
        ax.step([pts[k].tokens for k in f], [pts[k].accuracy * 100 for k in f], where="post", color="0.25", lw=1.1,
                ls=styles[j % len(styles)], zorder=2)

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
    if bars:
        handles.append(Line2D([], [], marker="o", color="0.5", ls="-", lw=1.1, ms=6, label="mean over seeds ±1 sd"))
    if seeds_drawn:
        handles.append(Line2D([], [], marker="o", color="0.5", mfc="none", ls="", ms=4, label="each seed"))
    if has_traj:
        handles.append(Line2D([], [], marker=".", color="0.5", alpha=0.6,
                              label="evals during training" + (" (seed mean)" if seeds_drawn else "")))
    for j, f in enumerate(fronts):
        names = ", ".join(pts[k].name for k in f)
        lab = f"Pareto frontier: {names}" if len(names) <= 45 else f"Pareto frontier ({len(f)} points)"
        if len(fronts) > 1:
            lab = f"eval set {chr(65 + j)}: " + lab[0].lower() + lab[1:]
        handles.append(Line2D([], [], color="0.25", ls=styles[j % len(styles)], marker="o", mfc="none", mec="black",
                              ms=6, label=lab))
    if handles:  # below the axes: never on top of a point or a label
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=7.5,
                   frameon=False)

    items = []
    for p in pts:
        style = {"color": "black", "fontweight": "bold"} if p.kind == "start" else {"color": "0.15"}
        items.append((_short(p.name), p.tokens, p.accuracy * 100, style))
    extra = [(q.mean_tokens, q.accuracy * 100) for t in trajs for q in t] + seed_dots
    for a, b in [ab for f in fronts for ab in zip(f, f[1:])]:  # keep labels off the frontier lines too
        (xa, ya), (xb, yb) = (pts[a].tokens, pts[a].accuracy * 100), (pts[b].tokens, pts[b].accuracy * 100)
        extra += [(xa + (xb - xa) * t / 12, ya) for t in range(1, 13)] + [(xb, ya + (yb - ya) * t / 12) for t in range(12)]
    _place_labels(fig, ax, items, extra)
    path = Path(path)
    fig.savefig(path, dpi=150)
    return path


def _short(name: str, most: int = 48) -> str:
    """A point's label on the plot: a start shared by many runs names the first two and counts the rest
    (compare.md lists them all).

    >>> _short("start: dler, kimi"), _short("start: " + ", ".join(f"method{i}" for i in range(9)))
    ('start: dler, kimi', 'start: method0, method1 +7 more')
    """
    head, sep, names = name.rpartition(": ")
    parts = names.split(", ")
    if len(name) <= most or len(parts) < 3:
        return name
    return f"{head}{sep}{parts[0]}, {parts[1]} +{len(parts) - 2} more"


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
        if finite(r.get(key)):
            xs.append(r["step"])
            ys.append(r[key] * scale)
    return xs, ys


def plot_curves(runs: list[RunData], path: str | Path, title: str = "Training curves") -> Path | None:
    """Reward, accuracy (%) and mean tokens against step, one colour per run; None if no run has a log."""
    from matplotlib.lines import Line2D

    colors = _run_colors(runs)
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

    labels = dict.fromkeys(runs[i].label for i in logged)  # the seeds of a method: one entry, one colour
    handles = [Line2D([], [], color=colors[next(i for i in logged if runs[i].label == lab)], lw=2, label=lab)
               for lab in labels]
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
