"""Checks that run before any model is loaded (a 7B load takes minutes; a typo should take seconds).

In order: the output directory (:func:`rl.run.rundir.plan_start`), the trackers of ``train.report_to``
(installed), the process count, the rewards
(built, then scored once on made-up samples of the real data, so a user reward that raises, returns
NaN or the wrong count is named now and not at step 1), and every row of the training and
evaluation data (:func:`rl.data.parse_rows`; a local file's eval rows held out of training), and that
the model is there to load (:func:`check_model`). Each failure is one line (``ConfigError`` or
``RewardError``) that the CLI prints with exit code 2.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards import RewardError, build_rewards
from rewards.base import Context, Sample

from rl.algo.advantages import table_advantages
from rl.config import Config, ConfigError
from rl.data import Row, train_and_eval_rows
from rl.run.rundir import Start, plan_start
from rl.run.tracking import check_trackers


@dataclass
class Checked:
    start: Start
    rewards: Any
    train_rows: list[Row]
    eval_rows: list[Row]
    eval_set: dict[str, Any]  # what the eval numbers are measured on (rl.data.train_and_eval_rows)


def preflight(cfg: Config, num_processes: int) -> Checked:
    start = plan_start(cfg.train)
    check_trackers(cfg.train.report_to)
    if cfg.rollout.prompts_per_step % num_processes:
        raise ConfigError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must be divisible by the number "
                          f"of processes ({num_processes}): a group never straddles processes")
    rewards = build_rewards(cfg.rewards)
    check_mask_truncated(cfg, rewards)
    per_token = [n for n, r in zip(rewards.names, rewards.rewards) if getattr(r, "per_token", False)]
    if cfg.algo.reward_aggregation == "normalize_then_sum" and per_token:
        raise ConfigError(f"algo.reward_aggregation=normalize_then_sum normalises each reward's scalar values, but "
                          f"reward '{per_token[0]}' returns per-token values: use sum_then_normalize")
    train_rows, eval_rows, eval_set = train_and_eval_rows(cfg)  # a local file: a held-out share for eval
    dry_run(rewards, train_rows, cfg)
    check_model(cfg.model.name_or_path)
    return Checked(start, rewards, train_rows, eval_rows, eval_set)


def check_mask_truncated(cfg: Config, rewards) -> None:
    """``algo.mask_truncated`` takes truncated completions out of the loss: where truncation is the
    length signal itself (DLER and its relatives, DOT's cuts) nothing would teach the model to stop."""
    if not cfg.algo.mask_truncated:
        return
    scoring = [n for n, r in zip(rewards.names, rewards.rewards) if getattr(r, "reads_truncation", False)]
    if scoring:
        raise ConfigError(f"algo.mask_truncated=true takes truncated completions out of the loss, but reward "
                          f"'{scoring[0]}' scores truncation: its length signal would never be trained; use one or "
                          "the other")
    if cfg.algo.outlier_truncation:
        raise ConfigError("algo.mask_truncated=true with algo.outlier_truncation (DOT): the cut completions are DOT's "
                          "signal and would never be trained; use one or the other")


def check_model(name: str) -> None:
    """The model is there to load: a built-in name, a local directory with a ``config.json``, or a hub
    id that is in the Hugging Face cache or that the hub answers for. Offline, a missing one is one
    line now, not transformers' traceback after its retries."""
    if name.startswith("builtin:"):
        return  # rl.models.load.resolve_model_path names the valid ones
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path={name}: {path} has no config.json (not a saved model)")
        return
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise ConfigError(f"model.name_or_path={name}: no such directory")
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    if HF_HUB_OFFLINE:
        raise ConfigError(f"model.name_or_path={name}: not a local directory and not in the Hugging Face cache "
                          "(HF_HUB_OFFLINE=1)")
    try:
        HfApi().model_info(name, timeout=10)
    except Exception as e:  # noqa: BLE001 - unreachable, unknown, gated: one line that names the model
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"model.name_or_path={name}: not a local directory, not in the Hugging Face cache, and "
                          f"the hub did not give it ({type(e).__name__}: {first})") from None


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
        if cfg.data.modes:  # ThinkDial: a drawn mode (a mode column's own value wins)
            meta.setdefault("mode", cfg.data.modes[-1])
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
        totals, components, token_totals = trial.score_tokens(samples, dataclasses.replace(ctx))
        trial.update(samples, ctx)
    except RewardError as e:
        raise ConfigError(f"rewards: {e} (in a trial scoring of made-up samples of the data, before training)") from None
    try:
        table_advantages(cfg.algo, totals, samples, limit, step=1, token_totals=token_totals, components=components,
                         weights=dict(zip(trial.names, trial.weights)))
    except ValueError as e:
        raise ConfigError(f"algo.advantage={cfg.algo.advantage}: {e}") from None
