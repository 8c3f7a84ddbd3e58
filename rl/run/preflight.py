"""Checks that run before any model is loaded (a 7B load takes minutes; a typo should take seconds).

In order: the output directory (:func:`rl.run.rundir.plan_start`), the trackers of ``train.report_to``
(installed), the process count, the rewards
(built, then scored once on made-up samples of the real data, so a user reward that raises, returns
NaN or the wrong count is named now and not at step 1), and every row of the training and
evaluation data (:func:`rl.data.parse_rows`). Each failure is one line (``ConfigError`` or
``RewardError``) that the CLI prints with exit code 2.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from rewards import RewardError, build_rewards
from rewards.base import Context, Sample

from rl.algo.advantages import table_advantages
from rl.config import Config, ConfigError, eval_data_config
from rl.data import Row, load_rows_checked
from rl.run.rundir import Start, plan_start
from rl.run.tracking import check_trackers


@dataclass
class Checked:
    start: Start
    rewards: Any
    train_rows: list[Row]
    eval_rows: list[Row]


def preflight(cfg: Config, num_processes: int) -> Checked:
    start = plan_start(cfg.train)
    check_trackers(cfg.train.report_to)
    if cfg.rollout.prompts_per_step % num_processes:
        raise ConfigError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must be divisible by the number "
                          f"of processes ({num_processes}): a group never straddles processes")
    rewards = build_rewards(cfg.rewards)
    train_rows = load_rows_checked(cfg.data, seed=cfg.train.seed)
    e, eval_data = cfg.eval, eval_data_config(cfg)  # eval.question_column etc. over the data section's
    eval_rows = (load_rows_checked(eval_data, name=e.name or cfg.data.name, split=e.split, subset=e.subset,
                                   num_examples=e.num_examples, seed=e.seed)
                 if (e.before or e.after or e.every) else [])
    dry_run(rewards, train_rows, cfg)
    return Checked(start, rewards, train_rows, eval_rows)


def dry_run(rewards, rows: list[Row], cfg: Config) -> None:
    """Score (and update) a copy of ``rewards`` on two made-up groups built from real rows: each
    has right and wrong, short, long and truncated completions, then compute their advantages. A
    reward or estimator that fails is a ``ConfigError``."""
    G, limit = cfg.rollout.group_size, cfg.rollout.max_new_tokens
    samples = []
    for g, row in enumerate(rows[:2]):
        meta = {k: v for k, v in row.row.items() if isinstance(v, (int, float, str, bool))}
        if cfg.data.length_budget:
            meta["budget"] = cfg.data.length_budget[1]
        if cfg.data.effort_range:
            meta["effort"] = cfg.data.effort_range[1]
        if cfg.train.reference_samples:  # rl/train/reference_pass.py
            meta["ref_accuracy"] = 0.5
        for k in range(G):
            correct, length = k % 2 == 0, max(1, limit * (k + 1) // G)
            answer = row.answer if correct else f"{row.answer}1"
            text = f"thinking {k}</think>The answer is \\boxed{{{answer}}}."
            samples.append(Sample(prompt_id=row.id, group=g, prompt=row.question, completion=text, answer=row.answer,
                                  length=length, truncated=length >= limit, correct=correct,
                                  think_length=length // 2, answer_length=length - length // 2 - 1,
                                  entropy_think=0.5 + 0.1 * k, entropy_answer=0.3, entropy_mean=0.4,
                                  meta=meta, completion_ids=[1 + (i % 7) for i in range(length)],
                                  token_ends=[(t + 1) * len(text) // length for t in range(length)]))
    ctx = Context(step=1, max_length=limit, group_size=G, total_steps=cfg.train.max_steps)
    trial = copy.deepcopy(rewards)
    try:
        totals, _, token_totals = trial.score_tokens(samples, dataclasses.replace(ctx))
        trial.update(samples, ctx)
    except RewardError as e:
        raise ConfigError(f"rewards: {e} (in a trial scoring of made-up samples of the data, before training)") from None
    try:
        table_advantages(cfg.algo, totals, samples, limit, step=1, token_totals=token_totals)
    except ValueError as e:
        raise ConfigError(f"algo.advantage={cfg.algo.advantage}: {e}") from None
