"""Stale means stale: the grace window (SPEC §3 ``stale_if_error``, issue 9 section 7).

Every backend keeps an expired entry for the grace window (default 24 h), so a
``stale_if_error`` given only at read time, around an outage, still finds entries written
without it; a normal read never serves an expired entry. Tested on memory and disk, and through
the decorator on Redis (the ``redis_server`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_memo import CacheMiss, Outcome, cache_controls, configure, llm_cached
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend


class Clock:
    """A hand-moved wall clock shared by the cache (entry timestamps) and the backend."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Provider:
    """A cached function whose provider can be taken down."""

    def __init__(self, backend: Any, **options: Any) -> None:
        self.down = False
        self.calls = 0

        @llm_cached(backend=backend, **options)
        def ask(q: str) -> str:
            self.calls += 1
            if self.down:
                raise ConnectionError("provider outage")
            return f"{q}#{self.calls}"

        self.ask = ask


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    configure(clock=clock)
    return clock


def outcomes(scope: Any) -> list[Outcome]:
    return [e.outcome for e in scope.events]


class TestMemory:
    def test_read_time_stale_if_error_serves_an_entry_written_without_it(
        self, clock: Clock
    ) -> None:
        """Written with ttl=60 and no stale_if_error; an hour later, during an outage, a block
        with stale_if_error=7200 serves it (the default 24 h grace kept it)."""
        p = Provider(MemoryBackend(clock=clock), ttl=60)
        assert p.ask("q") == "q#1"
        clock.now += 3600
        p.down = True
        with cache_controls(stale_if_error=7200) as scope:
            assert p.ask("q") == "q#1"
        assert outcomes(scope) == [Outcome.STALE]

    def test_normal_reads_never_serve_an_expired_entry(self, clock: Clock) -> None:
        """Kept is not fresh: without stale_if_error an expired entry is a miss (the outage
        raises), only_if_cached raises CacheMiss, and max_age refuses an old entry."""
        p = Provider(MemoryBackend(clock=clock), ttl=60)
        p.ask("q")
        clock.now += 120
        p.down = True
        with pytest.raises(ConnectionError):
            p.ask("q")
        with cache_controls(only_if_cached=True), pytest.raises(CacheMiss):
            p.ask("q")
        with cache_controls(stale_if_error=30), pytest.raises(ConnectionError):
            p.ask("q")  # 60 s past expiry is beyond a 30 s stale_if_error
        p.down = False
        with cache_controls() as scope:
            assert p.ask("q") == "q#4"
        assert outcomes(scope) == [Outcome.MISS]
        clock.now += 30
        with cache_controls(max_age=10) as scope:
            assert p.ask("q") == "q#5"
        assert outcomes(scope) == [Outcome.MISS]

    def test_grace_zero_makes_ttl_the_deletion_time(self, clock: Clock) -> None:
        """configure(grace=0): the entry is gone at its ttl, so nothing stale is left."""
        configure(grace=0)
        backend = MemoryBackend(clock=clock)
        p = Provider(backend, ttl=60)
        p.ask("q")
        clock.now += 61
        assert list(backend.keys()) == []
        p.down = True
        with cache_controls(stale_if_error=7200), pytest.raises(ConnectionError):
            p.ask("q")

    def test_past_the_grace_window_the_entry_is_gone(self, clock: Clock) -> None:
        configure(grace=600)
        p = Provider(MemoryBackend(clock=clock), ttl=60)
        p.ask("q")
        p.down = True
        clock.now += 60 + 500
        with cache_controls(stale_if_error=10**6):
            assert p.ask("q") == "q#1"
        clock.now += 200  # 60 + 700: past ttl + grace
        with cache_controls(stale_if_error=10**6), pytest.raises(ConnectionError):
            p.ask("q")

    def test_write_time_stale_if_error_longer_than_grace_is_kept(self, clock: Clock) -> None:
        """An entry written under stale_if_error=N keeps at least ttl + N, whatever the grace."""
        configure(grace=10)
        p = Provider(MemoryBackend(clock=clock), ttl=60, stale_if_error=3600)
        p.ask("q")
        clock.now += 60 + 1800
        p.down = True
        assert p.ask("q") == "q#1"

    def test_retention_handed_to_the_backend_is_ttl_plus_grace(self, clock: Clock) -> None:
        seen: list[float | None] = []

        class Spy(MemoryBackend):
            def set(self, key: str, entry: Any, ttl: float | None) -> None:
                seen.append(ttl)
                super().set(key, entry, ttl)

        configure(grace=1000)
        Provider(Spy(clock=clock), ttl=60).ask("a")
        Provider(Spy(clock=clock), ttl=60, stale_if_error=5000).ask("b")
        Provider(Spy(clock=clock), ttl=None).ask("c")
        assert seen == [1060.0, 5060.0, None], seen


class TestDisk:
    def expiry(self, directory: Path) -> list[float]:
        """diskcache's physical expiry of each row, relative to when it was stored."""
        import sqlite3

        with sqlite3.connect(directory / "cache.db") as db:
            rows = db.execute("SELECT expire_time - store_time FROM Cache").fetchall()
        return [round(r[0]) for r in rows]

    def test_read_time_stale_if_error_on_disk(self, clock: Clock, tmp_path: Path) -> None:
        """The disk backend keeps the entry ttl + grace (diskcache's native expiry), and a
        read-time stale_if_error serves it after its ttl; a normal read does not."""
        p = Provider(DiskBackend(tmp_path), ttl=60)
        p.ask("q")
        assert self.expiry(tmp_path) == [60 + 86400]
        clock.now += 3600
        p.down = True
        with pytest.raises(ConnectionError):
            p.ask("q")
        with cache_controls(stale_if_error=7200) as scope:
            assert p.ask("q") == "q#1"
        assert outcomes(scope) == [Outcome.STALE]

    def test_grace_zero_on_disk_deletes_at_ttl(self, tmp_path: Path) -> None:
        """With grace 0 diskcache expires the entry at its ttl (real time: a short ttl)."""
        configure(grace=0)
        p = Provider(DiskBackend(tmp_path), ttl=0.2)
        p.ask("q")
        assert self.expiry(tmp_path) == [0]
        time.sleep(0.5)
        p.down = True
        with cache_controls(stale_if_error=7200), pytest.raises(ConnectionError):
            p.ask("q")


class TestRedis:
    @pytest.fixture
    def url(self, redis_server: Any) -> Iterator[str]:
        import redis

        redis_server.ensure_running()
        url = str(redis_server.url_for_db(7))
        client = redis.Redis.from_url(url)
        client.flushdb()
        yield url
        client.flushdb()
        client.close()

    def test_read_time_stale_if_error_through_redis(self, clock: Clock, url: str) -> None:
        """Through the decorator on Redis: the native TTL is ttl + grace, and a read-time
        stale_if_error serves the expired entry during an outage; a normal read does not."""
        import redis

        p = Provider(url, ttl=60)
        p.ask("q")
        client = redis.Redis.from_url(url)
        try:
            keys = client.keys("*")
            assert len(keys) == 1, keys
            ttl = client.pttl(keys[0]) / 1000
        finally:
            client.close()
        assert 86400 < ttl <= 86460, ttl
        clock.now += 3600
        p.down = True
        with pytest.raises(ConnectionError):
            p.ask("q")
        with cache_controls(stale_if_error=7200) as scope:
            assert p.ask("q") == "q#1"
        assert outcomes(scope) == [Outcome.STALE]
