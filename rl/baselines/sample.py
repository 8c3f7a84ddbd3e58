"""``laconic sample MODEL --data DATA --samples K --out DIR``: the data of the length baselines.

Samples K completions per prompt with ``laconic eval``'s options, data loading, engines and
verifier (:mod:`rl.eval.cli`: the same flags, seeded by ``--seed``; the split defaults to ``train``),
counts tokens and marks truncated completions (never correct). Writes into ``DIR``:

``samples.jsonl``      every completion: ``prompt_id, sample_index, prompt, question, answer,
                       completion, length, correct, truncated, degenerate``
``sft.jsonl``          per prompt the shortest correct, untruncated completion (ties: the first
                       sampled; prompts without one are dropped): rejection-sampling SFT (Kimi k1.5,
                       arXiv 2501.12599 §2.4; arXiv 2502.20122; TOPS arXiv 2502.18080; O1-Pruner's
                       SFT-shortest baseline)
``pairs_<rule>.jsonl`` preference pairs ``prompt, chosen, rejected`` for each ``--pairs`` rule:
                       ``kimi`` (Kimi k1.5's long2short DPO), ``tops`` (TOPS's Iter-DPO),
                       ``shortest_longest`` (:mod:`rl.baselines.select` has the definitions)
``sample.json``        the settings, the counts and the start policy's numbers on these prompts

Rows are TRL's formats (``datasets.load_dataset("json", data_files=...)`` reads them): by default
``prompt`` is the exact text the model was sampled from (prompt template and chat template
applied) and ``completion`` / ``chosen`` / ``rejected`` the completion text (TRL appends EOS).
``--conversational`` writes TRL's conversational prompt-completion format instead: ``prompt`` a
list of messages (system, user) and the completion an assistant message; TRL then applies the
chat template itself. It is checked to reproduce the sampled prompt, and refused when the template
drops part of a completion (DeepSeek-R1's removes the reasoning before ``</think>`` from assistant
turns). A ``messages`` column (TRL's language-modelling format) is not written: TRL's loss would
then cover the prompt too, unless the template marks assistant tokens (``{% generation %}``).

An existing sample in ``DIR`` is never overwritten silently: ``--overwrite`` replaces it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rl.baselines.select import KIMI_RATIO, PAIR_RULES, Candidate, select_pairs, shortest_correct
from rl.eval import cli as eval_cli

SAMPLE_FILES = ("samples.jsonl", "sft.jsonl", "sample.json")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``sample`` sub-command: ``laconic eval``'s options (shared, not copied) plus its own."""
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    base = eval_cli.add_parser(scratch)
    p = subparsers.add_parser(
        "sample", parents=[base], conflict_handler="resolve",
        help="sample K completions per prompt and write SFT rows and preference pairs (baselines)",
        description="Sample --samples completions per prompt (laconic eval's sampler and verifier), then write "
                    "samples.jsonl, sft.jsonl (shortest correct per prompt) and pairs_<rule>.jsonl into --out.",
        epilog="train on them: laconic baseline recipes/baselines/toy_sft_shortest.yaml",
    )
    p.set_defaults(split="train", samples=8, func=run)
    helps = {"split": "dataset split (default train)",
             "samples": "completions per prompt (default 8, Kimi k1.5's n; O1-Pruner: 16)"}
    for action in p._actions:  # eval's defaults that differ here, as --help shows them
        action.help = helps.get(action.dest, action.help)
    o = p.add_argument_group("baseline data")
    o.add_argument("--out", required=True, metavar="DIR",
                   help="write samples.jsonl, sft.jsonl, pairs_<rule>.jsonl and sample.json here")
    o.add_argument("--overwrite", action="store_true", help="replace a sample already in --out")
    o.add_argument("--pairs", default=",".join(PAIR_RULES), metavar="RULES",
                   help=f"comma-separated pair rules, each written to pairs_<rule>.jsonl (default {','.join(PAIR_RULES)})")
    o.add_argument("--kimi-ratio", type=float, default=KIMI_RATIO,
                   help=f"kimi: a correct response is rejected when L >= ratio * L_w (default {KIMI_RATIO})")
    o.add_argument("--max-pairs-per-prompt", type=int, default=None, metavar="N",
                   help="keep the first N pairs of each prompt (default: all)")
    o.add_argument("--conversational", action="store_true",
                   help="TRL's conversational rows (prompt: messages; completion: an assistant message); "
                        "needs the chat template in use")
    o.add_argument("--save-completions", action="store_true", help=argparse.SUPPRESS)  # samples.jsonl is always written
    return p


def _rules(text: str) -> list[str]:
    rules = [r.strip() for r in text.split(",") if r.strip()]
    for r in rules:
        if r not in PAIR_RULES:
            from rl.config.schema import closest

            raise eval_cli.UsageError(f"--pairs: unknown rule '{r}' (known: {', '.join(PAIR_RULES)})"
                                      + closest(r, list(PAIR_RULES)))
    return list(dict.fromkeys(rules))


def existing(out: Path) -> list[Path]:
    """The files of a previous sample in ``out``."""
    if not out.is_dir():
        return []
    return sorted([out / f for f in SAMPLE_FILES if (out / f).exists()] + list(out.glob("pairs_*.jsonl")))


def _check(args: argparse.Namespace) -> list[str]:
    """Bad options and an occupied ``--out``, before any model is loaded; the pair rules."""
    rules = _rules(args.pairs)
    if args.max_pairs_per_prompt is not None and args.max_pairs_per_prompt < 1:
        raise eval_cli.UsageError(f"--max-pairs-per-prompt must be >= 1, got {args.max_pairs_per_prompt}")
    if not args.kimi_ratio >= 1:
        raise eval_cli.UsageError(f"--kimi-ratio must be >= 1, got {args.kimi_ratio}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise eval_cli.UsageError(f"--out {out} is a file, not a directory")
    old = existing(out)
    if old and not args.overwrite:
        names = ", ".join(p.name for p in old)
        raise eval_cli.UsageError(f"--out {out} already holds a sample ({names}): pick another --out, or replace "
                                  "it with --overwrite")
    args.save_completions = False
    return rules


def _messages(prompt, dcfg) -> list[dict[str, str]]:
    body = dcfg.prompt_template.format(**{**prompt.meta, "question": prompt.question})
    return ([{"role": "system", "content": dcfg.system_prompt}] if dcfg.system_prompt else []) + [
        {"role": "user", "content": body}]


def conversational_prompts(prompts, dcfg, tokenizer) -> dict[str, list[dict[str, str]]]:
    """Each prompt id's messages, checked to render to the very text that was sampled from."""
    from rl.data import use_chat_template

    if not use_chat_template(tokenizer, dcfg.chat_template):
        raise eval_cli.UsageError("--conversational needs the chat template in use (the tokenizer has none, or "
                                  "--chat-template off)")
    if dcfg.chat_template_kwargs:
        raise eval_cli.UsageError("--conversational with --chat-template-kwargs: TRL would render the prompts without "
                                  "them; write text rows (drop --conversational)")
    out = {}
    for p in prompts:
        messages = _messages(p, dcfg)
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if text != p.text:
            raise eval_cli.UsageError(f"--conversational: prompt {p.id} renders differently from the text sampled from "
                                      "(a length budget or a template column not kept): write text rows")
        out[p.id] = messages
    _check_keeps_completion(tokenizer, next(iter(out.values())), dcfg.delimiter)
    return out


def _check_keeps_completion(tokenizer, messages, delimiter: str | None) -> None:
    """A made-up completion (reasoning, the delimiter, an answer) must survive the chat template whole."""
    completion = f"Let me think about it step by step.{delimiter or ''}The answer is 42."
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": completion}], tokenize=False)
    if completion not in full:
        raise eval_cli.UsageError("--conversational: the chat template drops part of the completion from an assistant "
                                  "turn (DeepSeek-R1's removes the reasoning before </think>), so TRL would not "
                                  "train on it: write text rows (drop --conversational)")


def build_rows(samples, k: int, rules: list[str], ratio: float = KIMI_RATIO, max_pairs: int | None = None,
               messages: dict[str, list[dict[str, str]]] | None = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The raw rows, the SFT rows and the pairs of each rule from ``samples`` (``rewards.base.Sample``,
    prompt-major, ``k`` per prompt, in sampled order). ``messages``: a prompt id's messages for
    conversational rows (None: text rows)."""
    raw, sft, pairs = [], [], {r: [] for r in rules}

    def prompt_of(s):
        return messages[s.prompt_id] if messages is not None else s.prompt

    def completion_of(text: str):
        return [{"role": "assistant", "content": text}] if messages is not None else text

    for start in range(0, len(samples), k):
        group = samples[start : start + k]
        cands = [Candidate(s.length, bool(s.correct) and not s.truncated, bool(s.truncated)) for s in group]
        for j, (s, c) in enumerate(zip(group, cands)):
            raw.append({"prompt_id": s.prompt_id, "sample_index": j, "prompt": s.prompt, "answer": s.answer, "completion": s.completion, "length": s.length, "correct": c.correct,
                        "truncated": c.truncated, **({"meta": s.meta} if s.meta else {})})
        w = shortest_correct(cands)
        if w is not None:
            sft.append({"prompt": prompt_of(group[w]), "completion": completion_of(group[w].completion),
                        "prompt_id": group[w].prompt_id, "sample_index": w, "length": group[w].length})
        for rule in rules:
            for a, b in select_pairs(rule, cands, max_pairs, ratio):
                pairs[rule].append({"prompt": prompt_of(group[a]), "chosen": completion_of(group[a].completion),
                                    "rejected": completion_of(group[b].completion), "prompt_id": group[a].prompt_id,
                                    "chosen_length": group[a].length, "rejected_length": group[b].length,
                                    "rejected_correct": cands[b].correct, "rejected_truncated": cands[b].truncated})
    return raw, sft, pairs


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(eval_cli._json_safe(r), ensure_ascii=False) + "\n")
    tmp.replace(path)


def sample(args: argparse.Namespace, rules: list[str], setup: dict[str, Any],
           messages: dict[str, list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """Generate, verify, select and write; returns ``sample.json``'s content. ``messages``: each prompt
    id's messages for ``--conversational`` rows (:func:`conversational_prompts`)."""
    from rl.eval.evaluate import eval_report
    from rl.eval.metrics import DEGENERATION_DEFAULTS, is_degenerate
    from rl.facts import make_samples

    dcfg, tokenizer, prompts = setup["data_cfg"], setup["tokenizer"], setup["prompts"]
    greedy = args.temperature == 0
    if greedy and args.samples > 1:
        print("laconic sample: warning: --temperature 0 repeats one completion --samples times: no pairs differ",
              file=sys.stderr)
    t0 = time.perf_counter()
    rollouts = eval_cli._generate(setup["engine"], prompts, args, greedy)
    seconds = time.perf_counter() - t0
    samples = make_samples(rollouts, prompts, 0, tokenizer, delimiter=dcfg.delimiter)
    for s, r in zip(samples, rollouts):
        s.completion_ids = list(r.completion_ids)
    raw, sft, pairs = build_rows(samples, args.samples, rules, args.kimi_ratio, args.max_pairs_per_prompt, messages)
    degeneration = {"ngram": args.degeneration_ngram, "threshold": args.degeneration_threshold}
    by_id = {p.id: p for p in prompts}
    for row, s in zip(raw, samples):
        row["question"] = by_id[s.prompt_id].question
        row["degenerate"] = is_degenerate(s, **degeneration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in existing(out):  # --overwrite (checked before): no stale rule file is left behind
        old.unlink()
    _write_jsonl(out / "samples.jsonl", raw)
    _write_jsonl(out / "sft.jsonl", sft)
    for rule, rows in pairs.items():
        _write_jsonl(out / f"pairs_{rule}.jsonl", rows)
    report = eval_report(samples, args.samples, delimiter=dcfg.delimiter, source_key=args.source_column,
                         degeneration=degeneration, per_prompt=False)
    n_prompts = len(prompts)
    correct = sum(r["correct"] for r in raw)
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    settings.update(model_path=setup["path"], prompt_template=dcfg.prompt_template, chat_template=dcfg.chat_template,
                    system_prompt=dcfg.system_prompt, delimiter=dcfg.delimiter, greedy=greedy,
                    device=setup["device"], degeneration={**DEGENERATION_DEFAULTS, **degeneration},
                    generation_seconds=round(seconds, 3), format="conversational" if messages is not None else "text")
    info = {
        "model": args.model, "data": args.data, "split": args.split, "samples": args.samples,
        "counts": {"prompts": n_prompts, "completions": len(raw), "correct": correct,
                   "truncated": sum(r["truncated"] for r in raw), "sft_rows": len(sft),
                   "dropped_prompts": n_prompts - len(sft), **{f"pairs_{r}": len(v) for r, v in pairs.items()}},
        "start": {"accuracy": correct / max(len(raw), 1),
                  **{k: report[k] for k in ("mean_tokens", "median_tokens", "p90_tokens", "truncation_rate",
                                            "degeneration_rate", "pass@k")}},
        "sft_mean_tokens": sum(r["length"] for r in sft) / len(sft) if sft else None,
        "files": ["samples.jsonl", "sft.jsonl", *[f"pairs_{r}.jsonl" for r in pairs]],
        "settings": settings,
    }
    (out / "sample.json").write_text(json.dumps(eval_cli._json_safe(info), indent=1) + "\n")
    return info


def summary_lines(info: dict[str, Any]) -> list[str]:
    c, s = info["counts"], info["start"]
    lines = [f"{c['prompts']} prompts x {info['samples']} samples: accuracy {s['accuracy']:.3f} (truncated never "
             f"correct), mean tokens {s['mean_tokens']:.1f}, truncated {c['truncated']}",
             f"sft.jsonl: {c['sft_rows']} rows (shortest correct; {c['dropped_prompts']} prompts without a correct "
             "sample dropped)" + (f", mean tokens {info['sft_mean_tokens']:.1f}" if info["sft_mean_tokens"] else "")]
    lines += [f"pairs_{k[6:]}.jsonl: {v} pairs" for k, v in c.items() if k.startswith("pairs_")]
    return lines


def run(args: argparse.Namespace) -> int:
    """Run ``laconic sample``; 0, or 2 with one line on stderr for bad input."""
    from rl.config import ConfigError

    with eval_cli._library_progress_bars(not args.no_progress):
        try:
            rules = _check(args)
            setup = eval_cli._setup(args)
            messages = (conversational_prompts(setup["prompts"], setup["data_cfg"], setup["tokenizer"])
                        if args.conversational else None)
        except (ConfigError, ValueError, FileNotFoundError, OSError, ImportError) as e:
            message = " ".join(str(e).split()) or type(e).__name__
            for key, flag in eval_cli._FLAGS.items():
                message = message.replace(f"data.{key}", flag)
            print(f"laconic sample: error: {message}", file=sys.stderr)
            return eval_cli.USAGE_ERROR
        info = sample(args, rules, setup, messages)  # errors from here on are bugs: they keep their traceback
    for line in summary_lines(info):
        print(line)
    print(f"written to {args.out}")
    return 0
