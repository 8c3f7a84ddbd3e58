"""Accuracy of the toy-think model by difficulty when it is forced to write 0, 1, 2 or 4 re-checks.

The toy's premise, measured before any RL (rl/models/toy_think.py): on hard problems (4-5 operands)
re-checking raises accuracy, on 2-operand problems it does not. Prints JSON rows (one per operand
count x forced re-checks) and a markdown table; ``--png`` draws the curves.

    python scripts/toy_think_curve.py                        # builds builtin:toy-think if missing
    python scripts/toy_think_curve.py --model runs/x/final --problems 100 --png curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl.models.toy_build import ensure_toy
from rl.models.toy_think import forced_check_curve  # noqa: E402


def markdown(rows: list[dict]) -> str:
    checks = sorted({r["checks"] for r in rows})
    head = "| operands | " + " | ".join(f"{k} re-checks" for k in checks) + " | gain 0 → 2 |"
    lines = [head, "|" + " --- |" * (len(checks) + 2)]
    for n in sorted({r["operands"] for r in rows}):
        acc = {r["checks"]: r["accuracy"] for r in rows if r["operands"] == n}
        cells = [f"{acc[k] * 100:.1f} %" for k in checks]
        gain = f"{(acc[2] - acc[0]) * 100:+.1f} pt" if 0 in acc and 2 in acc else "–"
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for n in sorted({r["operands"] for r in rows}):
        pts = sorted((r["checks"], r["accuracy"] * 100) for r in rows if r["operands"] == n)
        ax.plot(*zip(*pts), marker="o", label=f"{n} operands")
    ax.set_xticks(sorted({r["checks"] for r in rows}))
    ax.set_xlabel("re-checks forced at sampling time")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("toy-think before RL: re-checking pays on hard problems")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model directory (default: builtin:toy-think, built if missing)")
    p.add_argument("--problems", type=int, default=100, help="problems per operand count (default 100)")
    p.add_argument("--samples", type=int, default=4, help="samples per problem (default 4)")
    p.add_argument("--checks", default="0,1,2,4")
    p.add_argument("--operands", default="2,3,4,5")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default=None, help="also draw the curves here")
    p.add_argument("--out", default=None, help="also write the JSON rows here")
    args = p.parse_args(argv)
    model = args.model or str(ensure_toy(variant="think"))
    start = time.perf_counter()
    rows = forced_check_curve(model, checks=tuple(int(k) for k in args.checks.split(",")),
                              operands=tuple(int(n) for n in args.operands.split(",")), problems=args.problems,
                              samples=args.samples, temperature=args.temperature, seed=args.seed)
    result = {"model": model, "problems": args.problems, "samples": args.samples,
              "temperature": args.temperature, "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    print(json.dumps(result, indent=1))
    print(markdown(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.png:
        plot(rows, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
