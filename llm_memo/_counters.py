"""Persistent counters, the recording side: sums kept in memory, flushed to backends apart from
the calls (``configure(persist_stats=True)``).

A cached call adds to an in-memory sum (one lock, a few dict updates: no I/O, no extra round
trip on a hit). The sums go to the backend (its :class:`~llm_memo.backends.Counting` methods)
as one batch per backend:

* **sync backends**: from one daemon thread every ``persist_stats`` seconds, at interpreter
  exit (``atexit``), and on :func:`flush`;
* **async backends**: from a task on the running event loop when a call finds the interval
  has passed, and on :func:`aflush` (await it before the loop ends: counts still pending when
  a loop closes are lost, as asyncio connections cannot outlive their loop).

A forked child starts with no pending sums and no flusher thread (the parent's counts are the
parent's to flush); its first recorded call starts its own. A failed flush drops that batch,
with a warning (the counters are statistics, never worth retrying into a store that is down).

Not here: the backends' storage of counters (``backends/_counters.py`` and each backend), the
in-process ``fn.cache.stats()`` counters (``events.Stats``).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from typing import Any

from . import _fork
from .backends import is_async_backend
from .backends._counters import day_of
from .errors import BackendError
from .events import Outcome

__all__ = ["aflush", "flush", "record"]

logger = logging.getLogger("llm_memo")

_FIELD = {
    Outcome.HIT: "hits",
    Outcome.MISS: "misses",
    Outcome.REFRESH: "refreshes",
    Outcome.STALE: "stale",
    Outcome.BYPASS: "bypasses",
    Outcome.ERROR: "errors",
}

Sums = dict[tuple[str, str], dict[str, int]]


class _Recorder:
    """The process's pending sums, per backend, and the thread that flushes the sync ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[Any, Sums]] = {}
        self.thread: threading.Thread | None = None
        self.interval = 30.0
        self.due: dict[int, float] = {}  # async backends: when their next flush is due
        self.tasks: set[asyncio.Task[bool]] = set()
        self.at_exit = False
        self.day: tuple[int, str] = (-1, "")  # the last UTC day number seen, and its name
        _fork.register(self)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()
        self.pending = {}
        self.thread = None
        self.due = {}
        self.tasks = set()

    def take(self, asynchronous: bool) -> list[tuple[Any, Sums]]:
        """Remove and return the pending sums of the sync (or the async) backends."""
        with self.lock:
            taken = [
                (backend, sums)
                for backend, sums in self.pending.values()
                if is_async_backend(backend) is asynchronous and sums
            ]
            for backend, _ in taken:
                del self.pending[id(backend)]
            return taken

    def take_one(self, backend: Any) -> Sums:
        with self.lock:
            found = self.pending.pop(id(backend), None)
        return found[1] if found is not None else {}


_recorder = _Recorder()


def record(
    backend: Any,
    function: str,
    outcome: Outcome,
    now: float,
    interval: float,
    saved: int = 0,
    split: tuple[int, int, int] = (0, 0, 0),
    cost: float | None = None,
) -> None:
    """Add one call to ``backend``'s pending sums (the hit path: no I/O here)."""
    rec = _recorder
    number = int(now // 86400)
    day = rec.day
    if day[0] != number:  # formatting a date costs more than the rest of this function
        day = rec.day = (number, day_of(now))
    where = (day[1], function)
    with rec.lock:
        held = rec.pending.get(id(backend))
        if held is None or held[0] is not backend:
            held = rec.pending[id(backend)] = (backend, {})
        row = held[1].setdefault(where, {})
        field = _FIELD[outcome]
        row[field] = row.get(field, 0) + 1
        if saved:
            row["tokens_saved"] = row.get("tokens_saved", 0) + saved
            for name, amount in zip(
                ("input_tokens_saved", "output_tokens_saved", "cached_input_tokens_saved"),
                split,
                strict=True,
            ):
                if amount:
                    row[name] = row.get(name, 0) + amount
            if cost:
                row["cost_saved_nusd"] = row.get("cost_saved_nusd", 0) + round(cost * 1e9)
        rec.interval = interval
        start = rec.thread is None
        if start:
            rec.thread = threading.Thread(target=_run, name="llm_memo-stats", daemon=True)
    if start:
        if not rec.at_exit:
            rec.at_exit = True
            atexit.register(flush)
        rec.thread.start()  # type: ignore[union-attr]
    if is_async_backend(backend):
        _schedule(backend, interval)


def _run() -> None:
    rec = _recorder
    me = threading.current_thread()
    while rec.thread is me:
        time.sleep(rec.interval)
        if rec.thread is me:
            flush()


def _write(backend: Any, sums: Sums) -> bool:
    try:
        backend.add_counters(sums)
    except BackendError as exc:
        logger.warning("llm_memo: persistent counters not flushed to %r: %s", backend, exc)
        return False
    return True


def flush() -> int:
    """Write the pending counters of every sync backend now; return how many batches went.

    Runs by itself every ``persist_stats`` seconds and at exit; call it to flush sooner (at the
    end of a batch job, or in a test).

    .. versionadded:: 0.1.0
    """
    return sum(_write(backend, sums) for backend, sums in _recorder.take(False))


async def _awrite(backend: Any, sums: Sums) -> bool:
    try:
        await backend.add_counters(sums)
    except BackendError as exc:
        logger.warning("llm_memo: persistent counters not flushed to %r: %s", backend, exc)
        return False
    return True


async def aflush() -> int:
    """Write the pending counters of every async backend now, from this event loop; return
    how many batches went. Await it before an event loop that used async backends ends.

    .. versionadded:: 0.1.0
    """
    written = 0
    for backend, sums in _recorder.take(True):
        written += await _awrite(backend, sums)
    return written


def _schedule(backend: Any, interval: float) -> None:
    rec = _recorder
    now = time.monotonic()
    due = rec.due.get(id(backend))
    if due is None:
        rec.due[id(backend)] = now + interval
        return
    if now < due:
        return
    rec.due[id(backend)] = now + interval
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    sums = rec.take_one(backend)
    if sums:
        task = loop.create_task(_awrite(backend, sums))
        rec.tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(rec.tasks.discard)
