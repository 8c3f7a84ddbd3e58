"""Metrics: a JSONL file per run, optional wandb/tensorboard (through accelerate), a progress bar."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


class _DropTiedWeightNote(logging.Filter):
    """accelerate's "Removed shared tensor {...} while saving" on every checkpoint of a model with tied
    embeddings (the toy, SmolLM2, Qwen2.5-1.5B): expected, and the saved checkpoints are verified on load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in str(record.msg)  # accelerate may prefix "[RANK n] "


def quiet_libraries(verbose: bool) -> None:
    """Library chatter off unless ``train.verbose``: vLLM's INFO lines (41 of 63 lines of a 3-step run)
    become warnings and above (``VLLM_LOGGING_LEVEL``, unless set), and accelerate's tied-weight note on
    every save is dropped. Warnings and errors always show."""
    shared = logging.getLogger("accelerate.utils.other")
    for f in [f for f in shared.filters if isinstance(f, _DropTiedWeightNote)]:
        shared.removeFilter(f)  # an earlier run in this process may have set it
    if verbose:
        return
    shared.addFilter(_DropTiedWeightNote())
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # read when vllm is first imported
    if "vllm" in sys.modules:  # already imported (an earlier run in this process): set its loggers too
        level = getattr(logging, os.environ["VLLM_LOGGING_LEVEL"].upper(), logging.WARNING)
        for name in [n for n in logging.root.manager.loggerDict if n == "vllm" or n.startswith("vllm.")]:
            logging.getLogger(name).setLevel(level)


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
