r"""AdaptThink: reward thinking only where it pays (Zhang et al., arXiv 2505.13417; released code
THU-KEG/AdaptThink ``src/adapt_think_reward_manager.py``)::

    r(x, y) = 1[y correct] - Rbar_ref(x) + delta * 1[y opens without thinking]

``Rbar_ref(x)`` is the *initial* model's accuracy on prompt x (K = 16 samples, computed once
before training: ``train.reference_samples`` in laconic, read from ``sample.meta["ref_accuracy"]``);
``delta = 0.05``. The reward carries its own baseline, so the paper uses it as the advantage
(``algo.advantage: identity``). A completion is "no thinking" when its text opens with
``nothink_prefix`` (``</think>`` for R1; the trainer forces it on half of each group with
``rollout.forced_prefixes``).

>>> from rewards.base import Sample, Context
>>> s = [Sample("p", 0, completion="</think>x", correct=True, meta={"ref_accuracy": 0.75}),
...      Sample("p", 0, completion="Alright", correct=False, meta={"ref_accuracy": 0.75})]
>>> [round(v, 4) for v in AdaptThink()(s, Context())]   # 1 - 0.75 + 0.05, 0 - 0.75
[0.3, -0.75]
"""

from __future__ import annotations

from ._util import check_number, correct_flags
from .base import Context, Reward, Sample
from .registry import register_reward

__all__ = ["AdaptThink", "is_nothink"]


def is_nothink(completion: str, prefix: str) -> bool:
    """Does the completion open (after whitespace) with the no-thinking prefix?"""
    return completion.lstrip().startswith(prefix)


@register_reward("adaptthink")
class AdaptThink(Reward):
    """``1[correct] - ref_accuracy + delta * 1[no thinking]`` per completion."""

    name = "adaptthink"

    def __init__(self, delta: float = 0.05, nothink_prefix: str = "</think>", delimiter: str | None = "</think>"):
        self.delta = float(check_number(self.name, "delta", delta, low=0.0))
        if not isinstance(nothink_prefix, str) or not nothink_prefix:
            raise ValueError(f"{self.name}: nothink_prefix must be a non-empty string, got {nothink_prefix!r}")
        self.nothink_prefix = nothink_prefix
        self.delimiter = delimiter

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        missing = [s.prompt_id for s in samples if "ref_accuracy" not in s.meta]
        if missing:
            raise ValueError(f"{self.name}: prompt {missing[0]!r} has no meta['ref_accuracy']: set "
                             "train.reference_samples (K > 0) so the trainer measures the initial model first")
        flags = correct_flags(samples, self.delimiter)
        return [float(ok) - float(s.meta["ref_accuracy"]) + self.delta * is_nothink(s.completion, self.nothink_prefix)
                for s, ok in zip(samples, flags)]
