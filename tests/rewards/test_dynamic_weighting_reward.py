"""Dynamic reward weighting in a recipe (arXiv 2509.11452): the objectives (conciseness, clarity), the
hypervolume meta-reward as a factor of the total, its checks before any model loads, and a toy run in
which m moves and multiplies the logged reward."""

import math

import pytest

from rewards import build_rewards
from rewards.base import Context, Sample
from rewards.dynamic_weighting import HypervolumeWeight
from rewards.registry import RewardConfigError
from rl.config import ConfigError, load_config
from rl.run.tracking import read_metrics

from tests.train.test_trainer import laconic, overrides


def test_meta_reward_multiplies_the_weighted_sum_and_is_not_a_term():
    composed = build_rewards([{"name": "dler", "weight": 0.5}, {"name": "conciseness", "weight": 0.5},
                              {"name": "hypervolume_weight", "clarity": False}])
    hv = composed.rewards[2]
    samples = [Sample("p", 0, correct=True, length=10), Sample("p", 0, correct=True, length=30)]
    assert composed.score(samples, Context())[0] == [1.0, 0.5]  # m = 1 until two points: 0.5 * 1 + 0.5 * {1, 0}
    hv.observe_monitor([Sample("p", 0, correct=c, length=n) for c, n in ((True, 100), (False, 100))], Context())
    hv.observe_monitor([Sample("p", 0, correct=c, length=n) for c, n in ((True, 80), (True, 80))], Context())
    m = 0.5 + 1.5 * math.tanh((1.0 - 0.5) * (100 - 80))  # dHV = 0.5 accuracy x 20 tokens = 10
    assert hv.meta.m == pytest.approx(m)
    totals, components = composed.score(samples, Context())
    assert totals == pytest.approx([m * 1.0, m * 0.5]) and components["hypervolume_weight"] == [m, m]
    with pytest.raises(RewardConfigError, match="its weight must be 1"):
        build_rewards([{"name": "dler"}, {"name": "hypervolume_weight", "weight": 2.0}])


def test_three_objective_point_and_state_round_trip():
    hv = HypervolumeWeight()
    done = [Sample("p", 0, correct=True, length=50, completion="First x. Then y. \\boxed{3}"),
            Sample("p", 0, correct=False, length=150, completion="no steps \\boxed{4}")]
    hv.observe_monitor(done, Context())
    assert hv.point == (0.5, 100.0, 0.5) and hv.meta.m == 1.0
    again = HypervolumeWeight()
    again.load_state_dict(hv.state_dict())
    assert again.meta.buffer == hv.meta.buffer and again.point == hv.point
    assert hv.metrics()["hypervolume/monitor_format"] == 0.5


@pytest.mark.parametrize("extra, message", [
    (["algo.advantage=grpo"], "cancels the step-wide weight"),
    (["train.monitor_prompts=0"], "train.monitor_prompts > 0 and train.monitor_every=1"),
    (["train.monitor_every=5"], "train.monitor_prompts > 0 and train.monitor_every=1"),
])
def test_refused_where_it_would_do_nothing(extra, message):
    base = ["rewards=[{name: dler}, {name: hypervolume_weight, clarity: false}]", "algo.advantage=rloo",
            "train.monitor_prompts=4", "train.monitor_every=1"]
    load_config(None, base)
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*base, *extra])


def test_toy_run_moves_m_and_scales_the_reward(untrained_toy, tmp_path):
    out = tmp_path / "hv"
    p = laconic(overrides(untrained_toy, out, "rewards=[{name: dler, weight: 0.5}, {name: conciseness, weight: 0.5}, "
                          "{name: hypervolume_weight, clarity: false}]", "algo.advantage=rloo",
                          "train.monitor_prompts=4", "train.monitor_every=1", "eval.before=false", "eval.after=false"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert rows[0]["reward/hypervolume_weight"] == 1.0  # step 1: only p_0, m = 1
    assert any(r["reward/hypervolume_weight"] != 1.0 for r in rows[1:])
    for r in rows:  # the logged mean total is m times the weighted mean of the terms
        want = r["reward/hypervolume_weight"] * (0.5 * r["reward/dler"] + 0.5 * r["reward/conciseness"])
        assert r["reward/mean"] == pytest.approx(want, abs=1e-9)
