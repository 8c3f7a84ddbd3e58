"""Per-sample facts (docs/design.md, steps 3-4): correctness, token length, truncation, think/answer split.

Facts are computed where the rollouts live, then all-gathered so that every process holds the same
global sample table and scores it identically.
"""

from __future__ import annotations

from typing import Sequence

from rewards.base import Sample
from rewards.verify import verify_batch

from rl.data import Prompt
from rl.engines.base import Rollout


def find_subsequence(seq: Sequence[int], sub: Sequence[int]) -> int | None:
    """Start index of the last occurrence of ``sub`` in ``seq``."""
    n = len(sub)
    if n == 0:
        return None
    for k in range(len(seq) - n, -1, -1):
        if list(seq[k : k + n]) == list(sub):
            return k
    return None


def delimiter_span(ids: list[int], text: str, delimiter: str | None, tokenizer) -> tuple[int, int] | None:
    """(start, end) token positions of the last phase delimiter in a completion, or None.

    Token search first (``</think>`` is one special token in R1-style tokenizers); when the
    delimiter is split differently in context, binary-search the shortest decoded prefix that
    contains it.
    """
    if not delimiter or delimiter not in text:
        return None
    sub = tokenizer.encode(delimiter, add_special_tokens=False)
    k = find_subsequence(ids, sub)
    if k is not None:
        return k, k + len(sub)
    occurrences = text.count(delimiter)
    lo, hi = 1, len(ids)
    while lo < hi:  # smallest prefix whose decoded text holds every occurrence
        mid = (lo + hi) // 2
        if tokenizer.decode(ids[:mid], skip_special_tokens=False).count(delimiter) >= occurrences:
            hi = mid
        else:
            lo = mid + 1
    start = lo - 1
    while start > 0 and tokenizer.decode(ids[start:lo], skip_special_tokens=False).find(delimiter) < 0:
        start -= 1
    return start, lo


def make_samples(
    rollouts: list[Rollout],
    prompts: list[Prompt],
    group_offset: int,
    tokenizer,
    delimiter: str | None = "</think>",
    verify_timeout: float = 5.0,
) -> list[Sample]:
    """Samples for this process's rollouts. ``prompts[r.prompt_index]`` is the rollout's prompt;
    its group id is ``group_offset + prompt_index`` (global across processes). Correctness is
    verified for the whole batch at once (Math-Verify in worker processes, in order)."""
    answers = [prompts[r.prompt_index].answer for r in rollouts]
    correct = verify_batch([r.text for r in rollouts], answers, delimiter=delimiter, timeout=verify_timeout)
    samples = []
    for r, ok in zip(rollouts, correct):
        p = prompts[r.prompt_index]
        span = delimiter_span(r.completion_ids, r.text, delimiter, tokenizer)
        samples.append(
            Sample(
                prompt_id=p.id,
                group=group_offset + r.prompt_index,
                prompt=p.text,
                completion=r.text,
                answer=p.answer,
                length=r.length,
                truncated=r.finish_reason == "length",
                correct=ok,
                think_length=None if span is None else span[0],
                answer_length=None if span is None else r.length - span[1],
                meta=dict(p.meta),
            )
        )
    return samples
