"""A per-item batch is read with the backend's bulk read when it has one (``get_many``: Redis
``MGET``), and a failing bulk read fails open like a failing ``get``: every item is sent.

Unit tests of the runner's own logic, over a memory backend given a ``get_many``; the real
Redis round trips are counted in ``tests/backends/test_redis.py::TestRoundTrips``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from llm_memo import llm_cached
from llm_memo.backends import BulkReading
from llm_memo.backends.memory import MemoryBackend
from llm_memo.errors import BackendError


class _Bulk(MemoryBackend):
    """A memory backend with a bulk read that counts its calls and fails on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.bulk_reads: list[list[str]] = []
        self.single_reads = 0
        self.fail = False

    def get(self, key: str) -> Any:
        self.single_reads += 1
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        self.bulk_reads.append(list(keys))
        if self.fail:
            raise BackendError("bulk read refused")
        return [MemoryBackend.get(self, key) for key in keys]


@pytest.fixture
def store() -> _Bulk:
    backend = _Bulk()
    assert isinstance(backend, BulkReading)
    return backend


def test_a_batch_is_one_bulk_read_of_its_distinct_items(store: _Bulk) -> None:
    calls: list[list[str]] = []

    @llm_cached(backend=store, per_item="texts")
    def embed(texts: list[str]) -> list[int]:
        calls.append(list(texts))
        return [len(t) for t in texts]

    assert embed(["a", "bb", "a"]) == [1, 2, 1]
    assert embed(["bb", "ccc", "a"]) == [2, 3, 1]
    assert calls == [["a", "bb"], ["ccc"]]
    assert [len(keys) for keys in store.bulk_reads] == [2, 3]
    assert store.single_reads == 0, f"{store.single_reads} single reads beside the bulk ones"


def test_a_failing_bulk_read_sends_every_item_and_counts_the_error(store: _Bulk) -> None:
    calls: list[list[str]] = []

    @llm_cached(backend=store, per_item="texts")
    def embed(texts: list[str]) -> list[int]:
        calls.append(list(texts))
        return [len(t) for t in texts]

    embed(["a"])
    store.fail = True
    assert embed(["a", "bb"]) == [1, 2]
    assert calls == [["a"], ["a", "bb"]]
    # as the one-get path counts it: the failed read, and the call it sent uncached
    assert embed.cache.stats().errors == 2
    store.fail = False
    assert embed(["bb", "a"]) == [2, 1]  # both stored by the call the failure sent
    assert calls == [["a"], ["a", "bb"]]


def test_an_async_function_over_a_sync_bulk_backend_reads_in_bulk(store: _Bulk) -> None:
    @llm_cached(backend=store, per_item="texts")
    async def embed(texts: list[str]) -> list[int]:
        return [len(t) for t in texts]

    async def run() -> list[int]:
        await embed(["x", "yy"])
        return await embed(["yy", "x", "zzz"])

    assert asyncio.run(run()) == [2, 1, 3]
    assert [len(keys) for keys in store.bulk_reads] == [2, 3]
    assert store.single_reads == 0
