#!/usr/bin/env python
"""One-step-off generation (``rollout.async_mode: one_step_off``) against synchronous steps in server
mode, with ``laconic serve`` and the trainer sharing this machine's cores; prints one JSON object.

Setting: SmolLM2-135M-Instruct + ``builtin:sums`` from the untrained start (recipes/smollm2/sums.yaml with
``rollout.max_new_tokens=256``, the untrained model's long tail), ``laconic serve`` on loopback with
vLLM in bf16 (the recipe's sampler dtype). Each configuration is a fresh server and a fresh
``laconic train`` run of ``--steps`` steps, one after the other, never two at once:

- ``sync S/T``: synchronous steps, the server with S OMP threads and the trainer with T. The two never
  compute at the same time, so each may use every core (S = T = 2 on 2 cores is the best split).
- ``async S/T``: one-step-off, server and trainer computing at the same time; S + T = the cores is the
  split without oversubscription.

From each run's metrics.jsonl (step 1 excluded: warm-up, and in one-step-off mode the one step that
cannot overlap): mean time per step and its parts (generate, wait, update, sync), steps per hour.
``model`` applies docs/long_tails.md's overlap model to the measured parts: with the synchronous
G and U at the full thread count and the async run's G and U at its split, the predicted async step is
max(G_split, U_split) + S. Holds ``/tmp/laconic-bench.lock`` while it runs.

    python scripts/bench_one_step_off.py --steps 6            # sync 2/2, sync 1/1, async 1/1
    python scripts/bench_one_step_off.py --configs async:2/2  # one configuration
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-one-step-off"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--configs", default="sync:2/2,sync:1/1,async:1/1",
                   help="comma-separated MODE:SERVER_THREADS/TRAINER_THREADS, MODE sync or async")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path: str, threads: int, log: Path, dtype: str = "bfloat16",
                 kv_bytes: int = 1 << 30) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "rl.cli", "serve", model_path, "--port", str(port), "--api-key", KEY,
           "--dtype", dtype, "--kv-cache-memory-bytes", str(kv_bytes), "--max-num-seqs", "64"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(2)
    stop(proc)
    raise SystemExit(f"laconic serve did not come up; its log:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def summarise(rows: list[dict]) -> dict:
    def mean(key):
        return statistics.fmean(r.get(key, 0.0) for r in rows)

    step = mean("time/step")
    return {"steps_measured": len(rows), "step_seconds": step, "steps_per_hour": 3600 / step,
            **{k.split("/")[1] + "_seconds": mean(k)
               for k in ("time/generate", "time/wait", "time/update", "time/sync", "time/score",
                         "time/generate_overlapped")},
            "tokens_mean": mean("tokens/mean"), "accuracy": mean("accuracy"),
            "offpolicy_token_share": mean("offpolicy/token_share")}


def run(args, model_path: str, mode: str, server_threads: int, trainer_threads: int, tmp: Path) -> dict:
    name = f"{mode}_{server_threads}_{trainer_threads}"
    proc, url = start_server(model_path, server_threads, tmp / f"{name}.server.log")
    out = tmp / name
    cmd = [sys.executable, "-m", "rl.cli", "train", str(ROOT / "recipes" / "smollm2" / "sums.yaml"),
           f"train.output_dir={out}", f"train.max_steps={args.steps}", "train.save_every=0",
           f"rollout.max_new_tokens={args.max_new_tokens}", "train.log_completions=0",
           "rollout.engine=vllm-server", f"rollout.vllm_server_urls=[{url}]",
           *(["rollout.async_mode=one_step_off"] if mode == "async" else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(trainer_threads), "VLLM_API_KEY": KEY}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        stop(proc)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"mode": mode, "server_threads": server_threads, "trainer_threads": trainer_threads,
            "wall_seconds": time.perf_counter() - t0, **summarise(rows[1:])}


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from rl.config.schema import ModelConfig
    from rl.models.load import resolve_model_path

    model_path = str(resolve_model_path(ModelConfig(name_or_path="builtin:smollm2")))
    lock = open("/tmp/laconic-bench.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    load0 = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs.split(","):
            mode, threads = spec.split(":")
            s, t = (int(x) for x in threads.split("/"))
            results.append(run(args, model_path, mode, s, t, Path(tmp)))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    out = {"cores": os.cpu_count(), "steps": args.steps, "max_new_tokens": args.max_new_tokens, "runs": results}
    syncs = [r for r in results if r["mode"] == "sync"]
    if syncs:
        best = min(syncs, key=lambda r: r["step_seconds"])
        out["best_sync"] = f"{best['server_threads']}/{best['trainer_threads']}"
        for r in results:
            if r["mode"] == "async":
                key = f"async_{r['server_threads']}_{r['trainer_threads']}"
                out[f"{key}_speedup_vs_best_sync"] = best["step_seconds"] / r["step_seconds"]
                same = [s for s in syncs if (s["server_threads"], s["trainer_threads"])
                        == (r["server_threads"], r["trainer_threads"])]
                if same:  # the overlap model: parts measured synchronously at the async run's split
                    g, u, sy = same[0]["generate_seconds"], same[0]["update_seconds"], same[0]["sync_seconds"]
                    out[f"{key}_model"] = {"predicted_step_seconds": max(g, u) + sy,
                                           "measured_step_seconds": r["step_seconds"],
                                           "generate_over_update": g / u}
    out["loadavg_start_end"] = [load0[0], os.getloadavg()[0]]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
