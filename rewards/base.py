"""The reward contract (docs/design.md, "The reward contract").

A reward takes the *global* sample table of one step and a :class:`Context` and returns one
float per sample::

    reward(samples: list[Sample], ctx: Context) -> list[float]

or, for a sample whose credit differs along its tokens, a list of ``sample.length`` floats in that
sample's place (per-token rewards, e.g. DECS): the trainer's advantages are then per token too.

Rewards are plain functions or small objects. An object may declare ``needs`` (facts that are
expensive to compute, e.g. ``{"entropy"}``), keep persistent state (``state_dict`` /
``load_state_dict``, saved in checkpoints) and update it *after* the step has been scored
(``update``), so that a batch is always scored with the history from before it.

This module imports nothing from ``rl``: the reward library is usable on its own (TRL users).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, runtime_checkable


@dataclass
class Sample:
    """One completion: a row of the global sample table. Lengths are in tokens."""

    prompt_id: str  # stable id of the prompt: the key of per-prompt history
    group: int  # index of the group in this step; the G completions of a prompt share it
    prompt: str = ""
    completion: str = ""
    answer: str | None = None  # gold (reference) answer, already extracted from the dataset
    length: int = 0  # completion tokens, EOS included
    truncated: bool = False  # finish_reason == "length": the completion hit the limit
    correct: bool | None = None  # verifier verdict; None when not computed yet
    think_length: int | None = None  # tokens before the phase delimiter (None: no delimiter)
    answer_length: int | None = None  # tokens after the delimiter (delimiter excluded)
    entropy_think: float | None = None  # mean policy entropy over think tokens (needs "entropy")
    entropy_answer: float | None = None  # mean policy entropy over answer tokens
    entropy_mean: float | None = None  # mean policy entropy over all completion tokens
    meta: dict[str, Any] = field(default_factory=dict)  # dataset metadata (difficulty, source…)
    completion_ids: list[int] | None = None  # completion token ids, when attached (repetition, TRL)
    token_ends: list[int] | None = None  # per token, where it ends in ``completion`` (needs "token_offsets")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Context:
    """What a reward may know about the step besides the samples."""

    step: int = 0
    max_length: int | None = None  # the step's completion length limit (tokens); a prompt may have a lower one: sample_limit
    group_size: int = 1
    total_steps: int | None = None
    state: dict[str, Any] = field(default_factory=dict)  # free per-run scratch, checkpointed
    chat: bool | None = None  # prompts rendered with a chat template (None: unknown); TRL functions then get messages
    num_prompts: int | None = None  # distinct training prompt ids (the trainer's count; None: unknown)


@runtime_checkable
class RewardFn(Protocol):
    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]: ...


class Reward:
    """Base class for rewards with a name, declared needs and optional persistent state."""

    name: str = "reward"
    needs: frozenset[str] = frozenset()
    reads_truncation: bool = False  # reads ``s.truncated``: an adapter must know it (rewards/trl.py)
    per_token: bool = False  # may return a list of per-token values for a sample (DECS)

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        raise NotImplementedError

    def update(self, samples: list[Sample], ctx: Context) -> None:
        """Called once per step after scoring; update history here (never inside __call__)."""

    # A reward that wants a monitor set (LASER-D) defines ``observe_monitor(samples, ctx)``: with
    # ``train.monitor_prompts > 0`` the trainer rolls out that many training prompts (G each) before
    # step 1 and every ``train.monitor_every`` steps and passes the gathered samples to it.
    # A reward that sets per-prompt generation limits (PALU) defines ``prompt_limits(prompts, ctx) ->
    # {prompt_id: max_new_tokens}``: before generating, the trainer passes the step's prompts (Samples
    # without a completion: id, group, prompt, answer, meta) and generates each prompt's completions
    # with at most min(ctx.max_length, its limit) tokens (``sample_limit``); ``limits_generation = False``
    # turns the hook off. ``metrics() -> {name: value}`` is logged with the step, after ``update``.
    # ``scales_total = True`` makes the reward a factor of the composed total instead of a term
    # (rewards/compose.py; dynamic reward weighting's meta-reward).

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"reward '{self.name}' has no state but was given {sorted(state)}")


class FunctionReward(Reward):
    """Wraps a plain ``fn(samples, ctx) -> list[float]`` (kwargs bound) as a :class:`Reward`."""

    def __init__(self, fn: Callable[..., Iterable[float]], name: str | None = None, **kwargs: Any):
        self.fn = fn
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "reward")
        self.needs = frozenset(getattr(fn, "needs", ()))

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        return list(self.fn(samples, ctx, **self.kwargs))


def sample_limit(s: Sample, ctx: Context) -> int | None:
    """The generation limit ``s`` was written under: its prompt's own, ``s.meta["max_new_tokens"]``
    (set by the trainer when per-prompt limits are in force: a data column or a reward's
    ``prompt_limits``), else the step's ``ctx.max_length``. ``s.truncated`` is relative to it.

    >>> sample_limit(Sample("p", 0, meta={"max_new_tokens": 300}), Context(max_length=4000))
    300
    >>> sample_limit(Sample("p", 0), Context(max_length=4000))
    4000
    """
    own = s.meta.get("max_new_tokens") if s.meta else None
    return int(own) if own is not None else ctx.max_length


def groups_of(samples: list[Sample]) -> dict[int, list[int]]:
    """Indices of the samples of each group, in order of first appearance."""
    out: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        out.setdefault(s.group, []).append(i)
    return out
