"""The tiered backend, written once, in async: ``scripts/unasync`` generates ``_sync.py``.

L1 is sync and local, called inline from both flavours; only the L2 calls are awaited. Every
decision (L1 lifetimes, fills, L1 failures) is in ``_tiers.py``. Edit the async source, then
run ``scripts/unasync`` (CI runs ``scripts/unasync --check``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal

from ...entry import Entry
from ...errors import ConfigurationError
from .. import (
    MISSING,
    AsyncBackend,
    AsyncBulkReading,
    AsyncListing,
    AsyncLocking,
    Backend,
    Missing,
)
from ._tiers import _Tiers


class AsyncTieredBackend(_Tiers):
    """A local L1 (memory) in front of a shared L2 (Redis, disk, object store).

    Args:
        l1: a sync local backend, normally :class:`~llm_memo.backends.memory.MemoryBackend`,
            called inline (it answers in microseconds).
        l2: the shared backend: an async one for ``AsyncTieredBackend``, a sync one for
            ``TieredBackend``.
        l1_ttl: the longest L1 keeps an entry (seconds; ``None``: as long as L2 does).
            Bounds how long a delete or overwrite made by another process goes unseen here.
        clock: seconds-since-the-epoch clock (the cache clock; tests pass a fake one).

    Raises:
        ConfigurationError: L1 is async, L2 is of the other flavour (``TieredBackend`` takes a
            sync L2, ``AsyncTieredBackend`` an async one), or ``l1_ttl`` is not positive.

    Example::

        backend = AsyncTieredBackend(
            MemoryBackend(max_entries=5_000),
            AsyncRedisBackend.from_url("redis://cache:6379/0"),
            l1_ttl=60,
        )

        @llm_cached(backend=backend, ttl=3600)
        async def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    _L2_IS_ASYNC = True

    def __init__(
        self,
        l1: Backend,
        l2: AsyncBackend,
        *,
        l1_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(l1, l2, l1_ttl=l1_ttl, clock=clock)
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

    async def get_many(self, keys: Sequence[str]) -> list[Entry | Literal[Missing.MISSING]]:
        """L1 for each key, then the rest from L2 in one bulk read when L2 has one (else one
        ``get`` each), filling L1 with what L2 had.

        Raises:
            BackendError: L2 failed for a key L1 did not have.
        """
        found = [self._l1_get(key) for key in keys]
        wanted = [i for i, entry in enumerate(found) if entry is MISSING]
        if not wanted:
            return found
        names = [keys[i] for i in wanted]
        if isinstance(self.l2, AsyncBulkReading):
            entries = await self.l2.get_many(names)
        else:
            entries = [await self.l2.get(name) for name in names]
        for i, name, entry in zip(wanted, names, entries, strict=True):
            if entry is not MISSING:
                self._fill(name, entry)
            found[i] = entry
        return found

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
        """Clear both; the larger of the two counts (an entry is usually in both)."""
        try:
            at_l2 = await self.l2.clear(prefix)
        finally:
            at_l1 = self._l1_clear(prefix)
        return max(at_l2, at_l1)

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """L2's keys (L1 holds a subset of them).

        Raises:
            ConfigurationError: L2 cannot list its keys (raised by the call, before iterating).
        """
        if not isinstance(self.l2, AsyncListing):
            raise ConfigurationError(f"{type(self.l2).__name__} (L2) cannot list its keys")
        return self.l2.keys(prefix)

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
