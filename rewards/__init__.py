"""laconic's reward library: composable rewards for concise reasoning (docs/design.md, "The reward contract").

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
from .format_length import FormatLength
from .truncation import DLER, TruncationPenalty, is_truncated
from .repetition import RepetitionPenalty
from .da_dler import DADLER
from .laser import Laser
from .laser_d import LaserD, LaserDE, bucket_targets
from .hapo import HAPO
from .palu import PALU
from .pear import PEAR
from .ceeh import CEEH
from .kimi import KimiLength
from .cosine import CosineScaled
from .dapo import DAPOOverlong
from .l1 import L1Exact, L1Max, budget_prompt, sample_budget
from .gates import ConciseR, Gate, GRPOLambda, RemainingBudget
from .adactrl import AdaCtrl
from .decs import DECS
from .arlcp import ARLCP
from .e1 import E1Effort, effort_prompt, sample_effort
from .redundancy import Redundancy
from .trl import as_trl_reward, from_trl

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
    "DECS",
    "DLER",
    "Format",
    "FormatLength",
    "TruncationPenalty",
    "is_truncated",
    "sample_correct",
    # concise-reasoning methods
    "AdaCtrl",
    "ARLCP",
    "CEEH",
    "ConciseR",
    "CosineScaled",
    "DADLER",
    "DAPOOverlong",
    "E1Effort",
    "GRPOLambda",
    "Gate",
    "HAPO",
    "PALU",
    "KimiLength",
    "L1Exact",
    "L1Max",
    "Laser",
    "LaserD",
    "LaserDE",
    "PEAR",
    "Redundancy",
    "RemainingBudget",
    "RepetitionPenalty",
    "bucket_targets",
    "budget_prompt",
    "effort_prompt",
    "sample_budget",
    "sample_effort",
    # TRL interop
    "as_trl_reward",
    "from_trl",
]
