"""Every built-in TRL reward function (trl.rewards) runs through laconic's from_trl / {name: trl},
with what TRL's GRPOTrainer passes: chat-format completions, `solution`, `trainer_state`."""

from __future__ import annotations

import pytest

trl_rewards = pytest.importorskip("trl.rewards")

from rewards import Context, build_reward, from_trl  # noqa: E402
from rewards.base import Sample  # noqa: E402

CHAT = Context(step=3, total_steps=10, max_length=64, chat=True)

# (name, the function as TRL users build it, expected values on SAMPLES)
SAMPLES = [
    Sample("p", 0, prompt="What is 1/3 + 0?", completion="<think>\nadd\n</think>\nSo \\boxed{\\frac{1}{3}}",
           answer="\\frac{1}{3}", length=6, completion_ids=[1, 2, 3, 4, 5, 6]),
    Sample("p", 0, prompt="What is 1/3 + 0?", completion="<think>\nhmm\nSo \\boxed{\\frac{1}{2}}",
           answer="\\frac{1}{3}", length=8, completion_ids=[7, 7, 7, 7, 7, 7, 7, 7]),
]
BUILT_IN = {
    "think_format_reward": (lambda: trl_rewards.think_format_reward, [1.0, 0.0]),
    "accuracy_reward": (lambda: trl_rewards.accuracy_reward, [1.0, 0.0]),
    "reasoning_accuracy_reward": (lambda: trl_rewards.reasoning_accuracy_reward, [1.0, 0.0]),
    "get_cosine_scaled_reward": (lambda: trl_rewards.get_cosine_scaled_reward(max_len=8), None),
    "get_repetition_penalty_reward": (lambda: trl_rewards.get_repetition_penalty_reward(3, -1.0), [0.0, -5 / 6]),
    "get_soft_overlong_punishment": (lambda: trl_rewards.get_soft_overlong_punishment(8, 4), [-0.5, -1.0]),
}


def test_every_built_in_is_covered():
    names = {n for n in trl_rewards.__all__ if callable(getattr(trl_rewards, n))}
    assert names == set(BUILT_IN), names ^ set(BUILT_IN)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_runs_through_laconic(name):
    make, expected = BUILT_IN[name]
    values = from_trl(make())(SAMPLES, CHAT)
    assert len(values) == 2 and all(isinstance(v, float) for v in values)
    if expected is not None:
        assert values == pytest.approx(expected)
    else:  # cosine: correct and shorter beats wrong
        assert values[0] > 0 > values[1]


def test_registry_form_and_conversational_switch():
    _, r, _ = build_reward({"name": "trl", "function": "trl.rewards:think_format_reward", "conversational": True})
    assert r(SAMPLES, Context()) == [1.0, 0.0]  # forced on, whatever ctx.chat says
    with pytest.raises(TypeError):  # plain strings: what used to reach TRL's functions
        from_trl(trl_rewards.think_format_reward, conversational=False)(SAMPLES, CHAT)


def test_required_trainer_state_and_completion_ids():
    def staged(prompts, completions, trainer_state, **kwargs):
        return [float(trainer_state.global_step)] * len(completions)

    assert from_trl(staged)(SAMPLES, CHAT) == [3.0, 3.0]
    overlong = from_trl(trl_rewards.get_soft_overlong_punishment(8, 4))
    assert overlong.needs == {"completion_ids"} and from_trl(staged).needs == frozenset()
    bare = [Sample("p", 0, completion="x", length=1)]
    with pytest.raises(ValueError, match="needs completion_ids"):
        overlong(bare, CHAT)
