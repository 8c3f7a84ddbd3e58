"""The reference pass: the initial policy's accuracy on each training prompt, once, before RL.

AdaptThink (arXiv 2505.13417; THU-KEG/AdaptThink ``src/adapt_think_reward_manager.py``) rewards
``1[correct] - Rbar_ref(x) + delta * 1[no thinking]``, where ``Rbar_ref(x)`` is the initial
model's mean accuracy over K samples of prompt x (K = 16), computed before training. Any reward
that needs "how good was the model on this prompt before RL" reads it the same way:
``sample.meta["ref_accuracy"]``.

With ``train.reference_samples: K`` (> 0), every process rolls out K completions for its share
of the training prompts (the rollout engine, the recipe's temperature / top_p / max_new_tokens,
no forced prefixes), verifies them, and the per-prompt accuracies are gathered and written
atomically to ``output_dir/reference_accuracy.json``. A resumed run (or a rerun into the same
directory) loads that file instead of sampling again; a file made with another K, or missing a
prompt, is recomputed. ``train.reference_from: DIR`` (another run's directory or its
``reference_accuracy.json``) reuses that run's pass, e.g. for other seeds of a recipe on a fixed dataset (``builtin:`` tasks draw
their problems from ``train.seed``, so there each seed needs its own pass): it must hold K samples
for every training prompt of this run, else the run stops with one line.
"""

from __future__ import annotations

import json
from pathlib import Path


from rl.config import ConfigError
from rl.engines.base import SamplingParams
from rl.facts import make_samples
from rl.run.checkpoint import atomic_write_text
from rl.run.distributed import gather, rollout_weights
from rl.run.rng import seeded
from rl.train.sampling import knobs

FILE = "reference_accuracy.json"


def accuracy_by_prompt(samples) -> dict[str, float]:
    """Mean correctness per ``prompt_id``.

    >>> from rewards.base import Sample
    >>> accuracy_by_prompt([Sample("a", 0, correct=True), Sample("a", 0, correct=False), Sample("b", 1, correct=True)])
    {'a': 0.5, 'b': 1.0}
    """
    hits: dict[str, list[float]] = {}
    for s in samples:
        hits.setdefault(str(s.prompt_id), []).append(float(bool(s.correct)))
    return {k: sum(v) / len(v) for k, v in hits.items()}


def load(path: Path, k: int, ids: list[str]) -> dict[str, float] | None:
    """The cached accuracies if ``path`` holds them for these prompts with ``k`` samples each."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    acc = data.get("accuracy", {})
    return acc if data.get("samples") == k and all(i in acc for i in ids) else None


def compute(run, k: int) -> dict[str, float]:
    """K samples per training prompt from the current (initial) policy, this process's share.

    Generated a bounded slice at a time, as many prompts a call as a training step gives a process
    (``rollout.prompts_per_step / processes``), without sampler log-probs (only correctness is kept):
    a share of thousands of prompts x K x 16k tokens in one call would hold every completion and its
    per-token log-prob objects at once. Each slice's samples are reduced to per-prompt accuracies."""
    from tqdm.auto import tqdm

    cfg, acc = run.cfg, run.acc
    prompts = run.train_prompts
    per = -(-len(prompts) // acc.num_processes)
    mine = prompts[acc.process_index * per : (acc.process_index + 1) * per]
    params = SamplingParams(max_new_tokens=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature,
                            top_p=cfg.rollout.top_p, n=k, logprobs=False, **knobs(cfg.rollout))
    size = max(cfg.rollout.prompts_per_step // acc.num_processes, 1)
    mean: dict[str, float] = {}
    with seeded(cfg.train.seed * 1_000_003 + 17 + acc.process_index), rollout_weights(acc, run.policy, run.engine):
        for start in tqdm(range(0, len(mine), size), desc=f"reference pass ({k} samples a prompt)", unit="slice",
                          disable=not acc.is_main_process):
            part = mine[start : start + size]
            rollouts = run.engine.generate([p.ids for p in part], params)
            mean.update(accuracy_by_prompt(make_samples(rollouts, part, 0, run.tokenizer, cfg.data.delimiter)))
    merged: dict[str, float] = {}
    for part in gather(acc, [mean]):
        merged.update(part)
    return merged


def reference_pass(run) -> dict[str, float] | None:
    """Attach ``meta["ref_accuracy"]`` to every training prompt (None: ``train.reference_samples`` is 0)."""
    k = run.cfg.train.reference_samples
    if not k:
        return None
    path = Path(run.cfg.train.output_dir) / FILE
    ids = [str(p.id) for p in run.train_prompts]
    table = load(path, k, ids)
    src = run.cfg.train.reference_from
    if table is None and src:
        src_path = Path(src) / FILE if Path(src).is_dir() else Path(src)
        table = load(src_path, k, ids)
        if table is None:
            raise ConfigError(f"train.reference_from: {src_path} holds no reference pass with {k} samples for all "
                              f"{len(ids)} training prompts of this run (same data and train.reference_samples? "
                              "builtin: tasks draw their problems from train.seed)")
        if run.acc.is_main_process:
            atomic_write_text(path, json.dumps({"samples": k, "accuracy": table, "from": str(src_path)}, indent=0))
        run.acc.print(f"reference pass: reused {src_path} ({len(ids)} prompts x {k} samples)")
    if table is None:
        table = compute(run, k)
        if run.acc.is_main_process:
            atomic_write_text(path, json.dumps({"samples": k, "accuracy": table}, indent=0))
        run.acc.print(f"reference pass: {len(ids)} prompts x {k} samples, mean accuracy "
                      f"{sum(table.values()) / max(len(table), 1):.3f} -> {path}")
    run.acc.wait_for_everyone()
    for p in run.train_prompts:
        p.meta["ref_accuracy"] = table[str(p.id)]
    return table
