r"""TRAAC's attention-guided compression, the arithmetic (arXiv 2510.01581, "Think Right with Adaptive,
Attentive Compression"; released code ``joykirat18/TRAAC`` @0bfea0a, ``verl/workers/rollout/vllm_rollout/
vllm_rollout_spmd.py``: ``get_difficulty_class``, ``summarize_attention_weights``, ``get_reduction_score``).

For a correct trace cut into steps s with token sets T_s, and a_t the attention from the end of the
thinking (the closing tag after a "time is up" summary request) to token t, averaged over heads and the
first half of the layers:

    I_s = mean_{t in T_s} a_t                               (a step's importance)
    U   = H(I / sum I) / log(#steps)      (U = 1 for <= 1 step; H the entropy, natural log)
    e   = 0  if U > 0.8  else  min(rho_d (1 - U), 0.8)      (rho = 0.6 / 0.4 / 0.2: easy / medium / hard)

and the ``floor(#steps e)`` steps with the lowest I are evicted. Difficulty comes from the group's pass
rate p: easy p >= 0.8, medium 0.3 <= p < 0.8, hard p < 0.3.

Steps start at keywords ("Wait", "Alternatively", "Hmm", ...). The release matches them on the joined
BPE token strings, where a space is "Ġ": multi-word keywords ("Let me", "But wait") never match and a
single word matches inside another ("So" in "Solve"). ``split: words`` (laconic's default) matches on the
decoded text at word boundaries instead; ``split: release`` reproduces the release's matching.

>>> difficulty(0.8), difficulty(0.5), difficulty(0.2)
('easy', 'medium', 'hard')
>>> round(uniformity([1.0, 1.0, 1.0, 1.0]), 6), round(uniformity([1.0, 0.0]), 6)
(1.0, 0.0)
>>> eviction_share(0.5, "easy"), eviction_share(0.9, "easy"), eviction_share(0.0, "easy")
(0.3, 0.0, 0.6)
>>> evicted([0.4, 0.1, 0.3, 0.2, 0.5], "easy")  # U = 0.912 > 0.8: nothing
[]
>>> evicted([0.9, 0.01, 0.05, 0.02, 0.02], "easy")  # U = 0.278: e = 0.6 x 0.722 = 0.433, floor(5 x 0.433) = 2
[1, 3]
"""

from __future__ import annotations

import math
import re

from rewards.traac import level as difficulty  # easy p >= 0.8, medium 0.3 <= p < 0.8, hard p < 0.3; the reward's own rule

RHO = {"easy": 0.6, "medium": 0.4, "hard": 0.2}
MAX_EVICT = 0.8
UNIFORM = 0.8
# the first 16 of the release's 32 split_tokens as our sources list them; the others are not in our sources
# (``rollout.compress.keywords`` replaces the list)
KEYWORDS = ("Wait", "Alternatively", "Hmm", "Maybe", "Okay", "Let me", "First", "Then", "Now", "So", "Therefore",
            "Thus", "But wait", "Hold on", "Let's see", "I think")


def uniformity(importance: list[float]) -> float:
    """``U = H(I / sum I) / log(#steps)``; 1 for one step or none, or when every I is 0."""
    n = len(importance)
    total = sum(importance)
    if n <= 1 or total <= 0:
        return 1.0
    h = -sum(x / total * math.log(x / total) for x in importance if x > 0)
    return abs(h / math.log(n))  # h >= 0 (abs: no -0.0)


def eviction_share(u: float, level: str, rho: dict[str, float] = RHO, max_evict: float = MAX_EVICT,
                   uniform: float = UNIFORM) -> float:
    """``e = 0`` above the uniformity threshold, else ``min(rho_d (1 - U), max_evict)``."""
    return 0.0 if u > uniform else min(rho[level] * (1.0 - u), max_evict)


def evicted(importance: list[float], level: str, **kw) -> list[int]:
    """Indices (ascending) of the ``floor(#steps e)`` least important steps; ties keep the earlier step."""
    k = math.floor(len(importance) * eviction_share(uniformity(importance), level, **kw) + 1e-9)
    order = sorted(range(len(importance)), key=lambda i: (importance[i], i))
    return sorted(order[:k])


def step_starts_words(ends: list[int], text: str, keywords=KEYWORDS) -> list[int]:
    """Token indices where a step starts: 0, and every token holding the first character of a keyword
    that stands as a word (case-sensitive) in ``text``; ``ends[t]`` is where token t ends in ``text``.

    >>> text = "So 2+2=4. Solve again. Let me see: 4."
    >>> ends = [2, 9, 15, 22, 26, 29, 34, 37]          # tokens "So", " 2+2=4.", " Solve", " again.", " Let", " me", " see:", " 4."
    >>> step_starts_words(ends, text)
    [0, 4]
    """
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True)) + r")(?!\w)")
    return _starts_at([m.start() for m in pattern.finditer(text)], ends)


def step_starts_release(pieces: list[str], keywords=KEYWORDS) -> list[int]:
    """The release's cut: the token strings joined (a space is "Ġ"), every case-sensitive occurrence of a
    keyword with no space in it, at any position: a multi-word keyword never matches, "So" matches in "Solve".

    >>> step_starts_release(["So", "Ġ2", "+2", "=4.", "ĠSolve", "Ġagain.", "ĠLet", "Ġme"])
    [0, 4]
    """
    joined = "".join(pieces)
    ends, total = [], 0
    for p in pieces:
        total += len(p)
        ends.append(total)
    hits = [m.start() for k in keywords for m in re.finditer(re.escape(k), joined)]
    return _starts_at(hits, ends)


def _starts_at(chars: list[int], ends: list[int]) -> list[int]:
    starts = {0}
    t = 0
    for c in sorted(chars):
        while t < len(ends) and ends[t] <= c:
            t += 1
        if t < len(ends):
            starts.add(t)
    return sorted(starts)


def step_importance(attention: list[float], starts: list[int]) -> list[float]:
    """``I_s`` = the mean attention over each step's tokens (steps from ``starts`` to the next start).

    >>> step_importance([0.1, 0.3, 0.2, 0.0, 0.4], [0, 2, 4])
    [0.2, 0.1, 0.4]
    """
    bounds = list(starts) + [len(attention)]
    return [sum(attention[a:b]) / max(b - a, 1) for a, b in zip(bounds, bounds[1:])]


SUMMARY = ("Time is up. I should stop thinking and now write a summary containing all key steps required to "
           "solve the problem.")
# rollout.compress (rl/train/compress.py); keywords null: KEYWORDS
DEFAULTS: dict = {"open_tag": "<think>", "close_tag": "</think>", "summary": SUMMARY, "split": "words",
                  "keywords": None, "attention_model": "initial", "rho": dict(RHO), "max_evict": MAX_EVICT,
                  "uniformity": UNIFORM}


def check_options(options: dict) -> str | None:
    """What is wrong with ``rollout.compress`` (one line), or None.

    >>> check_options({"split": "bpe"})
    "rollout.compress.split: 'bpe' is not one of ['words', 'release']"
    """
    o = {**DEFAULTS, **options}
    if o["split"] not in ("words", "release"):
        return f"rollout.compress.split: '{o['split']}' is not one of ['words', 'release']"
    if o["attention_model"] not in ("initial", "policy"):
        return f"rollout.compress.attention_model: '{o['attention_model']}' is not one of ['initial', 'policy']"
    if not isinstance(o["close_tag"], str) or not o["close_tag"]:
        return f"rollout.compress.close_tag must be a non-empty string, got {o['close_tag']!r}"
    if o["open_tag"] is not None and (not isinstance(o["open_tag"], str) or not o["open_tag"]):
        return f"rollout.compress.open_tag must be a non-empty string or null, got {o['open_tag']!r}"
    if not isinstance(o["summary"], str):
        return f"rollout.compress.summary must be a string, got {o['summary']!r}"
    kw = o["keywords"]
    if kw is not None and (not isinstance(kw, list) or not kw or not all(isinstance(k, str) and k for k in kw)):
        return f"rollout.compress.keywords must be a non-empty list of strings or null, got {kw!r}"
    rho = o["rho"]
    if not isinstance(rho, dict) or set(rho) != set(RHO) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in rho.values()):
        return f"rollout.compress.rho must map easy, medium, hard to numbers in [0, 1], got {rho!r}"
    for key in ("max_evict", "uniformity"):
        v = o[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            return f"rollout.compress.{key} must be in [0, 1], got {v!r}"
    return None
