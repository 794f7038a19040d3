"""The runners, written once: a cached call of a function and of a generator function, the
recording stream, and the ``fn.cache`` handle's backend operations.

This is the async source; ``_sync.py`` is generated from it by ``scripts/unasync`` (``await``
dropped, each async name swapped for its sync one, the asyncio flight table for the threads'
one: the substitutions are listed with this pair in the script).
Lines marked ``async only`` are left out of the sync file: the one thing only async code meets
is a coroutine function returning an *async* stream.

A runner only sequences: resolve the policy, build the key, look the key up, call the function
on a miss (joined with identical calls in flight), store the result, emit the call's event.
Every decision is :mod:`llm_memo._policy`'s; the per-function machinery is the
:class:`~llm_memo._memo.Memo`'s; what a found entry means is :mod:`._judge`'s. The backend is
always awaited here: the Memo hands an async runner an async view of a sync backend
(:mod:`llm_memo._async_view`), so no runner asks which kind of backend it has.

``_call`` and ``_generate`` take the call's state as a long parameter list (the same names in
both): a call's state is handed on, not rebuilt, and a record object would cost an allocation
on every miss.

A plain or coroutine function may also *return* a stream (``stream=True`` on an SDK call): that
is decided per call from the result, which is then recorded chunk by chunk and stored only when
it completes. Generator functions are recorded by the same class. Each chunk is encoded as it
passes, before the consumer sees it: what is stored is what the source yielded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._async_view import sync_face  # async only
from .._flight import ASYNC_FLIGHTS, Flight, Landing
from .._policy import Freshness, Policy, call_outcome, freshness
from ..backends import MISSING, AsyncLocking
from ..errors import BackendError, CodecError
from ..events import Outcome
from ..keys import function_prefix
from ..sdks import response_model, usage_split, usage_tokens
from ._judge import Similar, cache_miss, judge, look_again, read_failed, serve_stale, similar_hit
from ._streams import (
    Recording,
    aclose_source,
    as_returned,
    is_async_stream,  # async only
    is_stream,
)
from ._sync import RecordingStream  # async only

if TYPE_CHECKING:
    from .._memo import Memo
    from ..controls import CacheScope
    from ..entry import Entry

__all__ = [
    "AsyncRecordingStream",
    "cached_value",
    "clear_function",
    "delete_entry",
    "run_async",
    "run_async_generator",
]

_perf = time.perf_counter
_HIT = Outcome.HIT
_STALE = Outcome.STALE


# -- cross-process single-flight (lock=True) ---------------------------------------------------


@contextlib.asynccontextmanager
async def _held(memo: Memo, backend: Any, key: str, policy: Policy) -> AsyncIterator[bool]:
    """Hold the backend's cross-process lock for ``key`` when ``lock`` is on and supported.

    Yields whether a lock was taken (or waited for), in which case another process may have
    stored the value meanwhile and the caller looks again before calling. A failing lock is
    logged and the call proceeds without it.
    """
    if not (memo.lock and policy.reads and isinstance(backend, AsyncLocking)):
        yield False
        return
    try:
        lock = backend.lock(key, ttl=memo.lock_ttl, wait=memo.wait_timeout)
        await lock.__aenter__()
    except BackendError as exc:
        memo.backend_failed(backend, exc, "lock")
        yield False
        return
    try:
        yield True
    finally:
        try:
            await lock.__aexit__(None, None, None)
        except BackendError as exc:
            memo.backend_failed(backend, exc, "unlock")


# -- functions -----------------------------------------------------------------------------------


async def run_async(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run a cached call of a function."""
    start = _perf()
    policy, scopes = memo.policy()
    if not policy.enabled:
        result = await wrapped(*args, **kwargs)
        memo.emit(Outcome.BYPASS, "", start, policy, scopes)
        return result
    key = memo.key(instance, args, kwargs, policy.namespace)
    route = memo.route(policy, asynchronous=True)
    backend = route.backend
    if route.describing:
        memo.describe(backend, key, instance, args, kwargs)
    failure: BackendError | None = None
    stale: Entry | None = None
    similar: Similar | None = None
    if route.semantic:
        similar = memo.similar_request(instance, args, kwargs, policy.namespace)
    if policy.reads:
        try:
            entry = await backend.get(key)
        except BackendError as exc:
            read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                value, stale = judge(memo, key, entry, policy, backend)
                if value is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    return value
            if similar is not None:
                try:
                    found = await backend.search(*similar, policy.threshold)
                except BackendError as exc:
                    read_failed(memo, backend, key, policy, exc, start, scopes)
                    failure, found = exc, None
                hit = similar_hit(memo, policy, found, backend)
                if hit is not None:
                    value, skey, sentry, similarity = hit
                    memo.emit(
                        _HIT, skey, start, policy, scopes, entry=sentry, similarity=similarity
                    )
                    return value
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise cache_miss(memo, key)

    flight: Flight | None = None
    if policy.reads:
        while True:
            flight, leader = ASYNC_FLIGHTS.join(key)
            if leader:
                break
            if not await ASYNC_FLIGHTS.wait(flight, memo.wait_timeout):
                flight = None  # the leader is taking too long: call without leading
                break
            if flight.landing is Landing.VALUE:
                value = memo.copy_for_waiter(flight.value, flight.payload, key)
                memo.emit(_HIT, key, start, policy, scopes, **_spent(value))
                return value
            if flight.landing is Landing.ERROR:
                value = serve_stale(memo, key, stale, policy, backend)
                if value is not MISSING:
                    memo.emit(_STALE, key, start, policy, scopes, entry=stale)
                    return value
                assert flight.error is not None
                raise flight.error
            # abandoned (leader cancelled, or its result was a stream): try to lead
    try:
        async with _held(memo, backend, key, policy) as locked:
            if locked:
                try:
                    value = look_again(memo, key, await backend.get(key), policy, backend)
                except BackendError:
                    value = MISSING
                if value is not MISSING:
                    if flight is not None:
                        flight.land_value(value, None)
                    memo.emit(_HIT, key, start, policy, scopes, **_spent(value))
                    return value
            return await _call(
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


async def _call(
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
    similar: Similar | None,
) -> Any:
    """Call the function (a miss) and store its result."""
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as exc:
        if flight is not None:
            flight.land_error(exc)
        value = serve_stale(memo, key, stale, policy, backend)
        if value is MISSING:
            raise
        memo.emit(_STALE, key, start, policy, scopes, entry=stale, error=failure)
        return value
    outcome = call_outcome(policy, failure is not None)
    if is_async_stream(result):  # async only
        memo.emit(outcome, key, start, policy, scopes, error=failure)  # async only
        return AsyncRecordingStream(result, memo, backend, key, policy)  # async only
    if is_stream(result):
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        return RecordingStream(result, memo, sync_face(backend, memo.write_failed), key, policy)
    encoded = None
    now = memo.now()
    plan = memo.plan(policy, now)
    if plan is not None and memo.should_store(result):
        encoded = memo.encode(result, backend)
        if encoded is not None:
            entry = memo.entry_for(key, encoded, plan, now, result, backend=backend)
            try:
                if similar is not None:
                    await backend.add(key, entry, plan.retention, *similar)
                else:
                    await backend.set(key, entry, plan.retention)
            except BackendError as exc:
                memo.backend_failed(backend, exc, "set")
                outcome, failure = Outcome.ERROR, exc
    if flight is not None:
        flight.land_value(result, encoded)
    memo.emit(outcome, key, start, policy, scopes, error=failure)
    return result


# -- generator functions ------------------------------------------------------------------------


def run_async_generator(
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncIterator[Any]:
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
    route = memo.route(policy, asynchronous=True)
    if route.describing:
        memo.describe(route.backend, key, instance, args, kwargs)
    return _generate(memo, wrapped, args, kwargs, key, policy, scopes, start)


async def _generate(
    memo: Memo,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: str,
    policy: Policy,
    scopes: tuple[CacheScope, ...],
    start: float,
) -> AsyncIterator[Any]:
    backend = memo.backend(policy, asynchronous=True)
    failure: BackendError | None = None
    stale: Entry | None = None
    if policy.reads:
        try:
            entry = await backend.get(key)
        except BackendError as exc:
            read_failed(memo, backend, key, policy, exc, start, scopes)
            failure = exc
        else:
            if entry is not MISSING:
                chunks, stale = judge(memo, key, entry, policy, backend, returns=False)
                if chunks is not MISSING:
                    memo.emit(_HIT, key, start, policy, scopes, entry=entry)
                    for chunk in chunks:
                        yield chunk
                    return
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, key, start, policy, scopes)
        raise cache_miss(memo, key)
    recorder = AsyncRecordingStream(wrapped(*args, **kwargs), memo, backend, key, policy)
    outcome = call_outcome(policy, failure is not None)
    async with recorder:
        try:
            first = await recorder.__anext__()
        except StopAsyncIteration:
            memo.emit(outcome, key, start, policy, scopes, error=failure)
            return
        except Exception:
            chunks = serve_stale(memo, key, stale, policy, backend, returns=False)
            if chunks is MISSING:
                raise
            memo.emit(_STALE, key, start, policy, scopes, entry=stale, error=failure)
            for chunk in chunks:
                yield chunk
            return
        memo.emit(outcome, key, start, policy, scopes, error=failure)
        yield first
        del first  # hold no chunk the consumer has let go of
        async for chunk in recorder:
            yield chunk


# -- recording a stream -------------------------------------------------------------------------


class AsyncRecordingStream(Recording):
    """Iterates a source stream, recording each chunk; stores the chunks if it completes.

    A stream abandoned (closed early) or failing midway stores nothing. It is an iterator and a
    context manager (like openai's ``Stream``); other attributes of the source are not proxied.
    """

    __slots__ = ()
    _tag = "astream"  # async only

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
            self._stop()
            raise
        self._take(chunk)
        return chunk

    async def _complete(self) -> None:
        built = self._entry()
        if built is None:
            return
        entry, retention = built
        try:
            await self._backend.set(self._key, entry, retention)
        except BackendError as exc:
            self._write_failed(exc)

    async def aclose(self) -> None:
        """Stop early: nothing is stored; the source is closed."""
        if self._stop():
            await aclose_source(self._source)

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# -- fn.cache: the handle's backend operations (no events; failures raise) ----------------------


async def cached_value(
    memo: Memo, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The fresh, readable value stored for a call, or MISSING; never calls the function."""
    policy, _ = memo.policy()
    backend = memo.backend(policy, asynchronous=True)
    key = memo.key(instance, args, kwargs, policy.namespace)
    entry = await backend.get(key)
    if entry is MISSING or freshness(entry, memo.now(), policy) is not Freshness.FRESH:
        return MISSING
    try:
        value = memo.decode(key, entry)
    except CodecError:
        return MISSING
    return as_returned(entry, value)


async def delete_entry(
    memo: Memo, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Remove a call's entry; whether there was one."""
    policy, _ = memo.policy()
    backend = memo.backend(policy, asynchronous=True)
    return bool(await backend.delete(memo.key(instance, args, kwargs, policy.namespace)))


async def clear_function(memo: Memo) -> int:
    """Remove the function's entries in the current namespace; how many."""
    policy, _ = memo.policy()
    backend = memo.backend(policy, asynchronous=True)
    return int(await backend.clear(function_prefix(policy.namespace, memo.function_id)))


def _spent(value: Any) -> dict[str, Any]:
    """What an answer cost when produced, for a caller served by an identical call in flight
    (it comes without an entry): its tokens, their split and the model, as ``emit`` takes them."""
    return {
        "tokens": usage_tokens(value),
        "usage": usage_split(value),
        "model": response_model(value),
    }
