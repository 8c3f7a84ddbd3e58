"""RoRecomp in the loop (``algo.recompose``; arXiv 2509.25958, no released code; the selection rule and
the choices where the paper is silent: :mod:`rl.algo.recompose`).

Each step, :meth:`Recompose.split` keeps the priority samples for the step's update and moves the
other signal-carrying ones, with their advantage (computed over the full group) and the per-token record
(sampler log-probs, the step that wrote each token), into this process's FIFO buffer. After the update,
:meth:`Recompose.compensate` decides on every process alike (the buffer sizes all-gathered, a coin seeded by
``(train.seed, step)``): when each process holds its share of ``batch`` samples (and with probability
``prob``), each pops its oldest share and takes one extra optimizer step on them. Their tokens are
older weights' tokens, so the ratio is against the log-prob they were sampled with (``rollout.offpolicy:
behavior`` for these samples); the lr schedule does not advance for this step. Samples older than
``max_age`` steps are dropped unseen. The buffer is part of every checkpoint (each process's own, as
the partial rollouts' buffer: :func:`rl.train.partial.buffer_state`), so a resumed run trains the same samples.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from rl.algo.recompose import DEFAULTS, split
from rl.engines.base import GIVEN, Rollout
from rl.run.distributed import gather
from rl.train.record import default_record, pad_rows


@dataclass
class Entry:
    """One buffered sample: the rollout (its ``versions`` the step that wrote it), its advantage (a
    number, or one per token), and the step it was generated at."""

    rollout: Rollout
    advantage: float | list[float]
    step: int


@dataclass
class Recompose:
    options: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)  # this process's buffer, oldest first
    comp_steps: int = 0  # compensation steps taken so far

    @classmethod
    def build(cls, options: dict[str, Any] | None) -> Recompose | None:
        return None if options is None else cls({**DEFAULTS, **options})

    def split(self, rollouts: list[Rollout], samples, advantages: torch.Tensor, old_logps, ent_mask, step: int):
        """``(rollouts, advantages, old_logps, entropy_mask)`` of this step's update: the priority samples
        (at least one row, untrained, so every process takes part in the update); the other signal
        samples go to the buffer. Also the split's counts."""
        signal = [bool(a.any()) for a in advantages]
        priority, buffered = split([s.group for s in samples], [bool(s.correct) for s in samples],
                                   [r.length for r in rollouts], signal, self.options["alpha"])
        for i in (i for i, b in enumerate(buffered) if b and rollouts[i].trained):  # not algo.mask_truncated's
            r = rollouts[i]
            if r.logprobs is None or len(r.logprobs) != r.length:
                raise ValueError("algo.recompose trains buffered samples against their sampler log-probs, but the "
                                 "rollout engine returned none")
            versions, mask = default_record(r)
            record = dataclasses.replace(r, versions=[v if v == GIVEN else step for v in versions], loss_mask=mask)
            a = advantages[i]
            self.entries.append(Entry(record, a.tolist(), step))
        keep = [i for i, p in enumerate(priority) if p]
        if not keep and rollouts:  # nothing to train here: one row out of the loss keeps the collectives even
            keep = [0]
            rollouts[0].trained = False
        counts = [sum(priority), sum(buffered)]
        return ([rollouts[i] for i in keep], advantages[keep], None if old_logps is None else [old_logps[i] for i in keep],
                None if ent_mask is None else ent_mask[keep], counts)

    def compensate(self, acc, step: int, seed: int, update: Callable[[list[Rollout], torch.Tensor], dict]) -> dict:
        """The extra optimizer step on the oldest buffered samples, when every process has its share;
        ``update(rollouts, advantages)`` runs it. Returns ``rorecomp/*`` metrics."""
        o = self.options
        dropped = sum(step - e.step > o["max_age"] for e in self.entries)
        self.entries = [e for e in self.entries if step - e.step <= o["max_age"]]
        share = -(-o["batch"] // acc.num_processes)
        sizes = [int(n) for n in gather(acc, [len(self.entries)])]
        coin = random.Random(seed * 1_000_003 + step * 11 + 5).random()  # the same draw on every process
        stats: dict[str, float] = {"rorecomp/buffer_size": float(sum(sizes)), "rorecomp/dropped": float(dropped),
                                   "rorecomp/comp_step": 0.0}
        if min(sizes) >= share and coin < o["prob"]:
            popped, self.entries = self.entries[:share], self.entries[share:]
            adv = advantage_rows([e.advantage for e in popped])
            comp = update([e.rollout for e in popped], adv)
            self.comp_steps += 1
            stats.update({f"rorecomp/comp_{k}": v for k, v in comp.items()})
            stats.update({"rorecomp/comp_step": 1.0, "rorecomp/comp_age": sum(step - e.step for e in popped) / share,
                          "rorecomp/buffer_size": float(sum(sizes) - share * acc.num_processes)})
        stats["rorecomp/comp_steps"] = float(self.comp_steps)
        return stats

    def state_dict(self) -> dict:
        return {"comp_steps": self.comp_steps,
                "entries": [{"rollout": dataclasses.asdict(e.rollout), "advantage": e.advantage, "step": e.step}
                            for e in self.entries]}

    def load_state_dict(self, state: dict) -> None:
        self.comp_steps = state["comp_steps"]
        self.entries = [Entry(Rollout(**e["rollout"]), e["advantage"], e["step"]) for e in state["entries"]]


def advantage_rows(values: list[float | list[float]]) -> torch.Tensor:
    """Buffered advantages as the update takes them: ``[B]``, or ``[B, T]`` (zero-padded) when any is per token.

    >>> advantage_rows([0.5, -1.0]).tolist(), advantage_rows([[1.0, 2.0], [0.5]]).tolist()
    ([0.5, -1.0], [[1.0, 2.0], [0.5, 0.0]])
    """
    if not any(isinstance(v, list) for v in values):
        return torch.tensor(values, dtype=torch.float32)
    rows = [torch.tensor(v if isinstance(v, list) else [v]) for v in values]
    return pad_rows(rows, max(len(r) for r in rows))
