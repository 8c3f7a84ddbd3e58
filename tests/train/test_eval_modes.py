"""ThinkDial's per-mode evaluation (``eval.modes``, rl/train/loop.py): the eval set stated in each mode, every
mode's numbers in summary.json with the ACT against the start's high mode, per-mode eval/* metrics, and
``laconic compare`` drawing one point per mode (rl/eval/runs.py split_modes) with an ACT table."""

import json

import pytest

from rl.config import load_config
from rl.run.tracking import read_metrics

from tests.conftest import ROOT
from tests.train.test_trainer import laconic, overrides

MODES = ["data.modes=[high, medium, low]", "data.mode_prompts={high: B160, medium: B80, low: B40}",
         "data.prompt_template='{mode}Q:{question}='", "data.mode_mix=all"]


def test_setup_states_the_eval_set_in_each_mode_once_per_row(untrained_toy, tmp_path):
    from rl.train.loop import setup

    cfg = load_config(ROOT / "recipes" / "quickstart.yaml",
                      overrides(untrained_toy, tmp_path / "run", *MODES, "eval.modes=[low, high]"))
    run = setup(cfg)
    assert list(run.eval_modes) == ["low", "high"]
    low, high = run.eval_modes["low"], run.eval_modes["high"]
    assert len(low) == len(high) == 8  # one prompt per eval row, not mode_mix=all's one per row and mode
    for a, b in zip(low, high):
        assert a.text == f"B40Q:{a.question}=" and b.text == f"B160Q:{a.question}=" and a.question == b.question
        assert a.meta["mode"] == "low" and b.meta["mode"] == "high" and len(a.ids) == len(a.text)
    assert run.eval_prompts == low  # the run's own numbers are the first listed mode's
    assert len(run.train_prompts) == 3 * 200  # training keeps mode_mix=all


# what the fake evaluation reports per mode: ThinkDial's trade-off, shorter and less accurate at lower budgets
FAKE = {"B160": (0.8, 100.0), "B80": (0.7, 50.0), "B40": (0.6, 25.0)}


def fake_evaluate(engine, prompts, params, tokenizer, accelerator=None, delimiter=None, seed=0):
    budgets = {p.text.split("Q:")[0] for p in prompts}
    assert len(budgets) == 1, budgets  # one mode per call
    acc, tokens = FAKE[budgets.pop()]
    return {"n": len(prompts) * params.n, "accuracy": acc, "mean_tokens": tokens, "truncation_rate": 0.0}


def test_summary_has_every_mode_and_the_act_and_compare_splits_the_modes(untrained_toy, tmp_path, monkeypatch, capsys):
    import rl.train.loop as loop

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    out = tmp_path / "run"
    cfg = load_config(ROOT / "recipes" / "quickstart.yaml",
                      overrides(untrained_toy, out, *MODES, "eval.modes=[high, medium, low]", "train.max_steps=2",
                                "eval.every=2"))
    loop.train(cfg)
    s = json.loads((out / "summary.json").read_text())
    for when in ("before", "after"):
        assert {m: (e["accuracy"], e["mean_tokens"], e["n"]) for m, e in s[when]["modes"].items()} == \
               {"high": (0.8, 100.0, 32), "medium": (0.7, 50.0, 32), "low": (0.6, 25.0, 32)}
        assert (s[when]["accuracy"], s[when]["mean_tokens"]) == (0.8, 100.0)  # the first mode's
    # ACT by hand against the start's high mode (0.8, 100): high accuracy only; medium and low half accuracy,
    # half saved cost: 0.5 * 0.7 / 0.8 + 0.5 * (1 - 50 / 100) = 0.6875; 0.5 * 0.75 + 0.5 * 0.75 = 0.75
    assert s["act"] == pytest.approx({"high": 1.0, "medium": 0.6875, "low": 0.75, "average": 2.4375 / 3})
    printed = capsys.readouterr().out
    assert "ACT x 100 (ThinkDial, peak = before in high mode): high 100.0, medium 68.8, low 75.0" in printed
    assert "low: accuracy 0.600, mean tokens 25.0" in printed  # the before line, every mode
    row = read_metrics(out / "metrics.jsonl")[-1]
    assert (row["eval/low/mean_tokens"], row["eval/medium/accuracy"], row["eval/accuracy"]) == (25.0, 0.7, 0.8)

    from rl.eval.compare import main as compare

    assert compare(["compare", str(out), "--out", str(tmp_path / "cmp")]) == 0
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["label"]: r for r in report["runs"]}
    assert set(rows) == {"run [high]", "run [medium]", "run [low]"}
    for m, (acc, tokens) in zip(("high", "medium", "low"), FAKE.values()):  # each mode its own points
        assert rows[f"run [{m}]"]["mode"] == m
        assert (rows[f"run [{m}]"]["acc_after_pct"], rows[f"run [{m}]"]["tokens_after"]) == (acc * 100, tokens)
        assert rows[f"run [{m}]"]["tokens_before"] == tokens
    assert rows["run [high]"]["act"] == pytest.approx(s["act"]) and rows["run [low]"]["act"] is None
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| run | 1 | 100.0 | 68.8 | 75.0 | 81.2 |" in md


def test_act_needs_a_peak_with_accuracy_and_a_high_mode_before():
    from rl.eval.metrics import act_summary

    modes = {"modes": {"high": {"accuracy": 0.5, "mean_tokens": 10.0}}}
    assert act_summary({"modes": {"high": {"accuracy": 0.0, "mean_tokens": 10.0}}}, modes) == {}  # untrained start
    assert act_summary({"modes": {"low": {"accuracy": 0.5, "mean_tokens": 10.0}}}, modes) == {}  # no high-mode peak
    assert act_summary({"accuracy": 0.5, "mean_tokens": 10.0}, {"accuracy": 0.5, "mean_tokens": 10.0}) == {}
    assert act_summary(None, modes) == {}
    assert act_summary(modes, modes) == {"act": {"high": 1.0, "average": 1.0}}
