"""scripts/bench_vs_trl.py: laconic vs TRL's GRPOTrainer in lockstep (TRL installed with .[dev])."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_vs_trl.py"
TINY = ["--steps", "2", "--warmup", "1", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "8"]
SIDE_KEYS = {"step_s", "generate_s", "rollout_s", "update_s", "tokens_per_s", "generate_tokens_per_s",
             "completions_per_step", "mean_completion_length", "rss_setup_mb", "rss_peak_mb",
             "rss_step_increase_mb", "per_step"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vs_trl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_end_to_end(untrained_toy, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", str(untrained_toy), *TINY, "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads(proc.stdout)  # stdout carries the JSON only
    assert result == json.loads(out.read_text())
    assert {"settings", "laconic", "trl", "ratio", "ratios", "same_work", "versions", "notes"} <= set(result)
    s = result["settings"]
    assert (s["completions_per_step"], s["max_new_tokens"], s["steps"], s["warmup"]) == (4, 8, 2, 1)
    assert s["trl_args"]["loss_type"] == "dapo" and s["trl_args"]["beta"] == 0.0
    assert (s["trl_args"]["epsilon"], s["trl_args"]["epsilon_high"]) == (0.2, 0.28)
    for side in ("laconic", "trl"):
        r = result[side]
        assert SIDE_KEYS <= set(r), side
        for key in ("step_s", "generate_s", "rollout_s", "tokens_per_s", "rss_peak_mb"):
            assert r[key] > 0, (side, key, r[key])
        assert r["completions_per_step"] == [4], side
        assert 1 <= r["mean_completion_length"] <= 8, side
        assert [p["warmup"] for p in r["per_step"]] == [True, False, False]
        assert all(p["completions"] == 4 and 4 <= p["tokens"] <= 32 for p in r["per_step"]), side
        assert all(p["generate_s"] <= p["rollout_s"] <= p["step_s"] for p in r["per_step"]), side
    assert result["same_work"] is True
    assert result["ratio"] == pytest.approx(result["laconic"]["step_s"] / result["trl"]["step_s"])


def test_settings_map_the_recipe_onto_trl(bench, untrained_toy, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("algo: {loss_agg: seq-mean-token-sum-norm, advantage: grpo, clip_high: 0.3}\n"
                      "train: {micro_batch_size: 4, learning_rate: 3.0e-4}\n")
    args = bench.parse_args(["--recipe", str(recipe), "--model", str(untrained_toy), "--prompts-per-step", "4",
                             "--group-size", "3", "--max-new-tokens", "16", "--steps", "3", "--warmup", "1"])
    s = bench.build_settings(args, str(tmp_path))
    t = s["trl_args"]
    assert (t["num_generations"], t["per_device_train_batch_size"], t["gradient_accumulation_steps"]) == (3, 4, 3)
    assert (t["loss_type"], t["scale_rewards"], t["epsilon_high"], t["learning_rate"]) == ("dr_grpo", "group", 0.3, 3e-4)
    assert (t["max_completion_length"], t["max_steps"], t["num_iterations"]) == (16, 4, 1)
    assert not t["gradient_checkpointing"] and not t["bf16"] and t["optim"] == "adamw_torch"
    assert "rollout.generation_batch_size=12" in s["laconic_overrides"]
    assert "train.micro_batch_size=4" in s["laconic_overrides"]


def test_unmirrorable_recipes_are_rejected(bench, untrained_toy, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("algo: {dynamic_sampling: correctness, updates_per_rollout: 2}\n")
    with pytest.raises(SystemExit, match="dynamic_sampling.*updates_per_rollout"):
        bench.build_settings(bench.parse_args(["--recipe", str(recipe), "--model", str(untrained_toy)]), str(tmp_path))
    with pytest.raises(SystemExit, match="must divide"):
        bench.build_settings(bench.parse_args(["--model", str(untrained_toy), "--prompts-per-step", "3",
                                               "--group-size", "2", "--micro-batch-size", "4"]), str(tmp_path))


def test_trl_reward_sees_truncation_and_the_recipe_delimiter(bench, toy_tokenizer):
    from rl.config import load_config

    cfg = load_config(ROOT / "recipes" / "quickstart.yaml", ["rollout.max_new_tokens=4", "rollout.group_size=2"])
    eos = toy_tokenizer.eos_token_id
    fn = bench.trl_reward(cfg, {eos})
    ids = [[5, 6, eos], [5, 6, 7, 8], [5, 6, 7, eos]]  # ended, cut at the limit, ended at the limit
    out = fn(["Q:1+1="] * 3 + ["Q:1+2="], ["A:2", "A:2", "A:2", "A:5"], completion_ids=ids + [[5, eos]],
             answer=["2", "2", "2", "3"])
    assert out == [1.0, 0.0, 1.0, 0.0]  # DLER: correct and finished; the cut one scores 0 though correct
    assert bench.with_delimiter({"name": "dler"}, None) == {"name": "dler", "delimiter": None}
    assert bench.with_delimiter({"name": "dler", "delimiter": "X"}, None) == {"name": "dler", "delimiter": "X"}
