"""A small thread-safe LRU map, the one used wherever llm_memo bounds an in-process memo.

``functools.lru_cache`` memoises a function; this holds values computed elsewhere (a parsed
entry, an embedded vector) under a key the caller chooses, with ``get`` / ``put`` / ``clear``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` items; a ``get`` hit or a ``put`` makes an item the most recent."""

    __slots__ = ("__weakref__", "_data", "_lock", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The item under ``key`` (now the most recent), or ``None``."""
        with self._lock:
            try:
                self._data.move_to_end(key)
            except KeyError:
                return None
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, evicting the least recent item beyond ``maxsize``."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def _after_fork(self) -> None:
        # A lock held by another thread at fork() stays held in the child (see _fork.py).
        self._lock = threading.Lock()
