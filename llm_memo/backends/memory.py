"""``memory://``: an in-process LRU store bounded by entry count and by bytes.

Entries are kept as :class:`~llm_memo.entry.Entry` objects (no serialisation), in an
``OrderedDict`` guarded by one lock; a hit is a dict lookup and a ``move_to_end``. Expiry is
lazy: an entry past its ``ttl`` is dropped when it is next read or when eviction reaches it.
Async callers use it inline, without a thread hop: every operation is microseconds.

It keeps its own ``OrderedDict`` rather than :class:`llm_memo._lru.LRU` (the shared bounded
memo): a backend needs what that map deliberately lacks, a per-entry deadline read under the
same lock as the lookup, a second bound in bytes (each item's accounted size, a running total
and eviction by both bounds at once), prefix clears and key listings. Building those on top of
``LRU`` would take its lock from outside or duplicate its bookkeeping.

Not here: anything shared between processes (use the disk backend for that).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from .. import _fork
from ..entry import Entry
from ..errors import ConfigurationError
from . import MISSING, Missing

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "MemoryBackend"]

#: Default bound on the number of entries.
DEFAULT_MAX_ENTRIES = 10_000
#: Default bound on the total size of entries (keys, values, tags, signatures, headers): 256 MiB.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_INF = float("inf")
_OPTIONS = ("max_entries", "max_bytes", "clock")
logger = logging.getLogger("llm_memo")


class MemoryBackend:
    """An in-process, thread-safe LRU backend with TTLs.

    Args:
        max_entries: evict least-recently-used entries beyond this many.
        max_bytes: evict least-recently-used entries while the total size exceeds this; an entry
            larger than ``max_bytes`` on its own is not stored.
        clock: seconds-returning clock used for expiry (tests pass a fake one).

    Example::

        @llm_cached(backend=MemoryBackend(max_entries=1000))
        def ask(prompt: str) -> str: ...

    Values are kept uncompressed (``compress_values``), whatever ``compress_threshold`` says:
    inflating a 30 KB embedding on every hit costs ~100 µs, more than a hit is worth, to save
    memory of the very process that asks.

    .. versionadded:: 0.1.0
    """

    #: Written entries are never compressed for this backend (read by ``Memo.entry_for``).
    compress_values: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ConfigurationError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (entry, deadline, accounted size); deadline is +inf for entries kept until
        # evicted; the size (key + entry) is what the byte bound counts.
        self._data: OrderedDict[str, tuple[Entry, float, int]] = OrderedDict()
        self._bytes = 0
        self.rejected = 0  # entries larger than max_bytes, not stored
        _fork.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryBackend:
        """Build from ``memory://`` with optional ``?max_entries=N&max_bytes=N``.

        Raises:
            ConfigurationError: an unknown or malformed query parameter or option.
        """
        return cls(**cls._settings(url, options))  # type: ignore[arg-type]

    @classmethod
    def check_url(cls, url: str, **options: object) -> None:
        """Validate ``url`` and ``options`` as :meth:`from_url` would, building nothing.

        Raises:
            ConfigurationError: an unknown or malformed query parameter or option.
        """
        cls._settings(url, options)

    @classmethod
    def _settings(cls, url: str, options: dict[str, object]) -> dict[str, object]:
        parts = urlsplit(url)
        if parts.netloc or parts.path.strip("/"):
            raise ConfigurationError(
                f"{url!r}: a memory:// URL names no host or path (memory://?max_entries=N)"
            )
        kwargs: dict[str, object] = dict(options)
        unknown = sorted(set(kwargs).difference(_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown memory backend option(s) {', '.join(unknown)}; known: "
                + ", ".join(_OPTIONS)
            )
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in ("max_entries", "max_bytes"):
                raise ConfigurationError(
                    f"unknown memory:// option {name!r}; known: max_entries, max_bytes"
                )
            try:
                kwargs[name] = int(value)
            except ValueError as exc:
                raise ConfigurationError(f"memory:// option {name} must be an integer") from exc
        for name in ("max_entries", "max_bytes"):
            bound = kwargs.get(name, 1)
            if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {bound!r}")
        return kwargs

    def __repr__(self) -> str:
        return f"MemoryBackend(max_entries={self.max_entries}, max_bytes={self.max_bytes})"

    def __len__(self) -> int:
        return len(self._data)

    @property
    def total_bytes(self) -> int:
        """The summed size of the stored entries."""
        return self._bytes

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`; marks it recently used."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return MISSING
            entry, deadline, size = item
            if deadline != _INF and deadline <= self._clock():
                del self._data[key]
                self._bytes -= size
                return MISSING
            self._data.move_to_end(key)
            return entry

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` for ``ttl`` seconds (``None``: until evicted)."""
        size = entry.size + len(key)
        deadline = _INF if ttl is None else self._clock() + ttl
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if ttl is not None and ttl <= 0:
                return
            if size > self.max_bytes:
                self.rejected += 1
                logger.warning(
                    "memory backend: an entry of %d bytes exceeds max_bytes=%d; not stored",
                    size,
                    self.max_bytes,
                )
                return
            self._data[key] = (entry, deadline, size)
            self._bytes += size
            self._evict()

    def _evict(self) -> None:
        data = self._data
        while len(data) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, _, size) = data.popitem(last=False)
            self._bytes -= size

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return False
            self._bytes -= item[2]
            return True

    def clear(self, prefix: str = "") -> int:
        """Remove every key starting with ``prefix``; return how many were removed."""
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for k in doomed:
                self._bytes -= self._data.pop(k)[2]
            return len(doomed)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate the live keys starting with ``prefix`` (a snapshot, oldest use first)."""
        now = self._clock()
        with self._lock:
            snapshot = [
                k for k, (_, dl, _) in self._data.items() if k.startswith(prefix) and dl > now
            ]
        return iter(snapshot)

    def close(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._bytes = 0
