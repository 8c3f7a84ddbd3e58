"""The planner (rl/run/plan.py) against measured peak memory of the policy update on CPU; prints JSON.

    OMP_NUM_THREADS=1 flock /tmp/laconic-bench.lock python scripts/bench_plan.py [--only NAME ...] [--markdown]

Each configuration runs in a fresh process (``--one NAME``): it builds a randomly initialised
model from its shapes (no download; SmolLM2-135M's shapes are the real model's), synthetic
rollouts (prompts of ``prompt`` tokens, left-padded, completions of ``completion`` tokens, one
row 1/4 shorter), and runs ``rl.train.update.update_policy`` twice on one CPU process (the trainer's
own update, AdamW, KL reference when ``kl``), each one optimizer step over ``rows`` rollouts in
micro-batches of ``micro`` rows (``micro < rows``: gradients accumulate over the micro-batches).
The first update allocates AdamW's moments; before the second one the kernel's peak-RSS counter is
reset (``/proc/self/clear_refs``, 5) and read after it (``VmHWM``). ``MALLOC_MMAP_THRESHOLD_``
makes large buffers mmap'ed, so freed memory leaves RSS at once.

- ``measured``: peak RSS during the second update minus the RSS before the model was built;
  ``predicted``: :meth:`rl.run.plan.Plan.update_peak` (weights, gradients, AdamW, reference,
  activations, logits chunk) for the same recipe on ``device="cpu"``, with the same micro-batch
  split (one GPU, ``rows`` rollouts a step, ``train.micro_batch_size = micro``);
  ``predicted_old_mib``: the same without the gradients held across micro-batches (the planner
  before issue 23, claim 7; equal to ``predicted_mib`` with one micro-batch).
- ``measured_dynamic`` / ``predicted_dynamic``: the same minus what is resident before the
  update (weights, AdamW, reference), i.e. gradients + activations + logits: the activation term.
- ``*-packed``: a configuration again with ``train.packing`` (one packed row a micro-batch, attention
  per sequence), planned with the packed shapes.

Memory, not time: no timing is taken, but run it under the bench lock (it takes up to ~6 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

V = 151936
SHAPES = {  # (hidden, layers, heads, kv_heads, intermediate, vocab, tied, model_type)
    "tiny": (64, 2, 4, 2, 256, V, False, "qwen2"),
    "small": (256, 4, 8, 2, 1024, V, False, "qwen2"),
    "smollm2": (576, 30, 9, 3, 1536, 49152, True, "llama"),
}
CONFIGS = {
    # name: model, prompt, completion, rows, micro (rows a micro-batch), kl, checkpointing
    "tiny-c512": ("tiny", 128, 512, 4, 4, False, False),
    "tiny-c4096-kl": ("tiny", 128, 4096, 2, 2, True, False),
    "small-c2048": ("small", 128, 2048, 2, 2, False, False),
    "small-c4096-kl-ckpt": ("small", 128, 4096, 2, 2, True, True),
    "smollm2-c512-kl": ("smollm2", 96, 512, 2, 2, True, False),
    "smollm2-c1024-ckpt": ("smollm2", 96, 1024, 4, 4, False, True),
    # held out: measured after the activation model was settled on the six above
    "small-c1024-kl": ("small", 200, 1024, 4, 4, True, False),
    "smollm2-c2048-kl-ckpt": ("smollm2", 64, 2048, 2, 2, True, True),
    "tiny-c2048-ckpt": ("tiny", 256, 2048, 3, 3, False, True),
    # two or more micro-batches an optimizer step: gradients held across them (issue 23, claim 7)
    "small-c2048-x2": ("small", 128, 2048, 4, 2, False, False),
    "small-c1024-kl-x2": ("small", 200, 1024, 4, 2, True, False),
    "smollm2-c1024-ckpt-x2": ("smollm2", 96, 1024, 4, 2, False, True),
    "smollm2-c512-kl-x4": ("smollm2", 96, 512, 4, 1, True, False),
    "tiny-c2048-kl-ckpt-x3": ("tiny", 256, 2048, 3, 1, True, True),
}
# train.packing (issue 26, item 5): a padded configuration again as one packed row a micro-batch
PACKED = {"small-c2048-x2-packed": "small-c2048-x2", "tiny-c4096-kl-packed": "tiny-c4096-kl"}
CONFIGS.update({name: CONFIGS[twin] for name, twin in PACKED.items()})
HELD_OUT = ("small-c1024-kl", "smollm2-c2048-kl-ckpt", "tiny-c2048-ckpt")
ACCUMULATING = tuple(name for name, c in CONFIGS.items() if c[4] < c[3])


def rss(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def recipe(model: str, prompt: int, completion: int, rows: int, micro: int, kl: bool, ckpt: bool,
           packing: bool = False):
    """The recipe the plan sees: on one GPU, ``rows`` rollouts an optimizer step (one prompt of
    ``rows`` completions, one update per rollout), ``micro`` of them a micro-batch."""
    from rl.config import load_config

    return load_config(None, [f"model.gradient_checkpointing={str(ckpt).lower()}",
                              f"rollout.max_new_tokens={completion}", f"train.micro_batch_size={micro}",
                              f"algo.kl_coef={0.001 if kl else 0.0}", f"rollout.group_size={rows}",
                              "rollout.prompts_per_step=1", "algo.updates_per_rollout=1",
                              f"train.packing={str(packing).lower()}"])


def shape_of(model: str):
    from rl.run.memory import Shape

    h, layers, heads, kv, i, vocab, tied, kind = SHAPES[model]
    return Shape(h, layers, heads, kv, i, vocab, tied, qkv_bias=kind == "qwen2")


def build(model: str, ckpt: bool):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    h, layers, heads, kv, i, vocab, tied, kind = SHAPES[model]
    cls = Qwen2Config if kind == "qwen2" else LlamaConfig
    config = cls(hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                 intermediate_size=i, vocab_size=vocab, tie_word_embeddings=tied, max_position_embeddings=8192)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    if ckpt:
        m.gradient_checkpointing_enable()
        m.config.use_cache = False
    return m


def warm_up(acc) -> None:
    """One update of a 2-layer, 32-token-vocabulary model, so that what torch, oneDNN and the
    autograd engine load on first use is in the baseline RSS, not in the measurement."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from rl.config import AlgoConfig
    from rl.engines.base import Rollout
    from rl.train.update import update_policy

    m = AutoModelForCausalLM.from_config(Qwen2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                     num_key_value_heads=1, intermediate_size=32, vocab_size=32))
    m.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
    rs = [Rollout(0, [1, 2, 3], [4, 5], "", "length", None), Rollout(0, [1], [4, 5, 6], "", "length", None)]
    for _ in range(2):
        update_policy(acc, m, None, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), rs,
                      torch.tensor([1.0, -1.0]), AlgoConfig(), pad_id=0, temperature=1.0, micro_batch_size=2,
                      max_grad_norm=1.0, norm_len=3)


def one(name: str) -> dict:
    import torch
    from accelerate import Accelerator

    from rl.engines.base import Rollout
    from rl.models.load import make_reference
    from rl.train.update import update_policy

    torch.set_num_threads(1)
    model_name, prompt, completion, rows, micro, kl, ckpt = CONFIGS[name]
    cfg = recipe(*CONFIGS[name], packing=name in PACKED)
    acc = Accelerator(cpu=True)
    warm_up(acc)  # libraries and kernels load on first use: not part of the prediction
    base = rss()
    policy = build(model_name, ckpt)
    ref = make_reference(policy, cfg.model) if kl else None
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    policy, opt = acc.prepare(policy, opt)
    g = torch.Generator().manual_seed(0)
    vocab = SHAPES[model_name][5]
    rollouts = []
    for k in range(rows):
        p = prompt - 7 * k  # left padding
        c = completion if k else completion * 3 // 4  # one shorter completion: right padding
        ids = torch.randint(10, vocab, (p + c,), generator=g).tolist()
        rollouts.append(Rollout(k, ids[:p], ids[p:], "", "length", None))
    adv = torch.linspace(-1, 1, rows)

    def update():
        return update_policy(acc, policy, ref, opt, sched, rollouts, adv, cfg.algo, pad_id=0, temperature=1.0,
                             micro_batch_size=micro, max_grad_norm=1.0, norm_len=completion,
                             packing=cfg.train.packing)

    update()  # allocates AdamW's moments
    before = rss()
    Path("/proc/self/clear_refs").write_text("5")
    update()
    peak = rss("VmHWM")
    return measured(name, peak - base, peak - before)


def predict(name: str):
    from rl.run.plan import make_plan

    model_name, prompt = CONFIGS[name][:2]
    cfg = recipe(*CONFIGS[name], packing=name in PACKED)
    return make_plan(cfg, gpus=1, gpu_memory_gib=1024, zero=0, prompt_tokens=prompt, device="cpu",
                     shape=shape_of(model_name), label=name)


def measured(name: str, total: int, dynamic: int) -> dict:
    """One row: the measured bytes (total and above the resident state) against the plan's."""
    plan = predict(name)
    model_name, prompt, completion, rows, micro, kl, ckpt = CONFIGS[name]
    st = plan.states[0]
    resident = st["weights"] + st["optimizer"] + plan.reference
    peak, where = plan.update()
    old, old_where = plan.update(accumulate=False)
    act = plan.activations()
    mb = lambda b: round(b / 2**20)  # noqa: E731
    return {"config": name, "model": model_name, "params": plan.n, "vocab": plan.shape.vocab, "prompt": prompt,
            "completion": completion, "rows": rows, "micro": micro, "micro_batches": plan.micro_batches(), "kl": kl,
            "checkpointing": ckpt, "tokens": plan.tokens,
            "measured_mib": mb(total), "predicted_mib": mb(peak), "error": round(peak / total - 1, 3),
            "predicted_old_mib": mb(old), "error_old": round(old / total - 1, 3), "peak_at_old": old_where,
            "measured_dynamic_mib": mb(dynamic), "predicted_dynamic_mib": mb(peak - resident),
            "dynamic_error": round((peak - resident) / dynamic - 1, 3), "peak_at": where,
            "resident_measured_mib": mb(total - dynamic), "resident_predicted_mib": mb(resident),
            "terms_mib": {"weights": mb(st["weights"]), "gradients": mb(st["gradients"]),
                          "optimizer": mb(st["optimizer"]), "reference": mb(plan.reference),
                          "activations_kept": mb(act["kept"]), "working_layer": mb(act["working"]),
                          "logits": mb(plan.logits)}}


def markdown(rows: list[dict]) -> str:
    out = ["| config | params | completion x rows / micro | KL | ckpt | measured MiB | predicted MiB | error | "
           "measured dyn. MiB | predicted dyn. MiB | error | predicted peak at |", "|" + "---|" * 12]
    for r in rows:
        out.append(f"| {r['config']} | {r['params'] / 1e6:.1f}M | {r['completion']} x {r['rows']} / {r['micro']} | "
                   f"{'yes' if r['kl'] else 'no'} | {'yes' if r['checkpointing'] else 'no'} | {r['measured_mib']} | "
                   f"{r['predicted_mib']} | {r['error']:+.1%} | {r['measured_dynamic_mib']} | "
                   f"{r['predicted_dynamic_mib']} | {r['dynamic_error']:+.1%} | {r['peak_at']} |")
    return "\n".join(out)


def markdown_before_after(rows: list[dict]) -> str:
    """The configurations with two or more micro-batches: the planner without and with the
    gradients held across them, against the measured peak."""
    out = ["| config | micro-batches | measured MiB | before the fix: predicted MiB | error | after: predicted MiB | "
           "error | peak at (before, after) |", "|" + "---|" * 8]
    if not any(r["micro_batches"] > 1 for r in rows):
        return ""
    for r in rows:
        if r["micro_batches"] > 1:
            out.append(f"| {r['config']} | {r['micro_batches']} | {r['measured_mib']} | {r['predicted_old_mib']} | "
                       f"{r['error_old']:+.1%} | {r['predicted_mib']} | {r['error']:+.1%} | "
                       f"{r['peak_at_old']}, {r['peak_at']} |")
    return "\n".join(out)


def recipes_table(gpus: int = 8, gpu_memory: float = 80) -> str:
    """``laconic plan`` of every recipes/gpu/*.yaml (strategy from its launch line), as markdown."""
    from argparse import Namespace

    from rl.config import load_config
    from rl.run.memory import GiB
    from rl.run.plan import STRATEGIES, make_plan
    from rl.run.plan_cli import launch_config, recipe_shape, zero_from_accelerate

    out = ["| recipe | strategy | micro-batch tokens | micro-batches a step | update GiB (peak at) | "
           "without held gradients | rollout GiB | vLLM util | KV tokens | largest micro_batch_tokens | fits |",
           "|" + "---|" * 11]
    for path in sorted((ROOT / "recipes" / "gpu").glob("*.yaml")):
        rel = str(path.relative_to(ROOT))
        cfg = load_config(rel)
        zero, _ = zero_from_accelerate(launch_config(rel))
        plan = make_plan(cfg, gpus=gpus, gpu_memory_gib=gpu_memory, zero=zero, prompt_tokens=1024,
                         shape=recipe_shape(cfg, rel))
        peak, where = plan.update()
        old, old_where = plan.update(accumulate=False)  # the planner before issue 23, claim 7
        v = plan.vllm
        out.append(f"| {path.stem} | {STRATEGIES[zero]} | {plan.tokens} | {plan.micro_batches()} | "
                   f"{peak / GiB:.1f} ({where}) | {old / GiB:.1f} ({old_where}) | "
                   f"{plan.rollout_peak() / GiB:.1f} | {v['utilization']:.2f} | {int(v['kv_tokens'])} | "
                   f"{plan.max_micro_batch_tokens()} | {'yes' if plan.failure() is None else 'NO'} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(CONFIGS))
    ap.add_argument("--markdown", action="store_true", help="also print the docs/memory.md table")
    ap.add_argument("--recipes", action="store_true", help="print the plan of every GPU recipe at 8 x 80 GiB and exit")
    ap.add_argument("--remeasured", help=argparse.SUPPRESS)  # JSON lines of an earlier run: re-predict only
    args = ap.parse_args()
    if args.recipes:
        print(recipes_table())
        return
    if args.remeasured:
        rows = [json.loads(line) for line in Path(args.remeasured).read_text().splitlines() if line.startswith('{"config"')]
        rows = [measured(r["config"], r["measured_mib"] << 20, r["measured_dynamic_mib"] << 20) for r in rows]
        print(markdown(rows))
        if markdown_before_after(rows):
            print(markdown_before_after(rows))
        return
    if args.one:
        print(json.dumps(one(args.one)))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    results = []
    for name in args.only or CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", name], env=env, capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    worst = max(abs(r["error"]) for r in results)
    print(json.dumps({"configs": len(results), "worst_error": worst, "within_25pct": worst <= 0.25}))
    if args.markdown:
        print(markdown(results))
        if markdown_before_after(results):
            print(markdown_before_after(results))


if __name__ == "__main__":
    main()
