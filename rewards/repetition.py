r"""N-gram repetition: a shared detector and the repetition penalty reward.

Tokens of a completion (:func:`completion_tokens`): ``s.completion_ids`` (the policy's token ids)
when the trainer attached them, else the whitespace words of ``s.completion.lower()`` - the unit
of the sequence-level form in Yeo et al.'s code. ``unit="ids"`` insists on token ids (an error
when a sample has none), ``unit="words"`` always splits the text.

Detector (:func:`repeated_ngram_stats`): walk the n-grams left to right; an n-gram that already
occurred earlier is a *repeat*. From that:

* ``fraction = 1 - unique / total`` n-grams (0 when the text is shorter than ``n``);
* ``covered`` = number of token positions inside at least one repeated n-gram occurrence.

``repetition_penalty`` (Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in LLMs",
arXiv 2502.03373, section 4 / eddycmu/demystify-long-cot ``reward/repetition.py``):

* ``per_token=True`` (default, the paper's dense penalty): every token inside a repeated n-gram
  gets ``penalty``; the sequence reward is their sum ``r = penalty * covered`` (the dense
  reward's return with discount 1). Published: ``ngram_size=40``, ``penalty=-0.05``.
* ``per_token=False`` (the repository's sequence-level form): ``r = penalty * fraction``
  (in ``[penalty, 0]``; pass e.g. ``penalty=-1``).

Add it to a correctness reward (``cosine`` in the paper). LASER-DE (:mod:`rewards.laser_d`)
reuses :func:`has_repetition`: ``fraction > threshold``.

>>> from rewards.base import Sample, Context
>>> repeated_ngram_stats([1, 2, 3, 1, 2, 3, 1], 3)   # 5 trigrams, 3 unique; positions 3..6 repeat
(0.4, 4)
>>> loop = Sample("p", 0, completion="a b c a b c a")
>>> RepetitionPenalty(ngram_size=3)(samples=[loop], ctx=Context())   # -0.05 * 4 covered words
[-0.2]
>>> RepetitionPenalty(ngram_size=3, penalty=-1.0, per_token=False)([loop], Context())
[-0.4]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from ._util import check_choice, check_number
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["RepetitionPenalty", "completion_tokens", "has_repetition", "repeated_ngram_stats"]

UNITS = ("auto", "ids", "words")


def completion_tokens(s: Sample, unit: str = "auto") -> Sequence[Hashable]:
    """Token ids (``unit="ids"``, or ``"auto"`` when present) or lower-cased whitespace words."""
    ids = getattr(s, "completion_ids", None)
    if unit == "words" or (unit == "auto" and ids is None):
        return s.completion.lower().split()
    if ids is None:
        raise ValueError(
            f"repetition unit 'ids' needs token ids, but the sample of prompt {s.prompt_id!r} has "
            "completion_ids=None (use unit='auto' or 'words' to fall back to whitespace words)"
        )
    return list(ids)


def repeated_ngram_stats(tokens: Sequence[Hashable], n: int) -> tuple[float, int]:
    """``(fraction of repeated n-grams = 1 - unique/total, tokens covered by repeats)``."""
    total = len(tokens) - n + 1
    if n <= 0:
        raise ValueError(f"n-gram size must be a positive integer, got {n!r}")
    if total <= 0:
        return 0.0, 0
    seen: set[tuple[Hashable, ...]] = set()
    covered = 0
    covered_until = 0  # first position not yet counted as covered
    for start in range(total):
        gram = tuple(tokens[start : start + n])
        if gram in seen:
            covered += start + n - max(start, covered_until)
            covered_until = start + n
        else:
            seen.add(gram)
    return 1.0 - len(seen) / total, covered


def has_repetition(tokens: Sequence[Hashable], n: int = 20, threshold: float = 0.1) -> bool:
    """Whether the fraction of repeated n-grams exceeds ``threshold`` (0: any repeat at all).

    >>> has_repetition("x y z x y z x y z".split(), n=3, threshold=0.5), has_repetition(list("abcdef"), n=3)
    (True, False)
    """
    return repeated_ngram_stats(tokens, n)[0] > threshold


@register_reward("repetition_penalty")
class RepetitionPenalty(Reward):
    """``penalty * covered`` (``per_token``) or ``penalty * fraction`` of repeated n-grams."""

    name = "repetition_penalty"

    def __init__(self, ngram_size: int = 40, penalty: float = -0.05, per_token: bool = True, unit: str = "auto"):
        self.ngram_size = check_number(self.name, "ngram_size", ngram_size, low=1, integer=True)
        self.penalty = float(check_number(self.name, "penalty", penalty, high=0.0))
        self.per_token = bool(per_token)
        self.unit = check_choice(self.name, "unit", unit, UNITS)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        out = []
        for s in samples:
            fraction, covered = repeated_ngram_stats(completion_tokens(s, self.unit), self.ngram_size)
            out.append(self.penalty * (covered if self.per_token else fraction))
        return out
