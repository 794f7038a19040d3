"""The disk backend's persistent counters: a small diskcache of integers beside the entries.

Counters live in their own SQLite cache in ``<directory>/llm_memo-stats``, so clearing, listing
or culling entries never touches them and a count is never evicted for space. Each counter is
one integer row (``"<day>|<field>|<function>"``) added to with diskcache's ``incr``, one
transaction per flush, safe across the processes that share the directory. Reading selects the
integer rows straight from the index, so nothing stored there is ever unpickled.

Not here: the entry store (``disk.py``), what is counted (``_counters.py``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping

import diskcache

from .._fork import register
from ..errors import BackendError
from ._counters import COUNTER_FIELDS

__all__ = ["DiskCounters"]

_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)
_FIELDS = frozenset(COUNTER_FIELDS)


class DiskCounters:
    """Counters for the disk backend at ``directory`` (opened on first use)."""

    def __init__(self, directory: str, timeout: float) -> None:
        self.directory = os.path.join(directory, "llm_memo-stats")
        self.timeout = timeout
        self._cache: diskcache.Cache | None = None
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # diskcache reconnects by itself in a child

    def _open(self) -> diskcache.Cache:
        with self._lock:
            if self._cache is None:
                self._cache = diskcache.Cache(self.directory, timeout=self.timeout)
            return self._cache

    def add(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        try:
            cache = self._open()
            with cache.transact(retry=True):
                for (day, function), counts in batch.items():
                    for field, amount in counts.items():
                        if field in _FIELDS and amount:
                            cache.incr(f"{day}|{field}|{function}", amount, retry=True)
        except _ERRORS as exc:
            raise BackendError(f"disk counters at {self.directory}: {exc}") from exc

    def read(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        if not os.path.isdir(self.directory):
            return {}
        try:
            rows = (
                self._open()
                ._sql(
                    "SELECT key, value FROM Cache WHERE raw = 1 AND typeof(key) = 'text'"
                    " AND typeof(value) = 'integer' AND key >= ?",
                    (since,),
                )
                .fetchall()
            )
        except _ERRORS as exc:
            raise BackendError(f"disk counters at {self.directory}: {exc}") from exc
        out: dict[tuple[str, str], dict[str, int]] = {}
        for key, value in rows:
            day, _, rest = key.partition("|")
            field, _, function = rest.partition("|")
            if field in _FIELDS and function:
                out.setdefault((day, function), {})[field] = value
        return out

    def close(self) -> None:
        with self._lock:
            cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()
