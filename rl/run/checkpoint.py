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
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
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


def save_checkpoint(accelerator, output_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
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
        for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
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
