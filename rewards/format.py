r"""Format reward: does the completion end in an answer the verifier can read?

    r_i = present_reward  if the completion is well formed  else  absent_reward   (1.0 / 0.0)

Well formed = :func:`rewards.verify.extract_answer` finds an answer (``\boxed{}``, ``#### X``,
``A:X``, "answer is X"), read after the ``</think>`` delimiter; with ``require_delimiter=True`` the
delimiter must occur exactly once, before the answer (the think-tag check of LASER's format
score, arXiv 2505.15612; DeepSeek-R1's format reward, arXiv 2501.12948). With ``pattern=`` a
regex search over the whole completion replaces the answer check (use ``(?s)^...$`` to anchor).

>>> from rewards.base import Sample, Context
>>> texts = ["<think>x</think>\\boxed{3}", "\\boxed{3}", "<think>x</think>no answer",
...          "<think>a</think>b</think>\\boxed{3}"]
>>> samples = [Sample("p", 0, completion=t) for t in texts]
>>> Format()(samples, Context())
[1.0, 1.0, 0.0, 1.0]
>>> Format(require_delimiter=True)(samples, Context())
[1.0, 0.0, 0.0, 0.0]
>>> Format(pattern=r"(?s)^<think>.*</think>")(samples, Context())
[1.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .base import Context, Reward, Sample
from .registry import register_reward
from .verify import DEFAULT_PATTERNS, extract_answer

__all__ = ["Format"]


@register_reward("format")
class Format(Reward):
    """``present_reward`` if an answer can be extracted (or ``pattern`` matches), else ``absent_reward``."""

    name = "format"

    def __init__(
        self,
        delimiter: str | None = "</think>",
        require_delimiter: bool = False,
        pattern: str | None = None,
        patterns: Sequence[str] | None = None,
        fallback_last_number: bool = False,
        present_reward: float = 1.0,
        absent_reward: float = 0.0,
    ):
        if require_delimiter and not delimiter:
            raise ValueError("require_delimiter=True needs a delimiter (e.g. '</think>')")
        try:
            self.pattern = re.compile(pattern) if pattern is not None else None
        except re.error as e:
            raise ValueError(f"invalid format pattern {pattern!r}: {e}") from e
        self.delimiter = delimiter
        self.require_delimiter = require_delimiter
        self.patterns = DEFAULT_PATTERNS if patterns is None else tuple(patterns)
        self.fallback_last_number = fallback_last_number
        self.present_reward = float(present_reward)
        self.absent_reward = float(absent_reward)

    def ok(self, completion: str) -> bool:
        if self.require_delimiter and completion.count(self.delimiter) != 1:  # type: ignore[arg-type]
            return False
        if self.pattern is not None:
            return self.pattern.search(completion) is not None
        return extract_answer(completion, self.delimiter, self.patterns,
                              fallback_last_number=self.fallback_last_number) is not None

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.present_reward if self.ok(s.completion) else self.absent_reward for s in samples]
