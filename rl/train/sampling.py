"""Collecting one step's batch: roll out, compute facts, all-gather, and (optionally) keep only
groups that carry a learning signal.

Without dynamic sampling a step is one round: ``rollout.prompts_per_step`` prompts, G completions
each, sharded so a group never straddles processes (docs/design.md, steps 1-4).

Dynamic sampling (DAPO, arXiv 2503.14476, code BytedTsinghua-SIA/DAPO; DLER, arXiv 2510.15110,
code NVlabs/DLER): a group whose rewards (``algo.dynamic_sampling: reward``) or correctness
flags (``correctness``) all agree has zero advantage under group-baseline estimators and only
dilutes the batch. Each round draws a fresh ``prompts_per_step`` prompts; groups with zero std
are dropped and kept ones are pooled until ``prompts_per_step`` groups are kept or
``algo.max_sampling_rounds`` rounds were generated, after which the step proceeds with the
(smaller) pool and a warning. The kept groups are then re-dealt so every process trains on the
same number of groups, and renumbered ``0..K-1`` in process-major order, the layout the rest of
the step expects.

DECS's curriculum (``algo.curriculum``, rl/algo/curriculum.py; needs ``dynamic_sampling:
correctness``) puts a share kappa of all-correct groups back: they are set aside as they are
dropped, rounds stop once the informative groups plus the ones the curriculum adds fill the
batch, and kappa moves with the batch's redundant ratio after it is formed.

Filtering uses the rewards as scored on each round's table (state from before the step); the
final batch is scored again as a whole, so batch-level rewards (GRPO-λ's top-λ groups) see the
real batch. Reward state (HAPO's history, CEEH's running difficulty) is updated from every
completion generated in the step, kept or not, as the reference implementations do (they score
the whole generation batch before filtering).

Per-prompt generation limits (:func:`with_prompt_limits`; docs/design.md, step 2): before each
round's generation, a prompt's limit is the smallest of the step's, its ``max_new_tokens`` data
column and what rewards with a ``prompt_limits`` hook say (PALU's budgets); the engine writes at
most that many tokens for each of its completions, and its Samples carry the limit in
``meta["max_new_tokens"]``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from rl.algo.curriculum import Curriculum
from rl.algo.estimators import advantage_needs
from rl.algo.logprobs import chunk_budget
from rl.algo.outliers import outliers, oversample_factor
from rl.data import draw_budgets
from rl.engines.base import Rollout, SamplingParams, cut_rollout
from rl.facts import make_samples
from rl.run.distributed import gather, sharded_agree
from rl.train.partial import offpolicy_stats, roll_partial
from rl.train.record import FIRST_FORCED_LOGP
from rl.train.update import score_pass


@dataclass
class StepBatch:
    rollouts: list[Rollout]  # this process's, aligned with ``samples``
    samples: list[Any]  # this process's Samples
    table: list[Any]  # every process's Samples, process-major: what rewards and advantages see
    generated: list[Any]  # every Sample rolled out this step (all rounds, kept or not)
    old_logps: list[torch.Tensor] | None = None  # behaviour log-probs when updates_per_rollout > 1
    stats: dict[str, float] = field(default_factory=dict)


def chunk_bytes(run) -> int:
    """The chunked head's budget on this run's device (``train.logits_chunk_mib``)."""
    return chunk_budget(run.cfg.train.logits_chunk_mib, run.acc.device.type)


def attach_entropy(samples, entropies: list[torch.Tensor]) -> None:
    """Mean policy entropy over all, think and answer tokens of each sample (PEAR's facts)."""
    for s, h in zip(samples, entropies):
        s.entropy_mean = float(h.mean()) if len(h) else 0.0
        if s.think_length is not None:
            think, answer = h[: s.think_length], h[len(h) - s.answer_length :] if s.answer_length else h[:0]
            s.entropy_think = float(think.mean()) if len(think) else 0.0
            s.entropy_answer = float(answer.mean()) if len(answer) else 0.0


def zero_std_groups(table: list[Any], values: list[float]) -> set[int]:
    """Ids of the groups whose ``values`` all agree (within 1e-9): no signal for a group baseline."""
    by_group: dict[int, list[float]] = {}
    for s, v in zip(table, values):
        by_group.setdefault(s.group, []).append(float(v))
    return {g for g, vs in by_group.items() if max(vs) - min(vs) <= 1e-9}


@dataclass
class Round:
    rollouts: list[Rollout]  # what the step trains on (DOT: outliers cut)
    samples: list[Any]
    generated: list[Any]  # what the policy wrote (before any cut): the step metrics
    old_logps: list[torch.Tensor] | None = None
    stats: dict[str, float] = field(default_factory=dict)


def roll_round(run, step: int, params: SamplingParams, need_old: bool, num_prompts: int | None = None) -> Round:
    """One round on this process: draw the step's prompts (``num_prompts``, default
    ``rollout.prompts_per_step``), generate G each, compute the facts, cut DOT's outliers."""
    cfg, acc = run.cfg, run.acc
    total = num_prompts or cfg.rollout.prompts_per_step
    k = total // acc.num_processes
    partial_stats = {}
    ahead = run.prefetch.take(run, step) if getattr(run, "prefetch", None) is not None else None
    offset = acc.process_index * k
    if cfg.rollout.partial or cfg.rollout.async_mode:
        refuse_prompt_limits(run)
    if cfg.rollout.partial:  # APRIL: complete groups first, unfinished ones kept for the next step
        rollouts, prompts, partial_stats = roll_partial(run, step, params, run.partial)
    elif ahead is not None:  # one_step_off: generated during the previous step's update (rl/train/prefetch.py)
        rollouts, prompts = ahead
    else:
        chosen = run.sampler.next(total)[acc.process_index * k : (acc.process_index + 1) * k]
        prompts = draw_budgets([run.train_prompts[i] for i in chosen], cfg.data, run.tokenizer, cfg.train.seed, step)
        prompts, limits = with_prompt_limits(run, prompts, params.max_new_tokens, offset)
        rollouts = generate_forced(run.engine, [p.ids for p in prompts], params, cfg.rollout.forced_prefixes,
                                   run.tokenizer, limits)
        if limits is not None:
            partial_stats = limit_stats(limits, params.max_new_tokens)
    if cfg.rollout.async_mode:
        partial_stats = offpolicy_stats(rollouts, step)
    samples = make_samples(rollouts, prompts, offset, run.tokenizer, cfg.data.delimiter)
    for s, r in zip(samples, rollouts):
        if r.forced_tokens:
            s.meta["forced_prefix"] = run.tokenizer.decode(r.completion_ids[: r.forced_tokens])
    if getattr(run, "compress", None) is not None:  # TRAAC: compress correct traces and continue (rl/train/compress.py)
        rollouts, samples, compress_stats = run.compress.apply(run, step, prompts, rollouts, samples, offset, params)
        partial_stats = {**partial_stats, **compress_stats}
    rnd = Round(rollouts, samples, samples)
    rnd.stats.update(partial_stats)
    if cfg.algo.outlier_truncation is not None:
        cut_outliers(run, rnd, prompts, offset)
    needs = run.rewards.needs | advantage_needs(cfg.algo.advantage, cfg.algo.advantage_options)
    if cfg.algo.curriculum is not None:  # DECS's redundant ratio (rl/algo/curriculum.py)
        needs = needs | {"token_offsets"}
    if "completion_ids" in needs:
        for s, r in zip(rnd.samples, rnd.rollouts):
            s.completion_ids = list(r.completion_ids)
    if "token_offsets" in needs:
        for s, r in zip(rnd.samples, rnd.rollouts):
            s.token_ends = token_ends(run.tokenizer, r.completion_ids)
    need_entropy = "entropy" in needs
    if need_entropy or need_old:  # one no-grad pass serves both
        rnd.old_logps, ents = score_pass(run.policy, rnd.rollouts, run.engine.pad_id, cfg.rollout.temperature,
                                         cfg.train.micro_batch_size, need_entropy, cfg.train.micro_batch_tokens,
                                         agree=sharded_agree(acc), chunk_bytes=chunk_bytes(run),
                                         head_fp32=cfg.train.head_fp32, packing=cfg.train.packing)
        if need_entropy:
            attach_entropy(rnd.samples, ents)
    return rnd


LIMIT_KEY = "max_new_tokens"  # a prompt's own generation limit: a data column, then the one applied (Sample.meta)


def reward_members(reward) -> list:
    """The leaf rewards of a (possibly nested) composition."""
    inner = getattr(reward, "rewards", None)
    return [m for r in inner for m in reward_members(r)] if isinstance(inner, list) else [reward]


def limit_setters(rewards) -> list:
    """The rewards that set per-prompt generation limits: they define ``prompt_limits`` and do not
    turn it off (``limits_generation = False``, e.g. PALU with ``hard_cap: false``)."""
    return [r for r in reward_members(rewards)
            if callable(getattr(r, "prompt_limits", None)) and getattr(r, "limits_generation", True)]


def with_prompt_limits(run, prompts: list, step_limit: int, offset: int = 0) -> tuple[list, list[int] | None]:
    """Each prompt's own generation limit, before generation (docs/design.md, step 2): the smallest of
    the step's limit (``step_limit``, which stays the bound), the prompt's ``max_new_tokens`` data
    column (``meta``) and what every reward with a ``prompt_limits(prompts, ctx) -> {prompt_id: limit}``
    hook says (``prompts`` there are :class:`~rewards.base.Sample` stubs: id, group, prompt text,
    gold answer and meta, no completion; ``ctx`` is the step's, state from before the step). Returns
    the prompts with ``meta["max_new_tokens"]`` set to the limit applied (so every Sample of the
    prompt carries it) and the limits; ``(prompts, None)`` when nothing sets one."""
    from rewards.base import Sample

    setters = limit_setters(run.rewards)
    if not setters and not any(LIMIT_KEY in p.meta for p in prompts):
        return prompts, None
    limits = []
    for p in prompts:
        limit = step_limit
        if LIMIT_KEY in p.meta:
            limit = min(limit, checked_limit(p.meta[LIMIT_KEY], f"prompt {p.id}: data column '{LIMIT_KEY}'"))
        limits.append(limit)
    stubs = [Sample(prompt_id=p.id, group=offset + i, prompt=p.text, answer=p.answer, meta=dict(p.meta))
             for i, p in enumerate(prompts)]
    for r in setters:
        name = getattr(r, "name", type(r).__name__)
        got = r.prompt_limits(stubs, run.ctx)
        if not isinstance(got, dict):
            raise TypeError(f"reward '{name}': prompt_limits returned {type(got).__name__}, expected "
                            "{prompt_id: limit}")
        for i, p in enumerate(prompts):
            if got.get(p.id) is not None:
                limits[i] = min(limits[i], checked_limit(got[p.id], f"reward '{name}': prompt_limits[{p.id!r}]"))
    prompts = [dataclasses.replace(p, meta={**p.meta, LIMIT_KEY: limit}) for p, limit in zip(prompts, limits)]
    return prompts, limits


def checked_limit(value, what: str) -> int:
    """A generation limit: a whole number of tokens >= 1 (``3.0`` from a CSV column is 3)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 1
    if not ok:
        raise ValueError(f"{what} must be a whole number of tokens >= 1, got {value!r}")
    return int(value)


def refuse_prompt_limits(run) -> None:
    """Partial rollouts and one-step-off generation draw their prompts elsewhere (rl/train/partial.py,
    rl/train/prefetch.py) and generate at the step's limit: refuse per-prompt limits there rather than
    ignore them."""
    setters = limit_setters(run.rewards)
    data = any(LIMIT_KEY in p.meta for p in run.train_prompts)
    if setters or data:
        what = f"reward '{getattr(setters[0], 'name', '?')}'" if setters else f"the data column '{LIMIT_KEY}'"
        raise NotImplementedError(f"{what} sets per-prompt generation limits, which rollout.partial and "
                                  "rollout.async_mode do not apply yet: turn those off (or, for palu, set hard_cap: false)")


def limit_stats(limits: list[int], step_limit: int) -> dict[str, float]:
    """``rollout/limit_mean`` (mean per-prompt limit) and ``rollout/limited_share`` (share of prompts below the step's)."""
    return {"rollout/limit_mean": statistics.fmean(limits) if limits else float(step_limit),
            "rollout/limited_share": sum(k < step_limit for k in limits) / max(len(limits), 1)}


def reward_metrics(rewards) -> dict[str, float]:
    """What rewards report about themselves after ``update`` (a ``metrics() -> {name: value}`` method,
    e.g. PALU's budgets): merged into the step's metrics."""
    out: dict[str, float] = {}
    for r in reward_members(rewards):
        fn = getattr(r, "metrics", None)
        if callable(fn):
            out.update({str(k): float(v) for k, v in (fn() or {}).items()})
    return out


def generate_forced(engine, prompts: list[list[int]], params: SamplingParams, prefixes: list[dict],
                    tokenizer, limits: list[int] | None = None) -> list[Rollout]:
    """G completions per prompt, prompt-major, a share of each group opening with a forced prefix
    (AdaptThink, arXiv 2505.13417; THU-KEG/AdaptThink ``src/adapt_think_core_algos.py``).

    ``prefixes`` is ``rollout.forced_prefixes``: per ``{text, fraction}``, ``G * fraction``
    completions are generated from prompt + prefix ids, the rest (``1 - sum(fractions)``) freely.
    A forced share's limit (prefix included) is the step's, or the prefix's ``max_new_tokens`` if
    smaller (the paper caps no-thinking answers at 4096 tokens). The prefix becomes part of each rollout's completion
    (length, text, facts and the update see it) and ``forced_tokens`` counts it; sampler
    log-probs get placeholders there: ``log 0.5`` for the first forced token, 0 for the others
    (masked in the update, :func:`rl.train.record.forced_old_logps`). Without prefixes this is
    ``engine.generate``.

    ``limits``: a generation limit per prompt (:func:`with_prompt_limits`), passed to the engine; with a
    forced prefix, prompt i's share writes at most ``min(limits[i], the share's limit) - len(prefix)``.
    """
    if not prefixes:
        return engine.generate(prompts, params) if limits is None else engine.generate(prompts, params, limits=limits)
    parts = [(tokenizer.encode(p["text"], add_special_tokens=False), round(params.n * p["fraction"]),
              min(params.max_new_tokens, p.get("max_new_tokens") or params.max_new_tokens)) for p in prefixes]
    parts.append(([], params.n - sum(n for _, n, _ in parts), params.max_new_tokens))
    done = []
    for ids, n, limit in parts:
        if n > 0:
            sub = dataclasses.replace(params, n=n, max_new_tokens=max(limit - len(ids), 1))
            if limits is None:
                out = engine.generate([p + ids for p in prompts], sub)
            else:
                own = [max(min(k, limit) - len(ids), 1) for k in limits]
                out = engine.generate([p + ids for p in prompts], sub, limits=own)
            done.append((ids, n, out))
    return [with_prefix(r, prompts[i], ids, tokenizer)
            for i in range(len(prompts)) for ids, n, rs in done for r in rs[i * n : (i + 1) * n]]


def with_prefix(r: Rollout, prompt: list[int], ids: list[int], tokenizer) -> Rollout:
    """``r`` (generated from ``prompt + ids``) with the prefix ``ids`` moved into its completion."""
    if not ids:
        return r
    completion = list(ids) + list(r.completion_ids)
    logprobs = None if r.logprobs is None else [FIRST_FORCED_LOGP] + [0.0] * (len(ids) - 1) + list(r.logprobs)
    return dataclasses.replace(r, prompt_ids=list(prompt), completion_ids=completion, logprobs=logprobs,
                               text=tokenizer.decode(completion, skip_special_tokens=True), forced_tokens=len(ids))


def token_ends(tokenizer, ids: list[int]) -> list[int]:
    """Where each token ends in the decoded completion: lengths of the tokens decoded one by one
    (exact for whole characters; a character split across tokens shifts the count by a little)."""
    ends, total = [], 0
    for piece in tokenizer.batch_decode([[t] for t in ids], skip_special_tokens=True):
        total += len(piece)
        ends.append(total)
    return ends


def cut_outliers(run, rnd: Round, prompts: list, offset: int) -> None:
    """DOT (rl/algo/outliers.py): cut the long tail of solved groups, re-verify what was cut."""
    cuts = outliers(rnd.samples, **run.cfg.algo.outlier_truncation)
    if cuts:
        rnd.rollouts = [cut_rollout(r, cuts[i], run.tokenizer) if i in cuts else r for i, r in enumerate(rnd.rollouts)]
        redone = make_samples([rnd.rollouts[i] for i in cuts], prompts, offset, run.tokenizer, run.cfg.data.delimiter)
        rnd.samples = list(rnd.samples)
        for i, s in zip(cuts, redone):
            rnd.samples[i] = s
    n = max(len(rnd.samples), 1)
    rnd.stats.update({"dot/cut_fraction": len(cuts) / n,
                      "dot/lost_answer_fraction": sum(not rnd.samples[i].correct for i in cuts) / max(len(cuts), 1),
                      "dot/tokens_cut": float(sum(rnd.generated[i].length - rnd.samples[i].length for i in cuts))})


def filter_values(run, table: list[Any], metric: str) -> list[float]:
    if metric == "correctness":
        return [float(bool(s.correct)) for s in table]
    return run.rewards.score(table, run.ctx)[0]


def collect(run, step: int, params: SamplingParams) -> StepBatch:
    """This step's batch: one round, or dynamic-sampling rounds until the batch is full."""
    cfg, acc = run.cfg, run.acc
    metric = cfg.algo.dynamic_sampling
    need_old = cfg.algo.updates_per_rollout > 1
    if not metric:
        rnd = roll_round(run, step, params, need_old)
        table = gather(acc, rnd.samples)
        generated = table if rnd.generated is rnd.samples else gather(acc, rnd.generated)
        return StepBatch(rnd.rollouts, rnd.samples, table, generated, rnd.old_logps,
                         {"sampling/rounds": 1.0, **mean_stats(acc, rnd.stats)})
    target = cfg.rollout.prompts_per_step
    pool: list[tuple[list, list]] = []  # kept groups, global: (samples, rollouts)
    reserve: list[tuple[list, list]] = []  # all-correct groups, for the curriculum
    cur = None if cfg.algo.curriculum is None else Curriculum(cfg.algo.curriculum, run.ctx.state, cfg.train.seed)
    generated: list[Any] = []
    round_stats: list[dict[str, float]] = []
    n_groups = n_dead = rounds = 0
    kept_history = run.ctx.state.setdefault("sampling/kept_fractions", [])
    first = target
    if cfg.algo.oversample is not None:  # DOT's predictive oversampling: one round usually fills the batch
        factor = oversample_factor(kept_history, **cfg.algo.oversample)
        first = math.ceil(target * factor / acc.num_processes) * acc.num_processes
    while rounds < cfg.algo.max_sampling_rounds and not (
            cur.full(len(pool), len(reserve), target) if cur else len(pool) >= target):
        rounds += 1
        rnd = roll_round(run, step, params, need_old=False, num_prompts=first if rounds == 1 else target)
        round_stats.append(rnd.stats)
        by_group: dict[int, tuple[list, list]] = {}
        for s, r in zip(rnd.samples, rnd.rollouts):
            by_group.setdefault(s.group, ([], []))
            by_group[s.group][0].append(s)
            by_group[s.group][1].append(r)
        groups = gather(acc, [by_group[g] for g in sorted(by_group)])  # global, process-major
        table = [s for g_samples, _ in groups for s in g_samples]
        generated.extend(table if rnd.generated is rnd.samples else gather(acc, rnd.generated))
        dead = zero_std_groups(table, filter_values(run, table, metric))
        n_groups += len(groups)
        n_dead += len(dead)
        pool.extend(g for g in groups if g[0][0].group not in dead)
        if cur:
            reserve.extend(g for g in groups if g[0][0].group in dead and all(s.correct for s in g[0]))
    kept_history.append(1 - n_dead / max(n_groups, 1))
    del kept_history[:-100]
    added: list[tuple[list, list]] = []
    if cur:  # DECS: a share kappa of the batch is all-correct groups
        informative, added = cur.pick(reserve, len(pool), target, step)
        pool = pool[:informative] + added
    if len(pool) < target:
        what = (f"({len(pool) - len(added)} with a non-zero {metric} std, {len(added)} all-correct from "
                "algo.curriculum)" if cur else f"had a non-zero {metric} std")
        warnings.warn(f"dynamic sampling: only {len(pool)} of {target} groups {what} after {rounds} rounds "
                      "(algo.max_sampling_rounds); training on the smaller batch", stacklevel=2)
    keep = min(len(pool), target) // acc.num_processes * acc.num_processes
    n_added = max(len(added) - (len(pool) - keep), 0)  # the added groups come last
    pool = pool[:keep]
    for new_id, (g_samples, _) in enumerate(pool):  # renumber 0..K-1, process-major
        for s in g_samples:
            s.group = new_id
    per = keep // acc.num_processes
    mine = pool[acc.process_index * per : (acc.process_index + 1) * per]
    samples = [s for g_samples, _ in mine for s in g_samples]
    rollouts = [r for _, g_rollouts in mine for r in g_rollouts]
    old = None
    if need_old and rollouts:
        old, _ = score_pass(run.policy, rollouts, run.engine.pad_id, cfg.rollout.temperature,
                            cfg.train.micro_batch_size, False, cfg.train.micro_batch_tokens, agree=sharded_agree(acc),
                            chunk_bytes=chunk_bytes(run), head_fp32=cfg.train.head_fp32,
                            packing=cfg.train.packing)
    stats = {"sampling/rounds": float(rounds), "sampling/kept_fraction": 1 - n_dead / max(n_groups, 1),
             "sampling/zero_std_fraction": n_dead / max(n_groups, 1), "sampling/kept_groups": float(keep),
             "sampling/first_round_prompts": float(first)}
    table = [s for g_samples, _ in pool for s in g_samples]
    if cur:
        stats.update(cur.update(table, cfg.data.delimiter, n_added))
    merged = [mean_stats(acc, r) for r in round_stats if r]  # DOT's, averaged over rounds
    for key in merged[0] if merged else ():
        stats[key] = statistics.fmean(m[key] for m in merged)
    return StepBatch(rollouts, samples, table, generated, old, stats)


def mean_stats(acc, stats: dict[str, float]) -> dict[str, float]:
    """Per-process statistics averaged over processes (sums for ``*tokens*``)."""
    if acc.num_processes == 1 or not stats:
        return stats
    rows = gather(acc, [stats])
    return {k: (sum if "tokens" in k else statistics.fmean)(r[k] for r in rows) for k in stats}


def group_zero_std_fraction(table: list[Any], values: list[float]) -> float:
    """Share of the table's groups whose values all agree."""
    n = len({s.group for s in table})
    return len(zero_std_groups(table, values)) / n if n else math.nan


def by_difficulty(table: list[Any]) -> dict[str, float]:
    """Accuracy and mean tokens per prompt difficulty (when the data has a difficulty)."""
    buckets: dict[Any, list[Any]] = {}
    for s in table:
        d = s.meta.get("difficulty")
        if d is not None:
            buckets.setdefault(d, []).append(s)
    out = {}
    for d in sorted(buckets, key=str):
        rows = buckets[d]
        out[f"by_difficulty/{d}/accuracy"] = statistics.fmean(float(bool(s.correct)) for s in rows)
        out[f"by_difficulty/{d}/tokens"] = statistics.fmean(s.length for s in rows)
    return out


def knobs(rollout) -> dict:
    """``rollout``'s sampling knobs beyond temperature and top-p, as :class:`SamplingParams` fields:
    the policy's decoding, the same for training rollouts, the reference pass and evaluation."""
    return dict(top_k=rollout.top_k, min_p=rollout.min_p, repetition_penalty=rollout.repetition_penalty,
                stop=tuple(rollout.stop))
