r"""DAPO soft overlong punishment: a linear penalty inside the last ``buffer`` tokens of the limit.

Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale", arXiv 2503.14476::

    r_len = 0                                            if L <= L_max - L_buf
          = -(L - (L_max - L_buf)) / L_buf * factor      if L_max - L_buf < L <= L_max
          = -factor                                      if L > L_max

i.e. ``clip(-(L - (L_max - L_buf)) / L_buf * factor, -factor, 0)``. Published: L_max = 20480,
L_buf = 4096, factor = 1. ``max_length`` defaults to ``ctx.max_length`` (the limit in force); a
buffer longer than L_max is cut to L_max (then r_len = -factor * L / L_max). Additive: compose it
with a correctness reward (``{name: correctness}, {name: dapo_overlong}``).

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, length=n) for n in (1000, 16384, 18432, 20480)]
>>> DAPOOverlong()(samples, Context(max_length=20480))   # start 16384: 0, 0, -2048/4096, -1
[0.0, 0.0, -0.5, -1.0]
"""

from __future__ import annotations

from ._util import check_number, limit_from
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["DAPOOverlong"]


@register_reward("dapo_overlong")
class DAPOOverlong(Reward):
    """``clip(-(L - (L_max - L_buf)) / L_buf * factor, -factor, 0)``."""

    name = "dapo_overlong"

    def __init__(self, max_length: int | None = None, buffer: int = 4096, factor: float = 1.0):
        if max_length is not None:
            check_number(self.name, "max_length", max_length, low=0, low_open=True, integer=True)
        self.max_length = max_length
        self.buffer = check_number(self.name, "buffer", buffer, low=0, low_open=True, integer=True)
        self.factor = float(check_number(self.name, "factor", factor, low=0.0))

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        limit = limit_from(self.name, self.max_length, ctx)
        buf = min(self.buffer, limit)
        start = limit - buf
        return [max(-self.factor, min(0.0, -(s.length - start) / buf * self.factor)) + 0.0 for s in samples]
