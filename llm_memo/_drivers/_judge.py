"""What an entry the cache found means for the call at hand, shared by every runner.

These helpers apply the decisions of :mod:`llm_memo._policy` to one call and one entry: judge
its freshness and decode it (:func:`judge`), decode the stale entry that answers a failed call
(:func:`serve_stale`), act on a failed read (:func:`read_failed`). No backend I/O happens here
(the runners fetch; this module looks at what they fetched), so the sync and the async runners
import the same functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._policy import Freshness, Policy, ReadFailure, freshness, read_failure, stale_fallback
from ..backends import MISSING
from ..entry import DEFAULT_MAX_ENTRY_SIZE, Entry
from ..errors import BackendError, BackendUnavailableError, CacheMiss, CodecError
from ..events import Outcome
from ._streams import as_returned

if TYPE_CHECKING:
    from .._memo import Memo
    from ..controls import CacheScope

__all__ = [
    "Similar",
    "cache_miss",
    "judge",
    "look_again",
    "read_failed",
    "serve_stale",
    "similar_hit",
]

_FRESH = Freshness.FRESH
_STALE = Freshness.STALE
_STREAM_TAGS = ("stream", "astream")

#: For a semantic backend: (exact context, text to embed).
Similar = tuple[str, str]


def cache_miss(memo: Memo, key: str, cause: BaseException | None = None) -> CacheMiss:
    """The :class:`~llm_memo.errors.CacheMiss` of an ``only_if_cached`` call."""
    why = "the cache backend failed" if cause is not None else "nothing usable is cached"
    return CacheMiss(
        f"only_if_cached: {why} for {memo.function_id} (key {key}); run once without "
        "only_if_cached (or with the recording mode on) to store it",
        key,
    )


def read_failed(
    memo: Memo,
    backend: Any,
    key: str,
    policy: Policy,
    exc: BackendError,
    start: float,
    scopes: tuple[CacheScope, ...],
) -> None:
    """Act on :func:`~llm_memo._policy.read_failure`: raise, or fall through (logged).

    When it raises, the call's event (``error``) is emitted here: every cached call has one.
    """
    memo.backend_failed(backend, exc, "get")
    decision = read_failure(policy, memo.strict)
    if not decision.raises:
        return
    memo.emit(Outcome.ERROR, key, start, policy, scopes, error=exc)
    if decision is ReadFailure.RAISE_CACHE_MISS:
        raise cache_miss(memo, key, exc) from exc
    raise BackendUnavailableError(f"cache read failed for {memo.function_id}: {exc}") from exc


def _decode(memo: Memo, key: str, entry: Entry, backend: Any, returns: bool) -> Any:
    """The value of a usable entry for this call (see :func:`judge`), or a CodecError."""
    # The backend's entry size only matters for a compressed value (it bounds inflation).
    limit = memo.entry_limit(backend) if entry.flags else DEFAULT_MAX_ENTRY_SIZE
    value = memo.decode(key, entry, limit, chunks=not returns)
    return as_returned(entry, value) if returns else value


def judge(
    memo: Memo, key: str, entry: Entry, policy: Policy, backend: Any, returns: bool = True
) -> tuple[Any, Entry | None]:
    """Return ``(value, None)`` for a fresh decodable hit, ``(MISSING, stale_or_None)`` else.

    ``returns``: the value is returned to the caller (plain and coroutine functions), so a
    recorded stream comes back as a replay stream; generators iterate the chunk list, and
    accept only stream entries. ``backend``: where the entry came from (its entry size bounds
    decompression).
    """
    verdict = freshness(entry, memo.now(), policy)
    if verdict is not _FRESH:
        return MISSING, entry if verdict is _STALE else None
    try:
        if entry.flags:
            return _decode(memo, key, entry, backend, returns), None
        # The hit path, inlined: an unflagged entry needs no size bound.
        value = memo.decode(key, entry, chunks=not returns)
    except CodecError as exc:
        memo.unusable(key, exc)
        return MISSING, None
    if returns and entry.type_tag in _STREAM_TAGS:
        return as_returned(entry, value), None
    return value, None


def serve_stale(
    memo: Memo, key: str, stale: Entry | None, policy: Policy, backend: Any, returns: bool = True
) -> Any:
    """The value :func:`~llm_memo._policy.stale_fallback` picks for a failed call, or MISSING."""
    entry = stale_fallback(stale, policy)
    if entry is None:
        return MISSING
    try:
        return _decode(memo, key, entry, backend, returns)
    except CodecError as exc:
        memo.unusable(key, exc)
        return MISSING


def look_again(memo: Memo, key: str, entry: Any, policy: Policy, backend: Any) -> Any:
    """After waiting for another process's lock: the value it stored, or MISSING."""
    if entry is MISSING:
        return MISSING
    value, _ = judge(memo, key, entry, policy, backend)
    return value


def similar_hit(
    memo: Memo, policy: Policy, found: Any, backend: Any
) -> tuple[Any, str, Entry, float] | None:
    """Judge a semantic search result: ``(value, key, entry, similarity)`` if usable."""
    if found is None:
        return None
    skey, sentry, similarity = found
    # Judged under the key the search found: its entry must be that key's.
    value, _ = judge(memo, skey, sentry, policy, backend)
    if value is MISSING:
        return None
    return value, skey, sentry, similarity
