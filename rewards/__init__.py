"""laconic's reward library: composable rewards for concise reasoning (DESIGN.md, "Reward modules").

A leaf package: it imports nothing from ``rl`` and works on its own (e.g. with TRL). A reward is
``(samples: list[Sample], ctx: Context) -> list[float]``; recipes compose them as data::

    from rewards import build_rewards, Sample, Context
    composed = build_rewards([{"name": "dler"}, {"name": "format", "weight": 0.1}])
    totals, components = composed.score(samples, Context(step=0))
"""

from .base import Context, FunctionReward, Reward, RewardFn, Sample, groups_of
from .registry import REWARDS, RewardConfigError, available_rewards, build_reward, register_reward
from .compose import ComposedReward, RewardError, build_rewards
from .verify import answers_match, extract_answer, is_correct, last_boxed, math_verify_match, parse_gold
from .correctness import Correctness, sample_correct
from .format import Format
from .truncation import DLER, TruncationPenalty, is_truncated

__all__ = [
    # contract
    "Context",
    "FunctionReward",
    "Reward",
    "RewardFn",
    "Sample",
    "groups_of",
    # registry and composition
    "REWARDS",
    "ComposedReward",
    "RewardConfigError",
    "RewardError",
    "available_rewards",
    "build_reward",
    "build_rewards",
    "register_reward",
    # verification
    "answers_match",
    "extract_answer",
    "is_correct",
    "last_boxed",
    "math_verify_match",
    "parse_gold",
    # rewards
    "Correctness",
    "DLER",
    "Format",
    "TruncationPenalty",
    "is_truncated",
    "sample_correct",
]
