"""The GRPO training loop (docs/design.md, "The data path of one step"), one step per iteration:

sample prompts -> roll out G per prompt -> facts -> all-gather -> score -> advantages -> update
-> reward history -> sync rollout weights -> log -> checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import statistics
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from rewards.base import Context

from rl.algo.advantages import table_advantages
from rl.algo.schedules import length_limit
from rl.config import Config, eval_data_config
from rl.data import Prompt, PromptSampler, build_prompts, use_chat_template, with_budget, with_mode
from rl.engines.base import SamplingParams
from rl.engines.build import build_engine, resolve_engine
from rl.eval.evaluate import evaluate
from rl.eval.metrics import act_summary, percentile
from rl.facts import make_samples
from rl.models.load import load_policy, load_tokenizer, resolve_model_path, save_pretrained
from rl.run.checkpoint import (Best, atomic_save_dir, atomic_write_text, best_summary, load_checkpoint, same_on_all,
                               save_checkpoint, use_best)
from rl.run.distributed import (gather, is_sharded, make_accelerator, make_reference, model_state_for_saving,
                                prepare_engine, rollout_weights)
from rl.run.plan import check_run
from rl.run.preflight import preflight
from rl.run.rng import seeded
from rl.run.rundir import SCHEDULE_KEYS, Start, apply_start
from rl.run.tracking import Tracker, quiet_libraries
from rl.train.compress import Compressor
from rl.train.partial import PartialBuffer, buffer_state, load_buffer
from rl.train.prefetch import Prefetch, load_prefetch, prefetch_state
from rl.train.recompose import Recompose
from rl.train.reference_pass import reference_pass
from rl.train.sampling import by_difficulty, chunk_bytes, collect, group_zero_std_fraction, knobs, reward_metrics
from rl.train.update import NoSchedule, update_policy
from rl.train.weighting import GradientWeighting


@dataclass
class Run:
    """Everything the loop touches, built once by :func:`setup`."""

    cfg: Config
    acc: Any
    tokenizer: Any
    policy: Any
    ref: Any
    optimizer: Any
    scheduler: Any
    engine: Any
    rewards: Any
    train_prompts: list[Prompt]
    eval_prompts: list[Prompt]
    sampler: PromptSampler
    ctx: Context
    start: Start  # fresh, or the checkpoint to resume from (rl/run/rundir.py)
    eval_set: dict[str, Any] = field(default_factory=dict)  # what eval measures on (rl/data.py)
    partial: PartialBuffer = field(default_factory=PartialBuffer)  # rollout.partial: unfinished groups (rl/train/partial.py)
    prefetch: Prefetch | None = None  # rollout.async_mode=one_step_off: the next step's batch (rl/train/prefetch.py)
    recomp: Recompose | None = None  # algo.recompose: RoRecomp's replay buffer (rl/train/recompose.py)
    weighting: GradientWeighting | None = None  # algo.reward_weighting: per-step reward weights (rl/train/weighting.py)
    compress: Compressor | None = None  # rollout.compress: TRAAC's compress-and-continue stage (rl/train/compress.py)
    eval_modes: dict[str, list[Prompt]] = field(default_factory=dict)  # eval.modes: the eval set stated in each mode


def setup(cfg: Config) -> Run:
    from accelerate.utils import set_seed
    from transformers import AutoConfig, get_scheduler

    quiet_libraries(cfg.train.verbose)
    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)
    # No GPU: run on CPU, and under torchrun (`accelerate launch --multi_gpu`) across CPU processes
    # with gloo; accelerate's own --cpu launcher needs MPI for more than one process.
    acc = make_accelerator(cfg.train)  # DeepSpeed / FSDP specifics: rl/run/distributed.py
    if is_sharded(acc) and cfg.model.lora_r > 0:
        raise ValueError("model.lora_r > 0 with sharded weights (DeepSpeed ZeRO-3, FSDP) is not supported: "
                         "use DDP or ZeRO-2 for LoRA")
    checked = preflight(cfg, acc.num_processes)  # output dir, rewards, data: before any model is loaded
    acc.wait_for_everyone()  # every process has read the output dir before the main one changes it
    if acc.is_main_process:
        apply_start(checked.start)
    for note in checked.start.notes + ([checked.eval_set["note"]] if "note" in checked.eval_set else []):
        acc.print(note)
    if cfg.model.dtype != "float32" and acc.distributed_type.value in ("NO", "MULTI_GPU", "MULTI_CPU"):
        warnings.warn(f"model.dtype={cfg.model.dtype}: AdamW updates {cfg.model.dtype} weights directly (no fp32 "
                      "master copy), so small updates round away; prefer model.dtype=float32 with accelerate's "
                      "--mixed_precision bf16 (recipes/accelerate/*.yaml)", stacklevel=2)
    set_seed(cfg.train.seed, device_specific=True)  # each process samples differently
    if acc.is_main_process:
        path = resolve_model_path(cfg.model)  # builds the toy once, on the main process
    acc.wait_for_everyone()
    path = resolve_model_path(cfg.model, progress=False)
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
    train_prompts = build_prompts(checked.train_rows, cfg.data, tokenizer, cfg.data.name)
    e, eval_data = cfg.eval, eval_data_config(cfg)  # eval.question_column etc. over the data section's
    if e.modes:  # each mode below once per row, not data.mode_mix=all's every row in every mode
        eval_data = replace(eval_data, mode_mix="draw")
    eval_prompts = build_prompts(checked.eval_rows, eval_data, tokenizer, e.name or cfg.data.name) if checked.eval_rows else []
    if e.length_budget:
        eval_prompts = [with_budget(p, e.length_budget, eval_data, tokenizer) for p in eval_prompts]
    eval_modes = {m: [with_mode(p, m, eval_data, tokenizer) for p in eval_prompts] for m in e.modes or []}
    eval_prompts = next(iter(eval_modes.values()), eval_prompts)
    every_eval = [q for ps in eval_modes.values() for q in ps] or eval_prompts
    longest_prompt = max(len(p.ids) for p in train_prompts + every_eval)
    check_run(cfg, acc, longest_prompt, AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code))
    policy = load_policy(cfg.model, path)  # GPU: the plan above stops a run that would not fit (rl/run/plan.py)
    ref = make_reference(acc, policy, cfg.model) if cfg.algo.kl_coef > 0 else None
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.train.learning_rate,
                                  betas=(cfg.train.adam_beta1, cfg.train.adam_beta2), weight_decay=cfg.train.weight_decay)
    sched = {k: getattr(cfg.train, k) for k in SCHEDULE_KEYS} | checked.start.schedule  # resume_schedule=keep: the run's
    scheduler = get_scheduler(sched["lr_scheduler"], optimizer, num_warmup_steps=sched["warmup_steps"],
                              num_training_steps=sched["max_steps"] * cfg.algo.updates_per_rollout)
    hold_at_end(scheduler, sched["max_steps"] * cfg.algo.updates_per_rollout)
    policy, optimizer = acc.prepare(policy, optimizer)
    acc.register_for_checkpointing(scheduler)
    if ref is not None:
        ref.to(acc.device)
    acc.print(f"rollout engine: {resolve_engine(cfg.rollout.engine)}"
              + (" (rollout.engine=auto)" if cfg.rollout.engine == "auto" else ""))
    engine = build_engine(cfg.rollout.engine, acc.unwrap_model(policy), tokenizer, cfg.rollout.generation_batch_size,
                          model_path=path, rollout=cfg.rollout, seed=cfg.train.seed,  # vLLM: the first push
                          process_index=acc.process_index, num_processes=acc.num_processes)
    prepare_engine(acc, engine)
    ctx = Context(step=0, max_length=cfg.rollout.max_new_tokens, group_size=cfg.rollout.group_size,
                  total_steps=cfg.train.max_steps, chat=use_chat_template(tokenizer, cfg.data.chat_template),
                  num_prompts=len({p.id for p in train_prompts}))
    return Run(cfg, acc, tokenizer, policy, ref, optimizer, scheduler, engine, checked.rewards, train_prompts,
               eval_prompts, PromptSampler(len(train_prompts), cfg.train.seed), ctx, checked.start, checked.eval_set,
               prefetch=Prefetch() if cfg.rollout.async_mode == "one_step_off" else None,
               recomp=Recompose.build(cfg.algo.recompose), weighting=GradientWeighting.build(cfg.algo.reward_weighting, acc),
               compress=Compressor.build(cfg.rollout.compress, path), eval_modes=eval_modes)


def hold_at_end(scheduler, horizon: int) -> None:
    """Past its horizon (a resume with ``train.resume_schedule=keep`` and more steps) the lr stays where
    the schedule ended: transformers' cosine would rise again (cos(pi x) for x > 1)."""
    for i, fn in enumerate(getattr(scheduler, "lr_lambdas", [])):
        scheduler.lr_lambdas[i] = functools.partial(_held, fn, horizon)


def _held(fn, horizon: int, step: int) -> float:
    return fn(min(step, horizon))


def run_eval(run: Run) -> dict[str, Any]:
    e = run.cfg.eval
    params = SamplingParams(max_new_tokens=e.max_new_tokens, temperature=e.temperature, top_p=e.top_p, n=e.samples,
                            logprobs=False, **knobs(run.cfg.rollout))
    with rollout_weights(run.acc, run.policy, run.engine):  # ZeRO-3 + transformers engine: gathered once
        if not run.eval_modes:
            return evaluate(run.engine, run.eval_prompts, params, run.tokenizer, run.acc, run.cfg.data.delimiter, e.seed)
        per = {m: evaluate(run.engine, ps, params, run.tokenizer, run.acc, run.cfg.data.delimiter, e.seed)
               for m, ps in run.eval_modes.items()}  # eval.modes: the first mode's numbers are the run's
    return {**next(iter(per.values())), "modes": per}


def train_step(run: Run, step: int) -> dict[str, Any]:
    cfg, acc = run.cfg, run.acc
    t0 = time.perf_counter()
    run.ctx.step, run.ctx.max_length = step, current_limit(cfg, step)
    run_monitor(run, step)
    with rollout_weights(acc, run.policy, run.engine):  # ZeRO-3 + transformers engine: weights gathered
        batch = collect(run, step, step_params(cfg, step))  # rollouts, facts, all-gather (+ dynamic sampling)
    t_gen = time.perf_counter()
    if run.prefetch is not None and step < cfg.train.max_steps:  # one_step_off: the next batch, meanwhile
        run.prefetch.start(run, step + 1, step_params(cfg, step + 1))
    table, samples = batch.table, batch.samples
    if cfg.algo.mask_truncated:  # scored and in the advantages' statistics, but no gradient
        for r in batch.rollouts:
            r.trained = r.finish_reason != "length"
    stats, opts = {}, update_options(run, step)
    totals, components, token_totals = run.rewards.score_tokens(table, run.ctx) if table else ([], {}, None)
    if run.weighting is not None and table:  # dynamic reward weighting: this batch's gradients set the weights
        totals, weights = run.weighting.reweigh(run, batch, components, token_totals, step, opts)
        stats.update(weights)
    adv = table_advantages(cfg.algo, totals, table, run.ctx.max_length, step, token_totals,  # [N] or [N, T]
                           components, dict(zip(run.rewards.names, run.rewards.weights)))
    n = len(samples)
    local_adv = adv[acc.process_index * n : (acc.process_index + 1) * n]
    t_score = time.perf_counter()
    rollouts, step_adv, old, ent = batch.rollouts, local_adv, batch.old_logps, entropy_mask(run, samples)
    if run.recomp is not None and rollouts:  # RoRecomp: the priority samples now, the others to its buffer
        rollouts, step_adv, old, ent, counts = run.recomp.split(rollouts, samples, local_adv, old, ent, step)
        every = gather(acc, [counts])  # each process's [priority, buffered]
        stats.update({"rorecomp/priority_size": float(sum(c[0] for c in every)),
                      "rorecomp/buffered": float(sum(c[1] for c in every))})
    if rollouts:  # empty only when dynamic sampling found no signal at all
        stats.update(update_policy(acc, run.policy, run.ref, run.optimizer, run.scheduler, rollouts, step_adv, cfg.algo,
                                   old_logps=old, entropy_mask=ent, **opts))
    if run.recomp is not None:  # the compensation step: the buffer's oldest samples, ratio against their sampler
        stats.update(run.recomp.compensate(acc, step, cfg.train.seed, lambda rs, adv: update_policy(
            acc, run.policy, run.ref, run.optimizer, NoSchedule(), rs, adv, replace(cfg.algo, updates_per_rollout=1),
            **{**opts, "offpolicy": "behavior"})))
    run.rewards.update(batch.generated, run.ctx)
    t_sync = time.perf_counter()
    if run.prefetch is not None:  # one_step_off: the next batch is complete before the servers get new weights
        run.prefetch.wait()
        batch.stats.update(run.prefetch.stats())
    sync_weights(run)  # vLLM engines: push the new weights
    t_end = time.perf_counter()
    if cfg.train.log_completions and step % cfg.train.log_completions == 0:
        log_completions(run, step, samples, totals[acc.process_index * n : (acc.process_index + 1) * n], local_adv)
    if "sampling/zero_std_fraction" not in batch.stats:  # no dynamic sampling: the reward's spread
        batch.stats["sampling/zero_std_fraction"] = group_zero_std_fraction(table, totals)
    warn_no_signal(acc, step, adv, batch.stats["sampling/zero_std_fraction"])
    return {**step_metrics(batch.generated, totals, components), **stats, **batch.stats, **reward_metrics(run.rewards),
            "length_limit": run.ctx.max_length, "lr": run.scheduler.get_last_lr()[0],
            "time/step": t_end - t0, "time/generate": t_gen - t0, "time/score": t_score - t_gen,
            "time/update": t_end - t_score, "time/sync": t_end - t_sync,
            "tokens/per_s": sum(s.length for s in batch.generated) / max(t_gen - t0, 1e-9) / acc.num_processes}


def update_options(run: Run, step: int) -> dict[str, Any]:
    """The update's settings for step ``step`` (rl/train/update.py: update_policy)."""
    cfg = run.cfg
    return dict(pad_id=run.engine.pad_id, temperature=cfg.rollout.temperature, micro_batch_size=cfg.train.micro_batch_size,
                micro_batch_tokens=cfg.train.micro_batch_tokens, max_grad_norm=cfg.train.max_grad_norm,
                norm_len=cfg.rollout.max_new_tokens, chunk_bytes=chunk_bytes(run), head_fp32=cfg.train.head_fp32,
                version=step, offpolicy=cfg.rollout.offpolicy, offpolicy_cap=cfg.rollout.offpolicy_tis_cap,
                packing=cfg.train.packing)


def step_params(cfg: Config, step: int) -> SamplingParams:
    """How step ``step`` samples: G completions a prompt, under the step's length limit."""
    return SamplingParams(max_new_tokens=current_limit(cfg, step), temperature=cfg.rollout.temperature,
                          top_p=cfg.rollout.top_p, n=cfg.rollout.group_size, **knobs(cfg.rollout))


def warn_no_signal(acc, step: int, adv: torch.Tensor, zero_std_fraction: float) -> None:
    """One warning (main process) for a step whose advantages are all 0, typically because every
    group's rewards were equal: the policy-gradient term is then 0, so the update can only move the
    weights through a KL or entropy term (with neither, and no weight decay, it moves nothing)."""
    if adv.numel() and not bool(adv.any()) and acc.is_main_process:
        warnings.warn(f"step {step}: no learning signal: every advantage is 0 (groups with zero reward std: "
                      f"{zero_std_fraction:.0%}); the policy-gradient term is 0 this step", stacklevel=2)


def sync_weights(run: Run) -> None:
    """Make the rollout engine sample from the current policy (ZeRO-3: pushed one gathered bucket at a
    time, :func:`rl.engines.base.merged_state_items`; every process takes part)."""
    run.engine.sync_weights(run.acc.unwrap_model(run.policy))


def current_limit(cfg: Config, step: int) -> int:
    """The generation limit at ``step``: ``rollout.length_schedule`` over ``rollout.max_new_tokens``."""
    return length_limit(cfg.rollout.length_schedule, step, cfg.rollout.max_new_tokens)


def train(cfg: Config) -> dict[str, Any]:
    run = setup(cfg)
    acc, out = run.acc, Path(cfg.train.output_dir)
    state: dict[str, Any] = {"evals": {}}
    start = 0
    if run.start.checkpoint:
        state = load_checkpoint(acc, run.start.checkpoint)  # verified against its manifest first
        start = state.pop("step")
        run.sampler.load_state_dict(state["sampler"])
        run.rewards.load_state_dict(state["rewards"])
        run.ctx.state = state["ctx"]
        load_buffer(acc, run.partial, state.get("partial"))  # rollout.partial: the unfinished groups, per process
        load_prefetch(acc, run.prefetch, state.get("prefetch"))  # one_step_off: the batch generated ahead
        if run.recomp is not None:
            load_buffer(acc, run.recomp, state.get("recompose"))  # RoRecomp's replay buffer, per process
        sync_weights(run)  # vLLM engines still hold the initial weights
        if acc.is_main_process:  # forget what a killed run logged after its last checkpoint
            for log in [out / "metrics.jsonl", *sorted((out / "completions").glob("rank*.jsonl"))]:
                keep_steps_upto(log, start)
        acc.print(f"resumed from {run.start.checkpoint} at step {start}")
    if acc.is_main_process:  # the settings in force, and the lr schedule as it runs (resume_schedule=keep: the run's)
        schedule = {k: getattr(cfg.train, k) for k in SCHEDULE_KEYS} | run.start.schedule
        atomic_write_text(out / "config.json", json.dumps({**cfg.to_dict(), "lr_schedule": schedule}, indent=1))
    acc.wait_for_everyone()
    reference_pass(run)  # train.reference_samples: the initial policy's accuracy per prompt (cached)
    if cfg.eval.before and "before" not in state["evals"]:
        state["evals"]["before"] = run_eval(run)
        acc.print(f"before training: {format_eval(state['evals']['before'])}")
    tracker = Tracker(acc, out, cfg.train.max_steps, start, cfg.train.report_to, cfg.train.run_name, cfg.to_dict())
    fail_at = int(os.environ.get("LACONIC_FAIL_AT_STEP", "0"))  # test hook: simulate a crash
    best, note = Best.for_run(cfg.train.keep_best, state.get("best"))  # train.keep_best (None: unset)
    if note:
        acc.print(note)
    last, step_evaluated = None, None  # the newest in-training evaluation and its step
    try:
        for step in range(start + 1, cfg.train.max_steps + 1):
            if step == fail_at:
                os._exit(17)
            metrics = train_step(run, step)
            last_eval = step == cfg.train.max_steps and best is not None and best.evaluates  # a candidate too
            if cfg.eval.every and (step % cfg.eval.every == 0 or last_eval):
                last, step_evaluated = run_eval(run), step  # reused as "after" when final/ is this step's model
                metrics.update({f"eval/{k}": v for k, v in last.items() if not isinstance(v, dict)})
                metrics.update({f"eval/{m}/{k}": e[k] for m, e in last.get("modes", {}).items()
                                for k in ("accuracy", "mean_tokens", "truncation_rate")})
            tracker.log(metrics, step)
            new_best = best is not None and best.offer(step, same_on_all(acc, metrics, best.keys))
            if best is not None and (warning := best.missing_note(step, metrics)):
                acc.print(warning)
            if (cfg.train.save_every and step % cfg.train.save_every == 0) or step == cfg.train.max_steps or new_best:
                state.update(sampler=run.sampler.state_dict(), rewards=run.rewards.state_dict(), ctx=run.ctx.state,
                             best=best.state_dict() if best else None,  # a best changes only at a checkpoint
                             partial=buffer_state(acc, run.partial) if cfg.rollout.partial else None,
                             prefetch=prefetch_state(acc, run.prefetch),
                             recompose=buffer_state(acc, run.recomp) if run.recomp is not None else None)
                save_checkpoint(acc, out, step, state, keep=cfg.train.keep_checkpoints,
                                pin=best.step if best else None)  # the best is never pruned
    finally:
        tracker.close()  # also on an error: its message then starts on a line of its own
    final = {"step": cfg.train.max_steps, "chosen_by": "last"}
    if best is not None and best.final == "best":  # final/ and the "after" evaluation: the best step's model
        final = use_best(acc, out, best, cfg.train.max_steps, warn=acc.print)
        if final["step"] != cfg.train.max_steps:
            sync_weights(run)  # vLLM engines: sample from the loaded weights
    if cfg.eval.after:
        reuse = final["step"] == cfg.train.max_steps and step_evaluated == cfg.train.max_steps
        state["evals"]["after"] = last if reuse else run_eval(run)  # of the model final/ holds
    full_state = model_state_for_saving(acc, run.policy)  # ZeRO-3 / FSDP: gathered on every process
    if acc.is_main_process:
        toy_info = Path(resolve_model_path(cfg.model, progress=False)) / "toy_info.json"

        def write_final(tmp: Path) -> None:
            save_pretrained(acc.unwrap_model(run.policy), run.tokenizer, tmp, state_dict=full_state,
                            adapter=cfg.model.save_adapter)
            if toy_info.is_file():  # `laconic eval runs/x/final` then knows the toy's prompt format
                shutil.copyfile(toy_info, tmp / "toy_info.json")

        atomic_save_dir(out / "final", write_final)
        summary = {**state["evals"], "steps": cfg.train.max_steps, "model": cfg.model.name_or_path,
                   "eval_set": {k: v for k, v in run.eval_set.items() if k != "note"}, "final": final,
                   **(best_summary(best, out, cfg.train.max_steps) if best else {}),
                   **act_summary(state["evals"].get("before"), state["evals"].get("after"))}  # eval.modes: ThinkDial's ACT
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        print_table(summary)
        if best is not None and best.step is not None:
            print(f"best: step {best.step}, {best.metric} {best.value:.4g} ({best.checkpoint}); final/ is step "
                  f"{final['step']} (train.keep_best.final={best.final})")
    acc.wait_for_everyone()
    return state["evals"]


def keep_steps_upto(log: Path, step: int) -> None:
    """Keep the rows of a JSON-lines log up to ``step``; a line cut short by a kill is dropped."""
    if not log.exists():
        return
    rows = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                rows.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(log, "".join(rows))


def entropy_mask(run: Run, samples) -> torch.Tensor | None:
    """Per-sample 0/1 weights of the entropy bonus from rewards that restrict it (CEEH: hard
    prompts, judged from the history before this batch); None when no reward does."""
    masks = [r.entropy_mask(samples) for r in getattr(run.rewards, "rewards", []) if hasattr(r, "entropy_mask")]
    if not masks or not (run.cfg.algo.entropy_coef or run.cfg.algo.entropy_advantage):
        return None
    return torch.tensor([float(all(m[i] for m in masks)) for i in range(len(samples))])


def run_monitor(run: Run, step: int) -> None:
    """Roll out the monitor set for rewards that observe one (LASER-D), before step 1 and every
    ``train.monitor_every`` steps; its own RNG stream, so training stays reproducible."""
    t, acc = run.cfg.train, run.acc
    watchers = [r for r in getattr(run.rewards, "rewards", []) if hasattr(r, "observe_monitor")]
    if not (watchers and t.monitor_prompts) or (step - 1) % t.monitor_every:
        return
    order = list(range(len(run.train_prompts)))
    random.Random(t.seed).shuffle(order)
    monitor = [run.train_prompts[i] for i in order[: t.monitor_prompts]]
    k = -(-len(monitor) // acc.num_processes)
    mine = monitor[acc.process_index * k : (acc.process_index + 1) * k]
    params = SamplingParams(max_new_tokens=run.ctx.max_length, temperature=run.cfg.rollout.temperature,
                            top_p=run.cfg.rollout.top_p, n=run.cfg.rollout.group_size, logprobs=False,
                            **knobs(run.cfg.rollout))
    with seeded(t.seed * 1_000_003 + step * 7 + acc.process_index), rollout_weights(acc, run.policy, run.engine):
        rollouts = run.engine.generate([p.ids for p in mine], params) if mine else []
    table = gather(acc, make_samples(rollouts, mine, acc.process_index * k, run.tokenizer, run.cfg.data.delimiter))
    for w in watchers:
        w.observe_monitor(table, run.ctx)


def log_completions(run: Run, step: int, samples, rewards, advantages) -> None:
    """Each process appends its own samples (with its rank) to completions/rank<r>.jsonl."""
    path = Path(run.cfg.train.output_dir) / "completions" / f"rank{run.acc.process_index}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for s, r, a in zip(samples, rewards, advantages):
            a = float(a if a.dim() == 0 else a[: s.length].mean())  # per-token advantages: their mean
            row = {"step": step, "rank": run.acc.process_index, "reward": r, "advantage": a, **s.to_dict()}
            f.write(json.dumps(row) + "\n")


def step_metrics(generated, totals, components) -> dict[str, float]:
    """What the policy wrote this step (every completion generated, kept or not) and the rewards
    of the batch it trained on (the same set unless dynamic sampling dropped groups)."""
    lengths = [s.length for s in generated]
    m = {"accuracy": statistics.fmean(float(bool(s.correct)) for s in generated),
         "tokens/mean": statistics.fmean(lengths), "tokens/p50": percentile(lengths, 50),
         "tokens/p90": percentile(lengths, 90), "tokens/max": max(lengths), "truncation_rate": statistics.fmean(float(s.truncated) for s in generated),
         **by_difficulty(generated)}
    if totals:
        m.update({"reward/mean": statistics.fmean(totals), "reward/std": statistics.pstdev(totals)})
        m.update({f"reward/{name}": statistics.fmean(v) for name, v in components.items()})
    return m


def format_eval(e: dict[str, Any]) -> str:
    """One line of an evaluation; with eval.modes each mode's numbers."""
    if "modes" in e:
        return "; ".join(f"{m}: {format_eval(x)}" for m, x in e["modes"].items())
    return f"accuracy {e['accuracy']:.3f}, mean tokens {e['mean_tokens']:.1f}, truncated {e['truncation_rate']:.3f} (n={e['n']})"


def print_table(summary: dict[str, Any]) -> None:
    if "before" not in summary or "after" not in summary:
        return
    b, a = summary["before"], summary["after"]
    dt = (a["mean_tokens"] - b["mean_tokens"]) / max(b["mean_tokens"], 1e-9) * 100
    print(f"\n{'':12}{'accuracy':>10}{'mean tokens':>14}{'truncated':>11}")
    for name, e in (("before", b), ("after", a)):
        print(f"{name:12}{e['accuracy'] * 100:>9.1f}%{e['mean_tokens']:>14.1f}{e['truncation_rate'] * 100:>10.1f}%")
    print(f"{'change':12}{(a['accuracy'] - b['accuracy']) * 100:>+9.1f}pt{dt:>+13.1f}%\n")
    for m, e in a.get("modes", {}).items():  # eval.modes: each mode after training
        print(f"{'after ' + m:12}{e['accuracy'] * 100:>9.1f}%{e['mean_tokens']:>14.1f}{e['truncation_rate'] * 100:>10.1f}%")
    if "act" in summary:
        print("ACT x 100 (ThinkDial, peak = before in high mode): "
              + ", ".join(f"{k} {v * 100:.1f}" for k, v in summary["act"].items()) + "\n")
