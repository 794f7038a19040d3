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
``AsyncRedisBackend``).

The package: ``_tiers.py`` holds every decision (L1 lifetimes, fills, the L1 failure policy);
``_async.py`` is :class:`AsyncTieredBackend`, the one hand-written body, and ``_sync.py``
(:class:`TieredBackend`) is generated from it by ``scripts/unasync``.

What L1 cannot know: another process deleting or overwriting a key at L2. ``l1_ttl`` bounds
how long L1 answers without asking L2.

Not here: the stores themselves, and any URL form (build tiers as objects).
"""

from __future__ import annotations

from ._async import AsyncTieredBackend
from ._sync import TieredBackend

# Where the classes were defined before the package split (reprs, docs and pickles say so).
AsyncTieredBackend.__module__ = TieredBackend.__module__ = __name__

__all__ = ["AsyncTieredBackend", "TieredBackend"]
