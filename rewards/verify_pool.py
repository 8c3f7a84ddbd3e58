"""A pool of worker processes with a hard time limit per item (the home of Math-Verify's workers).

:meth:`WorkerPool.map` runs ``fn(*args)`` for each item in persistent ``spawn`` processes
(standard-library :mod:`multiprocessing`: ``Process``, ``Pipe``, ``connection.wait``), one item
at a time per worker, and returns the results in input order. An item that has not answered
``timeout`` seconds after it was handed to a worker gets ``default``; its worker is killed
(SIGKILL: it may be stuck in C code that no signal handler interrupts) and replaced, so no input
can hang the caller. A worker that dies (crash, OOM kill) costs only its current item.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: it cannot kill one stuck task; on a
timeout a caller can only abandon the future (the worker stays busy) or tear down the whole pool,
which is what verl's PRIME reward manager does (``verl/workers/reward_manager/prime.py``: on a
timeout it kills every process of the executor). Here only the overrunning worker is replaced.

``spawn`` (not ``fork``): the trainer has torch threads and possibly CUDA; a forked child would
inherit their locks. Each worker imports ``preload`` (e.g. ``math_verify``, ~1 s) before it
reports ready; the per-item clock starts only when a ready worker takes the item. As with any
``spawn`` pool (vLLM's workers, a ``DataLoader`` with workers), a script run by path that uses the
pool must guard its entry point with ``if __name__ == "__main__":`` (each worker imports the main
module); laconic's entry points do.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["WorkerPool", "default_workers"]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0  # seconds for a worker to import its preload modules


def default_workers() -> int:
    """Usable cores, at most 4 (verification is a small share of a training step)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _worker_main(conn: mpc.Connection, preload: tuple[str, ...]) -> None:
    """Worker process: import ``preload``, say ready, then answer ``(fn, args)`` with ``(ok, value)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which kills us
    try:
        for name in preload:
            importlib.import_module(name)
    except BaseException as e:
        conn.send(("error", f"cannot import {name}: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if job is None:
            return
        fn, args = job
        try:
            reply = ("ok", fn(*args))
        except BaseException as e:  # Math-Verify's TimeoutException is a BaseException
            reply = ("raised", f"{type(e).__name__}: {e}")
        conn.send(reply)


class _Slot:
    """One worker process and the item it is working on."""

    def __init__(self, ctx: Any, preload: tuple[str, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, preload), daemon=True, name="verify-worker")
        self.proc.start()
        child.close()
        self.started = time.monotonic()
        self.ready = False
        self.job: tuple[int, float] | None = None  # (item index, deadline)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except Exception:
            pass
        self.conn.close()


class WorkerPool:
    """``size`` persistent worker processes (started on first use) that import ``preload``.

    Use from any thread; concurrent :meth:`map` calls take turns. After ``fork`` a child process
    does not use its parent's workers: it starts its own.
    """

    def __init__(self, size: int | None = None, preload: Sequence[str] = (), grace: float = 2.0) -> None:
        self.size = size or default_workers()
        self.preload = tuple(preload)
        self.grace = grace  # seconds on top of an item's timeout before its worker is killed
        self.broken: str | None = None  # why workers cannot start (e.g. math_verify missing)
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._owner = os.getpid()
        self._lock = threading.Lock()
        _live_pools.add(self)

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float, default: Any = None) -> list[Any]:
        """``[fn(*args) for args in items]`` in workers; ``default`` for an item that raised, overran
        ``timeout + grace`` seconds from the moment a worker took it, or could not run at all."""
        results = [default] * len(items)
        if not items:
            return results
        with self._lock:
            if self._owner != os.getpid():  # forked: the slots belong to the parent
                self._slots, self._owner = [], os.getpid()
            try:
                while not self.broken and len(self._slots) < min(self.size, len(items)):
                    self._slots.append(_Slot(self._ctx, self.preload))
            except Exception as e:  # e.g. inside a daemonic process, which may not have children
                self._fail(f"cannot start a worker process: {type(e).__name__}: {e}")
            if not self.broken:
                self._run(fn, items, float(timeout), results, default)
        return results

    def _replace(self, slot: _Slot) -> None:
        slot.kill()
        try:
            self._slots[self._slots.index(slot)] = _Slot(self._ctx, self.preload)
        except Exception as e:
            self._fail(f"cannot start a worker process: {type(e).__name__}: {e}")

    def _fail(self, why: str) -> None:
        self.broken = why
        log.warning("verifier workers cannot start (%s); answers that need them count as wrong", why)
        self.close()

    def _run(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float, results: list, default: Any) -> None:
        todo = deque(range(len(items)))
        while not self.broken and (todo or any(s.job for s in self._slots)):
            for slot in list(self._slots):  # hand out work
                if slot.ready and slot.job is None and todo:
                    i = todo.popleft()
                    try:
                        slot.conn.send((fn, items[i]))
                    except Exception as e:  # unpicklable item, or a dead pipe
                        log.warning("verifier item %d not sent (%s); counted as %r", i, e, default)
                        self._replace(slot)
                        continue
                    slot.job = (i, time.monotonic() + timeout + self.grace)
            deadlines = [s.job[1] if s.job else s.started + STARTUP_TIMEOUT for s in self._slots if s.job or not s.ready]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.0
            for conn in mpc.wait([s.conn for s in self._slots], wait_s):
                slot = next(s for s in self._slots if s.conn is conn)
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):  # the worker died
                    if not slot.ready:
                        return self._fail(f"a worker exited while starting (exit code {slot.proc.exitcode})")
                    log.warning("a verifier worker died (exit code %s); item counted as %r", slot.proc.exitcode, default)
                    self._replace(slot)
                    if self.broken:
                        return
                    continue
                if kind == "ready":
                    slot.ready = True
                elif kind == "error":
                    return self._fail(value)
                else:
                    i, _ = slot.job  # type: ignore[misc]
                    results[i] = value if kind == "ok" else default
                    slot.job = None
            now = time.monotonic()
            for slot in list(self._slots):
                if slot.job and now > slot.job[1]:
                    log.warning("verifier item overran its %.1f s limit; counted as %r, worker replaced", timeout, default)
                    self._replace(slot)
                elif not slot.ready and now > slot.started + STARTUP_TIMEOUT:
                    return self._fail(f"no worker ready within {STARTUP_TIMEOUT:.0f} s")

    def close(self) -> None:
        """Stop the workers (a later :meth:`map` starts new ones unless the pool is broken)."""
        slots, self._slots = self._slots, []
        if self._owner != os.getpid():
            return
        for slot in slots:
            slot.kill()


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    for pool in list(_live_pools):
        pool.close()
