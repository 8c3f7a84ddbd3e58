"""The runs ``laconic compare`` reads, as data: a training run directory, an evaluation directory or an
``eval.json`` / ``summary.json`` file loaded into a :class:`RunData`, the shared start, labels, the
Pareto front and table rows. Drawing is :mod:`rl.eval.plots`, seeds :mod:`rl.eval.seeds`, the command
:mod:`rl.eval.compare`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
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
    seed: int | None = None  # k for a run directory named seed<k> (rl/eval/seeds.py)
    eval_set: dict[str, Any] = field(default_factory=dict)  # what "after" was measured on (:func:`eval_set_of`)
    mode: str | None = None  # ThinkDial: the mode its points were evaluated in (eval.modes, :func:`split_modes`)
    modes: dict[str, tuple[Point | None, Point]] = field(default_factory=dict)  # eval.modes: mode -> (before, after)
    act: dict[str, float] = field(default_factory=dict)  # eval.modes: summary.json's ThinkDial ACT

    @property
    def name(self) -> str:
        """The label, with the seed when there is one."""
        return self.label if self.seed is None else f"{self.label} seed{self.seed}"

    @property
    def point(self) -> Point | None:
        """The run's point on the Pareto plot."""
        return self.after


# ---------------------------------------------------------------------------------------------- loading


def finite(v: Any) -> bool:
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
    acc = next((d[k] for k in acc_keys if finite(d.get(k))), None)
    tok = d.get("mean_tokens")
    if acc is None or not finite(tok):
        raise CompareError(f"{path}: missing {' or '.join(acc_keys)} / mean_tokens")
    trunc = d.get("truncation_rate")
    n = d.get("n")
    diffs, by_diff = d.get("by_difficulty"), {}
    for k, v in diffs.items() if isinstance(diffs, dict) else ():
        try:
            by_diff[str(k)] = _point(v, path, acc_keys)
        except CompareError:
            continue  # an empty difficulty (n = 0, NaN numbers): left out
    return Point(_frac(acc), float(tok), float(trunc) if finite(trunc) else None,
                 int(n) if finite(n) else None, by_difficulty=by_diff)


def _default_label(d: Path) -> str:
    d = d.resolve()
    if SEED_DIR.fullmatch(d.name):  # <method>/seed<k>: the method
        return d.parent.name
    if d.name == "final" or d.name.startswith("checkpoint-"):
        return f"{d.parent.name}/{d.name}"
    return d.name or str(d)


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    from rl.run.tracking import read_metrics

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
            before_modes = (s.get("before") or {}).get("modes") or {}
            for m, e in (s["after"].get("modes") or {}).items():
                b = _point(before_modes[m], d / "summary.json") if m in before_modes else None
                run.modes[m] = (b, _point(e, d / "summary.json"))
            run.act = {k: float(v) for k, v in (s.get("act") or {}).items() if finite(v)}
        run.steps = s.get("steps") if isinstance(s.get("steps"), int) else None
        run.model = s.get("model")
        run.eval_set = s.get("eval_set") if isinstance(s.get("eval_set"), dict) else {}
        if run.after is None:
            run.notes.append("no 'after' evaluation in summary.json")
    else:
        run.notes.append("no summary.json: curves only")
    if (d / "metrics.jsonl").exists():
        run.metrics = sorted((r for r in _read_metrics(d / "metrics.jsonl", run.notes) if finite(r.get("step"))),
                             key=lambda r: r["step"])
    for r in run.metrics:
        if finite(r.get("eval/accuracy")) and finite(r.get("eval/mean_tokens")):
            run.trajectory.append(Point(_frac(r["eval/accuracy"]), float(r["eval/mean_tokens"]),
                                        r.get("eval/truncation_rate") if finite(r.get("eval/truncation_rate")) else None,
                                        int(r["eval/n"]) if finite(r.get("eval/n")) else None, int(r["step"])))
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
    settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
    return RunData(label=label, path=f, kind="eval", after=p, model=d.get("model"),
                   eval_set={"source": d.get("data"), "split": d.get("split"), **{k: settings.get(k) for k in EVAL_SETTINGS}})


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


def split_modes(runs: list[RunData]) -> list[RunData]:
    """A run evaluated in several ThinkDial modes (``eval.modes``) becomes one run per mode, labelled
    ``<label> [<mode>]``, each with that mode's before / after points (its own point on the Pareto plot);
    the training curves stay with the first mode's."""
    out = []
    for r in runs:
        if not r.modes:
            out.append(r)
            continue
        for i, (m, (b, a)) in enumerate(r.modes.items()):
            out.append(replace(r, label=f"{r.label} [{m}]", mode=m, before=b, after=replace(a, step=r.steps), modes={},
                               metrics=r.metrics if i == 0 else [], trajectory=r.trajectory if i == 0 else [],
                               act=r.act if i == 0 else {}, notes=list(r.notes)))
    return out


def start_key(run: RunData) -> str | None:
    """What fixes a run's "before" evaluation: the model, its data template, the eval settings and mode."""
    cfg = run.config
    if not cfg:
        return None
    data = cfg.get("data") or {}
    ev = {k: v for k, v in (cfg.get("eval") or {}).items() if k not in ("before", "after", "every")}
    parts = [(cfg.get("model") or {}).get("name_or_path"), ev,
             {k: data.get(k) for k in ("name", "prompt_template", "chat_template", "delimiter", "system_prompt",
                                       "mode_prompts")}, run.mode]
    return json.dumps(parts, sort_keys=True, default=str)


def share_starts(runs: list[RunData]) -> None:
    """A training run evaluated without ``eval.before`` inherits the "before" of a run that has one
    with the same model, data template and eval settings (the evaluation is seeded, so it would
    give the same numbers)."""
    known: dict[str, RunData] = {}
    for r in runs:  # the first run that evaluated each start
        if r.kind == "train" and r.before is not None and start_key(r):
            known.setdefault(start_key(r), r)
    for r in runs:
        src = known.get(start_key(r)) if r.kind == "train" and r.before is None else None
        if src is not None:
            r.before = Point(**{**src.before.__dict__})
            r.notes.append(f"start from {src.name} (same model and eval settings)")


def unique_labels(runs: list[RunData]) -> None:
    """Runs with the same label get " (2)", " (3)", ...; except the seeds of one seeded label, which
    are a group (rl/eval/seeds.py) as long as their seeds differ."""
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

#: the settings that make two evaluations comparable, besides the data (eval section / ``laconic eval``)
EVAL_SETTINGS = ("max_new_tokens", "temperature", "top_p", "samples", "length_budget")


def eval_set_of(run: RunData) -> tuple[tuple[str, Any], ...]:
    """What a run's "after" numbers were measured on: the data (source, split or held-out share, number
    of prompts) and the sampling settings. Two runs whose keys differ are not on one frontier; ``()``
    when the data is not recorded."""
    es, cfg = run.eval_set, run.config
    e, d = cfg.get("eval") or {}, cfg.get("data") or {}
    split = (f"{es['holdout']:g} held out (seed {es.get('seed')})" if "holdout" in es
             else es.get("split") or e.get("split"))
    data = es.get("source") or e.get("name") or d.get("name")
    if data is None:
        return ()  # not known (an old eval.json or summary): compared with every run, as before
    key = {"data": data, "split": split,
           "prompts": run.after.n if run.after is not None and run.after.n else es.get("rows")}
    key |= {k: es[k] if k in es else e.get(k) for k in EVAL_SETTINGS}
    if es.get("held_out") is False:
        key["held_out"] = False
    return tuple((k, v) for k, v in key.items() if v is not None)


def describe_eval_set(key: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k} {v}" for k, v in key) or "unknown"


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


# ---------------------------------------------------------------------------------------------- command

