r"""TRL interop: laconic rewards as TRL reward functions, and TRL reward functions as laconic rewards.

TRL's ``GRPOTrainer`` calls each reward function as
``fn(prompts, completions, completion_ids=..., **columns)`` where every other dataset column
arrives as a keyword list (one value per completion; newer versions add ``trainer_state``).
This module never imports ``trl``.

:func:`as_trl_reward` - a laconic reward (instance, plain ``(samples, ctx)`` function, a recipe
spec, or a list of specs) as such a function. It builds one :class:`~rewards.base.Sample` per
completion:

* ``length`` = ``len(completion_ids[i])`` when TRL passes ids, else the tokenizer's token count
  (never characters: without ids and without a tokenizer it is an error);
* ``group``: completions with identical prompts form a group, numbered in order of first
  appearance (``group_size=G`` instead cuts the list into consecutive chunks of G, TRL's order);
* ``prompt_id``: the ``prompt_id`` column when present, else a stable hash of the prompt;
* ``answer`` = ``kwargs[answer_key][i]``; the other list columns go to ``s.meta`` (e.g. ``budget``
  for L1); ``completion_ids`` are kept;
* ``truncated``: a ``truncated`` column when present, else TRL's own rule (its ``clipped_ratio``
  and ``mask_truncated_completions``): the ids TRL passes end with the EOS token when generation
  stopped, so a completion whose last id is not an EOS or pad id was cut (with ``max_length``, only
  when it is that long). The stop ids come from ``eos_token_ids`` or the tokenizer. A reward that
  reads truncation (``reads_truncation``: ``dler``, ``truncation_penalty``, ``cosine``, ``da_dler``)
  is refused at construction without them: scored as finished, a cut completion with no final
  answer would still earn the correctness reward through the last-number fallback.

Conversational prompts/completions (lists of ``{"role", "content"}`` messages) are reduced to the
text of their contents (and ``ctx.chat`` is set). The returned function scores, then calls the
reward's ``update`` (so history-based rewards such as HAPO keep learning), and carries the reward
as ``fn.reward``. Caveat: TRL computes rewards on each process's slice; a group-level reward sees
only the completions of the group that lie on this process.

:func:`from_trl` - the other way: a TRL-signature function as a laconic
:class:`~rewards.base.Reward`, called with what TRL's ``GRPOTrainer`` passes (trl 1.x,
``_calculate_rewards``): ``prompts``, ``completions``, ``completion_ids`` (when every sample has
them), every dataset column as a keyword list (``answer``, the same gold again as ``solution`` -
the column TRL's ``accuracy_reward`` reads - and every ``meta`` key, a real ``solution`` column
winning), ``trainer_state`` (a ``transformers.TrainerState`` with ``global_step`` = ``ctx.step``,
``max_steps`` = ``ctx.total_steps``) and no-op ``log_extra`` / ``log_metric`` callbacks, plus the
fixed keyword arguments. When the prompts used a chat template (``ctx.chat``, or
``conversational=True``), completions are ``[{"role": "assistant", "content": text}]`` and prompts
``[{"role": "user", "content": text}]`` (the rendered prompt text: laconic keeps no message list).
A function whose ``completion_ids`` parameter has no default declares ``needs = {"completion_ids"}``.
A ``None`` value (TRL's "not applicable") becomes 0.0. In a recipe::

    rewards:
      - {name: trl, function: "my_pkg.rewards:format_reward", some_kwarg: 3}
      - {name: trl, function: "trl.rewards:think_format_reward", conversational: true}

>>> from rewards.base import Sample, Context
>>> fn = as_trl_reward({"name": "kimi_length"})
>>> fn.__name__
'kimi_length'
>>> [round(r, 6) for r in fn(["Q:1+1=", "Q:1+1="], ["A:2", "A:3"], completion_ids=[[1, 2], [1, 2, 3, 4]],
...                         answer=["2", "2"])]   # lambda = 0.5, -0.5 -> 1 + 0.2, 0 + min(0, -0.2)
[1.2, -0.2]
>>> def brevity(prompts, completions, completion_ids=None, **kwargs):
...     return [-len(ids) / 10 for ids in completion_ids]
>>> from_trl(brevity)([Sample("p", 0, completion_ids=[5, 6, 7])], Context())
[-0.3]
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from .base import Context, FunctionReward, Reward, Sample
from .compose import ComposedReward, _validate, build_rewards
from .registry import RewardConfigError, _import_object, _is_reward_function, build_reward, register_reward

__all__ = ["TRLFunction", "as_trl_reward", "from_trl", "samples_from_trl", "stop_ids_of", "trainer_state"]

#: dataset columns that are not copied into ``meta``
_RESERVED = ("trainer_state", "truncated")


def _text(x: Any) -> str:
    """A completion/prompt as text: strings as is, chat messages -> their contents joined."""
    if isinstance(x, str):
        return x
    if isinstance(x, Mapping):
        return str(x.get("content", ""))
    if isinstance(x, Sequence):
        return "".join(_text(m) for m in x)
    return str(x)


def _prompt_key(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)


def _count_tokens(tokenizer: Any, text: str) -> int:
    if hasattr(tokenizer, "encode"):
        try:
            return len(tokenizer.encode(text, add_special_tokens=False))
        except TypeError:
            return len(tokenizer.encode(text))
    if callable(tokenizer):
        out = tokenizer(text)
        ids = out["input_ids"] if isinstance(out, Mapping) else out
        return len(ids)
    raise TypeError(f"tokenizer must have .encode or be callable, got {type(tokenizer).__name__}")


def samples_from_trl(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None = None,
    *,
    tokenizer: Any = None,
    answer_key: str = "answer",
    group_size: int | None = None,
    prompt_id_key: str = "prompt_id",
    stop_ids: frozenset[int] = frozenset(),
    max_length: int | None = None,
    **columns: Any,
) -> list[Sample]:
    """The laconic sample table of one TRL reward call (see the module docstring)."""
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    if completion_ids is not None and len(completion_ids) != n:
        raise ValueError(f"TRL passed {len(completion_ids)} completion_ids for {n} completions")
    if completion_ids is None and tokenizer is None:
        raise ValueError(
            "lengths are counted in tokens: pass completion_ids (TRL does) or a tokenizer to as_trl_reward"
        )
    if group_size is not None and (not isinstance(group_size, int) or group_size <= 0 or n % group_size):
        raise ValueError(f"group_size must be a positive integer dividing the {n} completions, got {group_size!r}")
    lists = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
    for k, v in columns.items():
        if k not in lists and isinstance(v, (list, tuple)) and k not in _RESERVED:
            raise ValueError(f"column {k!r} has {len(v)} values for {n} completions")
    answers = lists.get(answer_key)
    truncated = lists.get("truncated")
    ids_col = lists.get(prompt_id_key)
    group_of: dict[str, int] = {}
    samples = []
    for i in range(n):
        key = _prompt_key(prompts[i])
        if group_size is not None:
            group = i // group_size
        else:
            group = group_of.setdefault(key, len(group_of))
        pid = str(ids_col[i]) if ids_col is not None else hashlib.sha1(key.encode()).hexdigest()[:16]
        ids = None if completion_ids is None else [int(t) for t in completion_ids[i]]
        text = _text(completions[i])
        meta = {k: v[i] for k, v in lists.items() if k not in (answer_key, prompt_id_key) and k not in _RESERVED}
        samples.append(Sample(
            prompt_id=pid,
            group=group,
            prompt=_text(prompts[i]),
            completion=text,
            answer=None if answers is None or answers[i] is None else str(answers[i]),
            length=len(ids) if ids is not None else _count_tokens(tokenizer, text),
            truncated=bool(truncated[i]) if truncated is not None else _cut(ids, stop_ids, max_length),
            meta=meta,
            completion_ids=ids,
        ))
    return samples


def _cut(ids: list[int] | None, stop_ids: frozenset[int], max_length: int | None) -> bool:
    """TRL's truncation rule: the ids do not end with a stop id (and reach ``max_length`` when given)."""
    if ids is None or not stop_ids:
        return False
    return (not ids or ids[-1] not in stop_ids) and (max_length is None or len(ids) >= max_length)


def stop_ids_of(tokenizer: Any, eos_token_ids: Any = None) -> frozenset[int]:
    """The ids that end a finished completion: ``eos_token_ids``, else the tokenizer's EOS and pad
    ids (TRL's ``eos_and_pad``)."""
    if eos_token_ids is not None:
        ids = [eos_token_ids] if isinstance(eos_token_ids, int) else list(eos_token_ids)
    else:
        ids = []
        for attr in ("eos_token_id", "pad_token_id"):
            v = getattr(tokenizer, attr, None)
            ids += v if isinstance(v, (list, tuple)) else [v]
    return frozenset(int(i) for i in ids if i is not None)


def _resolve(reward_or_spec: Any, name: str | None) -> tuple[Reward, str]:
    if isinstance(reward_or_spec, Reward):
        return reward_or_spec, name or reward_or_spec.name
    if isinstance(reward_or_spec, (str, Mapping)):
        display, reward, weight = build_reward(reward_or_spec)
        if weight != 1.0:
            reward = ComposedReward([(display, reward, weight)])
        return reward, name or display
    if isinstance(reward_or_spec, Sequence):
        composed = build_rewards(reward_or_spec)
        return composed, name or "+".join(composed.names)
    if callable(reward_or_spec) and _is_reward_function(reward_or_spec):
        reward = FunctionReward(reward_or_spec)
        return reward, name or reward.name
    raise RewardConfigError(
        f"as_trl_reward needs a Reward, a function (samples, ctx), a spec like {{'name': 'hapo'}} or a list "
        f"of specs, got {reward_or_spec!r}"
    )


def as_trl_reward(
    reward_or_spec: Any,
    tokenizer: Any = None,
    answer_key: str = "answer",
    group_size: int | None = None,
    *,
    max_length: int | None = None,
    name: str | None = None,
    prompt_id_key: str = "prompt_id",
    eos_token_ids: int | Sequence[int] | None = None,
) -> Callable[..., list[float]]:
    """A TRL reward function ``fn(prompts, completions, completion_ids=None, **kwargs) -> list[float]``.

    ``max_length``: TRL's ``max_completion_length`` (``ctx.max_length`` for the reward, and the length a
    cut completion has); ``eos_token_ids`` or the ``tokenizer``: the stop ids that tell a finished
    completion from a cut one (see the module docstring)."""
    reward, display = _resolve(reward_or_spec, name)
    if reward.needs:
        raise ValueError(
            f"reward '{display}' needs {sorted(reward.needs)}, facts that a TRL reward function does not "
            "receive; use it with laconic's trainer"
        )
    stop_ids = stop_ids_of(tokenizer, eos_token_ids)
    if getattr(reward, "reads_truncation", False) and not stop_ids:
        raise ValueError(
            f"reward '{display}' reads whether a completion was truncated, which TRL does not pass: give "
            "as_trl_reward the tokenizer (or eos_token_ids=[...]) so that a completion whose ids do not end "
            "with EOS counts as cut, as TRL's clipped_ratio counts it"
        )

    def trl_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        state = kwargs.get("trainer_state")
        samples = samples_from_trl(prompts, completions, completion_ids, tokenizer=tokenizer,
                                   answer_key=answer_key, group_size=group_size, prompt_id_key=prompt_id_key,
                                   stop_ids=stop_ids, max_length=max_length, **kwargs)
        sizes = {}
        for s in samples:
            sizes[s.group] = sizes.get(s.group, 0) + 1
        ctx = Context(step=int(getattr(state, "global_step", 0) or 0), max_length=max_length,
                      group_size=group_size or (max(sizes.values()) if sizes else 1),
                      chat=bool(prompts) and not isinstance(prompts[0], str))
        values = _validate(display, reward(samples, ctx), samples)
        reward.update(samples, ctx)
        # TRL takes one number per completion: a per-token reward gives its mean
        return [sum(v) / max(len(v), 1) if isinstance(v, list) else v for v in values]

    trl_reward.__name__ = trl_reward.__qualname__ = display
    trl_reward.reward = reward  # type: ignore[attr-defined]
    return trl_reward


def _noop(*args: Any, **kwargs: Any) -> None:
    """Stands in for TRL's ``log_extra`` / ``log_metric`` callbacks."""


def trainer_state(ctx: Context) -> Any:
    """What TRL passes as ``trainer_state``: a ``transformers.TrainerState`` at ``ctx.step``."""
    try:
        from transformers import TrainerState
    except ImportError:  # the reward library does not require transformers
        return SimpleNamespace(global_step=ctx.step, max_steps=ctx.total_steps or 0, epoch=None)
    return TrainerState(global_step=ctx.step, max_steps=ctx.total_steps or 0)


def _requires(fn: Callable[..., Any], param: str) -> bool:
    try:
        p = inspect.signature(fn).parameters.get(param)
    except (TypeError, ValueError):
        return False
    return p is not None and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)


class TRLFunction(Reward):
    """A TRL-signature reward function adapted to ``(samples, ctx) -> list[float]``."""

    def __init__(self, fn: Callable[..., Any], fixed_kwargs: Mapping[str, Any] | None = None,
                 name: str | None = None, conversational: bool | None = None):
        if not callable(fn):
            raise TypeError(f"from_trl needs a callable, got {fn!r}")
        if conversational is not None and not isinstance(conversational, bool):
            raise TypeError(f"conversational must be true, false or null, got {conversational!r}")
        self.fn = fn
        self.fixed_kwargs = dict(fixed_kwargs or {})
        self.name = name or getattr(fn, "__name__", "trl")
        self.conversational = conversational
        self.needs = frozenset({"completion_ids"}) if _requires(fn, "completion_ids") else frozenset()

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        if not samples:
            return []
        ids = [s.completion_ids for s in samples]
        if "completion_ids" in self.needs and any(x is None for x in ids):
            raise ValueError(f"TRL reward '{self.name}' needs completion_ids, but some samples have none "
                             "(the trainer attaches them for rewards that declare needs={'completion_ids'})")
        prompts: list[Any] = [s.prompt for s in samples]
        completions: list[Any] = [s.completion for s in samples]
        chat = self.conversational if self.conversational is not None else bool(ctx.chat)
        if chat:
            prompts = [[{"role": "user", "content": p}] for p in prompts]
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        gold = [s.answer for s in samples]
        columns: dict[str, Any] = {"answer": gold, "solution": gold}
        for key in dict.fromkeys(k for s in samples for k in s.meta):
            columns[key] = [s.meta.get(key) for s in samples]
        columns.update(trainer_state=trainer_state(ctx), log_extra=_noop, log_metric=_noop)
        columns.update(self.fixed_kwargs)
        try:
            out = self.fn(prompts=prompts, completions=completions,
                          completion_ids=None if any(x is None for x in ids) else ids, **columns)
        except (TypeError, KeyError, IndexError) as e:
            if chat:
                raise
            # TRL's built-ins read completion[0]["content"]: plain text fails inside them with no hint
            raise type(e)(f"{e} (the completions were plain text; if '{self.name}' reads chat messages "
                          "(completion[0]['content']), set conversational: true)") from e
        return [0.0 if v is None else v for v in out]


def from_trl(fn: Callable[..., Any], /, conversational: bool | None = None, **fixed_kwargs: Any) -> Reward:
    """A laconic :class:`Reward` calling the TRL-signature ``fn`` with ``fixed_kwargs`` added
    (``conversational``: chat-format prompts/completions; None follows ``ctx.chat``)."""
    return TRLFunction(fn, fixed_kwargs, conversational=conversational)


@register_reward("trl")
def trl_function(function: str, conversational: bool | None = None, **kwargs: Any) -> Reward:
    """Recipe form ``{name: trl, function: "pkg.mod:fn", ...}``: extra keys are fixed kwargs of ``fn``
    (``conversational`` is ours: chat-format prompts/completions; null follows ``ctx.chat``)."""
    if not isinstance(function, str) or ":" not in function:
        raise RewardConfigError(f"reward 'trl': function must look like 'package.module:function', got {function!r}")
    fn = _import_object(function)
    if not callable(fn):
        raise RewardConfigError(f"reward 'trl': '{function}' is not callable")
    return TRLFunction(fn, kwargs, name=function.rpartition(":")[2], conversational=conversational)


trl_function.names_itself = True  # logged as reward/<function name>, not reward/trl, reward/trl_1
