"""Which sampled completions become training data: the pure selection rules of the length baselines.

A prompt's candidates are its K samples in sampled order, each a :class:`Candidate` (length in
tokens, verified correctness, truncation). A truncated completion is never correct, whatever the
verifier said (it hit the limit: its answer, if any, is not the model's last word). Every rule
returns indices into the candidate list; ties go to the first sampled.

- :func:`shortest_correct`: rejection-sampling SFT. Kimi k1.5 (arXiv 2501.12599, §2.4): shortest
  correct of 8 samples; self-training (arXiv 2502.20122, ``TergelMunkhbat/concise-reasoning``
  ``src/dataset.py`` ``_select_shortest_rationales``: min ``token_count``); TOPS (arXiv 2502.18080);
  O1-Pruner's SFT-shortest baseline (``StarDewXXX/O1-Pruner``, K = 16). A prompt with no correct,
  untruncated sample gives no row.
- :func:`kimi_pairs`: Kimi k1.5's long2short DPO pairs: chosen y_w = the shortest correct;
  rejected y_l = every longer response that is wrong, or correct with ``L >= ratio * L_w``
  (ratio 1.5); one pair per y_l.
- :func:`tops_pairs`: TOPS's Iter-DPO pairs: y_w = the shortest correct against the longest wrong,
  plus the shortest wrong shorter than y_w (against over-shortening).
- :func:`shortest_longest_pairs`: the shortest correct against the longest correct (a pure length
  preference between right answers).

Not reproduced: DTO (arXiv 2505.21765) builds y_w by having an LLM delete detrimental thinking
patterns from y_l; it needs an LLM editor, which laconic does not run. LD-DPO (arXiv 2409.06411)
is not a pair rule but a loss: TRL's ``DPOConfig(ld_alpha=...)`` on any of these pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

PAIR_RULES = ("kimi", "tops", "shortest_longest")
KIMI_RATIO = 1.5  # Kimi k1.5: a correct response is rejected when at least 1.5x longer than y_w


@dataclass(frozen=True)
class Candidate:
    length: int  # completion tokens
    correct: bool
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Correct and not truncated: the only samples that count as right answers."""
        return bool(self.correct) and not self.truncated


def _first_min(indices: Sequence[int], key: Callable[[int], int]) -> int | None:
    """The first index (in the given order) with the smallest key; None when empty."""
    best = None
    for i in indices:
        if best is None or key(i) < key(best):
            best = i
    return best


def _first_max(indices: Sequence[int], key: Callable[[int], int]) -> int | None:
    best = None
    for i in indices:
        if best is None or key(i) > key(best):
            best = i
    return best


def shortest_correct(cands: Sequence[Candidate]) -> int | None:
    """Index of the shortest correct, untruncated candidate (ties: the first sampled), or None.

    >>> shortest_correct([Candidate(9, True), Candidate(5, True), Candidate(5, True), Candidate(3, False)])
    1
    >>> shortest_correct([Candidate(4, True, truncated=True), Candidate(7, False)]) is None
    True
    """
    return _first_min([i for i, c in enumerate(cands) if c.ok], lambda i: cands[i].length)


def kimi_pairs(cands: Sequence[Candidate], ratio: float = KIMI_RATIO) -> list[tuple[int, int]]:
    """Kimi k1.5's long2short pairs ``(chosen, rejected)``: y_w the shortest correct; y_l each
    longer (``L > L_w``) response that is wrong (truncated ones included), or correct with
    ``L >= ratio * L_w``; in sampled order. No correct sample: no pairs.

    >>> c = [Candidate(10, True), Candidate(14, True), Candidate(15, True), Candidate(12, False), Candidate(8, False)]
    >>> kimi_pairs(c)  # 14 < 1.5 * 10 <= 15; the wrong 12 is longer, the wrong 8 is not
    [(0, 2), (0, 3)]
    """
    w = shortest_correct(cands)
    if w is None:
        return []
    lw = cands[w].length
    return [(w, j) for j, c in enumerate(cands)
            if j != w and c.length > lw and (not c.ok or c.length >= ratio * lw)]


def tops_pairs(cands: Sequence[Candidate]) -> list[tuple[int, int]]:
    """TOPS's pairs: (shortest correct, longest wrong), then (shortest correct, shortest wrong with
    ``L < L_w``) when there is one and it is not the same sample. Wrong includes truncated. Ties:
    the first sampled. No correct or no wrong sample: no pairs.

    >>> tops_pairs([Candidate(10, True), Candidate(30, False), Candidate(30, False), Candidate(4, False), Candidate(3, False)])
    [(0, 1), (0, 4)]
    """
    w = shortest_correct(cands)
    wrong = [i for i, c in enumerate(cands) if not c.ok]
    if w is None or not wrong:
        return []
    pairs = [(w, _first_max(wrong, lambda i: cands[i].length))]
    short = _first_min([i for i in wrong if cands[i].length < cands[w].length], lambda i: cands[i].length)
    if short is not None and short != pairs[0][1]:
        pairs.append((w, short))
    return pairs


def shortest_longest_pairs(cands: Sequence[Candidate]) -> list[tuple[int, int]]:
    """(shortest correct, longest correct) when the longest is strictly longer; ties: the first
    sampled of each.

    >>> shortest_longest_pairs([Candidate(7, True), Candidate(12, True), Candidate(12, True), Candidate(20, False)])
    [(0, 1)]
    >>> shortest_longest_pairs([Candidate(7, True), Candidate(7, True)])
    []
    """
    ok = [i for i, c in enumerate(cands) if c.ok]
    w = _first_min(ok, lambda i: cands[i].length)
    lo = _first_max(ok, lambda i: cands[i].length)
    if w is None or cands[lo].length <= cands[w].length:
        return []
    return [(w, lo)]


def select_pairs(rule: str, cands: Sequence[Candidate], max_pairs: int | None = None,
                 ratio: float = KIMI_RATIO) -> list[tuple[int, int]]:
    """The pairs of ``rule`` (one of :data:`PAIR_RULES`), at most ``max_pairs`` of them (the first
    ones, in the rule's order: for Kimi the sampled order of y_l, an unbiased subset of i.i.d. samples).

    >>> c = [Candidate(10, True), Candidate(20, False), Candidate(30, False), Candidate(40, False)]
    >>> select_pairs("kimi", c, max_pairs=2)
    [(0, 1), (0, 2)]
    """
    if rule == "kimi":
        pairs = kimi_pairs(cands, ratio)
    elif rule == "tops":
        pairs = tops_pairs(cands)
    elif rule == "shortest_longest":
        pairs = shortest_longest_pairs(cands)
    else:
        raise ValueError(f"unknown pair rule {rule!r} (known: {', '.join(PAIR_RULES)})")
    if max_pairs is not None:
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
        pairs = pairs[:max_pairs]
    return pairs
