"""Answer verification under load: extraction fuzz, pool vs serial throughput, pathological LaTeX.

Prints one JSON object (timings taken in this one process; run it alone on the machine, e.g.
under ``flock /tmp/laconic-bench.lock``):

* ``extraction``: every degenerate string of :data:`FAMILIES` (lengths log-uniform up to 64k
  characters) through the part of a sample's verification that runs before Math-Verify
  (``extract_answer`` with the last-number fallback + the numeric fast path); worst / median
  seconds per sample for each family and overall. Goal: worst below 0.1 s.
* ``throughput``: ``--completions`` completions in real GSM8K (``#### X``, boxed, "The answer is
  X"; golds from ``../shared/data/gsm8k/test.jsonl`` when present) and MATH (``\\boxed{}`` LaTeX:
  fractions, roots, intervals, sets, pi, expressions) answer formats, right and wrong, verified
  serially in the main thread (``is_correct`` per sample) and by ``verify_batch`` with
  ``--workers`` pool processes; ``ratio`` = serial seconds / pool seconds (pool already started).
* ``pathological``: one ``math_verify_match`` call through the pool per pathological LaTeX answer
  (towers, huge factorials, deep nesting) with ``--timeout``; worst seconds of one call.

    python scripts/bench_verify.py [--strings 2400] [--completions 4096] [--workers 2] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards import verify as V  # noqa: E402

GSM8K_TEST = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
MAX_CHARS = 65536

#: Degenerate completions: family -> (length n -> string of about n characters). The first three
#: are issue 12's reports (newlines; ``\boxed{`` openers; an answer followed by spaces).
FAMILIES: dict[str, Callable[[int, random.Random], str]] = {
    "newlines": lambda n, r: "\n" * n,
    "boxed_openers": lambda n, r: "\\boxed{" * (n // 7),
    "answer_then_spaces": lambda n, r: "The answer is 42" + " " * n + "dollars",
    "spaces": lambda n, r: " " * n,
    "answer_is_then_whitespace": lambda n, r: "The answer is" + r.choice([" ", "\n", " \n"]) * (n // 2),
    "final_answer_then_spaces": lambda n, r: "**Final Answer" + " " * n + "x",
    "markdown_prefix": lambda n, r: "\n" + "*# " * (n // 3) + "x",
    "hashes_then_whitespace": lambda n, r: "####" + " \n" * (n // 2),
    "toy_marker_commas": lambda n, r: "A:" + "," * n,
    "digits": lambda n, r: "1" * n,
    "thousands_chain": lambda n, r: "1" + ",234" * (n // 4) + ",5",
    "dots": lambda n, r: "The answer is 4" + "." * n + "x",
    "backslashes": lambda n, r: "\\" * n,
    "open_braces": lambda n, r: "\\boxed{" + "{" * n,
    "frac_openers": lambda n, r: "\\frac{" * (n // 6),
    "boxed_space_tokens": lambda n, r: "\\boxed " * (n // 7),
    "think_delimiters": lambda n, r: "</think>" * (n // 8),
    "repeated_answers": lambda n, r: "The answer is \\boxed{42}. " * (n // 26),
    "unicode_spaces": lambda n, r: "answer is" + "\u00a0" * n,
    "random_specials": lambda n, r: "".join(r.choice("\\{}$#*:\n .,-0123456789Aanswerisboxed%") for _ in range(n)),
}


def _lengths(count: int, rng: random.Random) -> list[int]:
    """``count`` lengths log-uniform in [64, MAX_CHARS], always including the maximum."""
    return [MAX_CHARS] + [int(2 ** rng.uniform(6, 16)) for _ in range(count - 1)]


def bench_extraction(strings: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    per_family = max(1, -(-strings // len(FAMILIES)))
    out, every = {}, []
    for name, make in FAMILIES.items():
        times = []
        for n in _lengths(per_family, rng):
            text = make(n, rng)[:MAX_CHARS]
            start = time.perf_counter()
            pred = V.extract_answer(text, fallback_last_number=True)
            V._fast_match(pred, "42")
            times.append(time.perf_counter() - start)
        every += times
        out[name] = {"strings": len(times), "worst_s": max(times), "median_s": statistics.median(times)}
    return {"strings": len(every), "max_chars": MAX_CHARS, "worst_s": max(every),
            "median_s": statistics.median(every), "goal_worst_s": 0.1, "families": out}


# ------------------------------------------------------------------------------- throughput

#: MATH-style answers: (gold, an equivalent prediction, a wrong prediction).
MATH_ANSWERS = [
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{3}}{2}"),
    (r"2\sqrt{3}", r"\sqrt{12}", r"3\sqrt{2}"),
    (r"[-2, 5)", r"[-2,5)", r"(-2, 5)"),
    (r"(-\infty, 3]", r"(-\infty,3]", r"(-\infty, 3)"),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", r"\{1, 2\}"),
    (r"6\pi", r"6 \pi", r"3\pi"),
    (r"x^2 + 2x + 1", r"(x+1)^2", r"x^2 + 1"),
    (r"\frac{3}{4}", r"0.75", r"\frac{4}{3}"),
    (r"\dfrac{7}{2}", r"3.5", r"\frac{2}{7}"),
    (r"\sqrt{5} - 1", r"-1 + \sqrt{5}", r"\sqrt{5} + 1"),
    (r"\frac{\pi}{3}", r"\frac{1}{3}\pi", r"\frac{\pi}{6}"),
    (r"2 + 3i", r"3i + 2", r"2 - 3i"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}"),
    (r"\log_2 8", r"3", r"2"),
    (r"y = 2x + 1", r"2x+1", r"2x-1"),
]


def _gsm8k_golds() -> list[str]:
    if not GSM8K_TEST.is_file():
        return [str(n) for n in range(1, 1320)]  # stand-in integers when the data set is absent
    rows = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines() if line.strip()]
    return [V.parse_gold(row["answer"]) for row in rows]


def make_completions(count: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Half GSM8K, half MATH format; half right, half wrong. Returns (completions, golds, kinds)."""
    rng = random.Random(seed)
    golds_gsm8k = _gsm8k_golds()
    completions, golds, kinds = [], [], []
    for i in range(count):
        right = i % 4 < 2
        if i % 2 == 0:
            gold = rng.choice(golds_gsm8k)
            answer = gold if right else str(int(float(gold)) + 1)
            style = rng.choice(["Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### {}",
                                "<think>Let me compute.</think>So the answer is \\boxed{{{}}}.",
                                "<think>3 + 4 = 7</think>The answer is {}."])
            completions.append(style.format(answer))
            kinds.append("gsm8k")
        else:
            gold, same, wrong = rng.choice(MATH_ANSWERS)
            completions.append(f"<think>Work it out.</think>Therefore $\\boxed{{{same if right else wrong}}}$.")
            kinds.append("math")
        golds.append(gold)
    return completions, golds, kinds


def bench_throughput(count: int, workers: int, timeout: float) -> dict:
    completions, golds, kinds = make_completions(count)
    V.POOL.size = workers
    V.verify_batch(completions[:64], golds[:64], timeout=timeout)  # start the workers
    start = time.perf_counter()
    serial = [V.is_correct(c, g, timeout=timeout) for c, g in zip(completions, golds)]
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    pooled = V.verify_batch(completions, golds, timeout=timeout)
    pool_s = time.perf_counter() - start
    need_mv = sum(V._fast_match(V.extract_answer(c, fallback_last_number=True), g) is None
                  for c, g in zip(completions, golds))
    return {
        "completions": count, "gsm8k": kinds.count("gsm8k"), "math": kinds.count("math"),
        "through_math_verify": need_mv, "workers": workers, "serial_s": serial_s, "pool_s": pool_s,
        "ratio": serial_s / pool_s, "serial_per_s": count / serial_s, "pool_per_s": count / pool_s,
        "same_verdicts": serial == pooled, "correct": sum(pooled),
        "gsm8k_source": str(GSM8K_TEST.relative_to(ROOT.parent)) if GSM8K_TEST.is_file() else "stand-in",
    }


#: Pathological answers (pred, gold) for Math-Verify.
PATHOLOGICAL = {
    "power_tower": (r"10^{10^{10}}", "5"),
    "tall_tower": ("2^" * 12 + "2", "7"),
    "huge_factorial": (r"(10^{8})!", "3"),
    "factorial_tower": (r"((5!)!)!", "1"),
    "deep_fracs": (r"\frac{1}{" * 150 + "2" + "}" * 150, "1"),
    "deep_sqrt": (r"\sqrt{" * 250 + "2" + "}" * 250, "2"),
    "long_sum": ("+".join(["x"] * 600), "600x"),
    "big_matrix": (r"\begin{pmatrix}" + r"\\".join(["&".join(["x"] * 25)] * 25) + r"\end{pmatrix}", "0"),
    "huge_power_eq": (r"99999999^{99999999}", r"99999999^{99999998}"),
    "nested_parens": ("(" * 500 + "1" + ")" * 500, "1"),
    "c_level_power": (r"3^{3^{18}}", "5"),  # big-integer C code: Math-Verify's alarm fires late
}


def bench_pathological(timeout: float) -> dict:
    cases = {}
    for name, (pred, gold) in PATHOLOGICAL.items():
        start = time.perf_counter()
        ok = V.math_verify_match(pred, gold, timeout=timeout, isolate=True)
        cases[name] = {"seconds": time.perf_counter() - start, "match": ok}
    worst = max(c["seconds"] for c in cases.values())
    return {"timeout_s": timeout, "bound_s": timeout + V.WORKER_GRACE, "worst_s": worst, "cases": cases}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strings", type=int, default=2400, help="degenerate strings in the extraction fuzz")
    ap.add_argument("--completions", type=int, default=4096, help="completions in the throughput run")
    ap.add_argument("--workers", type=int, default=2, help="verifier pool processes")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds per math_verify item")
    ap.add_argument("--parts", default="extraction,throughput,pathological")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    result: dict = {"machine_cores": len(__import__("os").sched_getaffinity(0))}
    if "extraction" in parts:
        result["extraction"] = bench_extraction(args.strings)
    if "throughput" in parts:
        result["throughput"] = bench_throughput(args.completions, args.workers, args.timeout)
    if "pathological" in parts:
        result["pathological"] = bench_pathological(args.timeout)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
