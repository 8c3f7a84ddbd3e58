"""PALU (rewards/palu.py) against hand-computed budgets: the quantile step, the reset, the floor, the
edge cases (one sample, equal lengths, no correct answer), the hard-cap hook and the state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewards import build_rewards
from rewards.base import Context, Sample
from rewards.palu import PALU, quantile, quantile_step
from rewards.registry import RewardConfigError, build_reward

CTX = Context(max_length=1000)


def group(pid, lengths, correct=True, truncated=False, g=0):
    flags = correct if isinstance(correct, list) else [correct] * len(lengths)
    cut = truncated if isinstance(truncated, list) else [truncated] * len(lengths)
    return [Sample(pid, g, correct=c, length=n, truncated=t) for n, c, t in zip(lengths, flags, cut)]


def test_quantile_is_numpys_linear_method():
    rng = np.random.default_rng(0)
    for _ in range(300):
        xs = rng.integers(0, 500, size=rng.integers(1, 12)).tolist()
        p = float(rng.random())
        assert quantile(xs, p) == pytest.approx(float(np.quantile(xs, p, method="linear")))
    assert quantile([3, 1, 2], 1.0) == 3.0 and quantile([3, 1, 2], 0.0) == 1.0


def test_quantile_step_hand_computed():
    # 8 lengths: Q_1.0 = 400; Q_0.5 at h = 3.5: 200 + 0.5 * (210 - 200) = 205
    assert quantile_step([100, 120, 150, 200, 210, 260, 300, 400], 0.5) == 195.0
    # tau = 0.1 (the paper's ablation): Q_0.9 at h = 6.3: 300 + 0.3 * 100 = 330
    assert quantile_step([100, 120, 150, 200, 210, 260, 300, 400], 0.1) == pytest.approx(70.0)
    assert quantile_step([42], 0.5) == 0.0 and quantile_step([7, 7, 7], 0.5) == 0.0 and quantile_step([], 0.5) is None


def test_all_correct_group_shrinks_by_longest_minus_median():
    palu = PALU(floor=50)
    s = group("q", [100, 120, 150, 200, 210, 260, 300, 400])
    assert palu(s, CTX) == [1.0] * 8
    palu.update(s, CTX)
    assert palu.budgets == {"q": 1000 - 195}
    m = palu.metrics()
    assert m["palu/budget_mean"] == 1000 and m["palu/at_max_share"] == 1.0  # the budgets generated under
    assert m["palu/alpha_correct"] == m["palu/alpha_all"] == 195.0 and m["palu/shrink_share"] == 1.0
    assert m["palu/pass_rate"] == 1.0 and m["palu/tracked"] == 1.0


def test_correct_and_all_lengths_differ_and_both_are_logged():
    # 9 correct of 10 (R = 0.9 > 0.8); the wrong one is long
    lengths = [100, 110, 120, 130, 140, 150, 160, 170, 180, 700]
    s = group("q", lengths, correct=[True] * 9 + [False])
    # correct: Q_1.0 = 180, Q_0.5 (n = 9, h = 4) = 140 -> 40; all: 700 - (140 + 0.5 * 10) = 555
    correct, every = PALU(floor=50), PALU(floor=50, lengths="all")
    correct.update(s, CTX)
    every.update(s, CTX)
    assert correct.budgets == {"q": 960} and every.budgets == {"q": 445}
    for r in (correct, every):
        assert r.metrics()["palu/alpha_correct"] == 40.0 and r.metrics()["palu/alpha_all"] == 555.0


def test_fractional_step_rounds_up_to_a_whole_token():
    palu = PALU(floor=1)
    palu.update(group("q", [10, 11]), CTX)  # Q_1.0 = 11, Q_0.5 = 10.5: alpha 0.5 -> 1 token
    assert palu.budgets == {"q": 999}


def test_threshold_comparison_strict_by_default():
    s = group("q", [100, 200, 300, 400, 500], correct=[True, True, True, True, False])  # R = 0.8 exactly
    strict, inclusive = PALU(floor=1), PALU(floor=1, comparison=">=")
    for r in (strict, inclusive):
        r.load_state_dict({"budgets": {"q": 600}})
        r.update(s, CTX)
    assert strict.budgets == {}  # 0.8 is not > 0.8: reset to L_max
    assert inclusive.budgets == {"q": 600 - (400 - 250)}  # correct lengths 100..400: Q_0.5 = 250


def test_floor_and_ceiling():
    palu = PALU(floor=256)
    palu.load_state_dict({"budgets": {"q": 300}})
    palu.update(group("q", [10, 20, 30, 230]), CTX)  # alpha = 230 - 25 = 205: 300 - 205 = 95 < floor
    assert palu.budgets == {"q": 256}
    palu.update(group("q", [10, 20, 30, 230]), CTX)
    assert palu.budgets == {"q": 256}  # stays at the floor
    assert palu.budget("q", Context(max_length=200)) == 200  # never above L_max (a lower step limit)
    small = PALU(floor=256)
    small.update(group("q", [10, 20, 30, 40]), Context(max_length=64))  # floor above L_max: the budget stays L_max
    assert small.budgets == {}


@pytest.mark.parametrize("lengths", [[120], [90, 90, 90, 90]], ids=["one sample", "equal lengths"])
def test_zero_step_stalls(lengths):
    palu = PALU(floor=1)
    palu.update(group("q", lengths), CTX)  # at L_max: stays L_max (nothing stored)
    assert palu.budgets == {}
    palu.load_state_dict({"budgets": {"q": 500}})
    palu.update(group("q", lengths), CTX)
    assert palu.budgets == {"q": 500}
    assert palu.metrics()["palu/alpha_correct"] == 0.0


def test_no_correct_answer_resets_to_l_max():
    palu = PALU(floor=1)
    palu.load_state_dict({"budgets": {"q": 500, "other": 700}})
    s = group("q", [100, 200, 300], correct=False)
    assert palu(s, CTX) == [0.0, 0.0, 0.0]
    palu.update(s, CTX)
    assert palu.budgets == {"other": 700}
    m = palu.metrics()
    assert m["palu/budget_mean"] == 500 and m["palu/at_max_share"] == 0.0 and m["palu/shrink_share"] == 0.0
    assert "palu/alpha_correct" not in m and m["palu/tracked"] == 1.0


def test_over_budget_and_truncated_answers_score_zero_and_do_not_count_as_passing():
    palu = PALU(floor=1)
    palu.load_state_dict({"budgets": {"q": 100}})
    s = group("q", [50, 60, 70, 100, 150], truncated=[False, False, False, True, False])
    assert palu(s, CTX) == [1.0, 1.0, 1.0, 0.0, 0.0]  # truncated; over L_q (the hard_cap: false reading)
    palu.update(s, CTX)  # R = 3/5: reset
    assert palu.budgets == {}


def test_budget_used_for_scoring_is_the_one_before_the_update():
    palu = PALU(floor=1)
    s = group("q", [20, 30, 40, 60, 80])
    palu.update(s, CTX)  # -> 960
    palu.update(s, CTX)  # 80 <= 960 still: -> 920
    assert palu.budgets == {"q": 920}
    assert palu(group("q", [921, 919]), CTX) == [0.0, 1.0]


def test_groups_of_a_prompt_are_pooled_by_prompt_id():
    # dynamic sampling may draw a prompt twice and renumbers groups: the update keys by prompt id
    palu = PALU(floor=1)
    s = group("q", [20, 40], g=0) + group("q", [60, 80], g=5) + group("r", [30, 30], correct=False, g=5)
    palu.update(s, CTX)
    assert palu.budgets == {"q": 1000 - (80 - 50)}
    assert palu.metrics()["palu/shrink_share"] == 0.5


def test_prompt_limits_hook_and_soft_mode():
    hard, soft = PALU(), PALU(hard_cap=False)
    hard.load_state_dict({"budgets": {"a": 300}})
    soft.load_state_dict({"budgets": {"a": 300}})
    prompts = [Sample("a", 0), Sample("b", 1)]
    assert hard.limits_generation and hard.prompt_limits(prompts, CTX) == {"a": 300, "b": 1000}
    assert not soft.limits_generation and soft.prompt_limits(prompts, CTX) == {}
    s = group("a", [250, 350])
    assert hard(s, CTX) == soft(s, CTX) == [1.0, 0.0]  # the same rewards


def test_l_max_from_the_reward_or_the_context():
    assert PALU(max_length=500).budget("q", CTX) == 500
    with pytest.raises(ValueError, match="L_max"):
        PALU().budget("q", Context())


def test_state_dict_round_trip():
    palu = PALU(floor=8)
    palu.update(group("q", [20, 30, 40, 60, 80]) + group("r", [10, 10, 10, 90], g=1), CTX)
    state = json.loads(json.dumps(palu.state_dict()))
    assert state == {"budgets": {"q": 960, "r": 1000 - 80}}
    fresh = PALU(floor=8)
    fresh.load_state_dict(state)
    probe = group("q", [959, 961]) + group("r", [920, 921], g=1)
    assert fresh(probe, CTX) == palu(probe, CTX) == [1.0, 0.0, 1.0, 0.0]
    composed = build_rewards([{"name": "palu", "floor": 8}])
    composed.load_state_dict({"palu": state})
    assert composed.state_dict() == {"palu": state}
    for bad in ({"budgets": {"q": 0}}, {"budgets": {"q": 1.5}}, {"budgets": [1]}, {"history": {}}, {"budgets": {"q": "x"}}):
        with pytest.raises(ValueError):
            PALU().load_state_dict(bad)


def test_registry_and_parameter_checks():
    name, r, w = build_reward({"name": "palu", "threshold": 0.75, "tau": 0.1, "floor": 16, "hard_cap": False})
    assert name == "palu" and isinstance(r, PALU) and r.threshold == 0.75 and r.tau == 0.1 and not r.hard_cap
    for bad in ({"threshold": 1.5}, {"tau": 0}, {"comparison": "=>"}, {"lengths": "wrong"}, {"floor": 0},
                {"hard_cap": "yes"}, {"max_length": -1}, {"flor": 3}):
        with pytest.raises((ValueError, RewardConfigError)):
            build_reward({"name": "palu", **bad})
