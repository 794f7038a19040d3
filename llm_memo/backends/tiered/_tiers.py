"""What both tiered backends share: L1, its lifetimes and its failure policy.

Pure code around the sync L1 (called inline from both flavours): which ``ttl`` L1 gets, which
form of an entry it keeps (the uncompressed twin of a :class:`~llm_memo.entry.PackedEntry`),
how an L2 hit fills it, and how an L1 failure reads (a miss, logged once per burst). The
backend bodies (``_async.py`` and the generated ``_sync.py``) only sequence L1 and L2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar, Literal

from ...entry import Entry, PackedEntry
from ...errors import BackendError, ConfigurationError
from .. import MISSING, AsyncBackend, Backend, Missing, is_async_backend

logger = logging.getLogger("llm_memo")

# L1 failures are logged at most once per this many seconds per tiered backend.
_L1_LOG_INTERVAL = 30.0


class _Tiers:
    """What both tiered backends share: L1, its lifetimes and its failure policy."""

    l2: Backend | AsyncBackend
    # Whether the backend body awaits its L2: set by each body, checked against the L2 given.
    _L2_IS_ASYNC: ClassVar[bool]

    def __init__(
        self,
        l1: Backend,
        l2: Backend | AsyncBackend,
        *,
        l1_ttl: float | None,
        clock: Callable[[], float],
    ) -> None:
        if is_async_backend(l2) != self._L2_IS_ASYNC:
            other, kind = (
                ("TieredBackend", "sync") if self._L2_IS_ASYNC else ("AsyncTieredBackend", "async")
            )
            raise ConfigurationError(f"{type(l2).__name__} is {kind}: use {other}(l1, l2) for it")
        if is_async_backend(l1):
            raise ConfigurationError(
                f"L1 must be a sync, local backend (MemoryBackend), not {type(l1).__name__}"
            )
        if l1_ttl is not None and l1_ttl <= 0:
            raise ConfigurationError("l1_ttl must be positive, or None for no cap")
        self.l1 = l1
        self.l1_ttl = l1_ttl
        self._clock = clock
        self._l1_reported = -_L1_LOG_INTERVAL
        self._l1_suppressed = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.l1!r}, {self.l2!r}, l1_ttl={self.l1_ttl!r})"

    def _capped(self, ttl: float | None) -> float | None:
        cap = self.l1_ttl
        if cap is None:
            return ttl
        return cap if ttl is None else min(ttl, cap)

    def _l1_failed(self, operation: str, exc: BackendError) -> None:
        now = time.monotonic()
        if now - self._l1_reported < _L1_LOG_INTERVAL:
            self._l1_suppressed += 1
            return
        more = f" ({self._l1_suppressed} more since the last report)" if self._l1_suppressed else ""
        self._l1_reported, self._l1_suppressed = now, 0
        logger.warning(
            "llm_memo: L1 %r %s failed, using L2 only: %s%s", self.l1, operation, exc, more
        )

    @property
    def shared_tier(self) -> Backend | AsyncBackend:
        """The tier every process shares (L2): where persistent counters are kept, since L1's
        are this process's alone."""
        return self.l2

    def _l1_get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        try:
            return self.l1.get(key)
        except BackendError as exc:
            self._l1_failed("read", exc)
            return MISSING

    def _l1_set(self, key: str, entry: Entry, ttl: float | None) -> None:
        if isinstance(entry, PackedEntry) and entry.unpacked is not None:
            entry = entry.unpacked  # L1 keeps the uncompressed twin (see PackedEntry)
        try:
            self.l1.set(key, entry, ttl)
        except BackendError as exc:
            self._l1_failed("write", exc)

    def _l1_delete(self, key: str) -> bool:
        try:
            return self.l1.delete(key)
        except BackendError as exc:
            self._l1_failed("delete", exc)
            return False

    def _l1_clear(self, prefix: str) -> int:
        try:
            return self.l1.clear(prefix)
        except BackendError as exc:
            self._l1_failed("clear", exc)
            return 0

    def _fill(self, key: str, entry: Entry) -> None:
        """Copy an L2 hit into L1 for at most the time it has left."""
        until = entry.retain_until
        if until is None:
            self._l1_set(key, entry, self.l1_ttl)
            return
        left = until - self._clock()
        if left > 0:  # an entry past its retention is served (L2 still had it), not copied
            self._l1_set(key, entry, self._capped(left))
