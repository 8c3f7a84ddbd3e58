"""``laconic eval MODEL --data DATA --samples K``: accuracy and length metrics of a model.

Samples K completions per prompt and reports pass@1, pass@k, maj@k, token statistics, truncation
and degeneration rates, accuracy per 1k tokens, breakdowns by difficulty and by source, and each
prompt's length distribution (definitions: :mod:`rl.eval.evaluate`). Prints a markdown table; with
``--out DIR`` writes ``DIR/eval.json`` (what ``laconic compare`` reads) and ``DIR/eval.md``.

Data loading is the recipes' (``rl.data.load_prompts`` on a ``DataConfig`` built from the
options), so ``--data`` takes a hub dataset, a local .jsonl/.json/.parquet/.csv file or
``builtin:<task>``. The defaults (split ``test``, 200 new tokens, seed 1234, ...) are those of
a recipe's ``eval`` section: ``laconic eval runs/x/final --data builtin:arithmetic
--num-examples 350 --samples 4`` re-draws the trainer's eval prompts.

Sources (``by_source``): a prompt's ``meta[--source-column]``. ``rl.data`` keeps every scalar
dataset column other than the question and answer columns in ``meta``, and sets ``source`` to the
dataset name when the data has no ``source`` column, so the default groups by dataset (or by its
``source`` column).

For the overthinking toy (``builtin:toy*`` or a directory holding ``toy_info.json``) the default
prompt template is the toy's ``Q:{question}=``; for the budget toy (``builtin:toy-budget``) it is
``B{budget}Q:{question}=`` and ``--length-budget N`` is required.

``--length-budget N`` states an L1 budget in every prompt, as a recipe's ``eval.length_budget``:
where the template says ``{budget}``, else as "Think for N tokens." (``--budget-mode max``: "Think
for maximum N tokens.") after the question.

Bad input (unknown column, missing file or model, unknown backend, ...) is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rl.config import DataConfig, EvalConfig, ModelConfig, RolloutConfig
from rl.config.validate import sampling_knob_error
from rl.eval.metrics import DEGENERATION_DEFAULTS

USAGE_ERROR = 2
BACKENDS = ("transformers", "vllm")

_E, _R = EvalConfig(), RolloutConfig()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to an ``argparse`` sub-parsers object; ``func`` defaults to :func:`run`."""
    p = subparsers.add_parser(
        "eval", help="evaluate a model: pass@k, maj@k, tokens, truncation, degeneration",
        description="Sample --samples completions per prompt and report accuracy and length metrics.",
    )
    p.add_argument("model", metavar="MODEL", help="model directory, hub id, or builtin:toy")
    d = p.add_argument_group("data")
    d.add_argument("--data", default="builtin:arithmetic",
                   help="hub dataset, local .jsonl/.json/.parquet/.csv, or builtin:<task> (default builtin:arithmetic)")
    d.add_argument("--subset", default=None, help="hub configuration name (e.g. main for gsm8k)")
    d.add_argument("--split", default=_E.split, help=f"dataset split (default {_E.split})")
    d.add_argument("--num-examples", type=int, default=None,
                   help="first N rows (builtin tasks: how many to generate; default: all / 1000)")
    d.add_argument("--question-column", default="question")
    d.add_argument("--answer-column", default="answer")
    d.add_argument("--id-column", default=None, help="stable prompt ids (default: hash of the question)")
    d.add_argument("--answer-format", default="auto", choices=("auto", "gsm8k", "boxed", "raw"))
    d.add_argument("--source-column", default="source",
                   help="column grouped by in by_source (default source: the column, else the dataset name)")
    d.add_argument("--prompt-template", default=None,
                   help="may use {question} and other columns (default {question}; the toy: Q:{question}=)")
    d.add_argument("--system-prompt", default=None)
    d.add_argument("--length-budget", type=int, default=None, metavar="N",
                   help="L1: state a budget of N tokens in every prompt (as eval.length_budget)")
    d.add_argument("--budget-mode", default="exact", choices=("exact", "max"),
                   help="L1 instruction when the template has no {budget} (default exact)")
    d.add_argument("--chat-template", default="auto", choices=("auto", "on", "off"))
    d.add_argument("--chat-template-kwargs", default=None, metavar="YAML",
                   help="passed to apply_chat_template, e.g. '{enable_thinking: false}' (as data.chat_template_kwargs)")
    d.add_argument("--delimiter", default="</think>",
                   help="answers are read after its last occurrence; 'none' disables (default </think>)")
    g = p.add_argument_group("generation")
    g.add_argument("--samples", "-k", type=int, default=_E.samples, help=f"completions per prompt (default {_E.samples})")
    g.add_argument("--max-new-tokens", type=int, default=_E.max_new_tokens, help=f"default {_E.max_new_tokens}")
    g.add_argument("--temperature", type=float, default=_E.temperature,
                   help="default 1.0; 0 = greedy (one completion per prompt, repeated --samples times)")
    g.add_argument("--top-p", type=float, default=_E.top_p)
    g.add_argument("--top-k", type=int, default=_R.top_k, help="0: off (as rollout.top_k)")
    g.add_argument("--min-p", type=float, default=_R.min_p, help="0: off (as rollout.min_p)")
    g.add_argument("--repetition-penalty", type=float, default=_R.repetition_penalty,
                   help="1: off (as rollout.repetition_penalty)")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="a stop string; repeat for several (as rollout.stop)")
    g.add_argument("--seed", type=int, default=_E.seed, help=f"data generation and sampling seed (default {_E.seed})")
    g.add_argument("--batch-size", type=int, default=_R.generation_batch_size,
                   help=f"sequences per generate() call (default {_R.generation_batch_size})")
    g.add_argument("--backend", default="transformers", choices=BACKENDS, help="rollout engine (default transformers)")
    g.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    g.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    g.add_argument("--trust-remote-code", action="store_true")
    m = p.add_argument_group("metrics and output")
    m.add_argument("--degeneration-ngram", type=int, default=DEGENERATION_DEFAULTS["ngram"],
                   help=f"n-gram size of the repetition detector (default {DEGENERATION_DEFAULTS['ngram']})")
    m.add_argument("--degeneration-threshold", type=float, default=DEGENERATION_DEFAULTS["threshold"],
                   help="degenerate when the repeated n-gram fraction exceeds this "
                        f"(default {DEGENERATION_DEFAULTS['threshold']})")
    m.add_argument("--out", default=None, metavar="DIR", help="write DIR/eval.json and DIR/eval.md")
    m.add_argument("--save-completions", action="store_true", help="also write DIR/completions.jsonl")
    m.add_argument("--no-progress", action="store_true",
                   help="no progress bars (generation, model loading, dataset preparation)")
    p.set_defaults(func=run)
    return p


class UsageError(ValueError):
    """Bad command-line input: reported as one line, exit status 2."""


def _check_args(args: argparse.Namespace) -> None:
    for name in ("samples", "max_new_tokens", "batch_size", "degeneration_ngram"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.length_budget is not None and args.length_budget < 1:
        raise UsageError(f"--length-budget must be >= 1, got {args.length_budget}")
    if args.num_examples is not None and args.num_examples < 1:
        raise UsageError(f"--num-examples must be >= 1, got {args.num_examples}")
    if args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0 (0: greedy), got {args.temperature}")
    bad = sampling_knob_error(args.top_p, args.top_k, args.min_p, args.repetition_penalty, args.stop, prefix="--")
    if bad:
        raise UsageError(bad)
    if not 0 <= args.degeneration_threshold < 1:
        raise UsageError(f"--degeneration-threshold must be in [0, 1), got {args.degeneration_threshold}")
    if args.save_completions and not args.out:
        raise UsageError("--save-completions needs --out DIR")


def _toy_template(name: str, path: str) -> str | None:
    """The toy's default prompt template, or None when the model is not the toy."""
    from rl.models.toy import BUDGET_TEMPLATE, PROMPT_TEMPLATE
    from rl.models.toy_build import read_info

    info = read_info(path)
    if not (name.startswith("builtin:toy") or info is not None):
        return None
    budget = name.endswith("-budget") or str((info or {}).get("variant")).endswith("budget")
    return BUDGET_TEMPLATE if budget else PROMPT_TEMPLATE


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"--device: {e}") from None


_FLAGS = {k: "--" + k.replace("_", "-") for k in ("question_column", "answer_column", "id_column",
                                                   "prompt_template", "chat_template_kwargs", "chat_template")}


def _kwargs(text: str | None) -> dict:
    import yaml

    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"--chat-template-kwargs: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UsageError(f"--chat-template-kwargs: a mapping like '{{enable_thinking: false}}', got {text!r}")
    return value


@contextlib.contextmanager
def _library_progress_bars(enabled: bool):
    """With ``enabled=False`` (``--no-progress``), silence transformers' and datasets' progress bars
    (weights loading, dataset preparation) for the duration; their previous state is restored."""
    if enabled:
        yield
        return
    import datasets.utils.logging as dl
    import transformers.utils.logging as tl

    was = tl.is_progress_bar_enabled(), dl.is_progress_bar_enabled()
    tl.disable_progress_bar()
    dl.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            tl.enable_progress_bar()
        if was[1]:
            dl.enable_progress_bar()


def _json_safe(x: Any) -> Any:
    """NaN/inf -> null (strict JSON); recurse into dicts and lists."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    """Model path, tokenizer, prompts, model and engine; every bad-input error surfaces here."""
    from rl.data import load_prompts, with_budget
    from rl.engines.build import build_engine
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path

    _check_args(args)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)  # an unusable --out fails before generating
    mcfg = ModelConfig(name_or_path=args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    path = resolve_model_path(mcfg, progress=not args.no_progress)
    local = Path(path).expanduser()
    if (local.is_absolute() or args.model.startswith((".", "~"))) and not local.is_dir():
        raise UsageError(f"model not found: {args.model} is not a model directory")
    path = str(local) if local.is_dir() else path
    tokenizer = load_tokenizer(path, args.trust_remote_code)
    template = args.prompt_template or _toy_template(args.model, path) or "{question}"
    if "{budget}" in template and args.length_budget is None:
        raise UsageError(f"the prompt template {template!r} states a budget: give --length-budget N")
    budget = args.length_budget
    delimiter = None if args.delimiter.lower() in ("none", "null", "") else args.delimiter
    dcfg = DataConfig(
        name=args.data, subset=args.subset, split=args.split, question_column=args.question_column,
        answer_column=args.answer_column, id_column=args.id_column, answer_format=args.answer_format,
        prompt_template=template, system_prompt=args.system_prompt, chat_template=args.chat_template,
        num_examples=args.num_examples, delimiter=delimiter, budget_mode=args.budget_mode,
        length_budget=None if budget is None else [budget, budget], chat_template_kwargs=_kwargs(args.chat_template_kwargs),
    )
    prompts = load_prompts(dcfg, tokenizer, seed=args.seed)
    if budget is not None:
        prompts = [with_budget(p, budget, dcfg, tokenizer) for p in prompts]
    if args.source_column != "source" and not any(args.source_column in p.meta for p in prompts):
        raise UsageError(f"--source-column: dataset '{args.data}' has no scalar column '{args.source_column}'")
    device = _device(args.device)
    policy = load_policy(mcfg, path).to(device)
    engine = build_engine(args.backend, policy, tokenizer, args.batch_size)
    return {"path": path, "tokenizer": tokenizer, "prompts": prompts, "engine": engine, "data_cfg": dcfg,
            "device": str(device)}


def _generate(engine, prompts, args: argparse.Namespace, greedy: bool):
    """Rollouts of every prompt (``--samples`` each, prompt-major), generated in chunks of about
    ``--batch-size`` sequences under a progress bar; greedy decodes once and repeats it."""
    import copy

    import torch
    from tqdm.auto import tqdm

    from rl.engines.base import SamplingParams

    n = 1 if greedy else args.samples
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature or 1.0,
                            top_p=args.top_p, n=n, greedy=greedy, logprobs=False, top_k=args.top_k,
                            min_p=args.min_p, repetition_penalty=args.repetition_penalty, stop=tuple(args.stop))
    per_call = max(1, args.batch_size // n)
    torch.manual_seed(args.seed)
    rollouts = []
    with tqdm(total=len(prompts) * n, desc="generate", unit="seq", disable=True if args.no_progress else None,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(prompts), per_call):
            chunk = prompts[start : start + per_call]
            for r in engine.generate([p.ids for p in chunk], params):
                r.prompt_index += start
                rollouts.append(r)
            bar.update(len(chunk) * n)
    if greedy and args.samples > 1:
        rollouts = [copy.copy(r) for r in rollouts for _ in range(args.samples)]
    return rollouts


def evaluate_model(args: argparse.Namespace, setup: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``eval.json`` report of ``args`` (parsed by :func:`add_parser`); ``setup`` (from
    :func:`_setup`, which raises on bad input) is built when not given."""
    from rl.eval.evaluate import eval_report
    from rl.facts import make_samples

    setup = setup or _setup(args)
    greedy = args.temperature == 0
    t0 = time.perf_counter()
    rollouts = _generate(setup["engine"], setup["prompts"], args, greedy)
    seconds = time.perf_counter() - t0
    delimiter = setup["data_cfg"].delimiter
    samples = make_samples(rollouts, setup["prompts"], 0, setup["tokenizer"], delimiter=delimiter)
    for s, r in zip(samples, rollouts):
        s.completion_ids = list(r.completion_ids)
    degeneration = {"ngram": args.degeneration_ngram, "threshold": args.degeneration_threshold}
    body = eval_report(samples, args.samples, delimiter=delimiter, source_key=args.source_column,
                       degeneration=degeneration)
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    settings.update(model_path=setup["path"], prompt_template=setup["data_cfg"].prompt_template,
                    delimiter=delimiter, greedy=greedy, device=setup["device"],
                    degeneration={**DEGENERATION_DEFAULTS, **degeneration}, generation_seconds=round(seconds, 3))
    report = {"model": args.model, "data": args.data, "split": args.split, "samples": args.samples, **body,
              "settings": settings}
    if args.out and args.save_completions:
        with open(Path(args.out) / "completions.jsonl", "w") as f:
            for s in samples:
                f.write(json.dumps(_json_safe({"prompt_id": s.prompt_id, "group": s.group, "answer": s.answer,
                                               "completion": s.completion, "length": s.length,
                                               "truncated": s.truncated, "correct": s.correct})) + "\n")
    return report


def run(args: argparse.Namespace) -> int:
    """Run ``laconic eval``; returns the exit status (0, or 2 on bad input with one line on stderr)."""
    from rl.config import ConfigError
    from rl.eval.evaluate import to_markdown

    with _library_progress_bars(not args.no_progress):
        try:  # bad input surfaces while setting up; errors after that are bugs and keep their traceback
            setup = _setup(args)
        except (ConfigError, ValueError, FileNotFoundError, OSError, ImportError) as e:
            message = " ".join(str(e).split()) or type(e).__name__
            for key, flag in _FLAGS.items():  # data loading names recipe keys; here they are options
                message = message.replace(f"data.{key}", flag)
            print(f"laconic eval: error: {message}", file=sys.stderr)
            return USAGE_ERROR
        report = evaluate_model(args, setup)
    markdown = to_markdown(report)
    if args.out:
        out = Path(args.out)
        (out / "eval.json").write_text(json.dumps(_json_safe(report), indent=1) + "\n")
        (out / "eval.md").write_text(markdown)
    print(markdown, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rl.eval.cli MODEL ...`` (the same as ``laconic eval MODEL ...``)."""
    parser = argparse.ArgumentParser(prog="laconic")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
