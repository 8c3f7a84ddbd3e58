"""Atomic, verified checkpoints with exact resume, and atomic writes of a run's other outputs.

A checkpoint directory ``checkpoint-000042`` holds what ``accelerator.save_state`` writes (model,
optimizer, LR scheduler, every process's RNG states), ``trainer_state.json`` (step, prompt sampler
position, reward history, evaluation results so far) and, written last, ``manifest.json``: the
size and SHA-256 of every other file. Everything is written under ``.tmp-checkpoint-000042`` and
renamed when complete, so an interrupted save never looks like a checkpoint.

On resume every candidate is verified against its manifest; a damaged one (a truncated or missing
file, a flipped byte) is skipped with a warning that names it, and the previous good one is used.
A failed save (a full disk) removes its temporary directory and raises :class:`CheckpointError`
with one line; the previous checkpoints are untouched. ``clean_temporaries`` removes what a killed
save left behind.

``train.keep_best`` (:class:`Best`): the best step by a metric of ``metrics.jsonl``. A step that becomes the
best gets a checkpoint (if it is not a checkpoint step anyway), and that checkpoint is pinned: the rotation
of ``train.keep_checkpoints`` never removes it while it is the best (at most ``keep_checkpoints + 1``
directories). Which step is best, with its values, is in ``trainer_state.json`` under ``best``: a best changes
only at a step that writes a checkpoint, so the newest checkpoint always knows the best so far and a resume
keeps choosing exactly as an uninterrupted run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"
TMP = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or none can be loaded; the message is one line."""


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete (renamed) checkpoint directories, oldest first; not yet verified."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    dirs = [d for d in out.iterdir() if d.is_dir() and d.name.startswith(PREFIX) and d.name[len(PREFIX):].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[len(PREFIX):]))


def sha256(path: Path, chunk: int = 1 << 23) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def _hashes(paths: list[Path]) -> list[str]:
    """SHA-256 of each file, several at once (hashlib releases the GIL; ~1 GB/s per core here)."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(sha256, paths))


def write_manifest(directory: Path) -> None:
    paths = _files(directory)
    files = {str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": h}
             for p, h in zip(paths, _hashes(paths))}
    atomic_write_text(directory / MANIFEST, json.dumps({"files": files}, indent=1))


def verify(directory: str | Path) -> str | None:
    """None if ``directory`` matches its manifest, else what is wrong (one phrase)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return f"no {MANIFEST} (an incomplete save, or one made before checkpoints were verified)"
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    if STATE_FILE not in manifest:
        return f"{STATE_FILE} is not in its manifest"
    for name, want in manifest.items():
        p = directory / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != want["size"]:
            return f"{name} has {p.stat().st_size} bytes, the manifest says {want['size']}"
    names = list(manifest)
    for name, h in zip(names, _hashes([directory / n for n in names])):
        if h != manifest[name]["sha256"]:
            return f"{name} does not match its checksum"
    return None


def latest_valid_checkpoint(output_dir: str | Path, warn: Callable[[str], None] = print) -> Path | None:
    """The newest checkpoint that verifies; each newer damaged one is skipped with a warning."""
    for d in reversed(checkpoint_dirs(output_dir)):
        problem = verify(d)
        if problem is None:
            return d
        warn(f"warning: skipping damaged checkpoint {d}: {problem}")
    return None


def clean_temporaries(output_dir: str | Path) -> list[Path]:
    """Remove what interrupted writes left in ``output_dir`` (``.tmp-*``); returns what it removed."""
    out = Path(output_dir)
    stale = [p for p in out.iterdir() if p.name.startswith(TMP)] if out.is_dir() else []
    for p in stale:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return stale


def _fail_here(where: str, step: int) -> None:
    """Test hook: ``LACONIC_FAIL_IN_CHECKPOINT=N`` kills the process in the middle of checkpoint N's
    save (after the model and optimizer are written, before the manifest and the rename)."""
    if where == "save" and os.environ.get("LACONIC_FAIL_IN_CHECKPOINT") == str(step):
        os._exit(17)


def _write_failed(path: Path, e: BaseException) -> CheckpointError:
    free = shutil.disk_usage(path.parent if not path.exists() else path).free
    enospc = any(getattr(x, "errno", None) in (errno.ENOSPC, errno.EDQUOT) for x in (e, e.__cause__, e.__context__))
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    why = "the disk is full" if enospc or free < (64 << 20) else f"{type(e).__name__}: {first}"
    return CheckpointError(f"could not write {path}: {why} ({free / 2**20:.0f} MiB free there)")


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def save_checkpoint(accelerator, output_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2,
                    pin: int | None = None) -> Path:
    """Write checkpoint ``step`` atomically, then remove all but the newest ``keep`` (0: keep all), never
    the checkpoint of step ``pin`` (``train.keep_best``'s best)."""
    out = Path(output_dir)
    final = out / f"{PREFIX}{step:06d}"
    tmp = out / f"{TMP}{PREFIX}{step:06d}"
    try:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _fail_here("save", step)
            atomic_write_text(tmp / STATE_FILE, json.dumps({**state, "step": step}, indent=1))
            write_manifest(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(out)
    except Exception as e:  # torch, safetensors and the OS each word a full disk differently
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(tmp, e) from e
    if accelerator.is_main_process:
        pinned = checkpoint_name(pin) if pin is not None else None
        for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
            if old.name != pinned:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | Path) -> dict[str, Any]:
    """Verify ``path`` against its manifest, then restore it; the trainer state it saved."""
    path = Path(path)
    problem = verify(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} cannot be resumed: {problem}")
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f"{TMP}{path.name}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_dir(path: str | Path, write: Callable[[Path], None]) -> None:
    """Let ``write(tmp_dir)`` fill a temporary directory, then put it in place of ``path``."""
    path = Path(path)
    tmp, old = path.with_name(f"{TMP}{path.name}"), path.with_name(f"{TMP}old-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(tmp, e) from e
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ train.keep_best
def _finite(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool); None for a missing, NaN or other value."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


@dataclass
class Best:
    """The best step so far by ``train.keep_best`` (its options completed by
    :func:`rl.config.validate.keep_best_options`).

    A step is a candidate when its row has ``metric`` as a finite number (steps without it, NaN or
    non-numbers are skipped). It replaces the best when its metric is strictly better (``mode``), or
    equal and its ``tie_break`` value is finite and strictly better (``tie_mode``) than the best's (a
    missing one counts as the worst); otherwise the earlier step stays.

    >>> b = Best("eval/accuracy", tie_break="eval/mean_tokens")
    >>> [b.offer(s, r) for s, r in [(1, {"eval/accuracy": 0.5, "eval/mean_tokens": 40}), (2, {"loss": 1.0}),
    ...                              (3, {"eval/accuracy": 0.5, "eval/mean_tokens": 30}),
    ...                              (4, {"eval/accuracy": float("nan")}), (5, {"eval/accuracy": 0.5})]]
    [True, False, True, False, False]
    >>> b.step, b.value, b.tie_value
    (3, 0.5, 30.0)
    """

    metric: str
    mode: str = "max"
    tie_break: str | None = None
    tie_mode: str = "min"
    final: str = "last"
    step: int | None = None
    value: float | None = None
    tie_value: float | None = None
    _warned: bool = field(default=False, repr=False, compare=False)

    SPEC = ("metric", "mode", "tie_break", "tie_mode")  # what the choice depends on (final does not)

    @classmethod
    def from_config(cls, options: dict[str, Any], saved: dict[str, Any] | None = None) -> tuple[Best, str | None]:
        """A tracker for ``options`` that continues ``saved`` (a checkpoint's ``best``) when it was made by
        the same choice; else a fresh one and a note saying why earlier steps do not count."""
        best = cls(**{k: options[k] for k in (*cls.SPEC, "final")})
        if saved is None:
            return best, None
        if any(saved.get(k) != getattr(best, k) for k in cls.SPEC):
            was = ", ".join(f"{k}={saved.get(k)}" for k in cls.SPEC)
            return best, (f"train.keep_best changed since the checkpoint ({was}): the best is chosen again from "
                          "the resumed step on")
        best.step, best.value, best.tie_value = saved.get("step"), saved.get("value"), saved.get("tie_value")
        return best, None

    @classmethod
    def for_run(cls, spec: dict[str, Any] | None, saved: dict[str, Any] | None) -> tuple[Best | None, str | None]:
        """:meth:`from_config` for ``train.keep_best`` (None when unset: no tracker, no note)."""
        from rl.config.validate import keep_best_options

        return cls.from_config(keep_best_options(spec), saved) if spec is not None else (None, None)

    @property
    def evaluates(self) -> bool:
        """Whether the choice reads the evaluation during training (then the last step is evaluated too,
        whatever ``eval.every``, so that it is a candidate)."""
        return any(k.startswith("eval/") for k in self.keys)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.metric,) + ((self.tie_break,) if self.tie_break else ())

    @property
    def checkpoint(self) -> str | None:
        """The best step's checkpoint directory name (in the run directory), or None before any."""
        return checkpoint_name(self.step) if self.step is not None else None

    def offer(self, step: int, row: dict[str, Any]) -> bool:
        """Consider ``step``'s metrics; True when it becomes the best."""
        v = _finite(row.get(self.metric))
        if v is None:
            return False
        t = _finite(row.get(self.tie_break)) if self.tie_break else None
        if self.step is not None and self.value is not None and not _better(v, self.value, self.mode):
            if v != self.value or t is None:
                return False
            if self.tie_value is not None and not _better(t, self.tie_value, self.tie_mode):
                return False
        self.step, self.value, self.tie_value = step, v, t
        return True

    def state_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.SPEC}, "step": self.step, "value": self.value,
                "tie_value": self.tie_value, "checkpoint": self.checkpoint}

    def missing_note(self, step: int, row: dict[str, Any]) -> str | None:
        """A warning, once per run, when ``row`` (a step's metrics) lacks the metric or the tie-break (an
        eval/* key: on a step that evaluated); a misspelt training metric would otherwise choose nothing."""
        import difflib

        evaluated = any(k.startswith("eval/") for k in row)
        gone = [k for k in self.keys if k not in row and (evaluated or not k.startswith("eval/"))]
        if not gone or self._warned:
            return None
        self._warned = True
        hints = [f"'{k}'" + (f" (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(k, list(row), n=1))
                             else "") for k in gone]
        return (f"warning: train.keep_best: {', '.join(hints)} not among step {step}'s metrics; steps without "
                "the metric are not candidates (without the tie-break, a tie keeps the earlier step)")


def pick_best(rows: list[dict[str, Any]], options: dict[str, Any]) -> Best:
    """The :class:`Best` of ``metrics.jsonl`` rows (each with its ``step``), in step order."""
    best, _ = Best.from_config(options)
    for row in sorted(rows, key=lambda r: r["step"]):
        best.offer(row["step"], row)
    return best


def same_on_all(accelerator, row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The main process's values of ``keys``: every process must take the same checkpoint decision
    (``save_checkpoint`` is collective), and a metric such as ``time/step`` differs between processes."""
    picked = {k: row[k] for k in keys if k in row}
    if accelerator.num_processes == 1:
        return picked
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([picked], from_process=0)[0]


def use_best(accelerator, output_dir: str | Path, best: Best, last_step: int,
             warn: Callable[[str], None] = print) -> dict[str, Any]:
    """``train.keep_best.final=best`` at the end of a run: load the best step's checkpoint into the live
    model (every process), so that the "after" evaluation and ``final/`` are of it. Returns
    ``summary.json``'s ``final``. Without a best, or with a damaged best checkpoint, the last step stays,
    with a warning and a note saying why."""
    chosen = {"step": best.step, "chosen_by": best.metric, "value": best.value,
              **({"tie_break": best.tie_break, "tie_value": best.tie_value} if best.tie_break else {})}
    if best.step is None:
        note = f"no step measured {best.metric}"
    elif best.step == last_step:
        return chosen
    else:
        path = Path(output_dir) / best.checkpoint
        problem = verify(path) if path.is_dir() else "it is gone"
        if problem is None:
            accelerator.load_state(str(path))  # the model (and optimizer, RNG: unused from here on)
            return chosen
        note = f"the best step's checkpoint {path} cannot be used: {problem}"
    warn(f"warning: train.keep_best.final=best: {note}; final/ is the last step ({last_step})")
    return {"step": last_step, "chosen_by": "last", "note": f"train.keep_best.final=best: {note}"}


def best_summary(best: Best, output_dir: str | Path, last_step: int) -> dict[str, Any]:
    """``summary.json``'s ``best`` (the choice, the best step, its values, its checkpoint directory relative
    to the run directory) and ``last`` (the last step's values of the same keys, from ``metrics.jsonl``)."""
    out = Path(output_dir)
    found = best.checkpoint is not None and (out / best.checkpoint).is_dir()
    summary = {**best.state_dict(), "checkpoint": best.checkpoint if found else None}
    last: dict[str, Any] = {"step": last_step}
    path = out / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step") == last_step:
            last.update({k: row[k] for k in best.keys if k in row})
    return {"best": summary, "last": last}
