"""Public helpers for testing code that uses llm_memo; the pytest plugin is a thin shell over them.

:func:`recording_cache` swaps a fresh in-memory backend in for every cached function in the
process (threads included) and records every event, until the block ends. The ``llm_cache``
pytest fixture is exactly that, per test. An explicit ``cache_controls(backend=...)`` inside the
block still wins, so a test can exercise a real backend on purpose.

Not here: record/replay of real model responses for test suites (a later feature).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from . import config
from .backends.memory import MemoryBackend
from .events import Event, Outcome

__all__ = ["CacheRecorder", "FakeClock", "recording_cache"]


class FakeClock:
    """A clock that only moves when told to, for TTL tests without sleeping.

    Args:
        start: the initial time in seconds since the epoch (default: now).

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        with self._lock:
            self._now += seconds


class CacheRecorder:
    """The object the ``llm_cache`` fixture yields: a private backend plus what happened.

    Attributes:
        backend: the fresh :class:`~llm_memo.backends.memory.MemoryBackend` in use.
        clock: the :class:`FakeClock` entries are stamped with; ``advance()`` moves it.
        events: every event since the start (the most recent 10,000), oldest first.

    .. versionadded:: 0.1.0
    """

    def __init__(self, max_events: int = 10_000) -> None:
        self.clock = FakeClock()
        self.backend = MemoryBackend(clock=self.clock)
        self.events: collections.deque[Event] = collections.deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            if event.outcome is Outcome.HIT:
                self._hits += 1
            elif event.outcome in (Outcome.MISS, Outcome.REFRESH):
                self._misses += 1

    @property
    def hits(self) -> int:
        """Calls answered from the cache."""
        return self._hits

    @property
    def misses(self) -> int:
        """Calls that ran the function (``miss`` and ``refresh``)."""
        return self._misses

    def entries(self) -> list[str]:
        """The keys stored in the fixture's backend."""
        return list(self.backend.keys())

    def advance(self, seconds: float) -> None:
        """Move the cache clock forward (entries age; TTLs expire)."""
        self.clock.advance(seconds)

    def clear(self) -> None:
        """Drop every entry and forget the events so far."""
        self.backend.clear()
        with self._lock:
            self.events.clear()
            self._hits = self._misses = 0

    def __repr__(self) -> str:
        return f"<CacheRecorder entries={len(self.backend)} hits={self.hits} misses={self.misses}>"


@contextmanager
def recording_cache() -> Iterator[CacheRecorder]:
    """Replace every cached function's backend with a fresh in-memory one, for a block.

    Example::

        with recording_cache() as cache:
            ask("gpt-4o-mini", messages)
            ask("gpt-4o-mini", messages)
        assert (cache.misses, cache.hits) == (1, 1)

    .. versionadded:: 0.1.0
    """
    recorder = CacheRecorder()
    before = config.settings()
    config._replace(
        override_backend=recorder.backend,
        observers=(*before.observers, recorder._record),
        clock=recorder.clock,
    )
    try:
        yield recorder
    finally:
        now = config.settings()
        config._replace(
            override_backend=before.override_backend,
            observers=tuple(o for o in now.observers if o != recorder._record),
            clock=before.clock,
        )
