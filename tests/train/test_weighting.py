"""Dynamic reward weighting, gradient variant (rl/algo/weighting.py, rl/train/weighting.py): the weight
update against hand-computed numbers, the layer subset, the refusals, and toy runs whose logged weights
follow w' = softmax(log w + lr I / mu) from the logged influences, and resume exactly."""

import json
import math
from types import SimpleNamespace

import pytest

from rl.algo.weighting import check_options
from rl.config import ConfigError, load_config
from rl.run.tracking import read_metrics
from rl.train.weighting import GradientWeighting, chosen_parameters

from tests.train.test_trainer import laconic, overrides, strip_timing

TWO = "rewards=[{name: dler, weight: 1.0}, {name: truncation_penalty, weight: 3.0}]"


def test_options_are_checked_before_the_model_loads():
    assert "not one of ['gradient']" in check_options({"method": "hypervolume"})
    assert "regularization must be a number > 0" in check_options({"regularization": 0})
    assert "layers must be [first, last]" in check_options({"layers": [5, 2]})
    with pytest.raises(ConfigError, match="list at least two"):
        load_config(None, ["algo.reward_weighting={method: gradient}", "rewards=[{name: dler}]"])
    with pytest.raises(ConfigError, match="unknown option 'regularisation'.*regularization"):
        load_config(None, ["algo.reward_weighting={regularisation: 1.0e-4}"])


def test_refused_under_deepspeed_and_fsdp():
    for kind in ("DEEPSPEED", "FSDP"):
        acc = SimpleNamespace(distributed_type=SimpleNamespace(value=kind))
        with pytest.raises(ValueError, match=f"which {kind} shards or steps itself"):
            GradientWeighting.build({}, acc)


def test_layer_subset(untrained_toy):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    names = {id(p): n for n, p in model.named_parameters()}
    picked = [names[id(p)] for p in chosen_parameters(model, [1, 2])]
    assert picked and all(".layers.1." in n or ".layers.2." in n for n in picked)
    assert len(chosen_parameters(model, None)) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="no trainable parameters in decoder layers 7..9"):
        chosen_parameters(model, [7, 9])


def softmax_step(w, influence, lr, mu):
    z = [math.log(a) + lr * i / mu for a, i in zip(w, influence)]
    top = max(z)
    e = [math.exp(x - top) for x in z]
    return [x / sum(e) for x in e]


def test_logged_weights_follow_the_update_rule_and_scale_the_reward(untrained_toy, tmp_path):
    out = tmp_path / "gw"
    p = laconic(overrides(untrained_toy, out, TWO, "algo.reward_weighting={regularization: 1.0e-2}",
                          "train.max_steps=3", "eval.before=false", "eval.after=false"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    w = [0.25, 0.75]  # the recipe's weights scaled to sum 1
    for r in rows:
        influence = [r["weighting/influence_dler"], r["weighting/influence_truncation_penalty"]]
        w = softmax_step(w, influence, r["weighting/lr"], 1e-2)  # the lr before this step's update
        assert [r["weighting/w_dler"], r["weighting/w_truncation_penalty"]] == pytest.approx(w, rel=1e-6)
        assert r["reward/mean"] == pytest.approx(w[0] * r["reward/dler"] + w[1] * r["reward/truncation_penalty"])
    assert rows[-1]["weighting/w_dler"] != pytest.approx(0.25)  # the weights moved


def test_identical_rewards_have_equal_influence_and_keep_their_weights(untrained_toy, tmp_path):
    out = tmp_path / "same"
    p = laconic(overrides(untrained_toy, out, "rewards=[{name: dler}, {name: dler}]", "algo.reward_weighting={}",
                          "train.max_steps=1", "eval.before=false", "eval.after=false"))
    assert p.returncode == 0, p.stderr[-3000:]
    r = read_metrics(out / "metrics.jsonl")[0]
    assert r["weighting/influence_dler"] == pytest.approx(r["weighting/influence_dler_1"], rel=1e-6)
    assert r["weighting/w_dler"] == pytest.approx(0.5) and r["weighting/w_dler_1"] == pytest.approx(0.5)


def test_weights_survive_a_crash_and_resume_exactly(untrained_toy, tmp_path):
    extra = [TWO, "algo.reward_weighting={regularization: 1.0e-2}", "train.max_steps=4", "train.save_every=1",
             "eval.before=false", "eval.after=false"]
    full = laconic(overrides(untrained_toy, tmp_path / "full", *extra))
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path / "crash"
    assert laconic(overrides(untrained_toy, out, *extra), env={"LACONIC_FAIL_AT_STEP": "3"}).returncode == 17
    state = json.loads(sorted(out.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    assert set(state["ctx"]["reward_weighting"]) == {"dler", "truncation_penalty"}
    p = laconic(overrides(untrained_toy, out, *extra, "train.resume=latest"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert strip_timing(read_metrics(out / "metrics.jsonl")) == strip_timing(read_metrics(tmp_path / "full" / "metrics.jsonl"))


def test_two_processes_agree_on_the_weights(untrained_toy, tmp_path):
    """gloo, 2 processes: each computes the weights from its all-reduced gradients, so rank 1's logged rewards
    (dler = correct and not truncated, truncation_penalty = -1 when truncated) follow rank 0's logged weights."""
    from tests.train.test_trainer import TWO_PROCESSES

    out = tmp_path / "ddp"
    p = laconic(overrides(untrained_toy, out, TWO, "algo.reward_weighting={regularization: 1.0e-2}", "train.max_steps=2",
                          "train.log_completions=1", "eval.before=false", "eval.after=false"), launcher=TWO_PROCESSES)
    assert p.returncode == 0, p.stderr[-4000:]
    weights = {r["step"]: (r["weighting/w_dler"], r["weighting/w_truncation_penalty"]) for r in read_metrics(out / "metrics.jsonl")}
    assert weights[2] != pytest.approx((0.25, 0.75))
    rows = [json.loads(line) for line in (out / "completions" / "rank1.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        wd, wt = weights[row["step"]]
        dler = float(bool(row["correct"]) and not row["truncated"])
        assert row["reward"] == pytest.approx(wd * dler - wt * float(row["truncated"]))
