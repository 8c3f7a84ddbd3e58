"""``laconic eval`` (rl/eval/cli.py) end to end on the untrained toy, and its bad-input errors."""

import argparse
import json

import pytest

from rl.eval import cli as eval_cli

HEADLINE = ["model", "data", "split", "samples", "n_prompts", "n_completions", "pass@1", "pass@k", "maj@k",
            "mean_tokens", "median_tokens", "p90_tokens", "truncation_rate", "accuracy_per_1k_tokens",
            "degeneration_rate", "by_difficulty", "by_source", "per_prompt", "settings"]


def parse(*argv):
    parser = argparse.ArgumentParser(prog="laconic")
    sub = parser.add_subparsers(dest="command", required=True)
    eval_cli.add_parser(sub)
    return parser.parse_args(["eval", *argv])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from rl.models.toy_build import build_untrained_toy

    return build_untrained_toy(tmp_path_factory.mktemp("evaltoy") / "toy")


def test_eval_writes_json_and_markdown(toy, tmp_path, capsys):
    out = tmp_path / "out"
    args = parse(str(toy), "--data", "builtin:arithmetic", "--num-examples", "6", "--samples", "4",
                 "--max-new-tokens", "8", "--out", str(out), "--no-progress", "--batch-size", "7", "--save-completions")
    assert args.func is eval_cli.run
    assert eval_cli.run(args) == 0
    report = json.loads((out / "eval.json").read_text())
    assert set(HEADLINE) <= set(report)
    assert (report["n_prompts"], report["n_completions"], report["samples"]) == (6, 24, 4)
    assert list(report["pass@k"]) == ["1", "2", "4"] and list(report["maj@k"]) == ["1", "2", "4"]
    assert report["split"] == "test" and report["data"] == "builtin:arithmetic"
    assert 0 <= report["pass@1"] <= report["pass@k"]["4"] <= 1
    assert 1 <= report["mean_tokens"] <= 8 and report["p90_tokens"] <= 8
    assert set(report["by_difficulty"]) <= {"2", "3", "4", "5"}
    assert sum(d["n_prompts"] for d in report["by_difficulty"].values()) == 6
    assert report["by_source"]["arithmetic"]["n_completions"] == 24
    assert len(report["per_prompt"]) == 6 and all(p["n"] == 4 for p in report["per_prompt"])
    assert {"id", "n_correct", "mean", "std", "p10", "p50", "p90", "min", "max"} <= set(report["per_prompt"][0])
    s = report["settings"]
    assert s["prompt_template"] == "Q:{question}=" and s["temperature"] == 1.0 and s["backend"] == "transformers"
    md = (out / "eval.md").read_text()
    assert f"| completions | {report['n_completions']} |" in md and "| difficulty |" in md
    assert f"| pass@4 | {report['pass@k']['4']:.3f} |" in md
    assert capsys.readouterr().out == md  # the markdown is also printed
    lines = [json.loads(x) for x in (out / "completions.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and [x["group"] for x in lines] == [g for g in range(6) for _ in range(4)]


def test_greedy_repeats_one_completion(toy, capsys):
    args = parse(str(toy), "--num-examples", "3", "--samples", "2", "--max-new-tokens", "6",
                 "--temperature", "0", "--no-progress", "--delimiter", "none")
    report = eval_cli.evaluate_model(args)
    assert report["n_completions"] == 6 and report["settings"]["greedy"] is True
    assert report["settings"]["delimiter"] is None
    assert all(p["std"] == 0 for p in report["per_prompt"])  # both copies are the same completion
    assert report["pass@k"]["2"] == report["pass@1"]


@pytest.mark.parametrize("extra, needle", [
    (["--data", "MISSING.jsonl"], "data file not found"),
    (["--data", "TABLE.jsonl", "--question-column", "problem"], "no column 'problem' (--question-column)"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--top-k", "-2"], "--top-k must be >= 0 (0: off), got -2"),
    (["--min-p", "2"], "--min-p must be in [0, 1] (0: off), got 2.0"),
])
def test_bad_input_is_one_line_and_exit_2(toy, tmp_path, capsys, extra, needle):
    table = tmp_path / "TABLE.jsonl"
    table.write_text('{"question": "1+1", "answer": "2"}\n')
    extra = [str(tmp_path / e) if e.endswith(".jsonl") else e for e in extra]
    args = parse(str(toy), "--num-examples", "2", "--max-new-tokens", "4", "--no-progress", *extra)
    assert eval_cli.run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("laconic eval: error: ") and needle in err[0], err


def test_missing_model_directory_is_exit_2(tmp_path, capsys):
    assert eval_cli.run(parse(str(tmp_path / "nope"), "--num-examples", "2", "--no-progress")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"laconic eval: error: model not found: {tmp_path / 'nope'} is not a model directory"]


def test_python_dash_m_reports_bad_input_in_one_line(toy, tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    p = subprocess.run([sys.executable, "-m", "rl.eval.cli", str(toy), "--data", str(tmp_path / "none.csv")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == f"laconic eval: error: data file not found: {tmp_path / 'none.csv'}"


def test_length_budget_is_stated_in_every_prompt(toy, tmp_path, capsys):
    """--length-budget: where the budget toy reads it (its default template), else L1's sentence."""
    from rl.models.toy import BUDGET_TEMPLATE
    from rl.models.toy_build import build_untrained_toy

    budget_toy = build_untrained_toy(tmp_path / "budget", variant="budget")
    args = parse(str(budget_toy), "--num-examples", "3", "--samples", "1", "--max-new-tokens", "4",
                 "--length-budget", "48", "--no-progress")
    setup = eval_cli._setup(args)
    assert all(p.text == f"B48Q:{p.question}=" and p.meta["budget"] == 48 for p in setup["prompts"])
    assert eval_cli.evaluate_model(args, setup)["settings"]["prompt_template"] == BUDGET_TEMPLATE
    assert eval_cli.run(parse(str(budget_toy), "--num-examples", "2", "--no-progress")) == 2
    assert "give --length-budget N" in capsys.readouterr().err
    args = parse(str(toy), "--num-examples", "2", "--length-budget", "64", "--budget-mode", "max",
                 "--prompt-template", "{question}", "--no-progress")
    assert [p.text.endswith("\n\nThink for maximum 64 tokens.") for p in eval_cli._setup(args)["prompts"]] == [True] * 2


def test_chat_template_kwargs_option_is_a_yaml_mapping():
    from rl.eval.cli import UsageError, _kwargs

    assert _kwargs("{enable_thinking: false}") == {"enable_thinking": False} and _kwargs(None) == {}
    with pytest.raises(UsageError, match="a mapping like"):
        _kwargs("[1, 2]")


def test_top_k_1_is_greedy_and_stop_strings_cut(toy, tmp_path):
    """``--top-k 1`` keeps the most likely token only: the same completions as ``--temperature 0``.
    ``--stop`` ends each completion at the token that completes the string, and the text before it is
    what gets scored."""
    common = ["--num-examples", "4", "--samples", "2", "--max-new-tokens", "12", "--no-progress", "--delimiter", "none"]
    greedy = eval_cli.evaluate_model(parse(str(toy), *common, "--temperature", "0"))
    top1 = eval_cli.evaluate_model(parse(str(toy), *common, "--top-k", "1"))
    assert top1["settings"]["top_k"] == 1 and not top1["settings"]["greedy"]
    assert [p["mean"] for p in top1["per_prompt"]] == [p["mean"] for p in greedy["per_prompt"]]
    assert top1["mean_tokens"] == greedy["mean_tokens"]
    out = tmp_path / "stop"
    eval_cli.evaluate_model(parse(str(toy), *common, "--temperature", "0", "--out", str(out), "--save-completions"))
    plain = [json.loads(x) for x in (out / "completions.jsonl").read_text().splitlines()]
    stop = next(c["completion"][1] for c in plain if len(c["completion"]) > 2)  # a character the model writes
    out.mkdir(exist_ok=True)
    eval_cli.evaluate_model(parse(str(toy), *common, "--temperature", "0", "--stop", stop, "--out", str(out),
                                  "--save-completions"))
    cut = [json.loads(x) for x in (out / "completions.jsonl").read_text().splitlines()]
    for a, b in zip(plain, cut):
        assert stop not in b["completion"] and b["length"] <= a["length"]
        assert b["completion"] == a["completion"].split(stop)[0] or stop not in a["completion"]
