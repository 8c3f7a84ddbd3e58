"""One-step-off-policy generation (``rollout.async_mode: one_step_off``; verl's ``one_step_off_policy``
recipe, TRL's ``AsyncGRPO`` with ``max_staleness: 1``), in server mode.

While the trainer updates on step t's batch, the vLLM servers already generate step t+1's, from the
weights they hold: those before step t's update. The new weights are pushed once that generation has
ended, so every batch is exactly one step stale, and the tokens record it (:class:`rl.engines.base.Rollout`
``versions``: step t+1's tokens carry version t, trained at step t+1: ``rollout.offpolicy`` decides how).

What decides a batch is drawn on the trainer's thread, in the order a synchronous run draws it: the
step's prompts (the shared prompt sampler) and one sampling seed per request (torch's RNG), before the
update of step t starts. So the batches do not depend on how the two overlap, and a given seed gives the
same run. The finished batch is saved with every checkpoint (each process's own): a resumed run trains
on the batch the crashed one had generated, from weights it no longer has.

Timeline of step t (``train_step``)::

    batch_t = take(t)         # generated during step t-1 (step 1: generated now)
    start(t + 1)              # the servers generate batch_{t+1} with the weights of step t-1's update
    score, advantages, update # the trainer works meanwhile
    wait()                    # batch_{t+1} is complete
    push weights              # then the servers get step t's update
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from rl.data import draw_budgets
from rl.engines.base import Rollout, SamplingParams
from rl.engines.vllm_server import draw_seeds
from rl.run.distributed import gather


@dataclass
class Prefetch:
    """The batch being generated for the next step on a worker thread (this process's share)."""

    step: int | None = None  # the step it is for
    prompts: list[int] = field(default_factory=list)  # indices into the training prompts
    future: Future | None = None
    rollouts: list[Rollout] | None = None  # once finished (or restored from a checkpoint)
    seconds: float = 0.0  # generation time on the worker
    waited: float = 0.0  # time the trainer waited for it
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="prefetch"))

    def start(self, run, step: int, params: SamplingParams) -> None:
        """Draw step ``step``'s prompts and seeds here, then generate on the worker thread."""
        cfg, acc = run.cfg, run.acc
        k = cfg.rollout.prompts_per_step // acc.num_processes
        chosen = run.sampler.next(cfg.rollout.prompts_per_step)[acc.process_index * k : (acc.process_index + 1) * k]
        ids = [p.ids for p in prompts_at(run, chosen, step)]
        seeds = draw_seeds(len(ids))
        self.step, self.prompts, self.rollouts, self.seconds = step, chosen, None, 0.0

        def work() -> list[Rollout]:
            t0 = time.perf_counter()
            out = run.engine.generate(ids, params, seeds=seeds)
            self.seconds = time.perf_counter() - t0
            return out

        self.future = self.pool.submit(work)

    def wait(self) -> None:
        """Block until the batch being generated is complete (a failure there is raised here)."""
        if self.future is not None:
            t0 = time.perf_counter()
            self.rollouts = self.future.result()
            self.waited += time.perf_counter() - t0
            self.future = None

    def take(self, run, step: int) -> tuple[list[Rollout], list] | None:
        """Step ``step``'s rollouts and prompts, with the version of the weights that wrote them
        (``step - 1``), if they were generated ahead; None otherwise (step 1, or a resume without one)."""
        self.wait()
        if self.step != step or self.rollouts is None:
            return None
        rollouts = [dataclasses.replace(r, versions=[step - 1] * r.length) for r in self.rollouts]
        self.step, self.rollouts = None, None
        return rollouts, prompts_at(run, self.prompts, step)

    def stats(self) -> dict[str, float]:
        """``time/generate_overlapped`` (the worker's generation of the next batch) and ``time/wait`` (the
        trainer blocked on it), since the last call."""
        out = {"time/generate_overlapped": self.seconds, "time/wait": self.waited}
        self.seconds = self.waited = 0.0
        return out

    def state_dict(self) -> dict | None:
        if self.rollouts is None:
            return None
        return {"step": self.step, "prompts": self.prompts, "rollouts": [dataclasses.asdict(r) for r in self.rollouts]}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.step, self.prompts = state["step"], state["prompts"]
            self.rollouts = [Rollout(**r) for r in state["rollouts"]]


def prompts_at(run, chosen: list[int], step: int) -> list:
    """The training prompts ``chosen`` as step ``step`` draws them (L1 budgets, e1 efforts)."""
    return draw_budgets([run.train_prompts[i] for i in chosen], run.cfg.data, run.tokenizer, run.cfg.train.seed, step)


def prefetch_state(acc, prefetch: Prefetch | None) -> list | None:
    """Every process's finished next batch, in process order (a collective), for a checkpoint."""
    return None if prefetch is None else gather(acc, [prefetch.state_dict()])


def load_prefetch(acc, prefetch: Prefetch | None, states: list | None) -> None:
    if prefetch is not None and states is not None:
        prefetch.load_state_dict(states[acc.process_index])
