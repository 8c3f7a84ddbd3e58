"""Partial rollouts (``rollout.partial``): APRIL, "Active Partial Rollouts in Reinforcement Learning
to Tame Long-tail Generation" (arXiv 2509.18521; slime's ``--partial-rollout``,
``--over-sampling-batch-size``, ``--mask-offpolicy-in-partial-rollout``, THUDM/slime
``slime/rollout/sglang_rollout.py``).

A synchronous step waits for its longest completion. Here each process keeps
``ceil(rollout.partial_overprovision x its share)`` groups in flight, stops generating as soon as
its share of *complete* groups is there (:meth:`rl.engines.base.PartialEngine.generate_partial`),
and keeps the unfinished ones, with what they wrote, in a buffer. The next step continues them first,
under the new weights, before drawing new prompts: a group is the unit (its finished completions wait
for the others), exactly as in slime.

Every token carries the version of the weights that wrote it (:class:`rl.engines.base.Rollout`'s
``versions``: the step), so a completion written over two steps is a two-segment record; rewards,
facts and length see the whole completion. How the update treats the older segment is
``rollout.offpolicy`` (:func:`rl.train.update.token_record`): ``train`` (slime's default:
like the others, the ratio against the trainer's recomputed log-prob), ``mask`` (out of the loss,
slime's ``--mask-offpolicy-in-partial-rollout``), ``behavior`` (the ratio against the log-prob the
sampler reported when it wrote the token) or ``tis`` (ratio as ``train``, times the truncated weight
``min(exp(old_logp - behaviour_logp), rollout.offpolicy_tis_cap)``). A group older than
``rollout.partial_max_age`` steps is dropped.

The buffer is part of every checkpoint (each process's own, :func:`buffer_state`), so a resumed run
continues the same partial completions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rl.data import draw_budgets
from rl.engines.base import Rollout, SamplingParams, cut_at_stop
from rl.run.distributed import gather


@dataclass
class Member:
    """One completion of a group, finished (``finish``: stop or length) or not (None)."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    finish: str | None = None


@dataclass
class Group:
    prompt: int  # index into the training prompts
    step: int  # the step it was drawn at (its data budgets are drawn from it; its age counts from it)
    members: list[Member]

    @property
    def complete(self) -> bool:
        return all(m.finish is not None for m in self.members)


@dataclass
class PartialBuffer:
    """This process's unfinished groups, oldest first."""

    groups: list[Group] = field(default_factory=list)

    def state_dict(self) -> list[dict]:
        return [dataclasses.asdict(g) for g in self.groups]

    def load_state_dict(self, state: list[dict]) -> None:
        self.groups = [Group(g["prompt"], g["step"], [Member(**m) for m in g["members"]]) for g in state]


def buffer_state(acc, buffer: PartialBuffer) -> list[list[dict]]:
    """Every process's buffer, in process order (a collective: all processes call it)."""
    return gather(acc, [buffer.state_dict()])


def load_buffer(acc, buffer: PartialBuffer, states: list[list[dict]] | None) -> None:
    if states is None:
        return
    if len(states) != acc.num_processes:
        raise ValueError(f"the checkpoint's partial rollouts are of {len(states)} processes, this run has "
                         f"{acc.num_processes}: resume with the same number of processes")
    buffer.load_state_dict(states[acc.process_index])


def roll_partial(run, step: int, params: SamplingParams, buffer: PartialBuffer) -> tuple[list[Rollout], list, dict]:
    """This process's share of complete groups for ``step``: ``(rollouts, prompts, stats)``, rollouts
    group-major with ``prompt_index`` into ``prompts`` (as :func:`rl.train.sampling.roll_round` makes them)."""
    cfg, acc = run.cfg, run.acc
    r = cfg.rollout
    share = r.prompts_per_step // acc.num_processes
    G, limit = r.group_size, params.max_new_tokens
    dropped = [g for g in buffer.groups if step - g.step > r.partial_max_age]
    carried = [g for g in buffer.groups if step - g.step <= r.partial_max_age]
    new_count = max(math.ceil(r.partial_overprovision * share) - len(carried), 0)
    counts = [int(c) for c in gather(acc, [new_count])]  # the sampler advances by the same total everywhere
    drawn = run.sampler.next(sum(counts))
    start = sum(counts[: acc.process_index])
    groups = carried + [Group(i, step, [Member() for _ in range(G)]) for i in drawn[start : start + new_count]]
    prompts = [prompt_of(run, g) for g in groups]
    requests, limits, labels, where = [], [], [], []
    for k, (g, p) in enumerate(zip(groups, prompts)):
        for m in g.members:
            if m.finish is None and len(m.ids) >= limit:  # the length limit fell below what it wrote
                m.ids, m.versions = m.ids[:limit], m.versions[:limit]
                m.logprobs = None if m.logprobs is None else m.logprobs[:limit]
                m.finish = "length"
            if m.finish is None:
                requests.append(p.ids + m.ids)
                limits.append(limit - len(m.ids))
                labels.append(k)
                where.append(m)
    complete_before = sum(g.complete for g in groups)
    continued = sum(any(m.finish is None for m in g.members) and any(m.ids for m in g.members) for g in carried)
    one = dataclasses.replace(params, n=1)
    out = run.engine.generate_partial(requests, one, limits, labels, max(share - complete_before, 0)) if requests else []
    for m, o in zip(where, out):
        m.ids = m.ids + list(o.completion_ids)
        m.versions = m.versions + [step] * o.length
        m.logprobs = None if m.logprobs is None or o.logprobs is None else m.logprobs + list(o.logprobs)
        m.finish = None if o.finish_reason == "abort" else o.finish_reason
    done = [k for k, g in enumerate(groups) if g.complete][:share]
    if len(done) < share:  # every request runs to its end unless enough groups are complete
        raise RuntimeError(f"partial rollouts: {len(done)} complete groups of {share} after generation")
    buffer.groups = [g for k, g in enumerate(groups) if k not in set(done)]
    rollouts, kept = [], []
    for j, k in enumerate(done):
        kept.append(prompts[k])
        for m in groups[k].members:
            text = cut_at_stop(run.tokenizer.decode(m.ids, skip_special_tokens=True), params.stop)
            rollouts.append(Rollout(j, list(prompts[k].ids), list(m.ids), text, m.finish, m.logprobs,
                                    versions=list(m.versions)))
    trace = getattr(run.engine, "last_trace", [])
    stats = {"partial/carried": float(len(buffer.groups)), "partial/dropped": float(len(dropped)),
             "partial/continued": float(continued), "partial/in_flight": float(len(groups)),
             "time/generate_tail_share": tail_share(trace), **offpolicy_stats(rollouts, step)}
    return rollouts, kept, stats


def prompt_of(run, g: Group):
    """The group's prompt as drawn at its step (an L1 budget or e1 effort is drawn from (seed, step, id))."""
    return draw_budgets([run.train_prompts[g.prompt]], run.cfg.data, run.tokenizer, run.cfg.train.seed, g.step)[0]


def offpolicy_stats(rollouts: list[Rollout], step: int) -> dict[str, float]:
    """Share of the batch's tokens written by older weights, and their mean age in steps.

    >>> offpolicy_stats([Rollout(0, [1], [5, 6, 7], "", "stop", None, versions=[3, 4, 4])], 4)
    {'offpolicy/token_share': 0.3333333333333333, 'offpolicy/mean_age': 1.0}
    """
    ages = [step - v for r in rollouts for v in (r.versions or []) if 0 <= v < step]
    tokens = sum(r.length for r in rollouts)
    return {"offpolicy/token_share": len(ages) / max(tokens, 1),
            "offpolicy/mean_age": sum(ages) / len(ages) if ages else 0.0}


def tail_share(trace: list[tuple[float, int]], below: float = 0.25) -> float:
    """Share of a generation's time during which fewer than ``below`` of its sequences were running
    (``trace``: ``(time, running)`` per engine step, the first entry the most running).

    >>> tail_share([(0.0, 8), (1.0, 8), (2.0, 1), (5.0, 1), (6.0, 0)])
    0.6666666666666666
    """
    if len(trace) < 2:
        return 0.0
    most = max(n for _, n in trace)
    spent = sum(t1 - t0 for (t0, n), (t1, _) in zip(trace, trace[1:]) if n < below * most)
    return spent / max(trace[-1][0] - trace[0][0], 1e-12)
