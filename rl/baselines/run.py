"""``laconic baseline RECIPE.yaml``: the length baselines on TRL's own trainers.

A thin runner, no trainer of its own: ``trl.SFTTrainer`` (rejection-sampling SFT on the shortest
correct completion: Kimi k1.5 arXiv 2501.12599 §2.4, self-training arXiv 2502.20122, TOPS arXiv
2502.18080, O1-Pruner's SFT-shortest baseline), ``trl.DPOTrainer`` (DPO on length pairs: Kimi
k1.5's long2short DPO, TOPS's Iter-DPO pairs, O1-Pruner's DPO baseline; LD-DPO arXiv 2409.06411 is
``trl.ld_alpha``) and ``trl.experimental.cpo.CPOTrainer`` with ``loss_type: simpo`` and
``cpo_alpha: 0`` (SimPO, arXiv 2405.14734: length-averaged log-probabilities, no reference model).
The rows come from ``laconic sample`` (:mod:`rl.baselines.sample`). DTO (arXiv 2505.21765) is not
reproduced: its chosen traces are written by an LLM editor.

The run directory is ``laconic train``'s: ``config.json`` (the recipe as run, with the TRL
settings in force), ``metrics.jsonl`` (TRL's logs, one row per logging step), ``summary.json``
(``before`` / ``after`` evaluations by laconic's evaluator on the ``eval`` section's prompts,
``steps``, ``model``, ``eval_set``) and ``final/`` (the trained model, with ``toy_info.json`` for the
toy), so ``laconic eval runs/x/final`` and ``laconic compare runs/x ...`` read it like an RL run.
TRL's own output (checkpoints, if ``trl.save_strategy`` asks for them) goes to ``trl/``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rl.baselines.recipe import COLUMNS, BaselineConfig, trl_args

TRL_DIR = "trl"


def _trainer(cfg: BaselineConfig, model, args, dataset, tokenizer, callbacks):
    if cfg.method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)
    if cfg.method == "dpo":
        from trl import DPOTrainer

        return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)
    from trl.experimental.cpo import CPOTrainer

    return CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)


def _text(value: Any, tokenizer) -> str:
    """A row's prompt or completion as text (conversational rows rendered by the chat template)."""
    if isinstance(value, str):
        return value
    return tokenizer.apply_chat_template(value, tokenize=False)


def longest_row(dataset, method: str, tokenizer) -> int:
    """Tokens of the longest training sequence: prompt + the longest completion + EOS."""
    longest = 0
    for row in dataset:
        prompt = len(tokenizer(_text(row["prompt"], tokenizer), add_special_tokens=False)["input_ids"])
        completions = [row[c] for c in COLUMNS[method][1:]]
        if not isinstance(row["prompt"], str):  # conversational: the whole exchange, as TRL renders it
            full = [len(tokenizer(_text(row["prompt"] + c, tokenizer), add_special_tokens=False)["input_ids"])
                    for c in completions]
            longest = max(longest, *full)
            continue
        longest = max(longest, prompt + max(len(tokenizer(c, add_special_tokens=False)["input_ids"])
                                            for c in completions) + 1)
    return longest


def load_rows(cfg: BaselineConfig):
    """The training rows (``datasets`` json loader), only the columns the trainer reads."""
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(cfg.train_file), split="train")
    return ds.select_columns(list(COLUMNS[cfg.method]))


def eval_rows(cfg: BaselineConfig, train_ids: set[str]):
    """The eval rows (as ``laconic train`` draws them when it does not hold rows out) and ``eval_set``."""
    from rl.config import eval_data_config
    from rl.data import load_rows_checked

    e, name = cfg.eval, cfg.eval.name or cfg.data.name
    if not (e.before or e.after):
        return [], {}
    rows = load_rows_checked(eval_data_config(cfg.as_train_config()), name=name, split=e.split, subset=e.subset,
                             num_examples=e.num_examples, seed=e.seed)
    shared = sum(r.id in train_ids for r in rows)
    info = {"source": name, "split": e.split, "rows": len(rows), "overlap": shared, "held_out": shared == 0}
    return rows, info


class _MetricsLog:
    """A ``transformers.TrainerCallback`` appending TRL's logs to ``metrics.jsonl`` (made lazily so
    this module imports without transformers)."""

    @staticmethod
    def make(path: Path):
        from transformers import TrainerCallback

        class MetricsLog(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and state.is_world_process_zero:
                    with open(path, "a") as f:
                        f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        return MetricsLog()


def _sample_info(cfg: BaselineConfig) -> dict[str, Any] | None:
    f = Path(cfg.train_file).parent / "sample.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def format_mismatch(cfg: BaselineConfig, info: dict[str, Any] | None) -> list[str]:
    """Where the eval prompts would be written differently from the prompts the rows were sampled with."""
    if not info:
        return []
    s = info.get("settings") or {}
    notes = []
    for key in ("prompt_template", "system_prompt", "delimiter"):
        if key in s and s[key] != getattr(cfg.data, key):
            notes.append(f"data.{key}={getattr(cfg.data, key)!r}, but the rows were sampled with {s[key]!r}")
    return notes


def run_baseline(cfg: BaselineConfig) -> dict[str, Any]:
    """Train ``cfg`` (validated by :func:`rl.baselines.recipe.load_baseline`) and write its run directory."""
    import torch

    from rl.config import TrainConfig, eval_data_config
    from rl.data import build_prompts
    from rl.engines.build import build_engine
    from rl.engines.base import SamplingParams
    from rl.eval.evaluate import evaluate
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path, save_pretrained
    from rl.run.checkpoint import atomic_save_dir, atomic_write_text
    from rl.run.preflight import check_model
    from rl.run.rundir import apply_start, plan_start

    out = Path(cfg.output_dir)
    start = plan_start(TrainConfig(output_dir=str(out), overwrite=cfg.overwrite))  # refuses an existing run
    check_model(cfg.model.name_or_path)
    train_ids = set()
    with open(cfg.train_file) as f:
        for line in f:
            if line.strip():
                train_ids.add(str(json.loads(line).get("prompt_id")))
    evals, eval_set = eval_rows(cfg, train_ids)
    sample_info = _sample_info(cfg)
    for note in format_mismatch(cfg, sample_info):
        print(f"warning: {note}")
    apply_start(start)
    for note in start.notes:
        print(note)

    path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
    dataset = load_rows(cfg)
    longest = longest_row(dataset, cfg.method, tokenizer)
    max_length = cfg.trl.get("max_length", longest)
    if max_length is not None and max_length < longest:
        print(f"warning: trl.max_length={max_length} cuts the longest training row ({longest} tokens)")
    args = trl_args(cfg, out / TRL_DIR, max_length)
    atomic_write_text(out / "config.json", json.dumps({**cfg.to_dict(), "trl": {**cfg.trl, "max_length": max_length},
                                                       "trl_config": args.to_dict(), "train_rows": len(dataset),
                                                       "longest_row": longest, "sample": sample_info}, indent=1,
                                                      default=str))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    policy = load_policy(cfg.model, path).to(device)
    e = cfg.eval
    prompts = build_prompts(evals, eval_data_config(cfg.as_train_config()), tokenizer, e.name or cfg.data.name) if evals else []
    params = SamplingParams(max_new_tokens=e.max_new_tokens, temperature=e.temperature, top_p=e.top_p, n=e.samples,
                            logprobs=False)

    def run_eval(model) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        engine = build_engine("transformers", model, tokenizer)
        try:
            with torch.no_grad():
                return evaluate(engine, prompts, params, tokenizer, None, cfg.data.delimiter, e.seed)
        finally:
            model.train(was_training)

    evals_out: dict[str, Any] = {}
    if e.before and prompts:
        evals_out["before"] = run_eval(policy)
        print(f"before training: {_fmt(evals_out['before'])}")
    trainer = _trainer(cfg, policy, args, dataset, tokenizer, [_MetricsLog.make(out / "metrics.jsonl")])
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    try:
        (out / TRL_DIR).rmdir()  # the Trainer makes it; kept only when it holds checkpoints (trl.save_strategy)
    except OSError:
        pass
    model = trainer.model
    if e.after and prompts:
        evals_out["after"] = run_eval(model)
        print(f"after training:  {_fmt(evals_out['after'])}")
    toy_info = Path(path) / "toy_info.json"

    def write_final(tmp: Path) -> None:
        save_pretrained(trainer.accelerator.unwrap_model(model), tokenizer, tmp, adapter=cfg.model.save_adapter)
        if toy_info.is_file():  # `laconic eval runs/x/final` then knows the toy's prompt format
            shutil.copyfile(toy_info, tmp / "toy_info.json")

    atomic_save_dir(out / "final", write_final)
    summary = {**evals_out, "steps": trainer.state.global_step, "model": cfg.model.name_or_path, "method": cfg.method,
               "eval_set": eval_set, "final": {"step": trainer.state.global_step, "chosen_by": "last"},
               "train_rows": len(dataset), "train_seconds": round(seconds, 1)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(f"{cfg.method}: {trainer.state.global_step} steps on {len(dataset)} rows in {seconds:.0f} s; "
          f"model in {out / 'final'}")
    return summary


def _fmt(ev: dict[str, Any]) -> str:
    return (f"accuracy {ev['accuracy']:.3f}, mean tokens {ev['mean_tokens']:.1f}, truncated {ev['truncation_rate']:.3f} "
            f"(n={ev['n']})")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "baseline", help="train a length baseline (SFT / DPO / SimPO) on TRL's trainers from a YAML recipe",
        description="Shortest-correct SFT, DPO or SimPO on rows written by laconic sample, with TRL's own trainers; "
                    "the run directory is laconic train's (laconic eval runs/x/final, laconic compare runs/x).",
        epilog="recipes: recipes/baselines/*.yaml; data: laconic sample MODEL --samples K --out DIR",
    )
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="e.g. trl.learning_rate=1e-5 eval.num_examples=50")
    return p


def run(args) -> int:
    from rl.baselines.recipe import load_baseline

    run_baseline(load_baseline(args.recipe, args.overrides))  # ConfigError: one line, exit 2 (rl.cli)
    return 0
