"""Answer verification under load: extraction fuzz, pool vs serial throughput, pathological LaTeX.

Prints one JSON object (timings taken in this one process; run it alone on the machine, e.g.
under ``flock /tmp/laconic-bench.lock``):

* ``extraction``: every degenerate string of :data:`FAMILIES` (lengths log-uniform up to 64k
  characters) through the part of a sample's verification that runs before Math-Verify
  (``extract_answer`` with the last-number fallback + the numeric fast path); worst / median
  wall seconds per sample for each family and overall, and the worst CPU seconds (on a loaded
  machine a wall-clock outlier may be time spent descheduled). Goal: worst below 0.1 s.
* ``throughput``: ``--completions`` completions in real GSM8K (``#### X``, boxed, "The answer is
  X"; golds from ``--gsm8k FILE``, a local GSM8K test split, when given) and MATH (``\\boxed{}`` LaTeX
  with random parameters: integers, fractions, roots, intervals, sets, pi, polynomials, complex
  numbers) answer formats, half right, half wrong, verified serially in the main thread
  (``is_correct`` per sample) and by ``verify_batch`` with ``--workers`` pool processes, in
  lockstep chunks; ``ratio`` = serial seconds / pool seconds (both sides warmed up first).
  ``cpu_bound_ratio`` = serial CPU seconds / max(parent CPU, worker CPU / workers): the ratio
  when every worker has a core of its own. On a shared machine the wall ratio can be far lower:
  with Linux's autogroup scheduling one session (the bench and its workers) gets one share of
  the CPUs however many processes it runs.
* ``pathological``: one ``math_verify_match`` call through the pool per pathological LaTeX answer
  (towers, huge factorials, deep nesting) with ``--timeout``; worst seconds of one call.

    python scripts/bench_verify.py [--strings 2400] [--completions 4096] [--workers 2] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards import verify as V  # noqa: E402

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
        wall, cpu = [], []
        for n in _lengths(per_family, rng):
            text = make(n, rng)[:MAX_CHARS]
            start, start_cpu = time.perf_counter(), time.process_time()
            pred = V.extract_answer(text, fallback_last_number=True)
            V._fast_match(pred, "42")
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        every += list(zip(wall, cpu))
        out[name] = {"strings": len(wall), "worst_s": max(wall), "median_s": statistics.median(wall),
                     "worst_cpu_s": max(cpu)}
    return {"strings": len(every), "max_chars": MAX_CHARS, "goal_worst_s": 0.1,
            "worst_s": max(w for w, _ in every), "median_s": statistics.median(w for w, _ in every),
            "worst_cpu_s": max(c for _, c in every), "families": out,
            "load_average": os.getloadavg()}


# ------------------------------------------------------------------------------- throughput

def _math_answer(rng: random.Random) -> tuple[str, str, str]:
    """A MATH-style ``(gold, equivalent prediction, wrong prediction)`` with random parameters, so
    that no cache of Math-Verify/SymPy sees the same string twice (few repeats in 4k completions)."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 99)
    kind = rng.randrange(10)
    if kind == 0:  # integer (fast path)
        return str(a * b), f"{a * b}", f"{a * b + 1}"
    if kind == 1:  # fraction (fast path)
        return rf"\frac{{{a}}}{{{a + b}}}", rf"\dfrac{{{2 * a}}}{{{2 * (a + b)}}}", rf"\frac{{{a + b}}}{{{a}}}"
    if kind == 2:  # radical
        return rf"{a}\sqrt{{{b}}}", rf"\sqrt{{{a * a * b}}}", rf"{a}\sqrt{{{b + 1}}}"
    if kind == 3:  # radical over an integer
        return rf"\frac{{{a}\sqrt{{{b}}}}}{{{c}}}", rf"\frac{{{a}}}{{{c}}}\sqrt{{{b}}}", rf"\frac{{{a}\sqrt{{{b}}}}}{{{c + 1}}}"
    if kind == 4:  # interval
        return rf"[-{a}, {b})", rf"[-{a},{b})", rf"(-{a}, {b})"
    if kind == 5:  # multiple of pi
        return rf"\frac{{{a}\pi}}{{{b}}}", rf"\frac{{{a}}}{{{b}}}\pi", rf"\frac{{{a + 1}\pi}}{{{b}}}"
    if kind == 6:  # polynomial
        return rf"x^2 + {a + b}x + {a * b}", rf"(x+{a})(x+{b})", rf"(x+{a})(x-{b})"
    if kind == 7:  # set
        return rf"\{{{a}, {a + b}, {a + b + c}\}}", rf"\{{{a + b + c}, {a}, {a + b}\}}", rf"\{{{a}, {a + b}\}}"
    if kind == 8:  # complex number
        return rf"{a} + {b}i", rf"{b}i + {a}", rf"{a} - {b}i"
    return rf"{a} + \sqrt{{{b}}}", rf"\sqrt{{{b}}} + {a}", rf"{a} - \sqrt{{{b}}}"  # sum with a radical


def _gsm8k_golds(path: str | None) -> list[str]:
    if not path:
        return [str(n) for n in range(1, 1320)]  # stand-in integers without a GSM8K file
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [V.parse_gold(row["answer"]) for row in rows]


def make_completions(count: int, seed: int = 0, gsm8k: str | None = None) -> tuple[list[str], list[str], list[str]]:
    """Half GSM8K, half MATH format; half right, half wrong. Returns (completions, golds, kinds)."""
    rng = random.Random(seed)
    golds_gsm8k = _gsm8k_golds(gsm8k)
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
            gold, same, wrong = _math_answer(rng)
            completions.append(f"<think>Work it out.</think>Therefore $\\boxed{{{same if right else wrong}}}$.")
            kinds.append("math")
        golds.append(gold)
    return completions, golds, kinds


def _workers_cpu() -> float:
    """CPU seconds used so far by the pool's worker processes: the live ones from Linux's ``/proc``,
    the killed (and reaped) ones from ``getrusage(RUSAGE_CHILDREN)``."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    for slot in V.POOL._slots:
        try:
            fields = Path(f"/proc/{slot.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def bench_throughput(count: int, workers: int, timeout: float, gsm8k: str | None = None, rounds: int = 8) -> dict:
    """Serial and pool in lockstep: ``rounds`` chunks, each timed on both sides (alternating which
    goes first), so load changes on a shared machine hit both alike."""
    completions, golds, kinds = make_completions(count, gsm8k=gsm8k)
    warm_c, warm_g, _ = make_completions(128, seed=1)
    V.POOL.size = workers
    V.verify_batch(warm_c, warm_g, timeout=timeout)  # start the workers, import everything
    [V.is_correct(c, g, timeout=timeout) for c, g in zip(warm_c, warm_g)]
    serial, pooled, serial_s, pool_s, cpu = [], [], 0.0, 0.0, {"serial": 0.0, "parent": 0.0, "workers": 0.0}
    size = -(-count // rounds)
    for r in range(rounds):
        chunk = slice(r * size, (r + 1) * size)
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            start, start_cpu = time.perf_counter(), time.process_time()
            if side == 0:
                serial += [V.is_correct(c, g, timeout=timeout) for c, g in zip(completions[chunk], golds[chunk])]
                serial_s += time.perf_counter() - start
                cpu["serial"] += time.process_time() - start_cpu
            else:
                workers_before = _workers_cpu()
                pooled += V.verify_batch(completions[chunk], golds[chunk], timeout=timeout)
                pool_s += time.perf_counter() - start
                cpu["parent"] += time.process_time() - start_cpu
                cpu["workers"] += _workers_cpu() - workers_before
    need_mv = sum(V._fast_match(V.extract_answer(c, fallback_last_number=True), g) is None
                  for c, g in zip(completions, golds))
    differ = [i for i, (a, b) in enumerate(zip(serial, pooled)) if a != b]
    return {
        "load_average_end": os.getloadavg(),
        "completions": count, "gsm8k": kinds.count("gsm8k"), "math": kinds.count("math"),
        "through_math_verify": need_mv, "workers": workers, "timeout_s": timeout, "rounds": rounds,
        "serial_s": serial_s, "pool_s": pool_s, "ratio": serial_s / pool_s,
        "serial_per_s": count / serial_s, "pool_per_s": count / pool_s,
        "cpu_s": cpu, "cpu_bound_ratio": cpu["serial"] / max(cpu["parent"], cpu["workers"] / workers),
        "correct_serial": sum(serial), "correct_pool": sum(pooled), "expected_correct": count // 2,
        "verdicts_differ": len(differ),
        "differing": [(completions[i][-60:], golds[i], serial[i], pooled[i]) for i in differ[:5]],
        "gsm8k_source": gsm8k or "stand-in",
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
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per math_verify item (throughput)")
    ap.add_argument("--pathological-timeout", type=float, default=2.0, help="seconds per pathological call")
    ap.add_argument("--parts", default="extraction,throughput,pathological")
    ap.add_argument("--gsm8k", default=None, help="a GSM8K test.jsonl whose golds to use (default: stand-in integers)")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    result: dict = {"machine_cores": len(os.sched_getaffinity(0))}
    if "extraction" in parts:
        result["extraction"] = bench_extraction(args.strings)
    if "throughput" in parts:
        result["throughput"] = bench_throughput(args.completions, args.workers, args.timeout, args.gsm8k)
    if "pathological" in parts:
        result["pathological"] = bench_pathological(args.pathological_timeout)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
