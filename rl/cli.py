"""``laconic`` command line: train a recipe, evaluate a model, compare runs, build the overthinking toy."""

from __future__ import annotations

import argparse
import os
import sys


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("laconic-rl")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def shadowed() -> str | None:
    """A user's ``rewards.py`` (or ``rewards/``) ahead of laconic's ``rewards`` package on the import
    path (``PYTHONPATH=.``, or ``python -m`` from its directory): laconic would import it and fail
    with "'rewards' is not a package"."""
    import importlib.util
    from pathlib import Path

    ours = Path(__file__).resolve().parent.parent / "rewards"
    spec = importlib.util.find_spec("rewards")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is not None and origin != ours / "__init__.py":
        return (f"{origin} is imported as 'rewards', the name of laconic's package {ours}: it comes first on the "
                "import path (PYTHONPATH or the working directory); rename it and name it in a recipe as "
                "'new_name:function' or 'path/to/file.py:function'")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laconic", description="RL fine-tuning toward concise reasoning")
    parser.add_argument("--version", action="version", version=f"laconic {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="print every recipe field with its value and comment (a recipe's, or the defaults)",
                       description="Every field of a recipe (with overrides) or of the defaults, with the schema's "
                                   "comment, as YAML that can be saved as a recipe.")
    c.add_argument("recipe", nargs="?", default=None)
    c.add_argument("overrides", nargs="*", help="e.g. algo.clip_high=0.28")
    t = sub.add_parser("train", help="train a YAML recipe; overrides as section.key=value",
                       epilog="every field, its default and its meaning: laconic config [RECIPE]")
    t.add_argument("recipe")
    t.add_argument("overrides", nargs="*", help="e.g. algo.clip_high=0.28 train.max_steps=10")
    m = sub.add_parser("toy-model", help="build and SFT the overthinking toy model into OUT")
    m.add_argument("out")
    m.add_argument("--steps", type=int, default=500, help="supervised steps (default 500, ~5 min on 2 cores)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--variant", default="plain",
                   choices=("plain", "tagged", "budget", "think", "think-tagged", "think-budget"),
                   help="plain (builtin:toy), tagged ([Easy]/[Hard], AdaCtrl), budget (B<N>Q:..., L1), "
                        "think (builtin:toy-think: re-checks pay on hard problems) and its tagged/budget forms")
    if problem := shadowed():
        return fail(problem)
    from rl.engines import serve
    from rl.eval import cli as eval_cli, compare
    from rl.run import plan_cli
    from rl.baselines import run as baseline, sample

    eval_cli.add_parser(sub)
    compare.add_parser(sub)
    serve.add_parser(sub)
    plan_cli.add_parser(sub)
    sample.add_parser(sub)
    baseline.add_parser(sub)
    args = parser.parse_args(argv)

    from rewards import RewardConfigError, RewardError

    from rl.config import ConfigError
    from rl.run.checkpoint import CheckpointError

    try:
        if args.command == "train":
            from rl.config import load_config
            from rl.train.loop import train

            train(load_config(args.recipe, args.overrides))
        elif args.command == "config":
            from rl.config import Config, load_config
            from rl.config.describe import describe

            print(describe(load_config(args.recipe, args.overrides) if args.recipe else Config()), end="")
        elif args.command == "eval":
            return eval_cli.run(args)
        elif args.command == "compare":
            return compare.run(args)
        elif args.command == "serve":
            return serve.run(args)
        elif args.command == "plan":
            return plan_cli.run(args)
        elif args.command == "sample":
            return sample.run(args)
        elif args.command == "baseline":
            return baseline.run(args)
        elif args.command == "toy-model":
            from rl.models.toy_build import build_toy

            path = build_toy(args.out, sft_steps=args.steps, seed=args.seed, variant=args.variant)
            print(f"toy model saved to {path}")
    except (ConfigError, RewardConfigError) as e:
        return fail(f"config error: {e}")
    except RewardError as e:
        return fail(f"reward error: {e} (checkpoints already written are intact: fix the reward, then "
                    "continue with train.resume=latest)", every_rank=True)
    except CheckpointError as e:
        return fail(f"checkpoint error: {e}")
    except RuntimeError as e:  # a rollout server that died or refuses us: its one-line message, no traceback
        if type(e).__name__ != "ServerError":
            raise
        return fail(str(e), code=1, every_rank=True)
    return 0


def fail(message: str, code: int = 2, every_rank: bool = False) -> int:
    """One line on stderr, exit ``code``. Under a multi-process launch: from the main process only for
    what every process finds alike (config, checkpoint), and from whichever process failed, naming its
    rank, for what one process meets alone (a rollout server, a reward): the launcher (torchrun) then
    ends the other processes at once."""
    rank, world = os.environ.get("RANK", "0"), int(os.environ.get("WORLD_SIZE", "1"))
    if every_rank and world > 1:
        print(f"laconic: rank {rank}: {message}", file=sys.stderr)
    elif rank == "0":
        print(f"laconic: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
