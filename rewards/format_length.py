r"""Label-free format-length reward: no gold answer, only format and a length curve.

Xin et al., "Surrogate Signals from Format and Length: Reinforcement Learning for Solving
Mathematical Problems without Ground Truth Answers", arXiv 2505.19439 (code: insightLLM/rl-without-gt
``rl/verl/lib/src/rewards/math_reward.py``, the "Format-Length" score). With x = L / L_ref (L in
tokens, L_ref = 3072) and p = 0.5::

    f(x) = 1 - (1 - x/p)^2             for x <= p      (rises to 1 at x = p)
         = 1 - 2 ((x - p)/(1 - p))^2   for x >  p      (falls to -1 at x = 1, below beyond)

    answer extractable and parseable:  r = 0.5 * (1[think tags well formed] + 1) + f(x)
    otherwise:                         r = min(0, f(x))

"Extractable" = :func:`rewards.verify.extract_answer` finds a final answer (after the last
``</think>``, ``\boxed{}`` first); "parseable" = Math-Verify parses it into a sympy expression
(:func:`parses_as_math`; the release asks sympy). "Well formed" = ``<think>`` ... ``</think>``
in that order; with ``open_tag=None`` (a chat template that opens ``<think>`` in the prompt) the
closing tag alone. The reward never reads ``sample.answer`` or ``sample.correct``: it works on data
without an answer column.

>>> from rewards.base import Sample, Context
>>> r = FormatLength()
>>> samples = [Sample("p", 0, completion="<think>x</think> \\boxed{7}", length=1536),   # x = p
...            Sample("p", 0, completion="\\boxed{7}", length=768),                    # x = p/2, no tags
...            Sample("p", 0, completion="<think>x</think> no answer", length=3072),   # x = 1
...            Sample("p", 0, completion="<think>x</think> no answer", length=768)]
>>> r(samples, Context())   # 1 + 1; 0.5 + 0.75; min(0, -1); min(0, 0.75)
[2.0, 1.25, -1.0, 0.0]
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Sequence

from ._util import check_number, limit_from
from .base import Context, Reward, Sample
from .registry import register_reward
from .verify import DEFAULT_PATTERNS, MAX_ANSWER_CHARS, extract_answer, last_boxed

__all__ = ["FormatLength", "length_curve", "parses_as_math"]


def parses_as_math(answer: str, timeout: float = 5.0) -> bool:
    """Whether Math-Verify parses ``answer`` into a sympy object (not only a string).

    The parse runs under Math-Verify's own time limit on the main thread (signals); elsewhere
    without one, which is safe for parsing alone (no simplification), and answers are capped at
    ``MAX_ANSWER_CHARS``.

    >>> parses_as_math(r"\frac{1}{2}"), parses_as_math("???"), parses_as_math("")
    (True, False, False)
    """
    answer = answer.strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return False
    try:
        import math_verify

        on_main = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
        text = answer if last_boxed(answer) is not None else "\\boxed{" + answer + "}"
        parsed = math_verify.parse(text, parsing_timeout=max(1, math.ceil(timeout)) if on_main else None)
    except Exception:
        return False
    return any(not isinstance(p, str) for p in parsed)


def length_curve(x: float, p: float = 0.5) -> float:
    """The release's length score f(x; p), x = L / L_ref.

    >>> [length_curve(x) for x in (0.0, 0.25, 0.5, 0.75, 1.0)]
    [0.0, 0.75, 1.0, 0.5, -1.0]
    """
    if x <= p:
        return 1.0 - (1.0 - x / p) ** 2
    return 1.0 - 2.0 * ((x - p) / (1.0 - p)) ** 2


@register_reward("format_length")
class FormatLength(Reward):
    """``0.5 (tags + 1) + f(L / L_ref)`` when a parseable answer is present, else ``min(0, f)``; no gold."""

    name = "format_length"

    def __init__(self, reference_length: int | None = 3072, peak: float = 0.5, open_tag: str | None = "<think>",
                 close_tag: str = "</think>", patterns: Sequence[str] | None = None, timeout: float = 5.0):
        self.reference_length = None if reference_length is None else int(
            check_number(self.name, "reference_length", reference_length, low=0, low_open=True, integer=True))
        self.peak = float(check_number(self.name, "peak", peak, low=0.0, high=1.0, low_open=True))
        if self.peak == 1.0:
            raise ValueError(f"reward '{self.name}': peak must be < 1 (the falling branch divides by 1 - peak)")
        if not isinstance(close_tag, str) or not close_tag:
            raise ValueError(f"reward '{self.name}': close_tag must be a non-empty string, got {close_tag!r}")
        self.open_tag, self.close_tag = open_tag or None, close_tag
        self.patterns = DEFAULT_PATTERNS if patterns is None else tuple(patterns)
        self.timeout = float(check_number(self.name, "timeout", timeout, low=0.0, low_open=True))

    def well_formed(self, text: str) -> bool:
        end = text.find(self.close_tag)
        if end < 0:
            return False
        return self.open_tag is None or 0 <= text.find(self.open_tag) < end

    def has_answer(self, text: str) -> bool:
        answer = extract_answer(text, self.close_tag, self.patterns)
        return answer is not None and parses_as_math(answer, self.timeout)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        ref = self.reference_length or limit_from(self.name, None, ctx)
        out = []
        for s in samples:
            f = length_curve(s.length / ref, self.peak)
            if self.has_answer(s.completion):
                out.append(0.5 * (float(self.well_formed(s.completion)) + 1.0) + f)
            else:
                out.append(min(0.0, f))
        return out
