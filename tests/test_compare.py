"""``laconic compare``: Pareto frontier, loading runs and evals, the table, the plots end to end."""

import argparse
import json
import math

import pytest

from rl.compare import add_parser, load_run, pareto_front, plot_points, run, table_rows

BEFORE = {"n": 100, "accuracy": 0.80, "mean_tokens": 400.0, "truncation_rate": 0.10, "by_difficulty": {}}


def make_run(root, name, after, before=BEFORE, steps=30, eval_every=10, summary=True, reward="dler"):
    d = root / name
    d.mkdir(parents=True)
    rows = []
    for s in range(1, steps + 1):
        f = s / steps
        row = {"step": s, "reward/mean": 0.1 + 0.5 * f, "accuracy": 0.7 + 0.1 * f,
               "tokens/mean": 400 - 100 * f, "tokens/p50": 300, "tokens/p90": 450, "truncation_rate": 0.05,
               "length_limit": 512 - 8 * s}
        if eval_every and s % eval_every == 0:
            row.update({"eval/n": 100, "eval/accuracy": 0.8 - 0.001 * s, "eval/mean_tokens": 400 - 3 * s,
                        "eval/truncation_rate": 0.02})
        rows.append(json.dumps(row))
    (d / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    (d / "config.json").write_text(json.dumps({"model": {"name_or_path": "toy"}, "rewards": [{"name": reward}]}))
    if summary:
        s = {"after": {"n": 100, "by_difficulty": {}, **after}, "steps": steps, "model": "toy"}
        if before is not None:
            s["before"] = before
        (d / "summary.json").write_text(json.dumps(s))
    (d / "checkpoint-000030").mkdir()
    return d


def make_eval(root, name, pass1, tokens, trunc=0.0):
    d = root / name
    d.mkdir(parents=True)
    (d / "eval.json").write_text(json.dumps({"model": "toy/final", "pass@1": pass1, "mean_tokens": tokens,
                                             "truncation_rate": trunc, "by_difficulty": {}}))
    return d


def cli(argv):
    parser = argparse.ArgumentParser(prog="laconic")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["compare", *argv]))


# ------------------------------------------------------------------------------------------ pareto_front


def test_pareto_front_drops_dominated_points_and_orders_by_tokens():
    pts = [(100, 0.80), (200, 0.90), (150, 0.70), (300, 0.90), (50, 0.50)]
    # (150, .70) is beaten by (100, .80); (300, .90) ties (200, .90) on accuracy with more tokens
    assert pareto_front(pts) == [4, 0, 1]


def test_pareto_front_ties_and_duplicates():
    assert pareto_front([(100, 0.8), (100, 0.8), (120, 0.8)]) == [0, 1]  # duplicates do not dominate each other
    assert pareto_front([(100, 0.7), (100, 0.8)]) == [1]  # same tokens, lower accuracy: dominated
    assert pareto_front([(100, 0.8), (90, 0.8)]) == [1]  # same accuracy, more tokens: dominated
    assert pareto_front([(10, 0.9)]) == [0]
    assert pareto_front([]) == []
    assert pareto_front([(math.nan, 0.99), (100, 0.5)]) == [1]


def test_pareto_front_matches_the_definition_on_a_grid():
    pts = [(x, y) for x in (1, 2, 3) for y in (0.1, 0.2, 0.3)] + [(2, 0.3), (0.5, 0.05)]
    front = set(pareto_front(pts))
    for i, (x, y) in enumerate(pts):
        dominated = any(a <= x and b >= y and (a, b) != (x, y) for a, b in pts)
        assert (i in front) == (not dominated), (i, x, y)


# ------------------------------------------------------------------------------------------ loading


def test_load_run_reads_a_training_run(tmp_path):
    d = make_run(tmp_path, "laser", {"accuracy": 0.78, "mean_tokens": 300.0, "truncation_rate": 0.01},
                 reward="laser")
    r = load_run(d)
    assert (r.label, r.kind, r.steps, r.model, r.rewards) == ("laser", "train", 30, "toy", ["laser"])
    assert (r.before.accuracy, r.before.mean_tokens, r.before.truncation_rate, r.before.step) == (0.80, 400.0, 0.10, 0)
    assert (r.after.accuracy, r.after.mean_tokens, r.after.truncation_rate, r.after.step) == (0.78, 300.0, 0.01, 30)
    assert [q.step for q in r.trajectory] == [10, 20, 30]
    assert r.trajectory[1].accuracy == pytest.approx(0.78) and r.trajectory[1].mean_tokens == pytest.approx(340)
    assert len(r.metrics) == 30 and r.notes == []
    # the summary.json file itself, a label override, a checkpoint directory's default label
    assert load_run(d / "summary.json").after == r.after
    assert load_run(d, label="L").label == "L"
    (d / "checkpoint-000030" / "eval.json").write_text(json.dumps({"pass@1": 0.75, "mean_tokens": 320}))
    assert load_run(d / "checkpoint-000030").label == "laser/checkpoint-000030"


def test_load_run_reads_an_eval_json(tmp_path):
    d = make_eval(tmp_path, "base_greedy", 0.81, 395.0, trunc=0.1)
    for path in (d, d / "eval.json"):
        r = load_run(path)
        assert (r.label, r.kind, r.before, r.model) == ("base_greedy", "eval", None, "toy/final")
        assert (r.after.accuracy, r.after.mean_tokens, r.after.truncation_rate) == (0.81, 395.0, 0.1)
    pct = make_eval(tmp_path, "pct", 81.0, 395.0)  # pass@1 written as a percentage
    assert load_run(pct).after.accuracy == pytest.approx(0.81)


def test_run_without_summary_keeps_its_curves_but_gets_no_point(tmp_path):
    d = make_run(tmp_path, "running", None, summary=False)
    r = load_run(d)
    assert r.after is None and r.before is None and len(r.metrics) == 30 and r.steps == 30
    assert "no summary.json" in r.notes[0]
    (row,) = table_rows([r])
    assert row["tokens_after"] is None and row["frontier"] is None and "no summary.json" in row["note"]


# ------------------------------------------------------------------------------------------ the table


def test_table_numbers_frontier_and_order(tmp_path):
    a = load_run(make_run(tmp_path, "a", {"accuracy": 0.78, "mean_tokens": 300.0, "truncation_rate": 0.02}))
    b = load_run(make_run(tmp_path, "b", {"accuracy": 0.70, "mean_tokens": 320.0, "truncation_rate": 0.0}))
    e = load_run(make_eval(tmp_path, "e", 0.79, 100.0))
    rows = table_rows([a, b, e])
    assert [r["label"] for r in rows] == ["e", "a", "b"]  # by tokens after
    ra = rows[1]
    assert ra["token_change_pct"] == pytest.approx((300 - 400) / 400 * 100)  # -25 %
    assert ra["acc_change_pt"] == pytest.approx(-2.0)
    assert ra["acc_before_pct"] == pytest.approx(80.0) and ra["acc_after_pct"] == pytest.approx(78.0)
    assert ra["trunc_after_pct"] == pytest.approx(2.0) and ra["trunc_before_pct"] == pytest.approx(10.0)
    assert rows[2]["token_change_pct"] == pytest.approx(-20.0) and rows[2]["acc_change_pt"] == pytest.approx(-10.0)
    # e (100 tokens, 79%) beats a (300, 78%) and b; the start (400, 80%) stays on the front
    assert [r["frontier"] for r in rows] == [True, False, False]
    assert rows[0]["acc_change_pt"] is None and rows[0]["token_change_pct"] is None
    # one shared start for a and b, listed on the frontier
    pts = plot_points([a, b, e])
    starts = [p for p in pts if p.kind == "start"]
    assert len(starts) == 1 and starts[0].runs == [0, 1] and starts[0].name == "start"
    assert [pts[k].name for k in pareto_front([(p.tokens, p.accuracy) for p in pts])] == ["e", "start"]


def test_runs_with_different_starts_get_one_start_each(tmp_path):
    a = load_run(make_run(tmp_path, "a", {"accuracy": 0.7, "mean_tokens": 300.0}))
    other = {**BEFORE, "accuracy": 0.5}
    b = load_run(make_run(tmp_path, "b", {"accuracy": 0.6, "mean_tokens": 300.0}, before=other))
    starts = [p.name for p in plot_points([a, b]) if p.kind == "start"]
    assert starts == ["start: a", "start: b"]


# ------------------------------------------------------------------------------------------ end to end


def _check_png(path, size):
    from matplotlib.image import imread

    assert path.exists() and path.stat().st_size > 20_000
    img = imread(path)
    assert img.shape[:2] == size and img.shape[2] in (3, 4)
    dark = (img[..., :3] < 0.85).any(axis=-1)
    assert 0.01 < dark.mean() < 0.5  # something drawn, not a black square


def test_compare_end_to_end(tmp_path, capsys):
    a = make_run(tmp_path, "laser_d", {"accuracy": 0.80, "mean_tokens": 190.0, "truncation_rate": 0.0})
    b = make_run(tmp_path, "kimi", {"accuracy": 0.77, "mean_tokens": 230.0, "truncation_rate": 0.01}, eval_every=0)
    e = make_eval(tmp_path, "base_greedy", 0.81, 395.0)
    out = tmp_path / "cmp"
    assert cli([str(a), str(b), str(e / "eval.json"), "--out", str(out), "--title", "T"]) == 0
    _check_png(out / "pareto.png", (750, 1050))  # 7 x 5 in at 150 dpi
    _check_png(out / "curves.png", (1200, 1050))
    md = (out / "compare.md").read_text()
    assert md.startswith("# T")
    for label in ("laser_d", "kimi", "base_greedy"):
        assert f"| {label} |" in md
    assert md.index("| laser_d |") < md.index("| kimi |") < md.index("| base_greedy |")  # by tokens
    assert "| -52.5% |" in md  # laser_d: 190 vs 400 tokens
    rep = json.loads((out / "compare.json").read_text())
    # laser_d matches the start's accuracy with fewer tokens, so the start is off the front
    assert [f["name"] for f in rep["frontier"]] == ["laser_d", "base_greedy"]
    assert rep["starts"] == [{"runs": ["laser_d", "kimi"], "mean_tokens": 400.0, "accuracy_pct": 80.0}]
    assert "wrote" in capsys.readouterr().out
    # labels option
    assert cli([str(a), str(e), "--out", str(out), "--labels", "x,y"]) == 0
    assert "| x |" in (out / "compare.md").read_text()


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (tmp_path / "missing", empty):
        assert cli([str(bad), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err
    junk = tmp_path / "eval.json"
    junk.write_text("{not json")
    assert cli([str(junk)]) == 2 and str(junk) in capsys.readouterr().err
    assert cli([str(empty), str(empty), "--labels", "one"]) == 2
    assert not (tmp_path / "o").exists()


def test_toy_pareto_script_runs_methods_and_compares(untrained_toy, tmp_path):
    """scripts/toy_pareto.sh end to end at a tiny scale: runs, skips finished ones, plots."""
    import os
    import subprocess

    from .conftest import ROOT

    extra = (f"model.name_or_path={untrained_toy} train.max_steps=1 data.num_examples=32 "
             "rollout.prompts_per_step=2 rollout.group_size=2 rollout.max_new_tokens=8 eval.num_examples=4 "
             "eval.samples=1 eval.max_new_tokens=8 train.save_every=0 train.log_completions=0")
    env = {**os.environ, "OUT": str(tmp_path), "METHODS": "dler kimi", "JOBS": "2", "EXTRA": extra,
           "OMP_NUM_THREADS": "1"}
    p = subprocess.run(["bash", "scripts/toy_pareto.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for name in ("pareto.png", "curves.png", "compare.md"):
        assert (tmp_path / "compare" / name).stat().st_size > 1000 or name == "compare.md"
    table = (tmp_path / "compare" / "compare.md").read_text()
    assert "| dler |" in table and "| kimi |" in table
    again = subprocess.run(["bash", "scripts/toy_pareto.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "skip dler (done)" in again.stdout


def test_runs_without_a_before_eval_share_a_matching_start(tmp_path):
    from rl.compare import load_run, share_starts

    def fake(name, before, model="builtin:toy", eval_n=350):
        d = tmp_path / name
        d.mkdir()
        s = {"after": {"accuracy": 0.9, "mean_tokens": 30.0, "truncation_rate": 0.0, "n": 4}, "steps": 2}
        if before:
            s["before"] = {"accuracy": 0.8, "mean_tokens": 80.0, "truncation_rate": 0.1, "n": 4}
        (d / "summary.json").write_text(json.dumps(s))
        cfg = {"model": {"name_or_path": model}, "data": {"prompt_template": "Q:{question}="},
               "eval": {"num_examples": eval_n, "before": before}, "rewards": [{"name": "dler"}]}
        (d / "config.json").write_text(json.dumps(cfg))
        return load_run(d)

    runs = [fake("a", True), fake("b", False), fake("c", False, model="other"), fake("d", False, eval_n=10)]
    share_starts(runs)
    assert runs[1].before.accuracy == 0.8 and runs[1].before.mean_tokens == 80.0
    assert "start from a" in runs[1].notes[-1]
    assert runs[2].before is None and runs[3].before is None  # another model / other eval settings
