"""llm_memo._async_view: the async face of a sync backend, and a sync stream written through an
async backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_memo import llm_cached
from llm_memo._async_view import async_view, sync_face, unwrap
from llm_memo.backends import MISSING, AsyncLocking, Describing, is_semantic_backend
from llm_memo.backends.memory import MemoryBackend
from llm_memo.entry import Entry
from llm_memo.errors import BackendError


class _LockingMemory(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.locked: list[str] = []

    @contextlib.contextmanager
    def lock(self, key: str, *, ttl: float, wait: float) -> Iterator[bool]:
        self.locked.append(key)
        yield True


class _DescribingMemory(MemoryBackend):
    def describe(self, key: str, request: Callable[[], Any]) -> None: ...


class _AsyncMemory:
    """A minimal async backend over a dict, whose writes can be made to fail."""

    def __init__(self) -> None:
        self.data: dict[str, Entry] = {}
        self.fail = False

    async def get(self, key: str) -> Any:
        return self.data.get(key, MISSING)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        if self.fail:
            raise BackendError("write refused")
        self.data[key] = entry

    async def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    async def clear(self, prefix: str = "") -> int:
        gone = [k for k in self.data if k.startswith(prefix)]
        for k in gone:
            del self.data[k]
        return len(gone)

    async def close(self) -> None:
        pass


class _Chunks:
    def __init__(self, n: int) -> None:
        self._it = iter([{"i": i} for i in range(n)])

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Any:
        return next(self._it)


class TestAsyncView:
    def test_methods_await_the_sync_backend_inline(self) -> None:
        """The view's coroutines call the sync backend directly and return its answers."""
        backend = MemoryBackend()
        view = async_view(backend)
        entry = Entry(b"1", "json", 0.0, None, 0.0)

        async def run() -> None:
            assert await view.get("k") is MISSING
            await view.set("k", entry, None)
            assert backend.get("k") is not MISSING
            assert await view.delete("k") is True
            assert await view.clear("") == 0

        asyncio.run(run())

    def test_view_has_exactly_the_backends_abilities(self) -> None:
        """A lock only over a locking backend, describe only over a describing one, no
        similarity search over a plain one."""
        plain = async_view(MemoryBackend())
        assert not hasattr(plain, "lock")
        assert not isinstance(plain, Describing)
        assert not is_semantic_backend(plain)
        locking = async_view(_LockingMemory())
        assert isinstance(locking, AsyncLocking)
        assert isinstance(async_view(_DescribingMemory()), Describing)

    def test_one_view_per_backend(self) -> None:
        """The same backend gets the same view; unwrap gives the backend back."""
        backend = MemoryBackend()
        view = async_view(backend)
        assert async_view(backend) is view
        assert unwrap(view) is backend
        assert unwrap(backend) is backend
        assert repr(view) == repr(backend)

    def test_locking_view_enters_the_sync_lock(self) -> None:
        """An async lock=True call through a sync locking backend takes its lock."""
        backend = _LockingMemory()

        @llm_cached(backend=backend, lock=True)
        async def ask(q: str) -> str:
            return q.upper()

        assert asyncio.run(ask("a")) == "A"
        assert len(backend.locked) == 1

    def test_failures_are_logged_under_the_backend(self, caplog: pytest.LogCaptureFixture) -> None:
        """A failing sync backend used from async code is named in the log line as itself."""

        class Broken(MemoryBackend):
            def __repr__(self) -> str:
                return "Broken()"

            def get(self, key: str) -> Any:
                raise BackendError("down")

        @llm_cached(backend=Broken())
        async def ask(q: str) -> str:
            return q

        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            assert asyncio.run(ask("a")) == "a"
        assert any(r.getMessage().startswith("Broken() failed during get") for r in caplog.records)


class TestSyncFace:
    def test_sync_backend_behind_a_view_is_written_inline(self) -> None:
        """Under a view, a sync stream writes to the sync backend itself."""
        backend = MemoryBackend()
        assert sync_face(async_view(backend), lambda b, e: None) is backend

    def test_sync_stream_from_async_code_writes_in_the_background(self) -> None:
        """A coroutine function returning a sync stream, served by an async backend: the
        completed stream is stored by a task on the loop, then hits."""
        backend = _AsyncMemory()

        @llm_cached(backend=backend)
        async def create(q: str) -> Any:
            return _Chunks(3)

        async def run() -> tuple[list[Any], list[Any]]:
            first = list(await create("q"))
            await asyncio.sleep(0)  # let the write task run
            assert len(backend.data) == 1
            again = list(await create("q"))
            return first, again

        first, again = asyncio.run(run())
        assert first == again == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert create.cache.stats().hits == 1

    def test_failed_background_write_is_counted(self) -> None:
        """The background write failing is logged and counted as an error, never raised."""
        backend = _AsyncMemory()
        backend.fail = True

        @llm_cached(backend=backend)
        async def create(q: str) -> Any:
            return _Chunks(2)

        async def run() -> list[Any]:
            out = list(await create("q"))
            await asyncio.sleep(0)
            return out

        assert asyncio.run(run()) == [{"i": 0}, {"i": 1}]
        stats = create.cache.stats()
        assert (stats.misses, stats.errors) == (1, 1)
        assert backend.data == {}
