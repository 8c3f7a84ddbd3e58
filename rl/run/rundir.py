"""What a run does with ``train.output_dir``: start fresh, resume, start over, or refuse.

- An empty or missing directory: a fresh run.
- A directory that already holds a run is never silently overwritten. The user picks
  ``train.resume=latest`` (continue from the newest checkpoint that verifies, skipping damaged
  ones with a warning) or ``train.overwrite=true`` (delete it and start over).
- ``train.resume=latest`` on an empty directory says that nothing was resumed; on a run killed
  before its first checkpoint it restarts that run from step 0 and says so.

:func:`plan_start` only reads (every process runs it before any model is loaded, so a bad
directory costs seconds, not a model load); :func:`apply_start` is the main process's writes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rl.config import ConfigError, TrainConfig
from rl.run.checkpoint import TMP, checkpoint_dirs, clean_temporaries, latest_valid_checkpoint, verify

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "final", "completions")


@dataclass
class Start:
    output_dir: Path
    checkpoint: Path | None = None  # resume from it; None: step 0
    wipe: bool = False  # delete the directory's contents first (overwrite, or a run with no checkpoint)
    notes: list[str] = field(default_factory=list)  # what the user is told
    schedule: dict = field(default_factory=dict)  # resume_schedule=keep: the run's max_steps, warmup_steps, lr_scheduler


def _contents(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith(TMP)) if out.is_dir() else []


def _looks_like_run(contents: list[Path]) -> bool:
    return any(p.name in RUN_FILES or p.name.startswith("checkpoint-") for p in contents)


def check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"train.output_dir {out} is a file, not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise ConfigError(f"train.output_dir {out} is not writable ({probe}: {e.strerror})") from None


def plan_start(t: TrainConfig) -> Start:
    out = Path(t.output_dir)
    check_writable(out)
    contents = _contents(out)
    if t.resume not in (None, "latest"):
        problem = verify(t.resume) if Path(t.resume).is_dir() else "no such directory"
        if problem:
            raise ConfigError(f"train.resume={t.resume} cannot be resumed: {problem}")
        return schedule_choice(Start(out, Path(t.resume)), t)
    if not contents:
        note = f"train.resume=latest: nothing to resume in {out}, starting a fresh run" if t.resume else None
        return Start(out, notes=[note] if note else [])
    names = ", ".join(p.name for p in contents[:4]) + (", ..." if len(contents) > 4 else "")
    if t.overwrite:
        if not _looks_like_run(contents):
            raise ConfigError(f"train.overwrite=true: {out} holds files that are not a laconic run ({names}); "
                              "refusing to delete them, pick another train.output_dir")
        return Start(out, wipe=True, notes=[f"train.overwrite=true: deleted the previous run in {out}"])
    if t.resume == "latest":
        skipped: list[str] = []
        ckpt = latest_valid_checkpoint(out, warn=skipped.append)
        if ckpt is not None:
            return schedule_choice(Start(out, ckpt, notes=skipped), t)
        if checkpoint_dirs(out):
            raise ConfigError(f"train.resume=latest: no checkpoint in {out} verifies ("
                              + "; ".join(s.split(": ", 1)[1] for s in skipped)
                              + "); start over with train.overwrite=true")
        return Start(out, wipe=True, notes=[f"train.resume=latest: {out} has no checkpoint yet, so its run "
                                            "restarts from step 0"])
    raise ConfigError(f"train.output_dir {out} already holds a run ({names}): continue it with "
                      "train.resume=latest, or delete it and start over with train.overwrite=true")


SCHEDULE_KEYS = ("max_steps", "warmup_steps", "lr_scheduler")


def schedule_choice(start: Start, t: TrainConfig) -> Start:
    """A resume whose learning-rate schedule differs from the run's (its ``config.json``): a longer
    ``train.max_steps`` after a cosine that ended at lr 0 would restart the cosine from the middle (lr
    jumping back up), or, kept, train on at lr 0 and leave the weights as they were. Neither is
    guessed: ``train.resume_schedule`` says which (``extend``: the schedule over the new settings, from
    the resumed step on; ``keep``: the run's horizon), else the run stops with one line."""
    import json

    saved = start.output_dir / "config.json"
    if not saved.is_file() or t.lr_scheduler == "constant":
        return start
    run = json.loads(saved.read_text())
    before = run.get("lr_schedule") or run.get("train", {})  # the schedule in force (a kept one), else the config's
    changed = [f"{k} {before[k]} -> {getattr(t, k)}" for k in SCHEDULE_KEYS if k in before and before[k] != getattr(t, k)]
    if not changed:
        return start
    if t.resume_schedule is None:
        raise ConfigError(f"resuming with a different learning-rate schedule ({', '.join(changed)}; "
                          f"{t.lr_scheduler}): set train.resume_schedule=extend to run the schedule over the new "
                          "settings from the resumed step (the lr changes at once), or train.resume_schedule=keep "
                          f"to keep the run's (over its {before.get('max_steps')} steps; past them the lr stays "
                          "where the schedule ended, 0 for cosine and linear)")
    if t.resume_schedule == "keep":
        start.schedule = {k: before[k] for k in SCHEDULE_KEYS if k in before}
        start.notes.append(f"train.resume_schedule=keep: the lr schedule stays the run's ({', '.join(changed)} ignored "
                           "for it)")
    else:
        start.notes.append(f"train.resume_schedule=extend: the lr schedule now runs over {', '.join(changed)}")
    return start


def apply_start(start: Start) -> None:
    """The main process's side of :func:`plan_start`: clear what must go, create the directory."""
    out = start.output_dir
    removed = clean_temporaries(out)
    if removed:
        print(f"removed {len(removed)} unfinished write(s) left in {out}: {', '.join(p.name for p in removed)}")
    if start.wipe:
        for p in _contents(out):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
