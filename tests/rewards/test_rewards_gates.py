"""Gates (rewards/gates.py): ConciseR, GRPO-lambda and the generic gate."""

from __future__ import annotations

import json
import math

import pytest

from rewards import ConciseR, Context, Gate, GRPOLambda, build_reward
from rewards.base import Sample
from rewards.registry import RewardConfigError

CTX = Context(step=1, max_length=40)
approx = lambda xs: pytest.approx(xs, abs=1e-4)  # noqa: E731


def S(correct, length, group=0, pid=None):
    return Sample(pid or f"p{group}", group, correct=correct, length=length)


def long_group(group):
    """A user predicate for the import-path form."""
    return max(s.length for s in group) > 25


# ------------------------------------------------------------------------------ ConciseR


def test_concise_r_default_length_reward_only_when_all_correct():
    table = [S(True, 10, 0), S(True, 30, 0), S(True, 10, 1), S(False, 30, 1), S(False, 5, 2)]
    # group 0 all correct: 1 + (1 - L/40) -> 1.75, 1.25 ; group 1 mixed: 1, 0 ; group 2 (G=1, wrong): 0
    assert ConciseR()(table, CTX) == [1.75, 1.25, 1.0, 0.0, 0.0]
    # G = 1, correct: the group is all correct -> 1 + (1 - 20/40)
    assert ConciseR()([S(True, 20)], CTX) == [1.5]


def test_concise_r_with_another_inner_reward():
    _, r, _ = build_reward({"name": "concise_r", "reward": {"name": "kimi_length", "w": 0.4}})
    table = [S(True, 10, 0), S(True, 30, 0), S(True, 10, 1), S(False, 30, 1)]
    # group 0: kimi lambda 0.5, -0.5 -> 1.2, 0.8 ; group 1: correctness
    assert r(table, CTX) == approx([1.2, 0.8, 1.0, 0.0])
    # a list of specs is summed with weights: 2 * correctness + remaining budget
    _, r, _ = build_reward({"name": "concise_r", "reward": [{"name": "correctness", "weight": 2},
                                                            {"name": "remaining_budget"}]})
    assert r(table, CTX) == approx([2.75, 2.25, 1.0, 0.0])


# ------------------------------------------------------------------------------ generic gate


@pytest.mark.parametrize("condition,threshold,expected", [
    # groups: 0 = 2/2 correct, 1 = 1/2, 2 = 0/2; reward 1.0 if open else -1.0
    ("all_correct", 0.5, [1, 1, -1, -1, -1, -1]),
    ("any_correct", 0.5, [1, 1, 1, 1, -1, -1]),
    ("none_correct", 0.5, [-1, -1, -1, -1, 1, 1]),
    ("mixed", 0.5, [-1, -1, 1, 1, -1, -1]),
    ("ratio_at_least", 0.5, [1, 1, 1, 1, -1, -1]),    # 1/2 >= 0.5
    ("ratio_above", 0.5, [1, 1, -1, -1, -1, -1]),     # 1/2 not > 0.5
    ("ratio_below", 0.5, [-1, -1, -1, -1, 1, 1]),     # 0 < 0.5
])
def test_gate_conditions(condition, threshold, expected):
    table = [S(True, 10, 0), S(True, 20, 0), S(True, 10, 1), S(False, 30, 1), S(False, 5, 2), S(False, 5, 2)]
    r = Gate(reward=1.0, condition=condition, otherwise=-1.0, threshold=threshold)
    assert r(table, CTX) == [float(x) for x in expected]


def test_gate_with_import_path_predicate_and_specs():
    _, r, _ = build_reward({"name": "gate", "condition": "tests.rewards.test_rewards_gates:long_group",
                            "reward": {"name": "remaining_budget"}, "otherwise": {"name": "correctness"}})
    table = [S(True, 10, 0), S(True, 30, 0), S(True, 10, 1), S(False, 20, 1)]
    # group 0 has a 30-token completion -> remaining budget 1 - 10/40, 1 - 30/40 ; group 1 -> correctness
    assert r(table, CTX) == [0.75, 0.25, 1.0, 0.0]


def test_inner_reward_sees_only_the_passing_groups():
    seen = []

    def spy(samples, ctx):
        seen.append([s.group for s in samples])
        return [0.0] * len(samples)

    from rewards.base import FunctionReward
    Gate(reward=FunctionReward(spy), condition="all_correct")([S(True, 1, 0), S(False, 1, 1)], CTX)
    assert seen == [[0]]


def test_gate_errors():
    with pytest.raises(RewardConfigError, match="missing required parameter.*reward"):
        build_reward({"name": "gate"})
    with pytest.raises(RewardConfigError, match="condition"):
        build_reward({"name": "gate", "reward": 1.0, "condition": "most_correct"})
    with pytest.raises(RewardConfigError, match="unknown reward 'corectness'"):
        build_reward({"name": "gate", "reward": {"name": "corectness"}})
    with pytest.raises(RewardConfigError, match="otherwise"):
        build_reward({"name": "gate", "reward": 1.0, "otherwise": object()})


def test_gate_forwards_state_and_update():
    r = Gate(reward={"name": "hapo"}, condition="all_correct", otherwise={"name": "correctness"})
    table = [S(True, 10, 0), S(True, 30, 0), S(True, 8, 1), S(False, 3, 1)]
    assert r(table, CTX) == [1.0, 1.0, 1.0, 0.0]   # no HAPO history yet
    r.update(table, CTX)                           # the inner reward learns from the whole table
    state = json.loads(json.dumps(r.state_dict()))
    assert state == {"reward": {"hapo": {"p0": 10, "p1": 8}}, "otherwise": {"correctness": {}}}
    fresh = Gate(reward={"name": "hapo"}, condition="all_correct", otherwise={"name": "correctness"})
    fresh.load_state_dict(state)
    # group 0, h = 10: L=10 -> 1 + cos(pi/2) = 1 ; L=30 >= 2h -> -1 -> -0.7 -> 0.3
    assert fresh(table, CTX) == approx([1.0, 0.3, 1.0, 0.0])


# ------------------------------------------------------------------------------ GRPO-lambda


def sig(z):
    return 1 / (1 + math.exp(-z))


def test_grpo_lambda_hand_numbers():
    table = ([S(True, 5, 0), S(True, 5, 0), S(False, 5, 0), S(False, 5, 0)]           # ratio 0.5
             + [S(True, 10, 1), S(True, 20, 1), S(True, 30, 1), S(True, 40, 1)]      # ratio 1.0 (first)
             + [S(True, 10, 2), S(True, 20, 2), S(True, 30, 2), S(True, 40, 2)]      # ratio 1.0 (tie, later)
             + [S(False, 1, 3)] * 4 + [S(False, 1, 4)] * 4)                          # ratio 0
    # 5 groups, lambda = 0.2 -> ceil(1.0) = 1 group: the tie between groups 1 and 2 goes to group 1
    # group 1: mean 25, sample std sqrt((225+25+25+225)/3) = 12.9099 -> z = -1.1619, -0.3873, 0.3873, 1.1619
    # r = 1 - 0.6 * sigmoid(z) = 0.85701, 0.75738, 0.64262, 0.54299
    std = math.sqrt(500 / 3)
    g1 = [1 - 0.6 * sig((x - 25) / std) for x in (10, 20, 30, 40)]
    assert g1 == approx([0.85701, 0.75738, 0.64262, 0.54299])
    r = GRPOLambda()
    assert r.selected(table) == [1]
    assert r(table, CTX) == approx([1, 1, 0, 0] + g1 + [1, 1, 1, 1] + [0] * 8)
    # lambda = 0.4 -> 2 groups: 1 and 2
    assert GRPOLambda(fraction=0.4)(table, CTX) == approx([1, 1, 0, 0] + g1 + g1 + [0] * 8)


def test_grpo_lambda_std_zero_single_correct_and_single_group():
    # one group (ceil(0.2) = 1, selected): equal lengths -> std 0 -> z = 0 -> 1 - 0.6/2 = 0.7 ; wrong -> 0
    assert GRPOLambda()([S(True, 7), S(True, 7), S(False, 3)], CTX) == approx([0.7, 0.7, 0.0])
    # a single correct completion: no spread -> z = 0
    assert GRPOLambda(alpha=0.4)([S(True, 9), S(False, 3)], CTX) == approx([0.8, 0.0])
    assert GRPOLambda()([S(True, 1)], CTX) == approx([0.7])
    assert GRPOLambda(fraction=0.0)([S(True, 1)], CTX) == [1.0]
