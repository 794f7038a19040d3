"""Entries copied between keys at the storage level (issue 9 §3): the file object store's files,
the disk cache's rows and Redis values copied byte for byte under another key are misses, and the
fresh result overwrites them. (The conformance suite swaps entries through every backend's own
API; these copy them behind the backend's back, the way an operator or a bug would.)"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import diskcache
import pytest
import redis

from llm_memo import cache_controls, configure, llm_cached
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.objectstore import ObjectStoreBackend
from llm_memo.backends.objectstore.layout import _object_name
from llm_memo.backends.redis import RedisBackend

from .servers import RedisServer


def _ask(backend: Any, calls: list[str]) -> Any:
    @llm_cached(backend=backend, ttl=600)
    def ask(q: str) -> dict[str, str]:
        calls.append(q)
        return {"answer": q}

    return ask


def _check_copy_is_a_miss(ask: Any, calls: list[str], copy: Any) -> None:
    """Store a and b, copy a's stored bytes over b's, and check b is a miss then a hit."""
    assert (ask("a"), ask("b")) == ({"answer": "a"}, {"answer": "b"})
    copy(ask.cache.key("a"), ask.cache.key("b"))
    with cache_controls() as scope:
        got = ask("b")
    assert got == {"answer": "b"}, f"a's copied entry was served for b: {got}"
    assert scope.hits == 0
    with cache_controls() as scope:
        assert ask("b") == {"answer": "b"}
        assert ask("a") == {"answer": "a"}
    assert scope.hits == 2, "the fresh result did not overwrite the copied entry"
    assert calls == ["a", "b", "b"]


@pytest.fixture(params=[False, True], ids=["unsigned", "signed"])
def signed(request: pytest.FixtureRequest) -> bool:
    if request.param:
        configure(signing_keys=["s" * 32])
    return bool(request.param)


class TestCopiedBytes:
    def test_file_object_store(self, tmp_path: Path, signed: bool) -> None:
        """A file:// object copied over another key's object is a miss."""
        root = tmp_path / "store"
        backend = ObjectStoreBackend(f"file://{root}")
        calls: list[str] = []

        def copy(src: str, dst: str) -> None:
            shutil.copyfile(root / _object_name(src), root / _object_name(dst))

        try:
            _check_copy_is_a_miss(_ask(backend, calls), calls, copy)
        finally:
            backend.close()

    def test_disk(self, tmp_path: Path, signed: bool) -> None:
        """A disk cache row copied under another key is a miss."""
        backend = DiskBackend(tmp_path / "disk")
        raw = diskcache.Cache(str(tmp_path / "disk"))
        calls: list[str] = []

        def copy(src: str, dst: str) -> None:
            raw.set(dst, raw.get(src))

        try:
            _check_copy_is_a_miss(_ask(backend, calls), calls, copy)
        finally:
            raw.close()
            backend.close()

    @pytest.mark.redis
    def test_redis(self, redis_server: RedisServer, signed: bool) -> None:
        """A Redis value copied under another key (as COPY / DUMP+RESTORE would) is a miss."""
        redis_server.ensure_running()
        url = redis_server.url_for_db(11)
        raw = redis.Redis.from_url(url)
        raw.flushdb()
        backend = RedisBackend.from_url(url)
        calls: list[str] = []

        def copy(src: str, dst: str) -> None:
            data = raw.get(src)
            assert data is not None, f"nothing stored under {src}"
            raw.set(dst, data, keepttl=True)

        try:
            _check_copy_is_a_miss(_ask(backend, calls), calls, copy)
        finally:
            raw.close()
            backend.close()
