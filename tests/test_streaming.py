"""Streams (SPEC §5): recorded chunk by chunk, stored on completion, replayed as the same types."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest

from llm_memo import cache_controls, llm_cached, register_type
from llm_memo.testing import CacheRecorder

from .samples import chat_chunks


class FakeStream:
    """Stands in for openai.Stream: an iterator with close() (the SDK's shape)."""

    def __init__(self, chunks: Iterable[Any], fail_after: int | None = None) -> None:
        self._it = iter(chunks)
        self._n = 0
        self.fail_after = fail_after
        self.closed = False

    def __iter__(self) -> FakeStream:
        return self

    def __next__(self) -> Any:
        if self.fail_after is not None and self._n >= self.fail_after:
            raise ConnectionError("stream dropped")
        self._n += 1
        return next(self._it)

    def close(self) -> None:
        self.closed = True


class FakeAsyncStream:
    def __init__(self, chunks: Iterable[Any]) -> None:
        self._it = iter(chunks)

    def __aiter__(self) -> FakeAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None


class TestGenerators:
    def test_openai_chunks_replay_as_the_same_types(self, llm_cache: CacheRecorder) -> None:
        calls = []

        @llm_cached
        def stream(q: str) -> Iterator[Any]:
            calls.append(q)
            yield from chat_chunks()

        first = list(stream("q"))
        second = list(stream("q"))
        assert second == first == chat_chunks()
        assert [type(c) for c in second] == [type(c) for c in first]
        assert len(calls) == 1
        assert stream.cache.stats().tokens_saved == 15

    def test_abandoned_stream_stores_nothing(self, llm_cache: CacheRecorder) -> None:
        @llm_cached
        def stream(q: str) -> Iterator[int]:
            yield from range(10)

        gen = stream("q")
        assert next(gen) == 0
        gen.close()
        assert llm_cache.entries() == []
        assert list(stream("q")) == list(range(10))
        assert len(llm_cache.entries()) == 1

    def test_failed_stream_stores_nothing(self, llm_cache: CacheRecorder) -> None:
        @llm_cached
        def stream(q: str) -> Iterator[int]:
            yield 1
            raise ConnectionError("dropped")

        with pytest.raises(ConnectionError):
            list(stream("q"))
        assert llm_cache.entries() == []

    def test_failed_stream_after_chunks_is_not_rescued(self, llm_cache: CacheRecorder) -> None:
        """stale_if_error does not replace a stream that already yielded chunks."""
        state = {"fail": False}

        @llm_cached(ttl=1, stale_if_error=100)
        def stream(q: str) -> Iterator[int]:
            yield 1
            if state["fail"]:
                raise ConnectionError("dropped")
            yield 2

        assert list(stream("q")) == [1, 2]
        llm_cache.advance(5)
        state["fail"] = True
        with pytest.raises(ConnectionError):
            list(stream("q"))

    def test_stream_failing_before_any_chunk_is_rescued(self, llm_cache: CacheRecorder) -> None:
        state = {"fail": False}

        @llm_cached(ttl=1, stale_if_error=100)
        def stream(q: str) -> Iterator[int]:
            if state["fail"]:
                raise ConnectionError("down")
            yield from [1, 2]

        list(stream("q"))
        llm_cache.advance(5)
        state["fail"] = True
        assert list(stream("q")) == [1, 2]

    def test_async_generator(self, llm_cache: CacheRecorder) -> None:
        calls = []

        @llm_cached
        async def stream(q: str) -> AsyncIterator[Any]:
            calls.append(q)
            for c in chat_chunks():
                yield c

        async def collect() -> list[Any]:
            return [c async for c in stream("q")]

        assert asyncio.run(collect()) == asyncio.run(collect()) == chat_chunks()
        assert len(calls) == 1

    def test_unkeyable_argument_raises_at_the_call(self, llm_cache: CacheRecorder) -> None:
        """A generator's key is built when it is called, not on first iteration."""
        from llm_memo import UnkeyableArgumentError

        @llm_cached
        def stream(q: object) -> Iterator[int]:
            yield 1

        with pytest.raises(UnkeyableArgumentError):
            stream(object())


class TestReturnedStreams:
    def test_function_returning_a_stream(self, llm_cache: CacheRecorder) -> None:
        """stream=True style: the returned iterator is recorded; a hit replays an iterator."""
        calls = []

        @llm_cached
        def create(q: str, stream: bool = False) -> Any:
            calls.append(q)
            if stream:
                return FakeStream(chat_chunks())
            return {"text": q}

        first = create("q", stream=True)
        assert not isinstance(first, list)
        assert list(first) == chat_chunks()
        with create("q", stream=True) as replay:
            assert list(replay) == chat_chunks()
        assert create("q") == {"text": "q"}
        assert create("q") == {"text": "q"}
        assert len(calls) == 2

    def test_abandoned_returned_stream_is_closed_and_not_stored(
        self, llm_cache: CacheRecorder
    ) -> None:
        source = FakeStream(list(range(5)))

        @llm_cached
        def create(q: str) -> Any:
            return source

        stream = create("q")
        next(stream)
        stream.close()
        assert source.closed
        assert llm_cache.entries() == []

    def test_failed_returned_stream_is_not_stored(self, llm_cache: CacheRecorder) -> None:
        @llm_cached
        def create(q: str) -> Any:
            return FakeStream(list(range(5)), fail_after=2)

        with pytest.raises(ConnectionError):
            list(create("q"))
        assert llm_cache.entries() == []

    def test_async_function_returning_an_async_stream(self, llm_cache: CacheRecorder) -> None:
        calls = []

        @llm_cached
        async def create(q: str) -> Any:
            calls.append(q)
            return FakeAsyncStream(chat_chunks())

        async def run() -> list[Any]:
            stream = await create("q")
            return [c async for c in stream]

        assert asyncio.run(run()) == asyncio.run(run()) == chat_chunks()
        assert len(calls) == 1

    def test_concurrent_stream_callers_each_get_a_stream(self, llm_cache: CacheRecorder) -> None:
        """Streams are not shared between concurrent callers: each iterates its own."""

        @llm_cached
        async def create(q: str) -> Any:
            await asyncio.sleep(0.01)
            return FakeAsyncStream([1, 2])

        async def run() -> list[list[int]]:
            async def one() -> list[int]:
                return [c async for c in await create("q")]

            return list(await asyncio.gather(one(), one(), one()))

        assert asyncio.run(run()) == [[1, 2]] * 3

    def test_no_store_stream(self, llm_cache: CacheRecorder) -> None:
        @llm_cached
        def create(q: str) -> Any:
            return FakeStream([1])

        with cache_controls(no_store=True):
            assert list(create("q")) == [1]
        assert llm_cache.entries() == []


@register_type
@dataclasses.dataclass
class Token:
    """A typed chunk that supports weak references."""

    n: int


def _chunk_dicts() -> list[dict[str, Any]]:
    return [{"i": i, "delta": {"text": f"t{i}"}} for i in range(3)]


class _Unstorable:
    """A chunk the codec cannot store (not JSON-native, not allow-listed)."""

    def __init__(self, n: int) -> None:
        self.n = n


Consumer = Callable[..., list[Any]]


# Every way a stream reaches the cache (SPEC §5): generator and async generator functions, and
# plain / coroutine functions that *return* a sync or async stream. Each maker builds a cached
# function producing ``chunks()`` and returns a consumer that iterates one call, handing each
# chunk to ``touch`` before taking the next one (which is where an in-place edit happens), and
# keeping the chunks it returns only when ``keep``.
def _sync_gen(chunks: Callable[[], Iterable[Any]]) -> Consumer:
    @llm_cached
    def stream(q: str) -> Iterator[Any]:
        yield from chunks()

    def consume(touch: Callable[[Any], None], keep: bool = True) -> list[Any]:
        out = []
        for c in stream("q"):
            touch(c)
            if keep:
                out.append(c)
        return out

    return consume


def _async_gen(chunks: Callable[[], Iterable[Any]]) -> Consumer:
    @llm_cached
    async def stream(q: str) -> AsyncIterator[Any]:
        for c in chunks():
            yield c

    def consume(touch: Callable[[Any], None], keep: bool = True) -> list[Any]:
        async def run() -> list[Any]:
            out = []
            async for c in stream("q"):
                touch(c)
                if keep:
                    out.append(c)
            return out

        return asyncio.run(run())

    return consume


def _returns_stream(
    chunks: Callable[[], Iterable[Any]],
) -> Consumer:
    @llm_cached
    def create(q: str) -> Any:
        return FakeStream(chunks())

    def consume(touch: Callable[[Any], None], keep: bool = True) -> list[Any]:
        out = []
        for c in create("q"):
            touch(c)
            if keep:
                out.append(c)
        return out

    return consume


def _coroutine_returns_async_stream(
    chunks: Callable[[], Iterable[Any]],
) -> Consumer:
    @llm_cached
    async def create(q: str) -> Any:
        return FakeAsyncStream(chunks())

    def consume(touch: Callable[[Any], None], keep: bool = True) -> list[Any]:
        async def run() -> list[Any]:
            out = []
            async for c in await create("q"):
                touch(c)
                if keep:
                    out.append(c)
            return out

        return asyncio.run(run())

    return consume


def _coroutine_returns_sync_stream(
    chunks: Callable[[], Iterable[Any]],
) -> Consumer:
    @llm_cached
    async def create(q: str) -> Any:
        return FakeStream(chunks())

    def consume(touch: Callable[[Any], None], keep: bool = True) -> list[Any]:
        async def run() -> list[Any]:
            out = []
            for c in await create("q"):
                touch(c)
                if keep:
                    out.append(c)
            return out

        return asyncio.run(run())

    return consume


STREAM_PATHS = pytest.mark.parametrize(
    "make",
    [
        _sync_gen,
        _async_gen,
        _returns_stream,
        _coroutine_returns_async_stream,
        _coroutine_returns_sync_stream,
    ],
    ids=["generator", "async-generator", "returns-stream", "returns-async-stream", "async-sync"],
)


class TestChunkSnapshots:
    """Chunks are snapshotted as they pass: what is stored is what the source yielded."""

    @STREAM_PATHS
    def test_consumer_editing_chunks_never_changes_the_cache(
        self, llm_cache: CacheRecorder, make: Any
    ) -> None:
        """A consumer that edits each chunk in place (dict and nested dict) stores the
        original; a hit replays the original chunks."""
        consume = make(_chunk_dicts)

        def vandalise(chunk: Any) -> None:
            chunk["i"] = -1
            chunk["delta"]["text"] = "EDITED"
            chunk["extra"] = True

        first = consume(vandalise)
        assert all(c["delta"]["text"] == "EDITED" for c in first)  # the consumer's own edit
        assert len(llm_cache.entries()) == 1
        replay = consume(lambda c: None)
        assert replay == _chunk_dicts(), f"the hit replayed edited chunks: {replay}"
        assert llm_cache.hits == 1

    @STREAM_PATHS
    def test_editing_typed_chunks_never_changes_the_cache(
        self, llm_cache: CacheRecorder, make: Any
    ) -> None:
        """SDK chunks (pydantic models) edited in place are stored as they were yielded."""
        consume = make(chat_chunks)

        def vandalise(chunk: Any) -> None:
            chunk.id = "edited"
            if chunk.choices:
                chunk.choices[0].delta.content = "EDITED"

        consume(vandalise)
        replay = consume(lambda c: None)
        assert replay == chat_chunks(), f"the hit replayed edited chunks: {replay}"

    @STREAM_PATHS
    def test_unencodable_chunk_stores_nothing_but_passes_every_chunk(
        self, llm_cache: CacheRecorder, make: Any
    ) -> None:
        """A chunk the codec refuses means the stream is not stored; the consumer still gets
        every chunk, the refused one included, in order."""
        odd = _Unstorable(1)
        consume = make(lambda: [{"i": 0}, odd, {"i": 2}])
        got = consume(lambda c: None)
        assert got == [{"i": 0}, odd, {"i": 2}]
        assert llm_cache.entries() == []
        assert consume(lambda c: None) == [{"i": 0}, odd, {"i": 2}]
        assert llm_cache.hits == 0

    @STREAM_PATHS
    def test_recorder_keeps_no_reference_to_passed_chunks(
        self, llm_cache: CacheRecorder, make: Any
    ) -> None:
        """Chunks are encoded as they pass, so the recording holds bytes, not the chunks: a
        chunk the consumer let go of is freed before the stream ends."""
        refs: list[weakref.ref[Any]] = []
        alive_at_end: list[int] = []

        def chunks() -> Iterator[Any]:  # made one at a time, as an SDK stream does
            return (Token(i) for i in range(4))

        def watch(chunk: Any) -> None:
            refs.append(weakref.ref(chunk))
            if len(refs) == 4:  # the last chunk: the stream has not completed yet
                gc.collect()
                alive_at_end.append(sum(r() is not None for r in refs[:3]))

        consume = make(chunks)
        consume(watch, keep=False)
        assert alive_at_end == [0], f"{alive_at_end} earlier chunks still referenced"
        assert consume(lambda c: None) == list(chunks())
        assert llm_cache.hits == 1

    def test_cache_if_judges_the_chunks_as_they_were_yielded(
        self, llm_cache: CacheRecorder
    ) -> None:
        """cache_if sees a fresh copy of the snapshotted chunks, not the consumer's edits."""
        seen: list[list[Any]] = []

        def remember(chunks: list[Any]) -> bool:
            seen.append(chunks)
            return bool(chunks[-1]["i"] != 2)  # refuse streams whose last chunk is i=2

        @llm_cached(cache_if=remember)
        def stream(q: str) -> Iterator[Any]:
            yield from _chunk_dicts()

        for chunk in stream("q"):
            chunk["i"] = 99  # an edit that would flip the verdict
        assert [c["i"] for c in seen[0]] == [0, 1, 2]
        assert llm_cache.entries() == []

    def test_tokens_of_a_returned_stream_are_counted(self, llm_cache: CacheRecorder) -> None:
        """Usage is counted as chunks pass: a replayed stream reports the tokens it saved."""

        @llm_cached
        async def create(q: str) -> Any:
            return FakeAsyncStream(chat_chunks())

        async def run() -> list[Any]:
            return [c async for c in await create("q")]

        asyncio.run(run())
        asyncio.run(run())
        assert create.cache.stats().tokens_saved == 15

    @STREAM_PATHS
    def test_stream_larger_than_the_entry_limit_is_not_stored(
        self, llm_cache: CacheRecorder, make: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A stream whose encoded chunks pass the backend's entry size limit stops being
        recorded (memory stays bounded); the consumer still gets every chunk."""
        from llm_memo.backends.memory import MemoryBackend

        monkeypatch.setattr(MemoryBackend, "max_entry_size", 1000, raising=False)
        big = [{"i": i, "text": "x" * 300} for i in range(10)]
        consume = make(lambda: [dict(c) for c in big])
        assert consume(lambda c: None) == big
        assert llm_cache.entries() == []
