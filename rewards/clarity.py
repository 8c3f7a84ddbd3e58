r"""Clarity objective of dynamic reward weighting: an answer, reached step by step.

    r_i = 1  if the completion states a final answer  and  (>= 2 enumerators  or  >= 2 ordinal words)
        = 0  otherwise

- enumerators: a number, a single letter or a roman numeral (optionally after "step") closed by
  ``)``, ``.``, ``:`` or ``-`` at the start of a line, after a space or after ``(`` ("1.", "(a)", "Step 2:",
  "iv)"), or a bullet ``-``, ``*``, ``•`` followed by a space; case-insensitive;
- ordinal words: first ... tenth, next, then (whole words, case-insensitive);
- a final answer: a non-empty ``\boxed{...}`` (the paper's rule, ``answer: boxed``), or anything
  :func:`rewards.verify.extract_answer` reads (``answer: any``: ``A:7`` on the toy, ``#### 7``, ...).

Paper: arXiv 2509.11452 (TACL 2026), the "clarity" (format) objective; released code
``yining610/dynamic-reward-weighting`` @238fe65, ``verl/utils/reward_score/dynamic_math/math_format.py``
(``compute_score``). Written from reading it; the rules above are the release's, the patterns laconic's own.

>>> from rewards.base import Sample, Context
>>> texts = ["First add 3. Then add 4. \\boxed{7}", "1. add 3\n2. add 4\n\\boxed{7}", "add 3 and 4: \\boxed{7}",
...          "First, then: \\boxed{ }", "Step 1: 3+4. Step 2: =7. A:7"]
>>> Clarity()([Sample("p", 0, completion=t) for t in texts], Context())
[1.0, 1.0, 0.0, 0.0, 0.0]
>>> Clarity(answer="any")([Sample("p", 0, completion=texts[-1])], Context())
[1.0]
"""

from __future__ import annotations

import re

from .base import Context, Reward, Sample
from .registry import register_reward
from .verify import extract_answer

__all__ = ["Clarity", "stepwise"]

BOXED = re.compile(r"\\boxed\{\s*[^}\s][^}]*\}")
ENUMERATOR = re.compile(r"(?:(?:^|\s|\()(?:\bstep\s*)?(?:\d+|[a-z]|[ivxlcdm]+)[).:\-])|(?:(?:^|\s)[-*\u2022]\s+)",
                        re.IGNORECASE | re.MULTILINE)
ORDINAL = re.compile(r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|next|then)\b",
                     re.IGNORECASE)


def stepwise(text: str) -> bool:
    """At least two enumerators or two ordinal words (linear-time regular expressions)."""
    return len(ENUMERATOR.findall(text)) >= 2 or len(ORDINAL.findall(text)) >= 2


@register_reward("clarity")
class Clarity(Reward):
    """1 for a completion with a final answer and visible steps, else 0."""

    name = "clarity"

    def __init__(self, answer: str = "boxed") -> None:
        if answer not in ("boxed", "any"):
            raise ValueError(f"clarity: answer must be 'boxed' (the paper's) or 'any', got {answer!r}")
        self.answer = answer

    def _answered(self, text: str) -> bool:
        return bool(BOXED.search(text)) if self.answer == "boxed" else extract_answer(text) is not None

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [1.0 if self._answered(s.completion) and stepwise(s.completion) else 0.0 for s in samples]
