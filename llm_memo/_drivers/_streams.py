"""The pure half of streaming: recognising a stream, the recording state, and replay streams.

:class:`Recording` is the state both recorders share (the chunks encoded so far and the entry
they make); the recorders themselves iterate a source and write to a backend, so they are I/O
and live in ``_async.py`` (``AsyncRecordingStream``) and the generated ``_sync.py``
(``RecordingStream``). :func:`close_source` / :func:`aclose_source` are the one place the two
differ in closing a source (an async source may have ``aclose`` or a plain ``close``).

:class:`ReplayStream` and :class:`AsyncReplayStream` replay a cached chunk list; they do no I/O,
and a hit of either kind of function may need either kind (a coroutine function's recorded
async stream is replayed wherever it is read), so both live here, side by side, instead of one
being generated from the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..codec import join_chunks
from ..entry import Entry
from ..sdks import StreamUsage

if TYPE_CHECKING:
    from .._memo import Memo
    from .._policy import Policy
    from ..errors import BackendError

__all__ = [
    "AsyncReplayStream",
    "Recording",
    "ReplayStream",
    "aclose_source",
    "as_returned",
    "close_source",
    "is_async_stream",
    "is_stream",
]

_NOT_STREAMS = (str, bytes, bytearray, memoryview, Mapping, Sequence)


def is_stream(value: Any) -> bool:
    """Whether a returned value is a stream to record (an iterator that is not a value)."""
    # Look on the type: an instance lookup would run pydantic's __getattr__ for every model.
    return hasattr(type(value), "__next__") and not isinstance(value, _NOT_STREAMS)


def is_async_stream(value: Any) -> bool:
    """Whether a returned value is an async iterator to record."""
    return hasattr(type(value), "__anext__")


def close_source(source: Any) -> None:
    """Close a sync source stream, if it can be closed."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


async def aclose_source(source: Any) -> None:
    """Close an async source stream: its ``aclose`` (or a ``close``, awaited if a coroutine)."""
    close = getattr(source, "aclose", None) or getattr(source, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result


def as_returned(entry: Entry, value: Any) -> Any:
    """A hit's value as a plain or coroutine function returns it: a recorded stream comes back
    as a replay stream."""
    tag = entry.type_tag
    if tag == "stream":
        return ReplayStream(value)
    if tag == "astream":
        return AsyncReplayStream(value)
    return value


class Recording:
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

    def _stop(self) -> bool:
        """Stop recording (closed early or failed): whether the stream was still running."""
        running = not self._finished
        self._finished = True
        self._parts = None
        return running

    def _entry(self) -> tuple[Entry, float | None] | None:
        # The stream completed normally: build its entry if it is to be stored at all.
        self._finished = True
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
        usage = self._usage
        entry = memo.entry_for(
            self._key,
            encoded,
            plan,
            now,
            None,
            tokens=usage.total,
            usage=usage.split,
            model=usage.model,
            backend=self._backend,
        )
        return entry, plan.retention

    def _write_failed(self, exc: BackendError) -> None:
        self._memo.write_failed(self._backend, exc)


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
