"""The public test kit: helpers for testing code that uses llm_memo, and for testing backends.

The pytest plugin (``llm_memo.pytest_plugin``) is a thin shell over this package:

* :func:`recording_cache` swaps a fresh in-memory backend in for every cached function in the
  process (threads included) and records every event, until the block ends. The ``llm_cache``
  pytest fixture is exactly that, per test. An explicit ``cache_controls(backend=...)`` inside
  the block still wins, so a test can exercise a real backend on purpose.
* :func:`restored_settings` undoes every ``configure(...)`` a block makes; :class:`FakeClock`
  moves only when told to, for TTL tests without sleeping.
* Record / replay of real model responses (the ``llm_recording`` fixture and the
  ``llm_memo`` marker): :func:`use_recordings`, :class:`Recording`, :class:`Mode` and
  :func:`redact_keys`, re-exported from :mod:`llm_memo.recording`, where they are documented.
* :mod:`llm_memo.testing.conformance`: the backend conformance suite every llm_memo backend
  passes, as a base class a third-party backend's tests subclass. It needs pytest and
  hypothesis (``pip install 'llm-memo[testing]'``), so it is imported only on request; this
  package itself needs neither.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import config
from ..backends.memory import MemoryBackend
from ..controls import CacheScope, Directives
from ..events import Event
from ..recording import Mode, Recording, RecordingBackend, redact_keys, use_recordings

__all__ = [
    "CacheRecorder",
    "FakeClock",
    "Mode",
    "Recording",
    "RecordingBackend",
    "recording_cache",
    "redact_keys",
    "restored_settings",
    "use_recordings",
]


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
        self._max_events = max_events
        # What happened, kept the way a cache_controls block's scope keeps it (the same
        # events, hits and misses), for every call while the recorder is active.
        self._scope = CacheScope(Directives(), max_events)

    def _record(self, event: Event) -> None:
        self._scope.record(event)

    @property
    def events(self) -> collections.deque[Event]:
        """Every event since the start (the most recent ones), oldest first."""
        return self._scope.events

    @property
    def hits(self) -> int:
        """Calls answered from the cache."""
        return self._scope.hits

    @property
    def misses(self) -> int:
        """Calls that ran the function (``miss`` and ``refresh``)."""
        return self._scope.misses

    def entries(self) -> list[str]:
        """The keys stored in the fixture's backend."""
        return list(self.backend.keys())

    def advance(self, seconds: float) -> None:
        """Move the cache clock forward (entries age; TTLs expire)."""
        self.clock.advance(seconds)

    def clear(self) -> None:
        """Drop every entry and forget the events so far."""
        self.backend.clear()
        self._scope = CacheScope(Directives(), self._max_events)

    def __repr__(self) -> str:
        return f"<CacheRecorder entries={len(self.backend)} hits={self.hits} misses={self.misses}>"


@contextmanager
def restored_settings() -> Iterator[config.Settings]:
    """Undo, when the block ends, every change made to llm_memo's process-wide settings inside
    it: ``configure(...)`` calls (backend, directives, ``strict``, signing keys, callbacks,
    clock...) and the backend the test fixtures swap in. Yields the settings from before.

    The ``llm_cache`` and ``llm_recording`` fixtures run each test inside one, so nothing a
    test configures leaks into the next.

    Example::

        with restored_settings():
            configure(ttl=5, strict=True)
            ...
        # ttl and strict are what they were before the block

    .. versionadded:: 0.1.0
    """
    before = config.settings()
    try:
        yield before
    finally:
        # Every field (so a setting added later is covered too), as one change: decorated
        # functions see a new generation and drop what they derived from the block's settings.
        config._replace(
            **{
                f.name: getattr(before, f.name)
                for f in dataclasses.fields(before)
                if f.name != "generation"
            }
        )


@contextmanager
def recording_cache() -> Iterator[CacheRecorder]:
    """Replace every cached function's backend with a fresh in-memory one, for a block.

    Everything the block changes in the process-wide settings (``configure(...)`` calls
    included) is undone when it ends (see :func:`restored_settings`).

    Example::

        with recording_cache() as cache:
            ask("gpt-4o-mini", messages)
            ask("gpt-4o-mini", messages)
        assert (cache.misses, cache.hits) == (1, 1)

    .. versionadded:: 0.1.0
    """
    recorder = CacheRecorder()
    with restored_settings() as before:
        config._replace(
            override_backend=recorder.backend,
            observers=(*before.observers, recorder._record),
            clock=recorder.clock,
        )
        yield recorder
