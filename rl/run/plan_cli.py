"""``laconic plan RECIPE [overrides] --gpu-memory 80 --gpus 8``: print the per-GPU memory plan of a
recipe (:mod:`rl.run.plan`; the arithmetic is :mod:`rl.run.memory`) and exit 1 when it would not fit;
which ZeRO stage and how many processes come from the recipe's launch line or ``--zero`` /
``--accelerate-config``.
"""

from __future__ import annotations

import re
from pathlib import Path

from rl.config import Config, ConfigError
from rl.run.memory import KNOWN_SHAPES, USABLE_FRACTION, GiB, Shape, model_shape
from rl.run.plan import STRATEGIES, Plan, make_plan


def accumulation(plan: Plan) -> str:
    """One line: how many micro-batches one GPU runs per optimizer step, and whether gradients are held across them."""
    n = plan.micro_batches()
    head = f"{n} micro-batch{'es' if n > 1 else ''} per optimizer step ({plan.step_rows} rollouts per GPU)"
    if n > 1:
        held = plan.states[plan.zero]["gradients"] / GiB
        return f"{head}: gradients held across them ({held:.1f} GiB at every point)"
    return f"{head}: no gradients held across micro-batches"


def format_plan(plan: Plan) -> str:
    g = lambda b: f"{b / GiB:7.1f}"  # noqa: E731
    s, v = plan.shape, plan.vllm
    lines = [f"{plan.label}: {plan.n / 1e9:.2f}B parameters (hidden {s.hidden}, {s.layers} layers, "
             f"{s.heads}/{s.kv_heads} heads, vocab {s.vocab}), {plan.gpus} x {plan.total / GiB:.0f} GiB, "
             f"{STRATEGIES[plan.zero]}",
             f"micro-batch: up to {plan.tokens} {'packed' if plan.packing else 'padded'} tokens, rows of up to {plan.width} (prompt "
             f"{plan.width - plan.completion} + completion {plan.completion}); gradient checkpointing "
             f"{'on' if plan.checkpointing else 'off'}; KL {'on' if plan.kl else 'off'}",
             accumulation(plan),
             "", f"per GPU, GiB                     {'DDP':>7}{'ZeRO-2':>8}{'ZeRO-3':>8}"]
    names = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
             "buffers": "buckets (+ DDP's bf16 casts)"}
    for key, name in names.items():
        lines.append(f"  {name:<31}"
                     + "".join(f"{g(plan.states[z][key]):>8}" for z in STRATEGIES))
    a0, a1 = plan.activations(checkpointing=False), plan.activations(checkpointing=True)
    lines += [f"  {'reference model (KL)':<31}{g(plan.reference)}",
              f"  {'activations kept, no ckpt':<31}{g(a0['kept'])}",
              f"  {'activations kept, checkpointing':<31}{g(a1['kept'])}",
              f"  {'backward working layer':<31}{g(a1['working'])}",
              f"  {'logits chunk':<31}{g(plan.logits)}",
              f"  {'CUDA context etc.':<31}{g(plan.overhead)}"]
    if v:
        lines += [f"  {'vLLM weights':<31}{g(v['weights'])}",
                  f"  {'vLLM activations':<31}{g(v['activations'])}",
                  f"  {'vLLM KV cache':<31}{g(v['kv_cache'])}  ({int(v['kv_tokens'])} tokens, "
                  f"{v['kv_tokens'] / v['max_model_len']:.1f} x max_model_len {v['max_model_len']})",
                  f"  vLLM gpu_memory_utilization {v['utilization']:.2f} "
                  f"({'recipe' if plan.knobs.get('utilization') else 'planned'}), "
                  f"max_num_batched_tokens {v['max_num_batched_tokens']}"]
    peak, where = plan.update()
    lines += ["", f"phase peaks ({STRATEGIES[plan.zero]}), GiB of {plan.usable / GiB:.1f} usable "
                  f"({USABLE_FRACTION:.0%} of {plan.total / GiB:.0f}):",
              f"  update   {g(peak)}  (peak at the {where})"]
    if v:
        lines.append(f"  rollout  {g(plan.rollout_peak())}")
    lines.append(f"largest train.micro_batch_tokens that fits: {plan.max_micro_batch_tokens()}")
    fail = plan.failure()
    lines.append("fits" if fail is None else f"DOES NOT FIT: {fail}")
    return "\n".join(lines)


def zero_from_accelerate(path: str) -> tuple[int, int]:
    """(ZeRO stage, processes) of an accelerate config: DeepSpeed's zero_stage, FSDP full shard
    as 3, anything else 0 (DDP or one process)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--accelerate-config: no such file {path}")
    d = yaml.safe_load(p.read_text()) or {}
    kind = str(d.get("distributed_type", "NO"))
    zero = int((d.get("deepspeed_config") or {}).get("zero_stage", 0)) if kind == "DEEPSPEED" else 3 if kind == "FSDP" else 0
    if zero not in STRATEGIES:
        raise ConfigError(f"{path}: zero_stage {zero} is not planned (0, 2 or 3)")
    return zero, int(d.get("num_processes", 1))


def launch_config(recipe: str) -> str | None:
    """The accelerate config a recipe's header launches with (``--config_file X.yaml``), if any."""
    m = re.search(r"--config_file\s+(\S+\.yaml)", Path(recipe).read_text())
    return m.group(1) if m else None


def add_parser(subparsers):
    p = subparsers.add_parser("plan", help="predict per-GPU peak memory of a recipe and size vLLM; exit 1 if it does not fit")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="section.key=value, as for train")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--gpus", type=int, default=None, help="number of GPUs (default: the accelerate config's, else 8)")
    p.add_argument("--zero", type=int, choices=sorted(STRATEGIES), default=None,
                   help="0 (DDP), 2 or 3 (default: from --accelerate-config, else the recipe header's launch line, else 0)")
    p.add_argument("--accelerate-config", default=None, help="e.g. recipes/accelerate/zero2.yaml")
    p.add_argument("--prompt-tokens", type=int, default=1024, help="longest prompt in tokens (default 1024)")
    return p


def producing_recipe(model_path: str, recipe: str) -> str | None:
    """A model another recipe trains (``runs/x/final``, not built yet): the recipe next to
    ``recipe`` whose ``train.output_dir`` is ``runs/x``, so its model's shapes can be planned."""
    import yaml

    for other in sorted(Path(recipe).parent.glob("*.yaml")):
        d = yaml.safe_load(other.read_text()) or {}
        out = str((d.get("train") or {}).get("output_dir", "")).rstrip("/")
        if out and model_path.rstrip("/") in (f"{out}/final", f"{out}/merged"):
            return str(other)
    return None


def recipe_shape(cfg: Config, recipe: str) -> Shape:
    """The shapes of the recipe's model; a model that an earlier recipe trains has its base's."""
    name, seen = cfg.model.name_or_path, set()
    while name not in KNOWN_SHAPES and not Path(name).exists() and name not in seen:
        seen.add(name)
        parent = producing_recipe(name, recipe)
        if parent is None:
            break
        import yaml

        name = str(((yaml.safe_load(Path(parent).read_text()) or {}).get("model") or {}).get("name_or_path", name))
    return model_shape(name)


def run(args) -> int:
    from rl.config import load_config

    cfg = load_config(args.recipe, args.overrides)
    acc_cfg = args.accelerate_config or (launch_config(args.recipe) if args.zero is None else None)
    zero, procs = zero_from_accelerate(acc_cfg) if acc_cfg else (0, 8)
    zero = zero if args.zero is None else args.zero
    plan = make_plan(cfg, gpus=args.gpus or procs, gpu_memory_gib=args.gpu_memory, zero=zero,
                     prompt_tokens=args.prompt_tokens, label=args.recipe, shape=recipe_shape(cfg, args.recipe))
    print(format_plan(plan))
    return 0 if plan.failure() is None else 1


