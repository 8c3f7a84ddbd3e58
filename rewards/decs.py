r"""DECS: decoupled token rewards for a correct completion's redundant tail.

"Overthinking Reduction with Decoupled Rewards and Curriculum Data Scheduling" (DECS), arXiv
2509.25827 (code: pixas/DECS). For a correct completion, the *redundant span* is every token after
the first point where the reasoning reaches the correct answer. Per token t (L tokens, limit
L_max, beta = 0.1)::

    r_t = r * (1 + beta)                 before the span (the answer not reached yet)
    r_t = r + beta * (1 - L / L_max)     inside it (less, and less for a longer completion)
    r_t = 0                              every token of a wrong completion

The paper finds the point with a judge model. Here a rule stands in for it: the first place in the
reasoning (the text before ``delimiter`` when present, else the whole completion) where the gold
answer appears as a whole number or expression (not inside a longer number). Cheaper, and
blind to an answer reached in other words ("twelve"), or stated before it is derived; a
completion whose reasoning never states the answer has no span. Token positions come from
``sample.token_ends`` (``needs = {"token_offsets"}``: the trainer attaches where each token ends).

The paper's second half, curriculum data scheduling (a share kappa of each batch's groups is
all-correct ones, kappa following the redundant ratio), lives with dynamic sampling:
``algo.curriculum`` (rl/algo/curriculum.py), which measures the redundant span with :func:`answer_token`.

>>> from rewards.base import Sample, Context
>>> s = Sample("p", 0, completion="2+3=5. check: 5.", answer="5", correct=True, length=4,
...            token_ends=[4, 6, 13, 16])       # "2+3=" "5." " check:" " 5."
>>> DECS()([s], Context(max_length=8))            # answer reached in token 1: tokens 2, 3 redundant
[[1.1, 1.1, 1.05, 1.05]]
"""

from __future__ import annotations

import re

from ._util import check_number, limit_from
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["DECS", "answer_token", "redundant_from"]


def answer_token(s: Sample, delimiter: str | None = "</think>") -> int | None:
    """Index of the token of ``s`` that completes the first statement of the gold answer in the
    reasoning, or None when the reasoning never states it (or token positions are missing)."""
    if not s.answer or s.token_ends is None:
        return None
    text = s.completion
    reasoning = text[: text.index(delimiter)] if delimiter and delimiter in text else text
    m = re.search(r"(?<![\w.])" + re.escape(s.answer.strip()) + r"(?![\w]|\.\d)", reasoning)
    if m is None:
        return None
    return next((i for i, end in enumerate(s.token_ends) if end >= m.end()), None)


def redundant_from(s: Sample, delimiter: str | None = "</think>") -> int | None:
    """Index of the first redundant token of ``s`` (the one after :func:`answer_token`), or None
    when there is no such token (the answer is never stated, or stated by the last token)."""
    k = answer_token(s, delimiter)
    return None if k is None or k + 1 >= s.length else k + 1


@register_reward("decs")
class DECS(Reward):
    name = "decs"
    needs = frozenset({"token_offsets"})
    per_token = True

    def __init__(self, beta: float = 0.1, correct_reward: float = 1.0, max_length: int | None = None,
                 delimiter: str | None = "</think>"):
        self.beta = check_number("decs", "beta", beta, low=0.0)
        self.correct_reward = check_number("decs", "correct_reward", correct_reward)
        self.max_length, self.delimiter = max_length, delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float | list[float]]:
        limit = limit_from("decs", self.max_length, ctx)
        out: list[float | list[float]] = []
        for s in samples:
            r = self.correct_reward
            k = redundant_from(s, self.delimiter) if s.correct else None
            if not s.correct:
                out.append(0.0)
            elif k is None:
                out.append(r * (1 + self.beta))
            else:
                tail = r + self.beta * (1 - s.length / limit)
                out.append([r * (1 + self.beta)] * k + [tail] * (s.length - k))
        return out
