"""Registry, composition and the basic rewards (correctness, format, DLER) on hand tables."""

from __future__ import annotations

import doctest
import importlib
import math
import sys
import textwrap

import pytest

import rewards
from rewards import (
    DLER,
    ComposedReward,
    Context,
    Correctness,
    Format,
    FunctionReward,
    Reward,
    RewardConfigError,
    RewardError,
    Sample,
    TruncationPenalty,
    build_reward,
    build_rewards,
    register_reward,
)
from rewards.registry import REWARDS

CTX = Context(step=3, max_length=100, group_size=2)


def S(correct=None, truncated=False, length=10, completion="", answer=None, group=0, pid="p"):
    return Sample(prompt_id=pid, group=group, completion=completion, answer=answer,
                  length=length, truncated=truncated, correct=correct)


# ----------------------------------------------------------------------------------- registry


def test_builtin_names_registered():
    assert {"correctness", "format", "dler", "truncation_penalty"} <= set(rewards.available_rewards())


def test_unknown_name_names_closest():
    with pytest.raises(RewardConfigError) as e:
        build_reward({"name": "corectness"})
    msg = str(e.value)
    assert "'corectness'" in msg and "did you mean 'correctness'" in msg


def test_unknown_kwarg_names_key_and_closest_param():
    with pytest.raises(RewardConfigError) as e:
        build_reward({"name": "truncation_penalty", "penalti": 2.0})
    msg = str(e.value)
    assert "'penalti'" in msg and "did you mean 'penalty'" in msg and "truncation_penalty" in msg


def test_misspelled_reserved_key_suggests_weight():
    with pytest.raises(RewardConfigError, match="did you mean 'weight'"):
        build_reward({"name": "dler", "wieght": 2.0})


@pytest.mark.parametrize("weight", [float("nan"), "1", None, True])
def test_bad_weight(weight):
    with pytest.raises(RewardConfigError, match="weight"):
        build_reward({"name": "dler", "weight": weight})


def test_spec_fields_and_display_name():
    name, reward, weight = build_reward({"name": "truncation_penalty", "weight": 0.25, "penalty": 3.0, "as": "trunc"})
    assert (name, weight) == ("trunc", 0.25)
    assert isinstance(reward, TruncationPenalty) and reward.penalty == 3.0
    name, reward, weight = build_reward("dler")  # a bare name is accepted too
    assert (name, weight) == ("dler", 1.0) and isinstance(reward, DLER)


def test_missing_required_param():
    @register_reward("test_needs_target")
    def factory(target: int):
        return lambda samples, ctx: [float(target)] * len(samples)

    try:
        with pytest.raises(RewardConfigError, match="missing required parameter.*target"):
            build_reward({"name": "test_needs_target"})
        _, reward, _ = build_reward({"name": "test_needs_target", "target": 7})
        assert isinstance(reward, FunctionReward) and reward([S(), S()], CTX) == [7.0, 7.0]
    finally:
        REWARDS.pop("test_needs_target")


def test_register_name_clash():
    with pytest.raises(ValueError, match="already registered"):
        register_reward("dler")(lambda samples, ctx: [])


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_user_rewards.py").write_text(textwrap.dedent('''
        from rewards import Reward

        def brevity(samples, ctx, scale=1.0):
            """-scale * length / max_length"""
            return [-scale * s.length / ctx.max_length for s in samples]

        class Bonus(Reward):
            def __init__(self, bonus=1.0):
                self.bonus = bonus
            def __call__(self, samples, ctx):
                return [self.bonus] * len(samples)

        def make_const(value=2.0):
            return lambda samples, ctx: [value] * len(samples)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_user_rewards"
    sys.modules.pop("my_user_rewards", None)


def test_import_path_function_binds_kwargs(user_module):
    name, reward, weight = build_reward({"name": f"{user_module}:brevity", "scale": 0.5, "as": "len"})
    assert name == "len" and weight == 1.0
    # -0.5 * 10/100 = -0.05 ; -0.5 * 40/100 = -0.2
    assert reward([S(length=10), S(length=40)], CTX) == pytest.approx([-0.05, -0.2])


def test_import_path_class_and_factory(user_module):
    _, bonus, _ = build_reward({"name": f"{user_module}:Bonus", "bonus": 0.3})
    assert bonus([S()], CTX) == [0.3]
    _, const, _ = build_reward({"name": f"{user_module}:make_const"})
    assert const([S(), S()], CTX) == [2.0, 2.0]


def test_import_path_errors(user_module):
    with pytest.raises(RewardConfigError, match="did you mean 'scale'"):
        build_reward({"name": f"{user_module}:brevity", "scael": 1.0})
    with pytest.raises(RewardConfigError, match="has no attribute 'brevty'.*did you mean 'brevity'"):
        build_reward({"name": f"{user_module}:brevty"})
    with pytest.raises(RewardConfigError, match="no_such_pkg.mod:fn.*cannot import module 'no_such_pkg.mod'"):
        build_reward({"name": "no_such_pkg.mod:fn"})


# -------------------------------------------------------------------------------- composition


def const(values):
    return lambda samples, ctx: list(values)


def test_weighted_totals_and_unweighted_components():
    # hand table: a = [1, 0, 1], b = [0.5, -1, 2], c = [1, 1, 1]; weights 2, 0.5, -1
    composed = ComposedReward([("a", const([1, 0, 1]), 2.0), ("b", const([0.5, -1, 2]), 0.5),
                               ("c", const([1, 1, 1]), -1.0)])
    totals, comps = composed.score([S(), S(), S()], CTX)
    # 2*1 + 0.5*0.5 - 1 = 1.25 ; 0 - 0.5 - 1 = -1.5 ; 2 + 1 - 1 = 2
    assert totals == pytest.approx([1.25, -1.5, 2.0])
    assert comps == {"a": [1.0, 0.0, 1.0], "b": [0.5, -1.0, 2.0], "c": [1.0, 1.0, 1.0]}
    assert composed([S(), S(), S()], CTX) == pytest.approx([1.25, -1.5, 2.0])


def test_build_rewards_from_specs_on_hand_table():
    composed = build_rewards([
        {"name": "dler"},
        {"name": "truncation_penalty", "weight": 0.5, "penalty": 2.0, "as": "trunc"},
        {"name": "format", "weight": 0.1},
    ])
    samples = [
        S(correct=True, completion="</think>\\boxed{1}"),  # dler 1, trunc 0, format 1 -> 1.1
        S(correct=True, truncated=True, completion="</think>\\boxed{1}"),  # 0, -2, 1 -> -0.9
        S(correct=False, completion="</think>nothing"),  # 0, 0, 0 -> 0
    ]
    totals, comps = composed.score(samples, CTX)
    assert totals == pytest.approx([1.1, -0.9, 0.0])
    assert comps == {"dler": [1.0, 0.0, 0.0], "trunc": [0.0, -2.0, 0.0], "format": [1.0, 1.0, 0.0]}


def test_duplicate_display_names_get_suffixes():
    composed = build_rewards([{"name": "dler"}, {"name": "dler", "weight": 2}, {"name": "dler"}])
    assert composed.names == ["dler", "dler_1", "dler_2"]
    totals, comps = composed.score([S(correct=True)], CTX)
    assert totals == [4.0] and set(comps) == {"dler", "dler_1", "dler_2"}


def test_empty_reward_list_is_error():
    with pytest.raises(RewardConfigError, match="empty"):
        build_rewards([])
    with pytest.raises(RewardConfigError):
        ComposedReward([])


def test_spec_errors_carry_the_index():
    with pytest.raises(RewardConfigError, match=r"rewards\[1\].*did you mean 'dler'"):
        build_rewards([{"name": "dler"}, {"name": "dlr"}])


def test_nan_is_reported_with_reward_name_and_first_index():
    composed = ComposedReward([("ok", const([1, 1, 1]), 1.0), ("bad", const([0.0, math.nan, math.inf]), 1.0)])
    with pytest.raises(RewardError, match=r"reward 'bad' returned nan at sample 1"):
        composed.score([S(), S(), S()], CTX)


def test_raising_reward_is_wrapped_and_chained():
    def boom(samples, ctx):
        raise KeyError("missing fact")

    composed = ComposedReward([("boom", boom, 1.0)])
    with pytest.raises(RewardError, match="reward 'boom' failed") as e:
        composed.score([S()], CTX)
    assert isinstance(e.value.__cause__, KeyError)


def test_wrong_length_and_non_numbers():
    with pytest.raises(RewardError, match="'short'.*expected 3, got 2"):
        ComposedReward([("short", const([1, 2]), 1.0)]).score([S(), S(), S()], CTX)
    with pytest.raises(RewardError, match="'text'.*non-number at sample 0"):
        ComposedReward([("text", const(["1"]), 1.0)]).score([S()], CTX)

    class Scalar(Reward):
        def __call__(self, samples, ctx):
            return 1.0

    with pytest.raises(RewardError, match="'scalar' returned float; expected a sequence of 1 numbers"):
        ComposedReward([("scalar", Scalar(), 1.0)]).score([S()], CTX)
    with pytest.raises(RewardError, match="'fn' failed: TypeError"):  # FunctionReward list()s it
        ComposedReward([("fn", lambda samples, ctx: 1.0, 1.0)]).score([S()], CTX)


class Counter(Reward):
    """A stateful reward: counts the samples it has seen in update()."""

    needs = frozenset({"entropy"})

    def __init__(self):
        self.seen = 0

    def __call__(self, samples, ctx):
        return [float(self.seen)] * len(samples)

    def update(self, samples, ctx):
        self.seen += len(samples)

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_update_needs_and_state_dict_round_trip():
    composed = ComposedReward([("count", Counter(), 1.0), ("dler", DLER(), 1.0)])
    assert composed.needs == frozenset({"entropy"})
    batch = [S(correct=True), S(correct=False)]
    assert composed.score(batch, CTX)[0] == [1.0, 0.0]  # scored before update: count 0
    composed.update(batch, CTX)
    assert composed.score(batch, CTX)[0] == [3.0, 2.0]  # count 2 after the update
    state = composed.state_dict()
    assert state == {"count": {"seen": 2}, "dler": {}}

    fresh = ComposedReward([("count", Counter(), 1.0), ("dler", DLER(), 1.0)])
    fresh.load_state_dict(state)
    assert fresh.score(batch, CTX)[0] == [3.0, 2.0]
    with pytest.raises(ValueError, match="'gone'"):
        fresh.load_state_dict({"gone": {}})


# ------------------------------------------------------------------------------------ rewards


def test_correctness_hand_table():
    samples = [
        S(correct=True),
        S(correct=False),
        S(completion="<think>7?</think>The answer is \\boxed{8}.", answer="8"),  # computed: right
        S(completion="<think>8</think>so 7", answer="8"),  # computed: last number 7, wrong
        S(completion="<think>the answer is 8</think>", answer="8"),  # nothing after </think>
    ]
    assert Correctness()(samples, CTX) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert Correctness(correct_reward=2.0, wrong_reward=-1.0)(samples, CTX) == [2.0, -1.0, 2.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="no gold answer"):
        Correctness()([S(completion="x")], CTX)


def test_dler_hand_table():
    samples = [
        S(correct=True, truncated=False),  # 1
        S(correct=True, truncated=True),  # truncated + correct -> 0
        S(correct=False, truncated=False),  # 0
        S(correct=False, truncated=True),  # 0
        S(completion="</think>#### 12", answer="12", length=30),  # verified, ended: 1
        S(completion="</think>#### 12", answer="12", truncated=True),  # verified but cut: 0
    ]
    assert DLER()(samples, CTX) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert DLER(max_length=20)(samples, CTX) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 30 > 20 tokens
    assert TruncationPenalty()(samples, CTX) == [0.0, -1.0, 0.0, -1.0, 0.0, -1.0]


def test_format_hand_table():
    texts = [
        "<think>a</think>\\boxed{1}",  # 1 / 1
        "<think>a</think>A:12",  # toy pattern: 1 / 1
        "\\boxed{1}",  # no delimiter: 1 / 0
        "<think>a</think>it is 12",  # only a bare number: 0 / 0
        "<think>a</think>x</think>#### 4",  # delimiter twice: 1 / 0
    ]
    samples = [S(completion=t) for t in texts]
    assert Format()(samples, CTX) == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert Format(require_delimiter=True)(samples, CTX) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert Format(fallback_last_number=True)(samples, CTX) == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert Format(pattern=r"A:\d+$", absent_reward=-1.0)(samples, CTX) == [-1.0, 1.0, -1.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="invalid format pattern"):
        Format(pattern="(")


@pytest.mark.parametrize("module", ["registry", "compose", "verify", "correctness", "format", "truncation"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(f"rewards.{module}"))
    assert result.failed == 0 and result.attempted > 0


def test_rewards_is_a_leaf_package():
    import pathlib

    root = pathlib.Path(rewards.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "from rl" not in text and "import rl" not in text, path
