"""DOT, dynamic outlier truncation (arXiv 2601.03969; released code U-rara/DOT,
``projects/dot/length_truncation.py``), and its predictive oversampling for dynamic sampling.

Truncation acts on groups the policy already solves (a share of correct completions of at least
``success_threshold``, 1.0 in the paper: all correct). Over such a group's lengths L (tokens, EOS
included)::

    T = floor(mean(L) + alpha * stdev(L))          (sample std; 0 for a single completion)
    L_i > T  and  L_i - T >= m  ->  completion i is cut to its first T tokens

where m = ``min_excess`` tokens, or, for 0 < ``min_excess`` < 1, a margin relative to the completion:
m = max(floor(L_i * min_excess), 16). As in the release: a group qualifies when its share of correct
completions, ``correct / G`` in floats, is at least ``success_threshold`` (7 of 25 at 0.28 does), and
it has at least one correct completion (``success_threshold: 0`` does not cut all-wrong groups);
``min_excess: 0`` cuts only what is longer than T (no empty cuts).

A cut completion is re-verified (it usually loses its answer, and its correctness reward with it)
and the policy trains on the cut token sequence; everything else is plain GRPO. alpha = 3,
min_excess = 32 in the paper. The cut itself is :func:`rl.engines.base.cut_rollout`; it counts as a
length finish (``finish_reason="length"``). Step metrics (accuracy, tokens) still describe what the
policy wrote, before any cut.

Predictive oversampling: with dynamic sampling, the first round draws ``factor x`` the prompts a
step needs, where ``factor = clamp(1 / mean kept fraction of the last `history` steps, low, high)``
(start 1.5, clamped to [1.2, 5], 20 steps in the release), so one round usually fills the batch.

>>> cutoff([100, 100, 100, 400])   # mean 175, stdev 150
625
>>> cutoff([10])
10
>>> from types import SimpleNamespace as S
>>> group = [S(group=0, correct=True, length=n) for n in [100] * 20 + [2000]]
>>> cutoff([s.length for s in group]), outliers(group), outliers(group, min_excess=0.5)  # 2000 - 1434 < 1000
(1434, {20: 1434}, {})
>>> oversample_factor([], start=1.5), oversample_factor([0.5, 0.25]), oversample_factor([0.01])
(1.5, 2.6666666666666665, 5.0)
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def cutoff(lengths: list[int], alpha: float = 3.0) -> int:
    std = statistics.stdev(lengths) if len(lengths) > 1 else 0.0
    return math.floor(statistics.fmean(lengths) + alpha * std)


def outliers(samples: list[Any], *, alpha: float = 3.0, min_excess: float = 32,
             success_threshold: float = 1.0) -> dict[int, int]:
    """``{index: T}`` of the completions to cut: the long tail of the groups solved at least
    ``success_threshold`` of the time."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    cuts = {}
    for idx in groups.values():
        correct = sum(bool(samples[i].correct) for i in idx)
        if correct == 0 or correct / len(idx) < success_threshold:
            continue
        t = cutoff([samples[i].length for i in idx], alpha)
        cuts.update({i: t for i in idx if samples[i].length > t and samples[i].length - t >= margin(samples[i].length, min_excess)})
    return cuts


def margin(length: int, min_excess: float) -> int:
    """The release's margin: ``min_excess`` tokens, or for 0 < min_excess < 1 that share of the
    completion, at least 16 tokens.

    >>> margin(1000, 32), margin(1000, 0.1), margin(100, 0.1)
    (32, 100, 16)
    """
    return max(int(length * min_excess), 16) if 0 < min_excess < 1 else int(min_excess)


def oversample_factor(kept_fractions: list[float], *, start: float = 1.5, low: float = 1.2,
                      high: float = 5.0, history: int = 20) -> float:
    recent = [f for f in kept_fractions[-history:]]
    if not recent:
        return start
    mean = statistics.fmean(recent)
    return high if mean <= 0 else min(max(1.0 / mean, low), high)
