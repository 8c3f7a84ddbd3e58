"""Atomic checkpoints with exact resume.

A checkpoint directory ``checkpoint-000042`` holds what ``accelerator.save_state`` writes (model,
optimizer, LR scheduler, every process's RNG states) plus ``trainer_state.json`` (step, prompt
sampler position, reward history, evaluation results so far). It is written under a temporary
name and renamed when complete, so an interrupted save never looks like a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    out = Path(output_dir)
    if not out.exists():
        return []
    dirs = [d for d in out.iterdir() if d.is_dir() and d.name.startswith(PREFIX) and (d / STATE_FILE).exists()]
    return sorted(dirs, key=lambda d: int(d.name[len(PREFIX):]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(accelerator, output_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    out = Path(output_dir)
    final = out / f"{PREFIX}{step:06d}"
    tmp = out / f".tmp-{PREFIX}{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(tmp / STATE_FILE, "w") as f:
            json.dump({"step": step, **state}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / STATE_FILE).exists():
        raise FileNotFoundError(f"{path} is not a complete laconic checkpoint (no {STATE_FILE})")
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())
