#!/usr/bin/env python
"""Pick a task for SmolLM2-135M-Instruct: pass@1 and mean tokens of the untrained model on
task/prompt variants, each evaluated as ``laconic eval`` would (one vLLM engine shared by all).

A task worth training for concise reasoning is neither hopeless nor saturated (pass@1 about
20-60 %) and has completions long enough to compress. Prints one JSON line per variant.

    OMP_NUM_THREADS=1 python scripts/smollm2_probe.py --num-examples 128 --samples 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

STEP = "{question}\nThink step by step, then end with: The answer is <number>."
BRIEF = "{question}\nAnswer briefly and end with: The answer is <number>."
SHOW = "{question}\nShow your work, then end with: The answer is <number>."
PLAIN = "What is {question}?\n"
WIDE = {"min_value": 2, "max_value": 30, "max_operands": 3, "split_by": "sum"}  # 2-3 numbers up to 30
TWO_DIGIT = {"min_value": 2, "max_value": 40, "split_by": "sum"}  # 2 numbers up to 40
VARIANTS = {  # name: (data, prompt template, task options); builtin:sums defaults: 2 digits 1-9, word problems
    "word-2to3-step": ("builtin:sums", STEP, WIDE),
    "word-2to3-brief": ("builtin:sums", BRIEF, WIDE),
    "plain-2-step": ("builtin:sums", PLAIN + STEP[len("{question}\n"):], {**TWO_DIGIT, "phrasing": "plain"}),
    "plain-2-brief": ("builtin:sums", PLAIN + BRIEF[len("{question}\n"):], {**TWO_DIGIT, "phrasing": "plain"}),
    "plain-2-show": ("builtin:sums", PLAIN + SHOW[len("{question}\n"):], {**TWO_DIGIT, "phrasing": "plain"}),
    "word-2-step": ("builtin:sums", STEP, TWO_DIGIT),
    "word-2-show": ("builtin:sums", SHOW, TWO_DIGIT),
    "word-digits-step": ("builtin:sums", STEP, {}),
    "word-digits-show": ("builtin:sums", SHOW, {}),
    "word-digits-brief": ("builtin:sums", BRIEF, {}),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:smollm2")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--num-examples", type=int, default=128)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--out", default=None, help="directory: <variant>/eval.json and completions.jsonl each")
    a = p.parse_args(argv)

    from rl.config import DataConfig
    from rl.data import load_prompts
    from rl.eval import cli as eval_cli

    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    setup = None
    for name in a.variants.split(","):
        data, template, options = VARIANTS[name]
        args = parser.parse_args(["eval", a.model, "--data", data, "--num-examples", str(a.num_examples),
                                  "--samples", str(a.samples), "--max-new-tokens", str(a.max_new_tokens),
                                  "--temperature", str(a.temperature), "--backend", "vllm", "--dtype", a.dtype,
                                  "--prompt-template", template, "--delimiter", "none", "--no-progress",
                                  "--batch-size", "512", *(["--out", os.path.join(a.out, name), "--save-completions"]
                                                            if a.out else [])])
        if setup is None:
            setup = eval_cli._setup(args)
        dcfg = DataConfig(name=data, split="test", prompt_template=template, chat_template="auto",
                          num_examples=a.num_examples, delimiter=None, task_kwargs=options)
        setup = {**setup, "prompts": load_prompts(dcfg, setup["tokenizer"], seed=args.seed), "data_cfg": dcfg}
        if a.out:
            os.makedirs(os.path.join(a.out, name), exist_ok=True)
        t0 = time.perf_counter()
        report = eval_cli.evaluate_model(args, setup)
        if a.out:
            with open(os.path.join(a.out, name, "eval.json"), "w") as f:
                json.dump(eval_cli._json_safe({**report, "variant": name, "task_kwargs": options}), f, indent=1)
        by = {d: (h["pass@1"], h["mean_tokens"]) for d, h in report["by_difficulty"].items()}
        print(json.dumps({"variant": name, "pass@1": report["pass@1"], "mean_tokens": report["mean_tokens"],
                          "truncation_rate": report["truncation_rate"], "seconds": round(time.perf_counter() - t0, 1),
                          "by_difficulty_pass@1_tokens": by}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
