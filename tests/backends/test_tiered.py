"""TieredBackend / AsyncTieredBackend: the conformance suite over memory+disk and memory+Redis
(sync and async), and the tiering rules: an L2 hit fills L1 for the entry's remaining life,
L1 never outlives L2, L1 hits survive an L2 outage, L2 failures on a miss fail open."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import diskcache
import pytest
import redis

from llm_memo import BackendError, ConfigurationError, cache_controls, llm_cached
from llm_memo.backends import MISSING, Listing, Locking, Missing
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.redis import AsyncRedisBackend, RedisBackend
from llm_memo.backends.tiered import AsyncTieredBackend, TieredBackend
from llm_memo.entry import Entry
from llm_memo.events import Outcome
from tests.servers import RedisServer

from .conformance import BackendConformance, SyncOverAsync, make_entry, make_key


class Clock:
    """A settable clock shared by L1 and the tiered backend."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Flaky:
    """A sync L2 double: a MemoryBackend that can be switched to fail every call."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.store = MemoryBackend(clock=clock)
        self.down = False
        self.calls: list[str] = []

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if self.down:
            raise BackendError(f"L2 is down ({op})")

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        self._check("get")
        return self.store.get(key)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self._check("set")
        self.store.set(key, entry, ttl)

    def delete(self, key: str) -> bool:
        self._check("delete")
        return self.store.delete(key)

    def clear(self, prefix: str = "") -> int:
        self._check("clear")
        return self.store.clear(prefix)

    def close(self) -> None:
        self.store.close()


class AsyncFlaky:
    """The async twin of :class:`Flaky`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.sync = Flaky(clock)

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        return self.sync.get(key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self.sync.set(key, entry, ttl)

    async def delete(self, key: str) -> bool:
        return self.sync.delete(key)

    async def clear(self, prefix: str = "") -> int:
        return self.sync.clear(prefix)

    async def close(self) -> None:
        self.sync.close()


# -- conformance ---------------------------------------------------------------------------


class TestMemoryOverDisk(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[TieredBackend]:
        backend = TieredBackend(MemoryBackend(), DiskBackend(tmp_path / "l2"))
        yield backend
        backend.close()

    @pytest.fixture
    def plant(self, tmp_path: Path) -> Callable[[str, bytes], None]:
        raw = diskcache.Cache(str(tmp_path / "l2"))
        return lambda key, data: raw.set(key, data)


@pytest.mark.redis
class TestMemoryOverRedis(BackendConformance):
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        redis_server.ensure_running()
        url = redis_server.url_for_db(9)
        redis.Redis.from_url(url).flushdb()
        return url

    @pytest.fixture
    def backend(self, url: str) -> Iterator[TieredBackend]:
        backend = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        yield backend
        backend.close()

    @pytest.fixture
    def plant(self, url: str) -> Callable[[str, bytes], None]:
        raw = redis.Redis.from_url(url)

        def plant(key: str, data: bytes) -> None:
            raw.set(key, data)

        return plant


@pytest.mark.redis
class TestMemoryOverAsyncRedis(TestMemoryOverRedis):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:  # type: ignore[override, unused-ignore]
        backend = SyncOverAsync(
            AsyncTieredBackend(MemoryBackend(), AsyncRedisBackend.from_url(url))
        )
        yield backend
        backend.close()


# -- tiering ---------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def l2(clock: Clock) -> Flaky:
    return Flaky(clock)


@pytest.fixture
def tiered(clock: Clock, l2: Flaky) -> TieredBackend:
    return TieredBackend(MemoryBackend(clock=clock), l2, clock=clock)


def _entry(clock: Clock, ttl: float | None, stale_window: float = 0.0) -> Entry:
    expires = None if ttl is None else clock.now + ttl
    return make_entry(created_at=clock.now, expires_at=expires, stale_window=stale_window)


class TestTiering:
    def test_l2_hit_fills_l1(self, tiered: TieredBackend, l2: Flaky, clock: Clock) -> None:
        """An entry found only in L2 is copied to L1; the next read does not ask L2."""
        key = make_key()
        entry = _entry(clock, 60)
        l2.store.set(key, entry, 60)
        assert tiered.get(key) == entry
        assert tiered.l1.get(key) == entry
        l2.calls.clear()
        assert tiered.get(key) == entry
        assert l2.calls == []

    def test_l1_keeps_only_the_remaining_retention(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock
    ) -> None:
        """L1 holds an L2 hit until its expiry + stale window as of now, not a fresh ttl."""
        key = make_key()
        entry = _entry(clock, 10, stale_window=5)  # retained until now + 15
        l2.store.set(key, entry, 15)
        clock.advance(9)  # 6 s of retention left when L1 is filled
        assert tiered.get(key) == entry
        clock.advance(5.9)
        assert tiered.l1.get(key) == entry
        clock.advance(0.2)
        assert tiered.l1.get(key) is MISSING

    def test_l1_never_outlives_l2(self, tiered: TieredBackend, l2: Flaky, clock: Clock) -> None:
        """Once L2 has dropped an entry, neither tier serves it."""
        key = make_key()
        tiered.set(key, _entry(clock, 5), 5)
        clock.advance(5.1)
        assert l2.store.get(key) is MISSING
        assert tiered.get(key) is MISSING

    def test_entry_past_retention_is_served_not_copied(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock
    ) -> None:
        """An L2 entry already past its retention is returned (L2 had it) but not put in L1."""
        key = make_key()
        entry = _entry(clock, 1)
        l2.store.set(key, entry, None)
        clock.advance(2)
        assert tiered.get(key) == entry
        assert tiered.l1.get(key) is MISSING

    def test_no_expiry_uses_l1_ttl(self, clock: Clock, l2: Flaky) -> None:
        """Entries without expiry stay in L1 for l1_ttl (or until evicted when it is None)."""
        capped = TieredBackend(MemoryBackend(clock=clock), l2, l1_ttl=30, clock=clock)
        uncapped = TieredBackend(MemoryBackend(clock=clock), l2, clock=clock)
        key = make_key()
        l2.store.set(key, _entry(clock, None), None)
        assert capped.get(key) is not MISSING
        assert uncapped.get(key) is not MISSING
        clock.advance(31)
        assert capped.l1.get(key) is MISSING
        assert uncapped.l1.get(key) is not MISSING

    def test_l1_ttl_caps_writes_and_fills(self, clock: Clock, l2: Flaky) -> None:
        """l1_ttl bounds L1 below the entry's own lifetime, on set and on fill."""
        tiered = TieredBackend(MemoryBackend(clock=clock), l2, l1_ttl=10, clock=clock)
        written, filled = make_key(digest="1" * 32), make_key(digest="2" * 32)
        tiered.set(written, _entry(clock, 100), 100)
        l2.store.set(filled, _entry(clock, 100), 100)
        assert tiered.get(filled) is not MISSING
        clock.advance(11)
        assert tiered.l1.get(written) is MISSING
        assert tiered.l1.get(filled) is MISSING
        assert tiered.get(written) is not MISSING  # back from L2

    def test_l1_hit_is_served_while_l2_is_down(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock
    ) -> None:
        """With L2 failing, what L1 holds is still answered."""
        key = make_key()
        tiered.set(key, _entry(clock, 60), 60)
        l2.down = True
        assert tiered.get(key) is not MISSING

    def test_l2_failure_on_miss_raises_backend_error(
        self, tiered: TieredBackend, l2: Flaky
    ) -> None:
        """An L1 miss with L2 down raises BackendError (for the decorator's fail-open)."""
        l2.down = True
        with pytest.raises(BackendError):
            tiered.get(make_key())

    def test_decorator_fails_open_through_tiers(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock
    ) -> None:
        """Through @llm_cached: L1 hits while L2 is down, misses call the function."""
        calls: list[str] = []

        @llm_cached(backend=tiered, ttl=60)
        def ask(q: str) -> str:
            calls.append(q)
            return q.upper()

        assert ask("a") == "A"
        l2.down = True
        with cache_controls() as scope:
            assert ask("a") == "A"  # L1
            assert ask("b") == "B"  # L2 down: called
        assert [e.outcome for e in scope.events] == [Outcome.HIT, Outcome.ERROR]
        assert calls == ["a", "b"]

    def test_set_writes_l2_first_then_l1_even_if_l2_fails(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """set() goes to L2 then L1; an L2 failure still leaves L1 written, then raises."""
        key = make_key()
        order: list[str] = []
        l1_set = tiered.l1.set

        def spy(k: str, e: Entry, t: float | None) -> None:
            order.append("l1")
            l1_set(k, e, t)

        monkeypatch.setattr(tiered.l1, "set", spy)
        l2.calls.clear()
        tiered.set(key, _entry(clock, 60), 60)
        assert (l2.calls + order) == ["set", "l1"]
        l2.down = True
        other = make_key(digest="f" * 32)
        with pytest.raises(BackendError):
            tiered.set(other, _entry(clock, 60), 60)
        assert tiered.l1.get(other) is not MISSING

    def test_delete_and_clear_reach_both(
        self, tiered: TieredBackend, l2: Flaky, clock: Clock
    ) -> None:
        """delete() and clear() remove from both tiers; an L2 failure still clears L1."""
        a, b = make_key("n", "f", "1" * 32), make_key("n", "g", "2" * 32)
        for key in (a, b):
            tiered.set(key, _entry(clock, 60), 60)
        assert tiered.delete(a) is True
        assert tiered.l1.get(a) is MISSING
        assert l2.store.get(a) is MISSING
        assert tiered.clear() == 1
        assert tiered.l1.get(b) is MISSING
        assert l2.store.get(b) is MISSING
        tiered.set(a, _entry(clock, 60), 60)
        l2.down = True
        with pytest.raises(BackendError):
            tiered.clear()
        assert tiered.l1.get(a) is MISSING

    def test_keys_and_lock_come_from_l2(self, tmp_path: Path, clock: Clock, l2: Flaky) -> None:
        """Listing is L2's; without an L2 lock, lock() is a no-op yielding False."""
        over_disk = TieredBackend(MemoryBackend(), DiskBackend(tmp_path))
        key = make_key()
        over_disk.set(key, make_entry(), None)
        assert isinstance(over_disk, Listing)
        assert list(over_disk.keys()) == [key]
        with over_disk.lock(key, ttl=1, wait=1) as acquired:
            assert acquired is False
        over_flaky = TieredBackend(MemoryBackend(), l2)
        with pytest.raises(ConfigurationError):
            over_flaky.keys()

    def test_async_keys_come_from_l2(self, tmp_path: Path, clock: Clock) -> None:
        """The async backend lists L2's keys; an L2 that cannot list refuses at the call, as
        the sync backend does (generated from the same source)."""
        from llm_memo.backends.objectstore import AsyncObjectStoreBackend

        async def run() -> None:
            over_store = AsyncTieredBackend(
                MemoryBackend(), AsyncObjectStoreBackend(f"file://{tmp_path / 'store'}")
            )
            key = make_key()
            await over_store.set(key, make_entry(), None)
            listing = over_store.keys()
            assert [k async for k in listing] == [key]
            await over_store.close()

        asyncio.run(run())
        with pytest.raises(ConfigurationError, match="cannot list"):
            AsyncTieredBackend(MemoryBackend(), AsyncFlaky(clock)).keys()

    def test_rejects_wrong_kinds(self, clock: Clock) -> None:
        """An async L2 needs AsyncTieredBackend, a sync one TieredBackend; L1 must be sync."""
        with pytest.raises(ConfigurationError, match="AsyncTieredBackend"):
            TieredBackend(MemoryBackend(), AsyncFlaky(clock))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="TieredBackend"):
            AsyncTieredBackend(MemoryBackend(), Flaky(clock))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="L1"):
            AsyncTieredBackend(AsyncFlaky(clock), AsyncFlaky(clock))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="l1_ttl"):
            TieredBackend(MemoryBackend(), Flaky(clock), l1_ttl=0)


class TestAsyncTiering:
    def test_fill_outage_and_fail_open(self, clock: Clock) -> None:
        """The async twin: L2 hit fills L1, L1 serves during an L2 outage, misses raise."""
        l2 = AsyncFlaky(clock)
        tiered = AsyncTieredBackend(MemoryBackend(clock=clock), l2, clock=clock)
        key = make_key()

        async def run() -> None:
            l2.sync.store.set(key, _entry(clock, 10), 10)
            assert await tiered.get(key) is not MISSING
            l2.sync.down = True
            assert await tiered.get(key) is not MISSING
            with pytest.raises(BackendError):
                await tiered.get(make_key(digest="e" * 32))
            with pytest.raises(BackendError):
                await tiered.set(make_key(digest="d" * 32), _entry(clock, 10), 10)
            assert tiered.l1.get(make_key(digest="d" * 32)) is not MISSING
            clock.advance(10.1)
            assert tiered.l1.get(key) is MISSING

        asyncio.run(run())

    def test_async_decorator_fails_open(self, clock: Clock) -> None:
        """An async function over AsyncTieredBackend: hit from L1, L2 down on a miss: called."""
        l2 = AsyncFlaky(clock)
        tiered = AsyncTieredBackend(MemoryBackend(), l2)
        calls: list[str] = []

        @llm_cached(backend=tiered, ttl=60)
        async def ask(q: str) -> str:
            calls.append(q)
            return q * 2

        async def run() -> list[Outcome]:
            await ask("x")
            l2.sync.down = True
            with cache_controls() as scope:
                assert await ask("x") == "xx"
                assert await ask("y") == "yy"
            return [e.outcome for e in scope.events]

        assert asyncio.run(run()) == [Outcome.HIT, Outcome.ERROR]
        assert calls == ["x", "y"]


@pytest.mark.redis
class TestOverRealRedis:
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        redis_server.ensure_running()
        url = redis_server.url_for_db(10)
        redis.Redis.from_url(url).flushdb()
        return url

    def test_other_process_l1_never_outlives_redis(self, url: str) -> None:
        """A second tier set (another process's L1) filled from Redis expires with Redis."""
        writer = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        reader = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        key = make_key(digest=uuid.uuid4().hex)
        now = time.time()
        entry = make_entry(created_at=now, expires_at=now + 1.0)
        writer.set(key, entry, 1.0)
        assert reader.get(key) == entry  # filled into reader's L1 for < 1 s
        time.sleep(1.2)
        assert reader.get(key) is MISSING
        assert writer.get(key) is MISSING
        writer.close()
        reader.close()

    def test_lock_is_redis_lock(self, url: str) -> None:
        """lock=True through the tiers uses Redis's cross-process lock."""
        a = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        b = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        assert isinstance(a, Locking)
        key = make_key()
        with a.lock(key, ttl=5, wait=0) as first:
            assert first is True
            with b.lock(key, ttl=5, wait=0) as second:
                assert second is False

    def test_l1_serves_during_redis_outage(self, url: str, redis_server: RedisServer) -> None:
        """memory + Redis: Redis killed, L1 still answers; misses call the function."""
        tiered = TieredBackend(MemoryBackend(), RedisBackend.from_url(url))
        calls: list[int] = []

        @llm_cached(backend=tiered, ttl=60, name=f"tiered-outage-{uuid.uuid4().hex}")
        def ask(n: int) -> dict[str, Any]:
            calls.append(n)
            return {"n": n}

        ask(1)
        try:
            with redis_server.down():
                assert ask(1) == {"n": 1}
                assert ask(2) == {"n": 2}
        finally:
            redis_server.ensure_running()
            tiered.close()
        assert calls == [1, 2]


class TestPersistentCounters:
    def test_counters_go_to_the_shared_tier(self, tmp_path: Path) -> None:
        """With persist_stats on, a tiered backend's hits and misses are flushed to L2 (a disk
        store every process shares), where a second process's tiered backend reads them;
        L1 (this process's memory) keeps none."""
        from llm_memo import configure
        from llm_memo.metrics import flush_stats

        configure(persist_stats=3600)
        first = TieredBackend(MemoryBackend(), DiskBackend(str(tmp_path / "shared")))

        @llm_cached(backend=first, name="app.tiered")
        def ask(q: str) -> str:
            return q.upper()

        ask("a"), ask("a"), ask("a")
        assert flush_stats() == 1
        second = TieredBackend(MemoryBackend(), DiskBackend(str(tmp_path / "shared")))
        (counted,) = second.l2.read_counters().values()  # type: ignore[union-attr]
        assert (counted["hits"], counted["misses"]) == (2, 1), counted
        first.close()
        second.close()
