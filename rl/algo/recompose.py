"""RoRecomp's split of a batch (arXiv 2509.25958, "RoRecomp: Rollout Response Recomposition"; no
released code: the method as the paper's abstract and its ICLR 2026 reviews quote it).

The reward stays outcome-only; what changes is which responses a gradient step sees. Advantages are
computed over the whole group first (so each sample keeps the advantage it had in its full group);
then, per group with a learning signal:

- the **priority batch** takes the ``ceil(alpha |C_g|)`` shortest correct responses and the
  ``ceil(alpha |W_g|)`` longest wrong ones, and is trained at once: the step sees +A on short answers
  and -A on long ones, which is the length pressure;
- every other response of the group (long-correct, short-wrong) goes to a FIFO **replay buffer**; once
  it holds a compensation batch, the oldest ones are trained in an extra optimizer step
  (rl/train/recompose.py).

A group whose advantages are all 0 (all correct or all wrong under an outcome reward) carries no signal
and is neither selected nor buffered. Ties in length keep the earlier sample.

Choices where the paper is silent (docs/reproductions.md, "RoRecomp"): alpha is a fraction of each
correctness class (not of the whole group), advantages are not recomputed on the subset, and the
buffered samples are trained with their ratio against the log-prob they were sampled with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

DEFAULTS: dict[str, Any] = {"alpha": 0.5, "batch": 64, "prob": 1.0, "max_age": 8}


def check_options(options: dict[str, Any]) -> str | None:
    """What is wrong with ``algo.recompose`` (one line), or None.

    >>> check_options({"alpha": 0})
    'algo.recompose.alpha must be in (0, 1], got 0'
    """
    o = {**DEFAULTS, **options}
    if isinstance(o["alpha"], bool) or not isinstance(o["alpha"], (int, float)) or not 0 < o["alpha"] <= 1:
        return f"algo.recompose.alpha must be in (0, 1], got {o['alpha']!r}"
    for key in ("batch", "max_age"):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < 1:
            return f"algo.recompose.{key} must be an integer >= 1, got {o[key]!r}"
    if isinstance(o["prob"], bool) or not isinstance(o["prob"], (int, float)) or not 0 < o["prob"] <= 1:
        return f"algo.recompose.prob must be in (0, 1], got {o['prob']!r}"
    return None


def split(groups: list[int], correct: list[bool], lengths: list[int], signal: list[bool],
          alpha: float) -> tuple[list[bool], list[bool]]:
    """``(priority, buffered)`` masks over a batch's samples: ``groups[i]`` is sample i's group,
    ``signal[i]`` whether its advantage is non-zero (a group has signal if any member has).

    Group 0: correct lengths 5, 9, 3 and wrong 7, 2 at alpha 0.5: the ceil(1.5) = 2 shortest correct (3, 5)
    and the ceil(1) = 1 longest wrong (7) are the priority; 9 and 2 are buffered. Group 1 is all correct
    with advantage 0: neither.

    >>> split([0, 0, 0, 0, 0, 1, 1], [True, True, True, False, False, True, True],
    ...       [5, 9, 3, 7, 2, 4, 4], [True] * 5 + [False] * 2, 0.5)
    ([True, False, True, True, False, False, False], [False, True, False, False, True, False, False])
    """
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    priority = [False] * len(groups)
    buffered = [False] * len(groups)
    for idx in members.values():
        if not any(signal[i] for i in idx):
            continue
        right = sorted((i for i in idx if correct[i]), key=lambda i: (lengths[i], i))
        wrong = sorted((i for i in idx if not correct[i]), key=lambda i: (-lengths[i], i))
        chosen = set(right[: math.ceil(alpha * len(right))]) | set(wrong[: math.ceil(alpha * len(wrong))])
        for i in idx:
            priority[i] = i in chosen
            buffered[i] = i not in chosen
    return priority, buffered
