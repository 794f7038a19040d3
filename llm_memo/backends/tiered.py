"""``TieredBackend(l1, l2)``: a fast local store in front of a shared one.

Reads try L1, then L2. An L2 hit is copied into L1 for the time the entry has left (its
``retain_until``, relative to the clock), never longer, so L1 cannot answer with an entry that
L2 has already let go; an entry with no expiry is kept in L1 for ``l1_ttl`` (``None``: until
L1 evicts it). Writes go to L2 first, then L1; deletes and clears go to both.

Failures: an L1 hit needs nothing from L2, so it is served while L2 is down; an L1 miss asks
L2, whose :class:`~llm_memo.errors.BackendError` reaches the decorator (which then calls the
function: fail-open). A write or delete that fails at L2 still reaches L1, then raises, so the
failure is counted. L1 failures (a disk L1 timing out, or one that cannot be opened) read as
misses, logged as a warning once per burst (every 30 s at most): L1 is an optimisation, never
the reason a call fails, but an L1 that never works should not go unnoticed.

L1 is synchronous and local (:class:`~llm_memo.backends.memory.MemoryBackend`, or a disk
backend), called inline even from async code: it answers in microseconds. L2 is any backend:
:class:`TieredBackend` takes a sync one, :class:`AsyncTieredBackend` an async one (such as
``AsyncRedisBackend``). The two classes are written out side by side and differ only by
``await``; every decision lives in the shared base.

What L1 cannot know: another process deleting or overwriting a key at L2. ``l1_ttl`` bounds
how long L1 answers without asking L2.

Not here: the stores themselves, and any URL form (build tiers as objects).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Literal

from ..entry import Entry
from ..errors import BackendError, ConfigurationError
from . import (
    MISSING,
    AsyncBackend,
    AsyncListing,
    AsyncLocking,
    Backend,
    Listing,
    Locking,
    Missing,
    is_async_backend,
)

__all__ = ["AsyncTieredBackend", "TieredBackend"]

logger = logging.getLogger("llm_memo")

# L1 failures are logged at most once per this many seconds per tiered backend.
_L1_LOG_INTERVAL = 30.0


class _Tiers:
    """What both tiered backends share: L1, its lifetimes and its failure policy."""

    l2: Backend | AsyncBackend

    def __init__(self, l1: Backend, *, l1_ttl: float | None, clock: Callable[[], float]) -> None:
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

    def _l1_get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        try:
            return self.l1.get(key)
        except BackendError as exc:
            self._l1_failed("read", exc)
            return MISSING

    def _l1_set(self, key: str, entry: Entry, ttl: float | None) -> None:
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


class TieredBackend(_Tiers):
    """A local L1 (memory) in front of a shared, synchronous L2 (Redis, disk, object store).

    Args:
        l1: a sync local backend, normally :class:`~llm_memo.backends.memory.MemoryBackend`.
        l2: the shared backend.
        l1_ttl: the longest L1 keeps an entry (seconds; ``None``: as long as L2 does).
            Bounds how long a delete or overwrite made by another process goes unseen here.
        clock: seconds-since-the-epoch clock (the cache clock; tests pass a fake one).

    Raises:
        ConfigurationError: L1 or L2 is async (use :class:`AsyncTieredBackend` for an
            async L2), or ``l1_ttl`` is not positive.

    Example::

        backend = TieredBackend(MemoryBackend(max_entries=5_000),
                                RedisBackend.from_url("redis://cache:6379/0"), l1_ttl=60)

        @llm_cached(backend=backend, ttl=3600)
        def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        l1: Backend,
        l2: Backend,
        *,
        l1_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if is_async_backend(l2):
            raise ConfigurationError(
                f"{type(l2).__name__} is async: use AsyncTieredBackend(l1, l2) for it"
            )
        super().__init__(l1, l1_ttl=l1_ttl, clock=clock)
        self.l2: Backend = l2

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """L1, else L2 (filling L1 on a hit).

        Raises:
            BackendError: L1 missed and L2 failed.
        """
        entry = self._l1_get(key)
        if entry is not MISSING:
            return entry
        entry = self.l2.get(key)
        if entry is not MISSING:
            self._fill(key, entry)
        return entry

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write L2, then L1 (L1 is written even if L2 failed; the failure is raised after)."""
        try:
            self.l2.set(key, entry, ttl)
        finally:
            self._l1_set(key, entry, self._capped(ttl))

    def delete(self, key: str) -> bool:
        """Delete from both; whether either had it."""
        try:
            at_l2 = self.l2.delete(key)
        finally:
            at_l1 = self._l1_delete(key)
        return at_l2 or at_l1

    def clear(self, prefix: str = "") -> int:
        """Clear both; the larger of the two counts (an entry is usually in both)."""
        try:
            at_l2 = self.l2.clear(prefix)
        finally:
            at_l1 = self._l1_clear(prefix)
        return max(at_l2, at_l1)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """L2's keys (L1 holds a subset of them).

        Raises:
            ConfigurationError: L2 cannot list its keys.
        """
        if not isinstance(self.l2, Listing):
            raise ConfigurationError(f"{type(self.l2).__name__} (L2) cannot list its keys")
        return self.l2.keys(prefix)

    def lock(self, key: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """L2's cross-process lock; a no-op yielding ``False`` when L2 has none."""
        if isinstance(self.l2, Locking):
            return self.l2.lock(key, ttl=ttl, wait=wait)
        return contextlib.nullcontext(False)

    def close(self) -> None:
        """Close both."""
        try:
            self.l1.close()
        finally:
            self.l2.close()


class AsyncTieredBackend(_Tiers):
    """:class:`TieredBackend` over an async L2 (``AsyncRedisBackend``); L1 stays sync, inline.

    Args:
        l1: a sync local backend, normally :class:`~llm_memo.backends.memory.MemoryBackend`.
        l2: the shared async backend.
        l1_ttl: the longest L1 keeps an entry (seconds; ``None``: as long as L2 does).
        clock: seconds-since-the-epoch clock.

    Raises:
        ConfigurationError: L1 is async, L2 is sync (use :class:`TieredBackend`), or
            ``l1_ttl`` is not positive.

    Example::

        backend = AsyncTieredBackend(MemoryBackend(),
                                     AsyncRedisBackend.from_url("redis://cache:6379/0"))

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        l1: Backend,
        l2: AsyncBackend,
        *,
        l1_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_async_backend(l2):
            raise ConfigurationError(
                f"{type(l2).__name__} is sync: use TieredBackend(l1, l2) for it"
            )
        super().__init__(l1, l1_ttl=l1_ttl, clock=clock)
        self.l2: AsyncBackend = l2

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """L1, else L2 (filling L1 on a hit).

        Raises:
            BackendError: L1 missed and L2 failed.
        """
        entry = self._l1_get(key)
        if entry is not MISSING:
            return entry
        entry = await self.l2.get(key)
        if entry is not MISSING:
            self._fill(key, entry)
        return entry

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write L2, then L1 (L1 is written even if L2 failed; the failure is raised after)."""
        try:
            await self.l2.set(key, entry, ttl)
        finally:
            self._l1_set(key, entry, self._capped(ttl))

    async def delete(self, key: str) -> bool:
        """Delete from both; whether either had it."""
        try:
            at_l2 = await self.l2.delete(key)
        finally:
            at_l1 = self._l1_delete(key)
        return at_l2 or at_l1

    async def clear(self, prefix: str = "") -> int:
        """Clear both; the larger of the two counts."""
        try:
            at_l2 = await self.l2.clear(prefix)
        finally:
            at_l1 = self._l1_clear(prefix)
        return max(at_l2, at_l1)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """L2's keys.

        Raises:
            ConfigurationError: L2 cannot list its keys.
        """
        if not isinstance(self.l2, AsyncListing):
            raise ConfigurationError(f"{type(self.l2).__name__} (L2) cannot list its keys")
        async for key in self.l2.keys(prefix):
            yield key

    def lock(self, key: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[bool]:
        """L2's cross-process lock; a no-op yielding ``False`` when L2 has none."""
        if isinstance(self.l2, AsyncLocking):
            return self.l2.lock(key, ttl=ttl, wait=wait)
        return contextlib.nullcontext(False)

    async def close(self) -> None:
        """Close both."""
        try:
            self.l1.close()
        finally:
            await self.l2.close()
