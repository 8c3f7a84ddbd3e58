"""Metrics: a JSONL file per run, optional wandb/tensorboard (through accelerate), a progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def check_trackers(report_to: list[str]) -> None:
    """Each of ``train.report_to`` installed, or one line before the model loads (accelerate would
    warn and log nothing to it)."""
    import accelerate.utils

    from rl.config import ConfigError

    for name in report_to:
        if not getattr(accelerate.utils, f"is_{name}_available")():
            package = {"comet_ml": "comet_ml"}.get(name, name)
            raise ConfigError(f"train.report_to: {name} is not installed (pip install {package}); the run would "
                              f"log nothing to it")


class Tracker:
    def __init__(self, accelerator, output_dir: str | Path, total_steps: int, start_step: int,
                 report_to: list[str], run_name: str | None, config: dict[str, Any]):
        self.acc = accelerator
        self.main = accelerator.is_main_process
        self.path = Path(output_dir) / "metrics.jsonl"
        self.report_to = list(report_to)
        if self.report_to:  # wandb's files (offline runs too) go into the run directory, next to metrics.jsonl
            wandb = {"dir": str(output_dir), **({"name": run_name} if run_name else {})}
            accelerator.init_trackers(run_name or "laconic", config=_flat(config), init_kwargs={"wandb": wandb})
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not self.main,
                        desc="train", dynamic_ncols=True)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
            self.bar.update(1)
            self.bar.set_postfix({
                "s/step": f"{metrics.get('time/step', math.nan):.1f}",
                "reward": f"{metrics.get('reward/mean', math.nan):.3f}",
                "acc": f"{metrics.get('accuracy', math.nan):.3f}",
                "tokens": f"{metrics.get('tokens/mean', math.nan):.1f}",
                "trunc": f"{metrics.get('truncation_rate', math.nan):.2f}",
            })
        if self.report_to:
            self.acc.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def close(self) -> None:
        """Finish the trackers (flush tensorboard, end the wandb run). Not ``acc.end_training()``: it also
        destroys the process group, and the final evaluation, the gathered final weights and the last
        barrier still need it."""
        self.bar.close()
        for tracker in self.acc.trackers if self.report_to else ():
            tracker.finish()


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
