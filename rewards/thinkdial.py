r"""ThinkDial: discrete reasoning modes (high / medium / low) set by the system prompt, then budget-aware RL.

"ThinkDial: An Open Recipe for Controlling Reasoning Effort in Large Language Models", arXiv 2508.18773
(no released code; read from the paper text). Each prompt is trained in a mode m that its system
prompt states (``data.modes`` draws one per prompt and step, rl/data.py; the trainer hands it to
the rewards as ``sample.meta["mode"]``). Phase 2's reward is::

    R = R_task + alpha(m) * R_len + R_leak          alpha = 0 / 0.5 / 1.0 for high / medium / low

``thinkdial_length`` is alpha(m) * R_len, R_len the Kimi-1.5 term (rewards/kimi.py) over the group,
L = think + answer tokens (the completion length)::

    lambda_i = 0.5 - (L_i - L_min) / (L_max - L_min)      (0 when all lengths in the group are equal)
    R_len_i  = lambda_i if correct else min(0, lambda_i)

A group is one prompt in one mode (the mode is drawn per prompt, so its G completions share it).

``leak`` is R_leak: +0.5 when the answer section (after the last ``</think>``) contains none of
the "transition keywords", else -0.5. The paper names "Wait", "Let me think", "Actually",
"Alternatively", "However" "and similar"; the default list is exactly those five (a field,
``keywords``). Two choices the paper leaves open (ours, fields): matching is on word boundaries
(a keyword is not matched inside a longer word: "Waiting" is no "Wait"), case-sensitive by default
(the paper's capitalised forms, which open a sentence that turns back; ``case_sensitive: false``
also counts "however" mid-sentence); a completion with no delimiter has no answer section and
scores -0.5 (``missing_delimiter_reward``; the paper leaves this case open, -0.5 is the value
proposed for this reproduction: no answer section cannot count as a clean one).

>>> from rewards.base import Sample, Context
>>> g = [Sample("p", 0, correct=True, length=100, meta={"mode": "low"}),
...      Sample("p", 0, correct=True, length=200, meta={"mode": "low"}),
...      Sample("p", 0, correct=False, length=300, meta={"mode": "low"})]
>>> ThinkDialLength()(g, Context())               # lambda = 0.5, 0, -0.5; alpha(low) = 1
[0.5, 0.0, -0.5]
>>> medium = [Sample("q", 1, correct=True, length=n, meta={"mode": "medium"}) for n in (10, 30)]
>>> ThinkDialLength()(medium, Context()), ThinkDialLength(mode="high")([Sample("r", 2, correct=True, length=9)], Context())
([0.25, -0.25], [0.0])
>>> Leak()([Sample("p", 0, completion="Sum it.</think>The answer is 4."),
...         Sample("p", 0, completion="Sum it.</think>Wait, it is 5."),
...         Sample("p", 0, completion="Sum it, the answer is 4.")], Context())
[0.5, -0.5, -0.5]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .kimi import kimi_lambdas
from .registry import register_reward

__all__ = ["ALPHA", "MODES", "MODE_PROMPTS", "TRANSITION_KEYWORDS", "Leak", "ThinkDialLength", "answer_section",
           "has_transition", "mode_of"]

MODES = ("high", "medium", "low")
ALPHA = {"high": 0.0, "medium": 0.5, "low": 1.0}  # the paper's alpha(m): weight of R_len per mode
TRANSITION_KEYWORDS = ("Wait", "Let me think", "Actually", "Alternatively", "However")  # the paper's named ones

# The system prompt of each mode. The paper's full texts (its appendix A, Table 2) are not in our
# sources: each opens with the paper's words (quoted up to the first full stop or comma that the
# sources give); the rest of each sentence is our wording.
MODE_PROMPTS = {
    "high": "You have unlimited time to think and respond to the user's question. Think as long and as carefully "
            "as the problem needs: explore it, check your work, and then give your final answer.",
    "medium": "You have sufficient time to think and respond to the user's query, so balance depth of reasoning "
              "with efficiency: think carefully, stop once you are confident, and then give your final answer.",
    "low": "You have extremely limited time to think and respond to the users query. Think only briefly, do not "
           "double-check, and give the most direct final answer possible.",
}


def mode_of(s: Sample, key: str = "mode", default: str | None = None, reward: str = "thinkdial_length") -> str:
    """``s.meta[key]`` (one of :data:`MODES`), else ``default``; an error naming the key if neither."""
    value = s.meta.get(key, default)
    if value is None:
        raise ValueError(f"reward '{reward}' needs the ThinkDial mode in sample.meta[{key!r}] (data.modes draws one "
                         f"per prompt; or a fixed mode=...), but the sample of prompt {s.prompt_id!r} has meta keys "
                         f"{sorted(s.meta)}")
    if value not in MODES:
        raise ValueError(f"reward '{reward}': mode {value!r} (sample.meta[{key!r}]) is not one of {list(MODES)}")
    return value


def answer_section(text: str, delimiter: str) -> str | None:
    """The text after the last ``delimiter`` (as the verifier reads answers), or None without one.

    >>> answer_section("a</think>b</think>c", "</think>"), answer_section("abc", "</think>")
    ('c', None)
    """
    cut = text.rfind(delimiter)
    return None if cut < 0 else text[cut + len(delimiter):]


def keyword_pattern(keywords: Sequence[str], case_sensitive: bool = True) -> re.Pattern[str]:
    """One regex for the keywords on word boundaries; a space in a keyword matches any whitespace run."""
    alternatives = sorted((r"\s+".join(map(re.escape, k.split())) for k in keywords), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", 0 if case_sensitive else re.IGNORECASE)


def has_transition(text: str, keywords: Sequence[str] = TRANSITION_KEYWORDS, case_sensitive: bool = True) -> bool:
    r"""Whether ``text`` holds one of ``keywords`` as whole words.

    >>> has_transition("Wait, no."), has_transition("Waiting is over."), has_transition("so, however, 4")
    (True, False, False)
    >>> has_transition("so, however, 4", case_sensitive=False), has_transition("Let me\nthink again")
    (True, True)
    """
    return keyword_pattern(keywords, case_sensitive).search(text) is not None


def _check_weights(reward: str, weights: Any) -> dict[str, float]:
    if not isinstance(weights, Mapping):
        raise ValueError(f"reward '{reward}': weights must be a mapping mode -> weight, got {weights!r}")
    unknown = [m for m in weights if m not in MODES]
    if unknown:
        raise ValueError(f"reward '{reward}': weights has unknown mode(s) {unknown}; modes are {list(MODES)}")
    missing = [m for m in MODES if m not in weights]
    if missing:
        raise ValueError(f"reward '{reward}': weights needs a weight for every mode, missing {missing}")
    return {m: float(check_number(reward, f"weights[{m!r}]", w)) for m, w in weights.items()}


@register_reward("thinkdial_length")
class ThinkDialLength(Reward):
    """``alpha(mode) * R_len``: the Kimi-1.5 length term weighted by the sample's ThinkDial mode."""

    name = "thinkdial_length"

    def __init__(self, weights: Mapping[str, float] | None = None, mode_key: str = "mode", mode: str | None = None,
                 delimiter: str | None = "</think>"):
        self.weights = _check_weights(self.name, dict(ALPHA) if weights is None else weights)
        if not isinstance(mode_key, str) or not mode_key:
            raise ValueError(f"reward '{self.name}': mode_key must be a non-empty string, got {mode_key!r}")
        if mode is not None and mode not in MODES:
            raise ValueError(f"reward '{self.name}': mode must be one of {list(MODES)} or null, got {mode!r}")
        self.mode_key, self.mode, self.delimiter = mode_key, mode, delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        alphas = [self.weights[mode_of(s, self.mode_key, self.mode, self.name)] for s in samples]
        flags = correct_flags(samples, self.delimiter)
        out = [0.0] * len(samples)
        for idx in groups_of(samples).values():
            for i, lam in zip(idx, kimi_lambdas([samples[i].length for i in idx])):
                out[i] = alphas[i] * (lam if flags[i] else min(0.0, lam)) + 0.0  # + 0.0: no -0.0
        return out


@register_reward("leak")
class Leak(Reward):
    """``clean_reward`` (+0.5) if the answer section holds no transition keyword, else ``leak_reward``
    (-0.5); ``missing_delimiter_reward`` (-0.5) when the completion has no delimiter."""

    name = "leak"

    def __init__(self, keywords: Sequence[str] = TRANSITION_KEYWORDS, case_sensitive: bool = True,
                 delimiter: str = "</think>", clean_reward: float = 0.5, leak_reward: float = -0.5,
                 missing_delimiter_reward: float = -0.5):
        if isinstance(keywords, str) or not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ValueError(f"reward '{self.name}': keywords must be a non-empty list of non-empty strings, "
                             f"got {keywords!r}")
        if not isinstance(delimiter, str) or not delimiter:
            raise ValueError(f"reward '{self.name}': delimiter must be a non-empty string (the answer section "
                             f"follows it), got {delimiter!r}")
        if not isinstance(case_sensitive, bool):
            raise ValueError(f"reward '{self.name}': case_sensitive must be true or false, got {case_sensitive!r}")
        self.keywords, self.case_sensitive, self.delimiter = tuple(keywords), case_sensitive, delimiter
        self.pattern = keyword_pattern(self.keywords, case_sensitive)
        self.clean_reward = float(check_number(self.name, "clean_reward", clean_reward))
        self.leak_reward = float(check_number(self.name, "leak_reward", leak_reward))
        self.missing_delimiter_reward = float(check_number(self.name, "missing_delimiter_reward",
                                                           missing_delimiter_reward))

    def score(self, text: str) -> float:
        section = answer_section(text, self.delimiter)
        if section is None:
            return self.missing_delimiter_reward
        return self.leak_reward if self.pattern.search(section) else self.clean_reward

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return [self.score(s.completion) for s in samples]
