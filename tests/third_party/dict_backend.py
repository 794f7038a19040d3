"""A backend as a third-party author would write it: a dict of bytes, and only public names.

It imports nothing from llm_memo but the backend protocol's public pieces (``MISSING`` and
``Missing`` from :mod:`llm_memo.backends`, :class:`llm_memo.entry.Entry` and its byte layout,
:class:`llm_memo.CodecError`), so ``tests/third_party/test_dict_backend.py`` shows that the
shipped conformance suite (:mod:`llm_memo.testing.conformance`) is enough to test a backend
that lives in another package. Kept deliberately small: a lock, a dict, a clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal

from llm_memo import CodecError
from llm_memo.backends import MISSING, Missing
from llm_memo.entry import Entry


class DictBackend:
    """Entries as bytes in a dict, with expiry by a clock (``time.time`` unless given)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: key -> (the entry's bytes, when it expires or None); tests plant raw bytes here.
        self.data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        with self._lock:
            found = self.data.get(key)
        if found is None:
            return MISSING
        raw, expires = found
        if expires is not None and expires <= self.clock():
            return MISSING
        try:
            return Entry.from_bytes(raw)
        except CodecError:  # garbage under the key: a miss, never an exception
            return MISSING

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        expires = None if ttl is None else self.clock() + ttl
        raw = entry.to_bytes()
        with self._lock:
            if ttl is not None and ttl <= 0:
                self.data.pop(key, None)
            else:
                self.data[key] = (raw, expires)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self.data.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        with self._lock:
            doomed = [k for k in self.data if k.startswith(prefix)]
            for k in doomed:
                del self.data[k]
        return len(doomed)

    def keys(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            return iter(sorted(k for k in self.data if k.startswith(prefix)))

    def close(self) -> None:
        with self._lock:
            self.data.clear()
