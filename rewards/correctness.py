r"""Correctness reward: the verifier's verdict as a number.

    r_i = correct_reward  if sample i is correct  else  wrong_reward      (defaults 1.0 / 0.0)

The binary outcome reward of RLVR / GRPO (DeepSeek-R1, arXiv 2501.12948); DLER (arXiv
2510.15110) trains on it alone plus truncation (see :mod:`rewards.truncation`). The verdict is
``s.correct`` when the trainer computed it, else :func:`rewards.verify.is_correct` on
``s.completion`` against ``s.answer`` (the answer read after ``</think>``), so the reward also
works standalone.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True), Sample("p", 0, correct=False),
...            Sample("q", 1, completion="<think>2+2</think>\\boxed{4}", answer="4"),
...            Sample("q", 1, completion="<think>2+2</think>\\boxed{5}", answer="4")]
>>> Correctness()(samples, Context())
[1.0, 0.0, 1.0, 0.0]
>>> Correctness(wrong_reward=-0.5)(samples, Context())
[1.0, -0.5, 1.0, -0.5]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .base import Context, Reward, Sample
from .registry import register_reward
from .verify import is_correct

__all__ = ["Correctness", "sample_correct"]


def sample_correct(
    s: Sample,
    delimiter: str | None = "</think>",
    timeout: float = 5.0,
    fallback_last_number: bool = True,
    patterns: Sequence[str | re.Pattern[str]] | None = None,
) -> bool:
    """``s.correct`` when set, else verify ``s.completion`` against the gold ``s.answer``."""
    if s.correct is not None:
        return bool(s.correct)
    if s.answer is None:
        raise ValueError(
            f"sample of prompt {s.prompt_id!r} has no verdict (correct=None) and no gold answer "
            "(answer=None): cannot tell whether it is correct"
        )
    return is_correct(s.completion, s.answer, delimiter=delimiter, timeout=timeout,
                      fallback_last_number=fallback_last_number, patterns=patterns)


@register_reward("correctness")
class Correctness(Reward):
    """``correct_reward`` if the sample is correct, else ``wrong_reward``."""

    name = "correctness"

    def __init__(
        self,
        correct_reward: float = 1.0,
        wrong_reward: float = 0.0,
        delimiter: str | None = "</think>",
        timeout: float = 5.0,
        fallback_last_number: bool = True,
        patterns: Sequence[str] | None = None,
    ):
        self.correct_reward = float(correct_reward)
        self.wrong_reward = float(wrong_reward)
        self.verify_kw = dict(delimiter=delimiter, timeout=timeout,
                              fallback_last_number=fallback_last_number, patterns=patterns)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.correct_reward if sample_correct(s, **self.verify_kw) else self.wrong_reward
                for s in samples]
