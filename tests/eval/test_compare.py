"""``laconic compare``: Pareto frontier, loading runs and evals, the table, the plots end to end."""

import argparse
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.eval.compare import add_parser, run, table_rows
from rl.eval.runs import load_run, pareto_front
from rl.eval.seeds import plot_points

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

    from tests.conftest import ROOT

    extra = (f"model.name_or_path={untrained_toy} train.max_steps=1 data.num_examples=32 "
             "rollout.prompts_per_step=2 rollout.group_size=2 rollout.max_new_tokens=8 eval.num_examples=4 "
             "eval.samples=1 eval.max_new_tokens=8 train.save_every=0 train.log_completions=0")
    env = {**os.environ, "OUT": str(tmp_path), "METHODS": "dler kimi+hapo", "JOBS": "2", "EXTRA": extra,
           "OMP_NUM_THREADS": "1"}  # kimi+hapo: a chain, hapo from kimi's final model
    p = subprocess.run(["bash", "scripts/toy_pareto.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for name in ("pareto.png", "curves.png", "compare.md"):
        assert (tmp_path / "compare" / name).stat().st_size > 1000 or name == "compare.md"
    table = (tmp_path / "compare" / "compare.md").read_text()
    assert "| dler |" in table and "| kimi |" in table and "| hapo |" in table
    assert (tmp_path / "dler" / "seed0" / "summary.json").exists()  # $OUT/<method>/seed<s>, also for one seed
    chained = json.loads((tmp_path / "hapo" / "seed0" / "config.json").read_text())
    assert chained["model"]["name_or_path"] == f"{tmp_path}/kimi/seed0/final"  # over EXTRA's model
    assert chained["eval"]["before"] is True  # a later phase evaluates its own start
    assert "before" in json.loads((tmp_path / "hapo" / "seed0" / "summary.json").read_text())
    again = subprocess.run(["bash", "scripts/toy_pareto.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "skip dler seed0 (done)" in again.stdout and "skip hapo seed0 (done)" in again.stdout


def test_runs_without_a_before_eval_share_a_matching_start(tmp_path):
    from rl.eval.runs import load_run, share_starts

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


# ------------------------------------------------------------------------------------------ seeds


def by_diff(acc2, acc3, tok2, tok3):
    return {"2": {"n": 40, "accuracy": acc2, "mean_tokens": tok2, "truncation_rate": 0.0},
            "3": {"n": 40, "accuracy": acc3, "mean_tokens": tok3, "truncation_rate": 0.0}}


def make_seeds(root, method, accs, tokens, first_before=True, diff=True):
    """<root>/<method>/seed<k> for k = 0, 1, ...; only seed 0 evaluated the start (as toy_pareto.sh does)."""
    before = {**BEFORE, "by_difficulty": by_diff(0.90, 0.70, 300.0, 500.0)} if diff else BEFORE
    out = []
    for k, (a, t) in enumerate(zip(accs, tokens)):
        after = {"accuracy": a, "mean_tokens": t, "truncation_rate": 0.01 * k}
        if diff:  # difficulty 2 a point above the overall, difficulty 3 a point below; tokens -/+ 10
            after["by_difficulty"] = by_diff(a + 0.01, a - 0.01, t - 10, t + 10)
        out.append(make_run(root, f"{method}/seed{k}", after, before=before if (k == 0 and first_before) else None))
    return out


def test_mean_sd_against_hand_numbers():
    from rl.eval.seeds import Stat, mean_sd

    assert mean_sd([90.0, 92.0, 94.0]) == (92.0, 2.0)
    m, sd = mean_sd([1.0, 2.0, 3.0, 4.0])  # sum of squares 2.25 + .25 + .25 + 2.25 = 5, / (n - 1) = 3
    assert m == 2.5 and sd == pytest.approx(math.sqrt(5 / 3))
    assert mean_sd([7.0]) == (7.0, None)  # one seed: no spread
    assert math.isnan(mean_sd([])[0]) and mean_sd([])[1] is None
    assert Stat([90.0, 92.0, 94.0]).fmt() == "92.0 ± 2.0"
    assert Stat([28.25]).fmt() == "28.2" and Stat([28.25]).sd is None
    assert Stat([]).fmt() == "–" and Stat([]).mean is None
    assert Stat([0.5, 0.7]).to_json() == {"mean": 0.6, "sd": pytest.approx(math.sqrt(0.02)), "n": 2,
                                          "values": [0.5, 0.7]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=12), st.floats(-1e3, 1e3),
       st.floats(-10, 10))
def test_mean_sd_is_the_sample_sd(values, shift, scale):
    import statistics

    from rl.eval.seeds import mean_sd

    m, sd = mean_sd(values)
    assert m == pytest.approx(statistics.fmean(values), abs=1e-9)
    assert sd == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-9)
    m2, sd2 = mean_sd([scale * v + shift for v in values])  # sd moves with the scale, not the shift
    assert m2 == pytest.approx(scale * m + shift, rel=1e-9, abs=1e-6)
    assert sd2 == pytest.approx(abs(scale) * sd, rel=1e-6, abs=1e-6)


def test_runs_in_seed_directories_group_by_method(tmp_path):
    from rl.eval.runs import share_starts, unique_labels
    from rl.eval.seeds import group_runs

    dirs = make_seeds(tmp_path, "dler", [0.90, 0.92, 0.94], [30.0, 32.0, 40.0])
    dirs += make_seeds(tmp_path, "kimi", [0.91], [50.0], first_before=False)
    plain = make_run(tmp_path, "laser", {"accuracy": 0.85, "mean_tokens": 45.0})
    runs = [load_run(d) for d in [dirs[1], dirs[3], dirs[0], plain, dirs[2]]]  # any order
    assert [(r.label, r.seed) for r in runs] == [("dler", 1), ("kimi", 0), ("dler", 0), ("laser", None), ("dler", 2)]
    assert runs[0].name == "dler seed1" and runs[3].name == "laser"
    unique_labels(runs)
    share_starts(runs)
    assert [r.label for r in runs] == ["dler", "kimi", "dler", "laser", "dler"]  # seeds of one method: one label
    assert runs[0].before.accuracy == 0.80 and "start from dler seed0" in runs[0].notes[-1]
    groups = group_runs(runs)
    assert [(g.label, g.seeds) for g in groups] == [("dler", [0, 1, 2]), ("kimi", [0]), ("laser", [None])]
    dler = groups[0]
    assert (dler.accuracy.mean, dler.accuracy.sd) == (pytest.approx(92.0), pytest.approx(2.0))
    assert dler.accuracy.values == pytest.approx([90.0, 92.0, 94.0])  # in seed order
    # tokens 30, 32, 40: mean 34, deviations -4, -2, 6 -> sd sqrt(56 / 2)
    assert dler.tokens.mean == pytest.approx(34.0) and dler.tokens.sd == pytest.approx(math.sqrt(28.0))
    assert dler.truncation.values == pytest.approx([0.0, 1.0, 2.0]) and dler.notes == []
    acc3, tok3 = dler.by_difficulty["3"]
    assert acc3.fmt() == "91.0 ± 2.0" and tok3.mean == pytest.approx(44.0)
    assert groups[1].accuracy.sd is None and groups[1].accuracy.fmt() == "91.0" and groups[2].seeded is False
    # the same seed twice is not one group: the second copy gets a label of its own
    twice = [load_run(dirs[0]), load_run(dirs[0])]
    unique_labels(twice)
    assert [r.label for r in twice] == ["dler", "dler (2)"]
    # a seed directory's summary.json and --labels keep the seed
    assert (load_run(dirs[2] / "summary.json").seed, load_run(dirs[2], label="D").label) == (2, "D")


def test_seeded_plot_point_is_the_mean_with_sd(tmp_path):
    dirs = make_seeds(tmp_path, "dler", [0.90, 0.92, 0.94], [30.0, 32.0, 40.0])
    runs = [load_run(d) for d in dirs]
    pts = plot_points(runs)
    assert [(p.name, p.kind) for p in pts] == [("start", "start"), ("dler", "train")]
    p = pts[1]
    assert (p.tokens, p.accuracy, p.runs) == (pytest.approx(34.0), pytest.approx(0.92), [0, 1, 2])
    assert p.tokens_sd == pytest.approx(math.sqrt(28.0)) and p.accuracy_sd == pytest.approx(0.02)
    rows = table_rows(runs)
    assert [r["label"] for r in rows] == ["dler seed0", "dler seed1", "dler seed2"]
    assert [r["seed"] for r in rows] == [0, 1, 2] and all(r["method"] == "dler" for r in rows)


def test_seeds_that_start_apart_share_one_start_at_their_mean(tmp_path):
    """A later phase (scripts/toy_pareto.sh chains): each seed starts from its own seed's earlier model, so the
    group has one start at the mean of those starts, and its Δ columns are against that mean."""
    dirs = []
    for k, (b_acc, b_tok, b2) in enumerate([(0.60, 100.0, 0.70), (0.62, 110.0, 0.74), (0.64, 90.0, 0.72)]):
        before = {"n": 100, "accuracy": b_acc, "mean_tokens": b_tok, "truncation_rate": 0.0,
                  "by_difficulty": {"2": {"n": 50, "accuracy": b2, "mean_tokens": b_tok - 10}}}
        after = {"accuracy": 0.5, "mean_tokens": 50.0, "by_difficulty": {"2": {"n": 50, "accuracy": 0.6, "mean_tokens": 40}}}
        dirs.append(make_run(tmp_path, f"phase2/seed{k}", after, before=before))
    dirs.append(make_run(tmp_path, "dler/seed0", {"accuracy": 0.9, "mean_tokens": 30.0}))  # the shared BEFORE
    runs = [load_run(d) for d in dirs]
    starts = [p for p in plot_points(runs) if p.kind == "start"]
    assert [(p.name, round(p.tokens, 6), round(p.accuracy, 6), p.runs) for p in starts] == \
        [("start: phase2", 100.0, 0.62, [0, 1, 2]), ("start: dler", 400.0, 0.8, [3])]
    assert starts[0].start.by_difficulty["2"].accuracy == pytest.approx(0.72)
    out = tmp_path / "cmp"
    assert cli([*map(str, dirs), "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    # Δ against the mean start: 50.0 - 62.0 pt, 50 / 100 tokens
    assert "| phase2 | 3 | 30 | 50.0 ± 0.0 | -12.0 pt | 50.0 ± 0.0 | -50.0% |" in md
    assert "each seed starts from its own model (3 starts): their mean" in md
    assert "| start: phase2 | – | 72.0 |" in md


def test_compare_with_seeds_end_to_end(tmp_path):
    dler = make_seeds(tmp_path / "sweep", "dler", [0.90, 0.92, 0.94], [30.0, 32.0, 40.0])
    kimi = make_seeds(tmp_path / "sweep", "kimi", [0.91], [50.0], first_before=False)
    out = tmp_path / "cmp"
    assert cli([*map(str, dler + kimi), "--out", str(out), "--title", "Seeds"]) == 0
    _check_png(out / "pareto.png", (750, 1050))
    _check_png(out / "curves.png", (1200, 1050))
    md = (out / "compare.md").read_text()
    assert "Mean ± sd over seeds" in md
    # run | seeds | steps | accuracy after | Δ accuracy | tokens after | Δ tokens | truncated after | frontier
    assert "| dler | 3 | 30 | 92.0 ± 2.0 | +12.0 pt | 34.0 ± 5.3 | -91.5% | 1.0 ± 1.0 | yes |" in md
    assert "| kimi | 1 | 30 | 91.0 | +11.0 pt | 50.0 | -87.5% | 0.0 | no |" in md  # one seed: no ±
    assert md.index("| dler | 3 |") < md.index("| kimi | 1 |")  # by mean tokens
    assert "Start (dler, kimi): 80.0% at 400.0 tokens" in md
    # by difficulty: the start, then each method as mean ± sd over its seeds
    acc = md[md.index("Accuracy (%) by difficulty"):md.index("Mean tokens by difficulty")]
    assert "| run | seeds | 2 | 3 |" in acc and "| start | – | 90.0 | 70.0 |" in acc
    assert "| dler | 3 | 93.0 ± 2.0 | 91.0 ± 2.0 |" in acc and "| kimi | 1 | 92.0 | 90.0 |" in acc
    tok = md[md.index("Mean tokens by difficulty"):md.index("## Runs")]
    assert "| start | – | 300.0 | 500.0 |" in tok and "| dler | 3 | 24.0 ± 5.3 | 44.0 ± 5.3 |" in tok
    runs_table = md[md.index("## Runs"):]
    assert [line.split(" | ")[0] for line in runs_table.splitlines() if line.startswith("| dler seed")] == \
        ["| dler seed0", "| dler seed1", "| dler seed2"]
    rep = json.loads((out / "compare.json").read_text())
    g = {x["label"]: x for x in rep["groups"]}
    assert g["dler"]["seeds"] == [0, 1, 2] and g["dler"]["accuracy_pct"]["values"] == pytest.approx([90, 92, 94])
    assert g["dler"]["accuracy_pct"]["sd"] == pytest.approx(2.0) and g["dler"]["mean_tokens"]["mean"] == 34.0
    assert g["dler"]["by_difficulty"]["2"]["accuracy_pct"]["values"] == pytest.approx([91, 93, 95])
    one = {"mean": pytest.approx(91.0), "sd": None, "n": 1, "values": [pytest.approx(91.0)]}
    assert g["kimi"]["accuracy_pct"] == one
    assert [r["label"] for r in rep["runs"]] == ["dler seed0", "dler seed1", "dler seed2", "kimi seed0"]
    assert rep["frontier"][0]["name"] == "dler" and rep["frontier"][0]["accuracy_pct_sd"] == pytest.approx(2.0)
    assert rep["starts"] == [{"runs": ["dler", "kimi"], "mean_tokens": 400.0, "accuracy_pct": 80.0}]


def test_difficulty_table_without_seeds(tmp_path):
    a = make_run(tmp_path, "a", {"accuracy": 0.8, "mean_tokens": 40.0, "by_difficulty": by_diff(0.9, 0.7, 30, 50)})
    md = (lambda out: (cli([str(a), "--out", str(out)]), (out / "compare.md").read_text())[1])(tmp_path / "o")
    assert "| a | 30 | 80.0% |" in md and "## Runs" not in md and "±" not in md
    assert "| run | 2 | 3 |" in md and "| a | 90.0 | 70.0 |" in md and "| a | 30.0 | 50.0 |" in md
    assert "| start |" not in md  # the start had no breakdown


def test_sweeps_evaluate_each_start_once():
    from rl.eval.seeds import start_evaluators

    from tests.conftest import ROOT

    recipes = [ROOT / "recipes" / "toy" / f"{m}.yaml" for m in ("kimi", "dler", "l1_exact", "l1_max", "adactrl")]
    # kimi and dler start from builtin:toy, the L1 pair from the budget toy, AdaCtrl from the tagged one
    assert start_evaluators(recipes) == ["kimi", "l1_exact", "adactrl"]
    assert start_evaluators(recipes[:2], ["eval.num_examples=8"]) == ["kimi"]


def test_toy_pareto_script_refuses_a_missing_toy_directory(tmp_path):
    """Exits with one line before building or training anything."""
    import os
    import subprocess

    from tests.conftest import ROOT

    for env, msg in (({"TOY": "no_such_toy"}, "no recipe directory recipes/no_such_toy/"),
                     ({"METHODS": "dler nope"}, "no recipes/toy/nope.yaml"),
                     ({"SEEDS": "0 one"}, "SEEDS must be non-negative integers, got 'one'")):
        out = tmp_path / "sweep"
        p = subprocess.run(["bash", "scripts/toy_pareto.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "OUT": str(out), **env})
        assert p.returncode == 2 and p.stdout == ""
        assert len(p.stderr.strip().splitlines()) == 1 and msg in p.stderr
        assert not out.exists()


# ------------------------------------------------------------------------------------------ eval sets


def with_eval_set(d, **eval_set):
    s = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**s, "eval_set": eval_set}))
    return d


def test_runs_on_different_eval_sets_get_their_own_frontiers(tmp_path):
    """Issue 24, B8. Before: a run evaluated on other data sat on one frontier with the rest, with no
    note; a run evaluated on its own training rows was called held-out."""
    a = with_eval_set(make_run(tmp_path, "a", {"accuracy": 0.80, "mean_tokens": 200.0}),
                      source="gsm8k", split="test", rows=100, held_out=True, overlap=0)
    b = with_eval_set(make_run(tmp_path, "b", {"accuracy": 0.70, "mean_tokens": 150.0}),
                      source="gsm8k", split="test", rows=100, held_out=True, overlap=0)
    # fewer tokens and more accurate than both, but on another eval set (its training file, held out)
    c = with_eval_set(make_run(tmp_path, "c", {"accuracy": 0.95, "mean_tokens": 100.0}),
                      source="mine.jsonl", split="train", rows=100, holdout=0.1, seed=0, held_out=True, overlap=0)
    d = with_eval_set(make_run(tmp_path, "d", {"accuracy": 0.99, "mean_tokens": 90.0}),
                      source="mine.jsonl", split="train", rows=100, held_out=False, overlap=100)
    out = tmp_path / "cmp"
    assert cli([str(a), str(b), str(c), str(d), "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "evaluated on 3 different sets" in md
    assert "- eval set A: data gsm8k, split test, prompts 100" in md
    assert "- eval set B: data mine.jsonl, split 0.1 held out (seed 0), prompts 100" in md
    assert "held_out False" in md and "Not held-out (the eval set shares prompts with the training data): d." in md
    rows = {r["label"]: r for r in json.loads((out / "compare.json").read_text())["runs"]}
    assert rows["a"]["frontier"] and rows["b"]["frontier"]  # c does not dominate them: another set
    assert rows["c"]["frontier"] and rows["d"]["frontier"]
    assert [rows[x]["eval_set"] for x in "abcd"] == ["A", "A", "B", "C"]
    assert "not held-out" in rows["d"]["note"]
    assert "Pareto frontier of eval set A (fewest tokens first): b (150.0 tokens" in md
    # one set: no letters, one frontier, as before
    assert cli([str(a), str(b), "--out", str(tmp_path / "one")]) == 0
    one = (tmp_path / "one" / "compare.md").read_text()
    assert "different sets" not in one and "Pareto frontier (fewest tokens first): b" in one
