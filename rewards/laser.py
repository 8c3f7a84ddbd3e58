r"""LASER: length-based step reward around a target length L_T.

Liu et al., "Learn to Reason Efficiently with Adaptive Length-based Reward Shaping",
arXiv 2505.15612 (hkust-nlp/Laser). Base score (the repository's math reward)::

    base_i = no_answer_score (-1)   if no answer can be extracted (or, with require_think, no delimiter)
           = correct_score   (+1)   if correct
           = wrong_score   (-0.5)   otherwise

The format check comes first, as in the released code: a completion without an extractable answer
scores -1 even if a looser verifier called it correct. The answer is read with
:func:`rewards.verify.extract_answer` after the last ``delimiter`` (``</think>``); with
``require_think=True`` a completion without the delimiter counts as "no answer".

Step term (alpha = 0.5; only *correct* completions, L in tokens)::

    mode="reward"   (LASER):  +alpha  if L <= L_T
    mode="penalty":           -alpha  if L >  L_T
    mode="hybrid":            +alpha  if L <= L_T  else  -alpha

    r_i = base_i + step_i

Published: ``target_length`` L_T in {2048, 4096, 8192} (default 4096), max length 16384, G=8.
The adaptive versions (LASER-D / LASER-DE) are in :mod:`rewards.laser_d`.

>>> from rewards.base import Sample, Context
>>> samples = [Sample("p", 0, correct=True, length=100, completion="A:3"),
...            Sample("p", 0, correct=True, length=5000, completion="A:3"),
...            Sample("p", 0, correct=False, length=100, completion="A:4"),
...            Sample("p", 0, correct=False, length=100, completion="no answer")]
>>> Laser()(samples, Context())
[1.5, 1.0, -0.5, -1.0]
>>> Laser(mode="hybrid")(samples, Context())
[1.5, 0.5, -0.5, -1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

from ._util import check_choice, check_number
from .base import Context, Reward, Sample
from .correctness import sample_correct
from .registry import register_reward
from .verify import DEFAULT_PATTERNS, extract_answer

__all__ = ["MODES", "Laser", "LaserScorer", "step_term"]

MODES = ("reward", "penalty", "hybrid")


def step_term(length: int, target: float, alpha: float, mode: str) -> float:
    """LASER's step term for a *correct* completion of ``length`` tokens."""
    if mode == "reward":
        return alpha if length <= target else 0.0
    if mode == "penalty":
        return -alpha if length > target else 0.0
    if mode == "hybrid":
        return alpha if length <= target else -alpha
    raise ValueError(f"LASER mode must be one of {MODES}, got {mode!r}")


class LaserScorer:
    """The base score: outcome ``"no_answer"`` / ``"correct"`` / ``"wrong"`` and its value."""

    def __init__(self, reward: str, correct_score: float, wrong_score: float, no_answer_score: float,
                 require_think: bool, delimiter: str | None, patterns: Sequence[str] | None,
                 fallback_last_number: bool):
        if require_think and not delimiter:
            raise ValueError(f"reward '{reward}': require_think=True needs a delimiter (e.g. '</think>')")
        self.scores = {
            "correct": float(check_number(reward, "correct_score", correct_score)),
            "wrong": float(check_number(reward, "wrong_score", wrong_score)),
            "no_answer": float(check_number(reward, "no_answer_score", no_answer_score)),
        }
        self.require_think = bool(require_think)
        self.delimiter = delimiter
        self.patterns = DEFAULT_PATTERNS if patterns is None else tuple(patterns)
        self.fallback_last_number = bool(fallback_last_number)

    def outcome(self, s: Sample) -> str:
        answer = extract_answer(s.completion, self.delimiter, self.patterns,
                                fallback_last_number=self.fallback_last_number,
                                require_delimiter=self.require_think)
        if answer is None:
            return "no_answer"
        return "correct" if sample_correct(s, delimiter=self.delimiter) else "wrong"

    def outcomes(self, samples: list[Sample]) -> list[str]:
        return [self.outcome(s) for s in samples]


@register_reward("laser")
class Laser(Reward):
    """LASER: base score (+1 / -0.5 / -1) plus the step term around ``target_length``."""

    name = "laser"

    def __init__(
        self,
        target_length: int = 4096,
        alpha: float = 0.5,
        mode: str = "reward",
        correct_score: float = 1.0,
        wrong_score: float = -0.5,
        no_answer_score: float = -1.0,
        require_think: bool = False,
        delimiter: str | None = "</think>",
        patterns: Sequence[str] | None = None,
        fallback_last_number: bool = False,
    ):
        self.target_length = check_number(self.name, "target_length", target_length, low=0, integer=True)
        self.alpha = float(check_number(self.name, "alpha", alpha))
        self.mode = check_choice(self.name, "mode", mode, MODES)
        self.scorer = LaserScorer(self.name, correct_score, wrong_score, no_answer_score, require_think,
                                  delimiter, patterns, fallback_last_number)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        out = []
        for s, kind in zip(samples, self.scorer.outcomes(samples)):
            r = self.scorer.scores[kind]
            if kind == "correct":
                r += step_term(s.length, self.target_length, self.alpha, self.mode)
            out.append(r)
        return out
