"""The four runners: plain function, coroutine function, generator, async generator.

Each driver does the same five things in order: resolve the policy, build the key, look the
key up, call the function on a miss (joined with identical calls in flight), then store the
result and emit the call's event. Every *decision* is made by ``_policy.py``; every piece of
per-function machinery lives in ``_memo.py``; a driver only sequences them.

The four bodies are deliberately written out side by side instead of being generated from one
template: the differences (``await``, ``yield``, where a stream is recorded) are exactly the
parts a reader needs to see, and a shared abstraction over sync and async control flow would
cost a frame per call on the hit path. Keep them in step when changing one (the test suite
runs every behaviour through every driver).

A plain or coroutine function may also *return* a stream (``stream=True`` on an SDK call): that
is decided per call from the result, which is then recorded chunk by chunk by
:class:`RecordingStream` / :class:`AsyncRecordingStream` and stored only when it completes.
Generator functions are recorded by the same classes. Each chunk is encoded as it passes, before
the consumer sees it: what is stored is what the source yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from ._flight import ASYNC_FLIGHTS, SYNC_FLIGHTS, Flight, Landing
from ._memo import Memo
from ._policy import (
    Freshness,
    Policy,
    ReadFailure,
    call_outcome,
    freshness,
    read_failure,
    stale_fallback,
)
from .backends import MISSING, AsyncLocking, Locking, is_async_backend, is_semantic_backend
from .codec import StreamUsage, join_chunks, usage_tokens
from .controls import CacheScope
from .entry import DEFAULT_MAX_ENTRY_SIZE, Entry
from .errors import BackendError, BackendUnavailableError, CacheMiss, CodecError
from .events import Outcome

__all__ = [
    "AsyncRecordingStream",
    "AsyncReplayStream",
    "RecordingStream",
    "ReplayStream",
    "run_async",
    "run_async_generator",
    "run_generator",
    "run_sync",
]

_perf = time.perf_counter
_HIT = Outcome.HIT
_FRESH = Freshness.FRESH
_STALE = Freshness.STALE
_NOT_STREAMS = (str, bytes, bytearray, memoryview, Mapping, Sequence)


def is_stream(value: Any) -> bool:
    """Whether a returned value is a stream to record (an iterator that is not a value)."""
    # Look on the type: an instance lookup would run pydantic's __getattr__ for every model.
    return hasattr(type(value), "__next__") and not isinstance(value, _NOT_STREAMS)


def is_async_stream(value: Any) -> bool:
    """Whether a returned value is an async iterator to record."""
    return hasattr(type(value), "__anext__")


def _cache_miss(memo: Memo, key: str, cause: BaseException | None = None) -> CacheMiss:
    why = "the cache backend failed" if cause is not None else "nothing usable is cached"
    return CacheMiss(
        f"only_if_cached: {why} for {memo.function_id} (key {key}); run once without "
        "only_if_cached (or with the recording mode on) to store it",
        key,
    )


def _read_failed(
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
        raise _cache_miss(memo, key, exc) from exc
    raise BackendUnavailableError(f"cache read failed for {memo.function_id}: {exc}") from exc


def _as_returned(entry: Entry, value: Any) -> Any:
    # A plain or coroutine function that returned a stream gets a stream back on a hit.
    tag = entry.type_tag
    if tag == "stream":
        return ReplayStream(value)
    if tag == "astream":
        return AsyncReplayStream(value)
    return value


def _decode(memo: Memo, key: str, entry: Entry, backend: Any, returns: bool) -> Any:
    """The value of a usable entry for this call (see :func:`_judge`), or a CodecError."""
    # The backend's entry size only matters for a compressed value (it bounds inflation).
    limit = memo.entry_limit(backend) if entry.flags else DEFAULT_MAX_ENTRY_SIZE
    value = memo.decode(key, entry, limit, chunks=not returns)
    return _as_returned(entry, value) if returns else value


def _judge(
    memo: Memo, key: str, entry: Entry, policy: Policy, backend: Any, returns: bool = True
) -> tuple[Any, Entry | None]:
    """Return ``(value, None)`` for a fresh decodable hit, ``(MISSING, stale_or_None)`` else.

    ``returns``: the value is returned to the caller (plain and coroutine functions), so a
    recorded stream comes back as a replay stream; generators iterate the chunk list, and
    accept only stream entries. ``backend``: where the entry came from (its entry size bounds
    decompression).
    """
    verdict = freshness(entry, memo.now(), policy)
    if verdict is _FRESH:
        try:
            return _decode(memo, key, entry, backend, returns), None
        except CodecError as exc:
            memo.unusable(key, exc)
            return MISSING, None
    return MISSING, entry if verdict is _STALE else None


def _serve_stale(
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


# -- cross-process single-flight (lock=True) ---------------------------------------------------


@contextlib.contextmanager
def _held(memo: Memo, backend: Any, key: str, policy: Policy) -> Iterator[bool]:
    """Hold the backend's cross-process lock for ``key`` when ``lock`` is on and supported.

    Yields whether a lock was taken (or waited for), in which case another process may have
    stored the value meanwhile and the caller looks again before calling. A failing lock is
    logged and the call proceeds without it.
    """
    if not (memo.lock and policy.reads and isinstance(backend, Locking)):
        yield False
        return
    try:
        lock = backend.lock(key, ttl=memo.lock_ttl, wait=memo.wait_timeout)
        lock.__enter__()
    except BackendError as exc:
        memo.backend_failed(backend, exc, "lock")
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.__exit__(None, None, None)
        except BackendError as exc:
            memo.backend_failed(backend, exc, "unlock")


@contextlib.asynccontextmanager
async def _aheld(memo: Memo, backend: Any, key: str, policy: Policy) -> AsyncIterator[bool]:
    """The async twin of :func:`_held`."""
    if not (memo.lock and policy.reads and isinstance(backend, (Locking, AsyncLocking))):
        yield False
        return
    aio = is_async_backend(backend)
    lock: Any = None
    try:
        lock = backend.lock(key, ttl=memo.lock_ttl, wait=memo.wait_timeout)
        await lock.__aenter__() if aio else lock.__enter__()
    except BackendError as exc:
        memo.backend_failed(backend, exc, "lock")
        yield False
        return
    try:
        yield True
    finally:
        try:
            await lock.__aexit__(None, None, None) if aio else lock.__exit__(None, None, None)
        except BackendError as exc:
            memo.backend_failed(backend, exc, "unlock")


def _look_again(memo: Memo, key: str, entry: Any, policy: Policy, backend: Any) -> Any:
    """After waiting for another process's lock: the value it stored, or MISSING."""
    if entry is MISSING:
        return MISSING
    value, _ = _judge(memo, key, entry, policy, backend)
    return value


# -- semantic backends ---------------------------------------------------------------------------

Similar = tuple[str, str]  # (exact context, text to embed)


def _similar_hit(
    memo: Memo, policy: Policy, found: Any, backend: Any
) -> tuple[Any, str, Entry, float] | None:
    """Judge a semantic search result: ``(value, key, entry, similarity)`` if usable."""
    if found is None:
        return None
    skey, sentry, similarity = found
    # Judged under the key the search found: its entry must be that key's.
    value, _ = _judge(memo, skey, sentry, policy, backend)
    if value is MISSING:
        return None
    return value, skey, sentry, similarity


async def _asearch(backend: Any, aio: bool, similar: Similar, threshold: float | None) -> Any:
    if aio:
        return await backend.search(*similar, threshold)
    return backend.search(*similar, threshold)


async def _aadd(
    backend: Any, aio: bool, key: str, entry: Entry, ttl: float | None, similar: Similar | None
) -> None:
    if similar is not None:
        if aio:
            await backend.add(key, entry, ttl, *similar)
        else:
            backend.add(key, entry, ttl, *similar)
    elif aio:
        await backend.set(key, entry, ttl)
    else:
        backend.set(key, entry, ttl)


# -- plain functions ---------------------------------------------------------------------------


def run_sync(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run a cached call of a plain function."""
    start = _perf()
    policy, scopes = memo.policy()
    if not policy.enabled:
        result = wrapped(*args, **kwargs)
        memo.emit(Outcome.BYPASS, "", start, policy, scopes)
        return result
    key = memo.key(instance, args, kwargs, policy.namespace)
    backend = memo.backend(policy, False)
    memo.describe(backend, key, instance, args, kwargs)
    failure: BackendError | None = None
    stale: Entry | None = None
    similar: Similar | None = None
    if policy.enabled and is_semantic_backend(backend):
        similar = memo.similar_request(instance, args, kwargs, policy.namespace)
    if policy.reads:
        try:
            entry = backend.get(key)
        except BackendError as exc:
            _read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                value, stale = _judge(memo, key, entry, policy, backend)
                if value is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    return value
            if similar is not None:
                try:
                    found = backend.search(*similar, policy.threshold)
                except BackendError as exc:
                    _read_failed(memo, backend, key, policy, exc, start, scopes)
                    failure, found = exc, None
                hit = _similar_hit(memo, policy, found, backend)
                if hit is not None:
                    value, skey, sentry, similarity = hit
                    memo.emit(
                        _HIT, skey, start, policy, scopes, entry=sentry, similarity=similarity
                    )
                    return value
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise _cache_miss(memo, key)

    flight: Flight | None = None
    if policy.reads:
        while True:
            flight, leader = SYNC_FLIGHTS.join(key)
            if leader:
                break
            if not SYNC_FLIGHTS.wait(flight, memo.wait_timeout):
                flight = None  # the leader is taking too long: call without leading
                break
            if flight.landing is Landing.VALUE:
                value = memo.copy_for_waiter(flight.value, flight.payload)
                memo.emit(_HIT, key, start, policy, scopes, tokens=usage_tokens(value))
                return value
            if flight.landing is Landing.ERROR:
                value = _serve_stale(memo, key, stale, policy, backend)
                if value is not MISSING:
                    memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale)
                    return value
                assert flight.error is not None
                raise flight.error
            # abandoned (leader cancelled, or its result was a stream): try to lead
    try:
        with _held(memo, backend, key, policy) as locked:
            if locked:
                try:
                    value = _look_again(memo, key, backend.get(key), policy, backend)
                except BackendError:
                    value = MISSING
                if value is not MISSING:
                    if flight is not None:
                        flight.land_value(value, None)
                    memo.emit(_HIT, key, start, policy, scopes, tokens=usage_tokens(value))
                    return value
            return _call_sync(
                memo,
                wrapped,
                args,
                kwargs,
                key,
                policy,
                scopes,
                start,
                backend,
                stale,
                failure,
                flight,
                similar,
            )
    finally:
        if flight is not None:
            SYNC_FLIGHTS.land(key, flight)


def _call_sync(
    memo: Memo,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    policy: Policy,
    scopes: tuple[CacheScope, ...],
    start: float,
    backend: Any,
    stale: Entry | None,
    failure: BackendError | None,
    flight: Flight | None,
    similar: Similar | None = None,
) -> Any:
    """Call the function (a miss) and store its result."""
    try:
        result = wrapped(*args, **kwargs)
    except Exception as exc:
        value = _serve_stale(memo, key, stale, policy, backend)
        if value is not MISSING:
            memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale, error=failure)
            if flight is not None:
                flight.land_error(exc)
            return value
        if flight is not None:
            flight.land_error(exc)
        raise
    outcome = call_outcome(policy, failure is not None)
    if is_stream(result):
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        return RecordingStream(result, memo, backend, key, policy)
    encoded = None
    now = memo.now()
    plan = memo.plan(policy, now)
    if plan is not None and memo.should_store(result):
        encoded = memo.encode(result, backend)
        if encoded is not None:
            entry = memo.entry_for(key, encoded, plan, now, result)
            try:
                if similar is not None:
                    backend.add(key, entry, plan.retention, *similar)
                else:
                    backend.set(key, entry, plan.retention)
            except BackendError as exc:
                memo.backend_failed(backend, exc, "set")
                outcome, failure = Outcome.ERROR, exc
    if flight is not None:
        flight.land_value(result, encoded)
    memo.emit(outcome, key, start, policy, scopes, error=failure)
    return result


# -- coroutine functions ------------------------------------------------------------------------


async def run_async(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run a cached call of a coroutine function."""
    start = _perf()
    policy, scopes = memo.policy()
    if not policy.enabled:
        result = await wrapped(*args, **kwargs)
        memo.emit(Outcome.BYPASS, "", start, policy, scopes)
        return result
    key = memo.key(instance, args, kwargs, policy.namespace)
    backend = memo.backend(policy, True)
    memo.describe(backend, key, instance, args, kwargs)
    aio = is_async_backend(backend)
    failure: BackendError | None = None
    stale: Entry | None = None
    similar: Similar | None = None
    if policy.enabled and is_semantic_backend(backend):
        similar = memo.similar_request(instance, args, kwargs, policy.namespace)
    if policy.reads:
        try:
            entry = (await backend.get(key)) if aio else backend.get(key)
        except BackendError as exc:
            _read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                value, stale = _judge(memo, key, entry, policy, backend)
                if value is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    return value
            if similar is not None:
                try:
                    found = await _asearch(backend, aio, similar, policy.threshold)
                except BackendError as exc:
                    _read_failed(memo, backend, key, policy, exc, start, scopes)
                    failure, found = exc, None
                hit = _similar_hit(memo, policy, found, backend)
                if hit is not None:
                    value, skey, sentry, similarity = hit
                    memo.emit(
                        _HIT, skey, start, policy, scopes, entry=sentry, similarity=similarity
                    )
                    return value
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise _cache_miss(memo, key)

    flight: Flight | None = None
    if policy.reads:
        while True:
            flight, leader = ASYNC_FLIGHTS.join(key)
            if leader:
                break
            if not await ASYNC_FLIGHTS.wait(flight, memo.wait_timeout):
                flight = None
                break
            if flight.landing is Landing.VALUE:
                value = memo.copy_for_waiter(flight.value, flight.payload)
                memo.emit(_HIT, key, start, policy, scopes, tokens=usage_tokens(value))
                return value
            if flight.landing is Landing.ERROR:
                value = _serve_stale(memo, key, stale, policy, backend)
                if value is not MISSING:
                    memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale)
                    return value
                assert flight.error is not None
                raise flight.error
    try:
        async with _aheld(memo, backend, key, policy) as locked:
            if locked:
                try:
                    again = (await backend.get(key)) if aio else backend.get(key)
                    value = _look_again(memo, key, again, policy, backend)
                except BackendError:
                    value = MISSING
                if value is not MISSING:
                    if flight is not None:
                        flight.land_value(value, None)
                    memo.emit(_HIT, key, start, policy, scopes, tokens=usage_tokens(value))
                    return value
            return await _call_async(
                memo,
                wrapped,
                args,
                kwargs,
                key,
                policy,
                scopes,
                start,
                backend,
                stale,
                failure,
                flight,
                similar,
            )
    finally:
        if flight is not None:
            ASYNC_FLIGHTS.land(key, flight)


async def _call_async(
    memo: Memo,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    policy: Policy,
    scopes: tuple[CacheScope, ...],
    start: float,
    backend: Any,
    stale: Entry | None,
    failure: BackendError | None,
    flight: Flight | None,
    similar: Similar | None = None,
) -> Any:
    """Await the function (a miss) and store its result."""
    aio = is_async_backend(backend)
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as exc:
        value = _serve_stale(memo, key, stale, policy, backend)
        if value is not MISSING:
            memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale, error=failure)
            if flight is not None:
                flight.land_error(exc)
            return value
        if flight is not None:
            flight.land_error(exc)
        raise
    outcome = call_outcome(policy, failure is not None)
    if is_async_stream(result):
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        return AsyncRecordingStream(result, memo, backend, key, policy)
    if is_stream(result):
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        return RecordingStream(result, memo, backend, key, policy)
    encoded = None
    now = memo.now()
    plan = memo.plan(policy, now)
    if plan is not None and memo.should_store(result):
        encoded = memo.encode(result, backend)
        if encoded is not None:
            entry = memo.entry_for(key, encoded, plan, now, result)
            try:
                await _aadd(backend, aio, key, entry, plan.retention, similar)
            except BackendError as exc:
                memo.backend_failed(backend, exc, "set")
                outcome, failure = Outcome.ERROR, exc
    if flight is not None:
        flight.land_value(result, encoded)
    memo.emit(outcome, key, start, policy, scopes, error=failure)
    return result


# -- generator functions ------------------------------------------------------------------------


def run_generator(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Iterator[Any]:
    """Start a cached call of a generator function.

    The policy and key are taken now (so an unkeyable argument raises at the call and the
    directives of the block around the call apply); the lookup happens on first iteration.
    """
    start = _perf()
    policy, scopes = memo.policy()
    if not policy.enabled:
        memo.emit(Outcome.BYPASS, "", start, policy, scopes)
        return wrapped(*args, **kwargs)  # type: ignore[no-any-return]
    key = memo.key(instance, args, kwargs, policy.namespace)
    memo.describe(memo.backend(policy, False), key, instance, args, kwargs)
    return _generate(memo, wrapped, args, kwargs, key, policy, scopes, start)


def _generate(
    memo: Memo,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    policy: Policy,
    scopes: tuple[CacheScope, ...],
    start: float,
) -> Iterator[Any]:
    backend = memo.backend(policy, False)
    failure: BackendError | None = None
    stale: Entry | None = None
    if policy.reads:
        try:
            entry = backend.get(key)
        except BackendError as exc:
            _read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                chunks, stale = _judge(memo, key, entry, policy, backend, returns=False)
                if chunks is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    yield from chunks
                    return
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise _cache_miss(memo, key)
    recorder = RecordingStream(wrapped(*args, **kwargs), memo, backend, key, policy)
    outcome = call_outcome(policy, failure is not None)
    with recorder:
        try:
            first = next(recorder)
        except StopIteration:
            memo.emit(outcome, key, start, policy, scopes, error=failure)
            return
        except Exception:
            chunks = _serve_stale(memo, key, stale, policy, backend, returns=False)
            if chunks is MISSING:
                raise
            memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale, error=failure)
            yield from chunks
            return
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        yield first
        del first  # hold no chunk the consumer has let go of
        yield from recorder


def run_async_generator(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncIterator[Any]:
    """Start a cached call of an async generator function (lookup on first iteration)."""
    start = _perf()
    policy, scopes = memo.policy()
    if not policy.enabled:
        memo.emit(Outcome.BYPASS, "", start, policy, scopes)
        return wrapped(*args, **kwargs)  # type: ignore[no-any-return]
    key = memo.key(instance, args, kwargs, policy.namespace)
    memo.describe(memo.backend(policy, True), key, instance, args, kwargs)
    return _agenerate(memo, wrapped, args, kwargs, key, policy, scopes, start)


async def _agenerate(
    memo: Memo,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    policy: Policy,
    scopes: tuple[CacheScope, ...],
    start: float,
) -> AsyncIterator[Any]:
    backend = memo.backend(policy, True)
    aio = is_async_backend(backend)
    failure: BackendError | None = None
    stale: Entry | None = None
    if policy.reads:
        try:
            entry = (await backend.get(key)) if aio else backend.get(key)
        except BackendError as exc:
            _read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                chunks, stale = _judge(memo, key, entry, policy, backend, returns=False)
                if chunks is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    for chunk in chunks:
                        yield chunk
                    return
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise _cache_miss(memo, key)
    recorder = AsyncRecordingStream(wrapped(*args, **kwargs), memo, backend, key, policy)
    outcome = call_outcome(policy, failure is not None)
    async with recorder:
        try:
            first = await recorder.__anext__()
        except StopAsyncIteration:
            memo.emit(outcome, key, start, policy, scopes, error=failure)
            return
        except Exception:
            chunks = _serve_stale(memo, key, stale, policy, backend, returns=False)
            if chunks is MISSING:
                raise
            memo.emit(Outcome.STALE, key, start, policy, scopes, entry=stale, error=failure)
            for chunk in chunks:
                yield chunk
            return
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        yield first
        del first  # hold no chunk the consumer has let go of
        async for chunk in recorder:
            yield chunk


# -- recording and replaying streams ------------------------------------------------------------


class _Recording:
    """State shared by the sync and async recorders: the chunks so far, and the store at the end.

    Each chunk is encoded the moment it passes (before the consumer sees it), so what is stored
    is exactly what the source yielded even if the consumer edits a chunk in place, and the
    recording holds encoded bytes rather than references to the chunks (SPEC §5). A chunk that
    cannot be encoded, or a recording past the backend's entry size, stops the recording: the
    consumer still gets every chunk, and nothing is stored.
    """

    __slots__ = (
        "_backend",
        "_finished",
        "_key",
        "_limit",
        "_memo",
        "_parts",
        "_policy",
        "_size",
        "_source",
        "_usage",
    )

    def __init__(self, source: Any, memo: Memo, backend: Any, key: str, policy: Policy) -> None:
        self._source = source
        self._memo = memo
        self._backend = backend
        self._key = key
        self._policy = policy
        # None: not recording (nothing will be stored).
        self._parts: list[bytes] | None = [] if policy.writes else None
        self._size = 0
        self._limit = memo.entry_limit(backend)
        self._usage = StreamUsage()
        self._finished = False

    _tag = "stream"

    def _take(self, chunk: Any) -> None:
        # Snapshot the chunk now: this runs before the chunk is handed to the consumer.
        parts = self._parts
        if parts is None:
            return
        part = self._memo.encode_chunk(chunk)
        if part is None:
            self._parts = None
            return
        self._size += len(part) + 1
        if self._size > self._limit:
            self._memo.too_large(self._size, self._limit)
            self._parts = None
            return
        parts.append(part)
        self._usage.add(chunk)

    def _entry(self) -> tuple[Entry, float | None] | None:
        # The stream completed normally: build its entry if it is to be stored at all.
        memo, parts = self._memo, self._parts
        self._parts = None
        if parts is None:
            return None
        now = memo.now()
        plan = memo.plan(self._policy, now)
        if plan is None:
            return None
        payload = join_chunks(parts)
        del parts
        if memo.cache_if is not None:
            # cache_if judges what would be stored: a fresh copy of the snapshotted chunks.
            chunks = memo.decode_chunks(payload)
            if chunks is None or not memo.should_store(chunks):
                return None
        encoded = (self._tag, payload)
        entry = memo.entry_for(self._key, encoded, plan, now, None, tokens=self._usage.total)
        return entry, plan.retention

    def _write_failed(self, exc: BackendError) -> None:
        self._memo.backend_failed(self._backend, exc, "set")
        self._memo.count_error()


class RecordingStream(_Recording):
    """Iterates a source stream, recording each chunk; stores the chunks if it completes.

    A stream abandoned (closed early) or failing midway stores nothing. It is an iterator and a
    context manager (like openai's ``Stream``); other attributes of the source are not proxied.
    """

    __slots__ = ()

    def __iter__(self) -> RecordingStream:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        try:
            chunk = next(self._source)
        except StopIteration:
            self._complete()
            raise
        except BaseException:
            self._finished = True
            self._parts = None
            raise
        self._take(chunk)
        return chunk

    def _complete(self) -> None:
        self._finished = True
        built = self._entry()
        if built is None:
            return
        entry, retention = built
        backend = self._backend
        try:
            if is_async_backend(backend):  # a sync stream returned by an async function
                _background(backend.set(self._key, entry, retention), self._write_failed)
            else:
                backend.set(self._key, entry, retention)
        except BackendError as exc:
            self._write_failed(exc)

    def close(self) -> None:
        """Stop early: nothing is stored; the source is closed."""
        if not self._finished:
            self._finished = True
            self._parts = None
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _background(coro: Any, on_error: Callable[[BackendError], None]) -> None:
    async def run() -> None:
        try:
            await coro
        except BackendError as exc:
            on_error(exc)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        return
    task = loop.create_task(run())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


_PENDING: set[asyncio.Task[None]] = set()


class AsyncRecordingStream(_Recording):
    """The async twin of :class:`RecordingStream`: an async iterator and context manager."""

    __slots__ = ()
    _tag = "astream"

    def __aiter__(self) -> AsyncRecordingStream:
        return self

    async def __anext__(self) -> Any:
        if self._finished:
            raise StopAsyncIteration
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            await self._complete()
            raise
        except BaseException:
            self._finished = True
            self._parts = None
            raise
        self._take(chunk)
        return chunk

    async def _complete(self) -> None:
        self._finished = True
        built = self._entry()
        if built is None:
            return
        entry, retention = built
        backend = self._backend
        try:
            if is_async_backend(backend):
                await backend.set(self._key, entry, retention)
            else:
                backend.set(self._key, entry, retention)
        except BackendError as exc:
            self._write_failed(exc)

    async def aclose(self) -> None:
        """Stop early: nothing is stored; the source is closed."""
        if not self._finished:
            self._finished = True
            self._parts = None
            close = getattr(self._source, "aclose", None) or getattr(self._source, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ReplayStream:
    """A cached stream replayed: an iterator (and context manager) over fresh chunk copies."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> ReplayStream:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        """Stop early."""
        self._chunks = iter(())

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncReplayStream:
    """A cached stream replayed to async code: an async iterator and async context manager."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> AsyncReplayStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stop early."""
        self._chunks = iter(())

    async def __aenter__(self) -> AsyncReplayStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
