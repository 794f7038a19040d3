"""RedisBackend / AsyncRedisBackend against real servers: standalone with a password, a 3-master
cluster and a master behind Sentinel (each passing the conformance suite, sync and async); one
round trip per hit; outages (kill -9 mid-run); cross-process locks; URLs; forks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
from redis.connection import SSLConnection, UnixDomainSocketConnection

from llm_memo import BackendError, ConfigurationError, cache_controls, llm_cached
from llm_memo.backends import (
    MISSING,
    AsyncBulkReading,
    AsyncListing,
    AsyncLocking,
    BulkReading,
    Listing,
    Locking,
    from_url,
)
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.redis import AsyncRedisBackend, RedisBackend
from llm_memo.errors import BackendUnavailableError
from llm_memo.events import Outcome
from llm_memo.testing import FakeClock
from tests.servers import (
    RedisCluster,
    RedisSentinel,
    RedisServer,
    free_port,
    poll_until,
    start_redis_server,
)

from .conformance import BackendConformance, SyncOverAsync, make_entry, make_key

pytestmark = pytest.mark.redis


def _raw(url: str) -> redis.Redis:
    """A plain redis-py client for the test harness (never the code under test)."""
    return redis.Redis.from_url(url)


def _planter(
    raw: redis.Redis | redis.cluster.RedisCluster, prefix: str = ""
) -> Callable[[str, bytes], None]:
    """The conformance suite's ``plant``: raw bytes under a key, bypassing the backend."""

    def plant(key: str, data: bytes) -> None:
        raw.set(prefix + key, data)

    return plant


def _pool(backend: RedisBackend) -> Any:
    """The connection pool of a backend's (non-cluster) client."""
    client = backend.client
    assert isinstance(client, redis.Redis)
    return client.connection_pool


def _flush_cluster(cluster: RedisCluster) -> None:
    raw = redis.cluster.RedisCluster(host=cluster.host, port=cluster.port)
    try:
        raw.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    finally:
        raw.close()


# -- conformance: every deployment, sync and async ------------------------------------------------


class _Standalone:
    db = 1

    @pytest.fixture
    def url(self, redis_server: RedisServer) -> Iterator[str]:
        redis_server.ensure_running()
        url = redis_server.url_for_db(self.db)
        raw = _raw(url)
        raw.flushdb()
        yield url
        raw.close()

    @pytest.fixture
    def plant(self, url: str) -> Iterator[Callable[[str, bytes], None]]:
        raw = _raw(url)
        yield _planter(raw)
        raw.close()


class TestStandaloneSync(_Standalone, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisBackend]:
        backend = RedisBackend.from_url(url)
        yield backend
        backend.close()


class TestStandaloneAsync(_Standalone, BackendConformance):
    db = 2

    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:
        backend = SyncOverAsync(AsyncRedisBackend.from_url(url))
        yield backend
        backend.close()


class TestReadyClientWithPrefix(_Standalone, BackendConformance):
    """A client the caller built and owns, with a key prefix."""

    db = 3

    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisBackend]:
        client = _raw(url)
        yield RedisBackend(client, prefix="app:")
        client.close()

    @pytest.fixture
    def plant(self, url: str) -> Iterator[Callable[[str, bytes], None]]:
        raw = _raw(url)
        yield _planter(raw, "app:")
        raw.close()

    def test_prefix_is_in_redis_and_not_in_keys(self, backend: RedisBackend, url: str) -> None:
        """Keys are stored under the prefix; keys() and clear() work in unprefixed terms."""
        key = make_key()
        backend.set(key, make_entry(), None)
        assert _raw(url).exists("app:" + key) == 1
        assert list(backend.keys()) == [key]
        assert backend.clear() == 1

    def test_close_leaves_callers_client_open(self, backend: RedisBackend) -> None:
        """close() does not close a client the caller passed in."""
        backend.close()
        assert backend.client.ping()


class _Cluster:
    @pytest.fixture
    def url(self, redis_cluster: RedisCluster) -> str:
        _flush_cluster(redis_cluster)
        return redis_cluster.url

    @pytest.fixture
    def plant(self, redis_cluster: RedisCluster) -> Iterator[Callable[[str, bytes], None]]:
        raw = redis.cluster.RedisCluster(host=redis_cluster.host, port=redis_cluster.port)
        yield _planter(raw)
        raw.close()


class TestClusterSync(_Cluster, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisBackend]:
        backend = RedisBackend.from_url(url)
        yield backend
        backend.close()

    def test_clear_and_keys_cover_every_master(
        self, backend: RedisBackend, redis_cluster: RedisCluster
    ) -> None:
        """Keys spread over all three masters are all listed and all cleared."""
        keys = [make_key("spread", "f", f"{i:032d}") for i in range(60)]
        for key in keys:
            backend.set(key, make_entry(), None)
        client = backend.client
        assert isinstance(client, redis.cluster.RedisCluster)
        owners = {
            redis_cluster.nodes.index((n.host, n.port))
            for n in (client.get_node_from_key(k) for k in keys)  # type: ignore[no-untyped-call]
        }
        assert owners == {0, 1, 2}
        assert sorted(backend.keys("llm_memo:2:spread:")) == sorted(keys)
        assert backend.clear("llm_memo:2:spread:") == 60
        assert list(backend.keys()) == []


class TestClusterAsync(_Cluster, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:
        backend = SyncOverAsync(AsyncRedisBackend.from_url(url))
        yield backend
        backend.close()


class _Sentinel:
    @pytest.fixture
    def url(self, redis_sentinel: RedisSentinel) -> Iterator[str]:
        raw = _raw(redis_sentinel.master_url)
        raw.flushdb()
        yield redis_sentinel.url
        raw.close()

    @pytest.fixture
    def plant(self, redis_sentinel: RedisSentinel) -> Iterator[Callable[[str, bytes], None]]:
        raw = _raw(redis_sentinel.master_url)
        yield _planter(raw)
        raw.close()


class TestSentinelSync(_Sentinel, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisBackend]:
        backend = RedisBackend.from_url(url)
        yield backend
        backend.close()

    def test_talks_to_the_master_sentinel_names(
        self, backend: RedisBackend, redis_sentinel: RedisSentinel
    ) -> None:
        """An entry written through Sentinel is on the master Sentinel reports."""
        key = make_key()
        backend.set(key, make_entry(), None)
        assert _raw(redis_sentinel.master_url).exists(key) == 1


class TestSentinelAsync(_Sentinel, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:
        backend = SyncOverAsync(AsyncRedisBackend.from_url(url))
        yield backend
        backend.close()


# -- one round trip ------------------------------------------------------------------------------


def _commandstats(server: RedisServer) -> Counter[str]:
    text = server.command("INFO", "commandstats").decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_") :].partition(":")
            counts[name] = int(fields.split(",")[0].split("=")[1])
    return counts


@contextlib.contextmanager
def _counting(server: RedisServer) -> Iterator[Counter[str]]:
    """Count the commands the server executes in the block (minus our own AUTH + INFO)."""
    seen: Counter[str] = Counter()
    before = _commandstats(server)
    yield seen
    after = _commandstats(server)
    delta = after - before
    # Each INFO runs on a fresh, authenticated connection: the second one's AUTH and the
    # first one's INFO land in the window.
    assert delta["auth"] >= 1
    assert delta["info"] >= 1
    delta["auth"] -= 1
    delta["info"] -= 1
    seen.update(+delta)


class TestRoundTrips:
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        redis_server.ensure_running()
        _raw(redis_server.url_for_db(4)).flushdb()
        return redis_server.url_for_db(4)

    def test_hit_is_one_get_and_miss_one_get_one_set(
        self, url: str, redis_server: RedisServer
    ) -> None:
        """Through @llm_cached: a miss is GET + SET, a hit exactly one GET, nothing else."""
        backend = RedisBackend.from_url(url)
        backend.get("warm-up")  # opens the pooled connection (HELLO/AUTH/SELECT/SETINFO)

        @llm_cached(backend=backend, ttl=60, name=f"rt-{uuid.uuid4().hex}")
        def ask(prompt: str) -> dict[str, Any]:
            return {"answer": prompt * 100}

        with _counting(redis_server) as miss:
            ask("q")
        with _counting(redis_server) as hit:
            assert ask("q") == {"answer": "q" * 100}
        assert miss == Counter({"get": 1, "set": 1})
        assert hit == Counter({"get": 1})
        backend.close()

    def test_backend_set_is_one_set_with_px(self, url: str, redis_server: RedisServer) -> None:
        """set() is a single SET carrying the expiry; ttl=None leaves the key persistent."""
        backend = RedisBackend.from_url(url)
        backend.get("warm-up")
        raw = _raw(url)
        with _counting(redis_server) as seen:
            backend.set("k1", make_entry(), 30)
        assert seen == Counter({"set": 1})
        assert 29_000 < raw.pttl("k1") <= 30_000
        backend.set("k2", make_entry(), None)
        assert raw.pttl("k2") == -1
        backend.close()

    def test_async_hit_is_one_get(self, url: str, redis_server: RedisServer) -> None:
        """The async backend through an async function: a hit is exactly one GET."""

        async def run() -> tuple[Counter[str], Counter[str]]:
            backend = AsyncRedisBackend.from_url(url)
            await backend.get("warm-up")

            @llm_cached(backend=backend, ttl=60, name=f"art-{uuid.uuid4().hex}")
            async def ask(prompt: str) -> str:
                return prompt.upper()

            try:
                with _counting(redis_server) as miss:
                    await ask("q")
                with _counting(redis_server) as hit:
                    assert await ask("q") == "Q"
            finally:
                await backend.close()
            return miss, hit

        miss, hit = asyncio.run(run())
        assert miss == Counter({"get": 1, "set": 1})
        assert hit == Counter({"get": 1})

    def test_a_per_item_batch_is_read_with_mget(self, url: str, redis_server: RedisServer) -> None:
        """A per-item batch of 450 texts: the miss is 3 MGETs (200 keys each at most) and one
        SET per item, the hit 3 MGETs and nothing else (not 450 GETs); sync and async."""
        texts = [f"text {i}" for i in range(450)]

        def counts(fn: Callable[[list[str]], Any]) -> tuple[Counter[str], Counter[str]]:
            with _counting(redis_server) as miss:
                assert fn(texts) == [len(t) for t in texts]
            with _counting(redis_server) as hit:
                assert fn(texts) == [len(t) for t in texts]
            return miss, hit

        backend = RedisBackend.from_url(url)
        backend.get("warm-up")

        @llm_cached(backend=backend, per_item="texts", name=f"pi-{uuid.uuid4().hex}")
        def embed(texts: list[str]) -> list[int]:
            return [len(t) for t in texts]

        assert counts(embed) == (Counter({"mget": 3, "set": 450}), Counter({"mget": 3}))
        backend.close()

        async def run() -> tuple[Counter[str], Counter[str]]:
            backend = AsyncRedisBackend.from_url(url)
            await backend.get("warm-up")

            @llm_cached(backend=backend, per_item="texts", name=f"api-{uuid.uuid4().hex}")
            async def embed(texts: list[str]) -> list[int]:
                return [len(t) for t in texts]

            try:
                with _counting(redis_server) as miss:
                    assert await embed(texts) == [len(t) for t in texts]
                with _counting(redis_server) as hit:
                    assert await embed(texts) == [len(t) for t in texts]
            finally:
                await backend.close()
            return miss, hit

        assert asyncio.run(run()) == (Counter({"mget": 3, "set": 450}), Counter({"mget": 3}))

    def test_wrong_type_reads_as_miss(self, url: str) -> None:
        """A key holding a list (someone else's data) is a miss, not an error."""
        backend = RedisBackend.from_url(url)
        key = make_key()
        _raw(url).rpush(key, b"x")
        assert backend.get(key) is MISSING
        backend.close()

    def test_clear_never_touches_foreign_keys(self, url: str) -> None:
        """clear() with no prefix removes llm_memo's keys only, never other data in the db."""
        backend = RedisBackend.from_url(url)
        raw = _raw(url)
        raw.set("session:42", b"user data")
        backend.set(make_key(), make_entry(), None)
        assert backend.clear() == 1
        assert raw.get("session:42") == b"user data"
        backend.close()

    def test_protocols(self) -> None:
        """Both classes offer listing, locking and bulk reads."""
        sync = RedisBackend.from_url("redis://127.0.0.1:1/0")
        aio = AsyncRedisBackend.from_url("redis://127.0.0.1:1/0")
        assert isinstance(sync, Listing)
        assert isinstance(sync, Locking)
        assert isinstance(aio, AsyncListing)
        assert isinstance(aio, AsyncLocking)
        assert isinstance(sync, BulkReading)
        assert isinstance(aio, AsyncBulkReading)


# -- failures ------------------------------------------------------------------------------------


def _fast_breaker() -> CircuitBreaker:
    return CircuitBreaker(failures=2, cooldown=0.05, max_cooldown=0.2)


class TestFailures:
    def test_unreachable_server_raises_backend_error_then_breaker_opens(self) -> None:
        """Connection refused is a BackendError; after `failures` of them the breaker answers
        without touching the network."""
        backend = RedisBackend.from_url(f"redis://127.0.0.1:{free_port()}/0")
        for _ in range(3):
            with pytest.raises(BackendError) as info:
                backend.get(make_key())
            assert isinstance(info.value.__cause__, redis.ConnectionError)
        with pytest.raises(BackendUnavailableError):
            backend.get(make_key())
        with pytest.raises(BackendUnavailableError):
            backend.set(make_key(), make_entry(), 10)

    def test_every_operation_wraps_driver_errors(self) -> None:
        """get, get_many, set, delete, clear, keys and lock all raise BackendError, never redis
        errors."""
        backend = RedisBackend.from_url(f"redis://127.0.0.1:{free_port()}/0")
        operations: list[Callable[[], object]] = [
            lambda: backend.get("k"),
            lambda: backend.get_many(["k", "l"]),
            lambda: backend.set("k", make_entry(), 5),
            lambda: backend.delete("k"),
            lambda: backend.clear(),
            lambda: list(backend.keys()),
            lambda: backend.lock("k", ttl=1, wait=0).__enter__(),
        ]
        for operation in operations:
            with pytest.raises(BackendError):
                operation()

    def test_wrong_password_is_a_backend_error(self, redis_server: RedisServer) -> None:
        """A refused login is a BackendError (no multi-second login retries)."""
        redis_server.ensure_running()
        url = f"redis://:wrong@{redis_server.host}:{redis_server.port}/0"
        backend = RedisBackend.from_url(url)
        with pytest.raises(BackendError) as info:
            backend.get(make_key())
        assert isinstance(info.value.__cause__, redis.AuthenticationError)
        backend.close()

    def test_async_unreachable_server(self) -> None:
        """The async twin wraps failures and opens its breaker the same way."""

        async def run() -> None:
            backend = AsyncRedisBackend.from_url(
                f"redis://127.0.0.1:{free_port()}/0", breaker=_fast_breaker()
            )
            for _ in range(2):
                with pytest.raises(BackendError):
                    await backend.get(make_key())
            with pytest.raises(BackendUnavailableError):
                await backend.get(make_key())
            await backend.close()

        asyncio.run(run())

    def test_kill_9_mid_run_fails_no_call_and_caching_resumes(
        self, redis_server: RedisServer
    ) -> None:
        """redis-server SIGKILLed while calls run: every call still answers (from the function)
        and, once the server is back, hits return with nothing rebuilt."""
        redis_server.ensure_running()
        backend = RedisBackend.from_url(redis_server.url_for_db(5), breaker=_fast_breaker())
        calls = Counter[int]()

        @llm_cached(backend=backend, ttl=300, name=f"kill9-{uuid.uuid4().hex}")
        def ask(n: int) -> dict[str, int]:
            calls[n] += 1
            return {"n": n, "square": n * n}

        outcomes: list[tuple[str, Outcome]] = []
        failures: list[BaseException] = []
        phase = ["before"]
        between_calls = threading.Lock()  # held by the worker for each call
        stop = threading.Event()

        def run() -> None:
            i = 0
            while not stop.is_set():
                n = i % 5
                i += 1
                with between_calls:
                    label = phase[0]
                    try:
                        with cache_controls() as scope:
                            assert ask(n) == {"n": n, "square": n * n}
                        outcomes.append((label, scope.events[-1].outcome))
                    except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                        failures.append(exc)
                time.sleep(0.002)

        def wait_for(predicate: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 30
            while not predicate():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.01)

        def count(label: str, outcome: Outcome | None = None) -> int:
            return sum(1 for p, o in outcomes if p == label and outcome in (None, o))

        worker = threading.Thread(target=run)
        worker.start()
        try:
            wait_for(lambda: count("before", Outcome.HIT) >= 20, "hits before the kill")
            redis_server.kill()  # SIGKILL while calls are running
            with between_calls:
                phase[0] = "down"
            wait_for(lambda: count("down") >= 30, "calls during the outage")
            with between_calls:
                redis_server.restart()
                phase[0] = "after"
            wait_for(lambda: count("after", Outcome.HIT) >= 10, "hits after the restart")
        finally:
            stop.set()
            worker.join(30)
            redis_server.ensure_running()
            backend.close()
        assert failures == []
        # While Redis was dead every call went to the function; nothing was served cached.
        assert {o for p, o in outcomes if p == "down"} == {Outcome.ERROR}
        # Each call that was not a hit called the function exactly once.
        assert sum(calls.values()) == sum(1 for _, o in outcomes if o is not Outcome.HIT)


# -- refusals and half-open probes ---------------------------------------------------------------


def _half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Open ``breaker`` as an outage would, then let its cool-down pass: the next operation is
    the half-open probe."""
    for _ in range(breaker.failures):
        breaker.failure()
    assert breaker.is_open
    clock.advance(breaker.max_cooldown + 1)


@contextlib.contextmanager
def _out_of_memory(server: RedisServer) -> Iterator[None]:
    """Every write refused with an ``OOM`` error reply; reads still answer."""
    server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    server.command("CONFIG", "SET", "maxmemory", "1")
    try:
        yield
    finally:
        server.command("CONFIG", "SET", "maxmemory", "0")


class TestRefusals:
    """An error reply (OOM, READONLY, ...) is one call's refusal: a BackendError for that call,
    never a breaker failure, and a half-open probe that gets one (or is cancelled) resolves."""

    @pytest.mark.parametrize("raised", [AttributeError, IndexError, KeyError])
    def test_a_driver_bug_fails_one_call_open(
        self, redis_scratch: RedisServer, raised: type[Exception]
    ) -> None:
        """redis-py's own race (its asyncio cluster raised "'NoneType' object has no attribute
        'writelines'" under load) is a BackendError for that call, not a breaker failure, and a
        decorated call goes through instead of raising it."""

        class Racy(redis.Redis):  # a real client whose GET hits a driver bug
            def get(self, name: Any) -> Any:
                raise raised("'NoneType' object has no attribute 'writelines'")

        breaker = CircuitBreaker(failures=1, clock=FakeClock(1000.0))
        backend = RedisBackend(Racy.from_url(redis_scratch.url), breaker=breaker)
        with pytest.raises(BackendError) as info:
            backend.get(make_key())
        assert isinstance(info.value.__cause__, raised), info.value
        assert not breaker.is_open

        @llm_cached(backend=backend, name=f"racy-{uuid.uuid4().hex}")
        def ask(n: int) -> int:
            return n + 1

        with cache_controls() as scope:
            assert ask(1) == 2
        assert [e.outcome for e in scope.events] == [Outcome.ERROR], scope.events

    def test_error_replies_never_open_the_breaker(self, redis_scratch: RedisServer) -> None:
        """Writes refused with OOM, many times over, leave the breaker closed: reads go on."""
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, clock=clock)
        backend = RedisBackend.from_url(redis_scratch.url, breaker=breaker)
        key = make_key()
        backend.set(key, make_entry(b"kept"), None)
        with _out_of_memory(redis_scratch):
            for _ in range(5):
                with pytest.raises(BackendError) as info:
                    backend.set(make_key(digest=uuid.uuid4().hex), make_entry(), 60)
                assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError), info
                assert not isinstance(info.value, BackendUnavailableError), info
            assert not breaker.is_open
            got = backend.get(key)
        assert got is not MISSING, got
        assert got.value == b"kept", got
        backend.close()

    def test_probe_refused_with_oom_resolves(self, redis_scratch: RedisServer) -> None:
        """The half-open probe gets an OOM reply: that call fails, and the next one runs (the
        breaker is not left "probing" for ever with a healthy server)."""
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=2, cooldown=5, max_cooldown=5, clock=clock)
        backend = RedisBackend.from_url(redis_scratch.url, breaker=breaker)
        backend.get("warm-up")
        _half_open(breaker, clock)
        with _out_of_memory(redis_scratch):
            with pytest.raises(BackendError) as info:
                backend.set(make_key(), make_entry(), 60)
            assert not isinstance(info.value, BackendUnavailableError), info.value
            assert backend.get(make_key()) is MISSING  # raised "probe under way" before
        assert not breaker.is_open
        backend.close()

    def test_probe_refused_by_a_read_only_replica_resolves(
        self, redis_replica: RedisServer
    ) -> None:
        """A READONLY reply to the probe (a write to a replica) resolves it, sync and async."""
        for flavour in ("sync", "async"):
            clock = FakeClock(1000.0)
            breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
            _half_open(breaker, clock)
            if flavour == "sync":
                backend = RedisBackend.from_url(redis_replica.url, breaker=breaker)
                with pytest.raises(BackendError) as info:
                    backend.set(make_key(), make_entry(), 60)
                assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError), info
                assert backend.get(make_key()) is MISSING, flavour
                backend.close()
            else:

                async def probe(breaker: CircuitBreaker = breaker) -> None:
                    backend = AsyncRedisBackend.from_url(redis_replica.url, breaker=breaker)
                    try:
                        with pytest.raises(BackendError) as info:
                            await backend.set(make_key(), make_entry(), 60)
                        assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
                        assert await backend.get(make_key()) is MISSING
                    finally:
                        await backend.close()

                asyncio.run(probe())
            assert not breaker.is_open, flavour

    def test_cancelled_probe_resolves(self, redis_scratch: RedisServer) -> None:
        """The probe is cancelled by the caller's ``asyncio.wait_for`` while the server does not
        answer (``CLIENT PAUSE``); once it answers again, the next call goes through."""
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
        key = make_key()

        async def run() -> Any:
            backend = AsyncRedisBackend.from_url(redis_scratch.url, breaker=breaker)
            try:
                await backend.set(key, make_entry(b"v"), 60)
                _half_open(breaker, clock)
                # Paused clients (CLIENT UNPAUSE included) get no answer for 3 s; the wait
                # below lets the pause run out before the last call.
                redis_scratch.command("CLIENT", "PAUSE", "3000", "ALL")
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(backend.get(key), 0.2)
                task = asyncio.create_task(backend.get(key))
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                poll_until(redis_scratch.ping, timeout=60, what="the pause to end")
                return await backend.get(key)
            finally:
                await backend.close()

        got = asyncio.run(run())
        assert got is not MISSING, got
        assert got.value == b"v", got
        assert not breaker.is_open

    def test_cluster_probe_refused_with_oom_resolves(self, redis_cluster: RedisCluster) -> None:
        """On a cluster too (sync and async clients): an OOM reply to the probe resolves it."""
        _flush_cluster(redis_cluster)
        key = make_key()

        def every_node(*args: str) -> None:
            for host, port in redis_cluster.nodes:
                with redis.Redis(host=host, port=port) as node:
                    node.execute_command(*args)

        every_node("CONFIG", "SET", "maxmemory-policy", "noeviction")
        every_node("CONFIG", "SET", "maxmemory", "1")
        try:
            clock = FakeClock(1000.0)
            breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
            backend = RedisBackend.from_url(redis_cluster.url, breaker=breaker)
            _half_open(breaker, clock)
            with pytest.raises(BackendError) as info:
                backend.set(key, make_entry(), 60)
            assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError), info
            assert backend.get(key) is MISSING
            backend.close()

            async def probe() -> None:
                aio = AsyncRedisBackend.from_url(redis_cluster.url, breaker=breaker)
                try:
                    _half_open(breaker, clock)
                    with pytest.raises(BackendError) as info:
                        await aio.set(key, make_entry(), 60)
                    assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError)
                    assert await aio.get(key) is MISSING
                finally:
                    await aio.close()

            asyncio.run(probe())
        finally:
            every_node("CONFIG", "SET", "maxmemory", "0")
        assert not breaker.is_open

    def test_only_unreachable_counts(self) -> None:
        """The classification: refused/reset/timed out and cluster-down count as the server
        being unreachable; error replies, redirects, a full local pool and bad input do not."""
        from redis import exceptions as e

        from llm_memo.backends.redis._commands import _unreachable

        outages: list[BaseException] = [
            e.ConnectionError("Connection refused"),
            e.TimeoutError("Timeout reading from socket"),
            e.BusyLoadingError("LOADING"),
            e.AuthenticationError("invalid password"),
            e.ClusterDownError("CLUSTERDOWN"),
            e.MasterDownError("MASTERDOWN"),
            e.RedisClusterException("Redis Cluster cannot be connected"),
            e.SlotNotCoveredError("slot 12 not covered"),
            ConnectionResetError(104, "Connection reset by peer"),
            TimeoutError(),
            OSError("network unreachable"),
        ]
        refusals: list[BaseException] = [
            e.ResponseError("ERR unknown command"),
            e.OutOfMemoryError("OOM command not allowed"),
            e.ReadOnlyError("READONLY"),
            e.NoScriptError("NOSCRIPT"),
            e.MovedError("3999 127.0.0.1:6381"),
            e.AskError("3999 127.0.0.1:6381"),
            e.TryAgainError("TRYAGAIN"),
            e.ClusterCrossSlotError("CROSSSLOT"),
            e.ClusterError("TTL exhausted."),
            e.MaxConnectionsError("Too many connections"),
            e.DataError("Invalid input"),
            e.CrossSlotTransactionError("cross slot"),
            asyncio.CancelledError(),
            KeyboardInterrupt(),
        ]
        wrongly = [x for x in outages if not _unreachable(x)]
        wrongly += [x for x in refusals if _unreachable(x)]
        assert wrongly == [], wrongly
        wrapped = BackendError("GET failed")
        wrapped.__cause__ = e.ConnectionError("refused")
        assert _unreachable(wrapped)
        wrapped.__cause__ = e.ReadOnlyError("READONLY")
        assert not _unreachable(wrapped)


# -- cross-process single-flight -----------------------------------------------------------------


def _single_flight_worker(
    url: str,
    name: str,
    counter: str,
    barrier: Any,
    results: Any,
) -> None:
    raw = redis.Redis.from_url(url)

    def work(prompt: str) -> dict[str, Any]:
        raw.incr(counter)
        time.sleep(0.5)
        return {"prompt": prompt, "computed_by": os.getpid()}

    ask = llm_cached(backend=url, lock=True, ttl=60, name=name)(work)
    barrier.wait(60)
    results.put(ask("the same question"))


def _hold_lock_and_hang(url: str, key: str, ttl: float, ready: Any) -> None:
    backend = RedisBackend.from_url(url)
    held = backend.lock(key, ttl=ttl, wait=0)  # kept referenced: never released, never GC'd
    assert held.__enter__()
    ready.set()
    time.sleep(600)


class TestLocks:
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        redis_server.ensure_running()
        _raw(redis_server.url_for_db(6)).flushdb()
        return redis_server.url_for_db(6)

    def test_four_processes_make_one_call(self, url: str) -> None:
        """4 spawned processes call the same lock=True function at once: exactly one
        underlying call, and all four get its result."""
        ctx = multiprocessing.get_context("spawn")
        name = f"single-flight-{uuid.uuid4().hex}"
        counter = f"test:counter:{name}"
        barrier = ctx.Barrier(4)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_single_flight_worker, args=(url, name, counter, barrier, results))
            for _ in range(4)
        ]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert int(_raw(url).get(counter) or 0) == 1
        assert len({g["computed_by"] for g in got}) == 1
        assert all(g == got[0] for g in got)
        assert got[0]["prompt"] == "the same question"

    def test_dead_holder_blocks_only_until_ttl(self, url: str) -> None:
        """A lock whose holder was SIGKILLed is still held, then expires by itself."""
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        key = make_key(digest=uuid.uuid4().hex)
        holder = ctx.Process(target=_hold_lock_and_hang, args=(url, key, 1.5, ready))
        holder.start()
        try:
            assert ready.wait(60)
        finally:
            holder.kill()
            holder.join(30)
        backend = RedisBackend.from_url(url)
        with backend.lock(key, ttl=5, wait=0) as acquired:
            assert acquired is False
        with backend.lock(key, ttl=5, wait=30) as acquired:
            assert acquired is True
        backend.close()

    def test_expired_holder_never_releases_the_next_holders_lock(self, url: str) -> None:
        """Release is compare-and-delete: a holder whose lock expired leaves the new one."""
        a, b, c = (RedisBackend.from_url(url) for _ in range(3))
        key = make_key()
        first = a.lock(key, ttl=0.2, wait=0)
        assert first.__enter__() is True
        with b.lock(key, ttl=30, wait=10) as acquired:
            assert acquired is True  # after a's lock expired
            first.__exit__(None, None, None)  # a finishes late and "releases"
            with c.lock(key, ttl=1, wait=0) as again:
                assert again is False  # b still holds it
        with c.lock(key, ttl=1, wait=0) as again:
            assert again is True

    def test_lock_keys_are_not_entries(self, url: str) -> None:
        """A held lock is neither listed nor cleared with its namespace."""
        backend = RedisBackend.from_url(url)
        key = make_key("ns", "f")
        with backend.lock(key, ttl=5, wait=0) as acquired:
            assert acquired
            assert list(backend.keys()) == []
            assert backend.clear("llm_memo:2:ns:") == 0
            with backend.lock(key, ttl=5, wait=0) as again:
                assert again is False
        backend.close()

    def test_async_lock(self, url: str) -> None:
        """The async lock: exclusive while held, free after release, PX set from ttl."""

        async def run() -> None:
            a = AsyncRedisBackend.from_url(url)
            b = AsyncRedisBackend.from_url(url)
            key = make_key()
            try:
                async with a.lock(key, ttl=5, wait=0) as acquired:
                    assert acquired is True
                    async with b.lock(key, ttl=5, wait=0.05) as other:
                        assert other is False
                async with b.lock(key, ttl=5, wait=0) as other:
                    assert other is True
            finally:
                await a.close()
                await b.close()

        asyncio.run(run())

    def test_lock_wait_sees_release(self, url: str) -> None:
        """A waiter gets the lock soon after the holder releases it (well before its ttl)."""
        holder = RedisBackend.from_url(url)
        waiter = RedisBackend.from_url(url)
        key = make_key()
        held = holder.lock(key, ttl=60, wait=0)
        assert held.__enter__()
        threading.Timer(0.2, lambda: held.__exit__(None, None, None)).start()
        with waiter.lock(key, ttl=5, wait=30) as acquired:
            assert acquired is True
        assert _raw(url).pttl(holder.prefix + "llm_memo:lock:" + key) == -2


# -- URLs ------------------------------------------------------------------------------------


class TestUrls:
    def test_redis_url_with_credentials_db_and_options(self) -> None:
        """username, password (percent-decoded), db and query options reach the client."""
        backend = RedisBackend.from_url(
            "redis://alice:p%40ss@cache.example:6380/3?prefix=app:&socket_timeout=2.5",
            client_kwargs={"health_check_interval": 30},
        )
        kwargs = _pool(backend).connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 3)
        assert (kwargs["username"], kwargs["password"]) == ("alice", "p@ss")
        assert kwargs["socket_timeout"] == 2.5
        assert kwargs["socket_connect_timeout"] == 0.5
        assert kwargs["health_check_interval"] == 30
        assert kwargs["retry"].get_retries() == 0
        assert backend.prefix == "app:"
        assert "p@ss" not in repr(backend)
        assert "p%40ss" not in repr(backend)

    def test_defaults(self) -> None:
        """Short timeouts, no retries, port 6379, db 0."""
        kwargs = _pool(RedisBackend.from_url("redis://localhost")).connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs.get("db", 0)) == ("localhost", 6379, 0)
        assert kwargs["socket_connect_timeout"] == 0.5
        assert kwargs["socket_timeout"] == 1.0
        assert kwargs["retry"].get_retries() == 0

    def test_rediss_takes_certificates_from_query_and_client_kwargs(self) -> None:
        """rediss:// is TLS; certificate options come from the query or client_kwargs."""
        backend = RedisBackend.from_url(
            "rediss://:secret@cache.example:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=no",
            client_kwargs={"ssl_certfile": "/etc/client.pem", "ssl_keyfile": "/etc/client.key"},
        )
        pool = _pool(backend)
        assert pool.connection_class is SSLConnection
        kwargs = pool.connection_kwargs
        assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
        assert kwargs["ssl_check_hostname"] is False
        assert kwargs["ssl_certfile"] == "/etc/client.pem"
        assert kwargs["ssl_keyfile"] == "/etc/client.key"
        assert kwargs["password"] == "secret"

    @pytest.mark.parametrize("text", ["ture", "", "2"])
    def test_a_misspelt_boolean_is_refused(self, text: str) -> None:
        """?ssl_check_hostname takes the one strict boolean spelling set, never a guess."""
        with pytest.raises(ConfigurationError, match="ssl_check_hostname"):
            RedisBackend.from_url(f"rediss://cache.example:6380/0?ssl_check_hostname={text}")

    def test_async_rediss_client(self) -> None:
        """The async twin builds a redis.asyncio client with the same settings."""

        async def run() -> None:
            backend = AsyncRedisBackend.from_url(
                "rediss://cache.example:6380/2", client_kwargs={"ssl_cert_reqs": "none"}
            )
            client = backend.client
            assert isinstance(client, redis.asyncio.Redis)
            pool = client.connection_pool
            assert pool.connection_class is redis.asyncio.SSLConnection
            assert pool.connection_kwargs["db"] == 2
            assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
            await backend.close()

        asyncio.run(run())

    def test_unix_socket_url(self) -> None:
        """unix:// takes the socket path, the db and password from the query."""
        backend = RedisBackend.from_url("unix:///run/redis/redis.sock?db=2&password=pw")
        pool = _pool(backend)
        assert pool.connection_class is UnixDomainSocketConnection
        kwargs = pool.connection_kwargs
        assert (kwargs["path"], kwargs["db"], kwargs["password"]) == (
            "/run/redis/redis.sock",
            2,
            "pw",
        )

    def test_sentinel_url(self) -> None:
        """redis+sentinel:// names the sentinels, the service and the db."""
        backend = RedisBackend.from_url(
            "redis+sentinel://:pw@s1.example:26379,s2.example/mymaster/2"
        )
        pool = _pool(backend)
        assert pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 2
        assert pool.connection_kwargs["password"] == "pw"
        sentinels = pool.sentinel_manager.sentinels
        addresses = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in sentinels
        ]
        assert addresses == [("s1.example", 26379), ("s2.example", 26379)]
        # The sentinels themselves get the short timeouts and no retries too.
        sentinel_kwargs = sentinels[0].connection_pool.connection_kwargs
        assert sentinel_kwargs["socket_connect_timeout"] == 0.5
        assert sentinel_kwargs["retry"].get_retries() == 0

    def test_cluster_url_builds_a_cluster_client(self, redis_cluster: RedisCluster) -> None:
        """redis+cluster:// with several startup nodes gives a RedisCluster that knows all
        three masters."""
        backend = RedisBackend.from_url(redis_cluster.url)
        client = backend.client
        assert isinstance(client, redis.cluster.RedisCluster)
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        assert {(n.host, n.port) for n in primaries} == set(redis_cluster.nodes)
        backend.close()

    @pytest.mark.parametrize(
        ("url", "needle"),
        [
            ("redis://h/0?bogus=1", "client_kwargs"),
            ("redis://h/0?ssl_ca_certs=/ca.pem", "rediss://"),
            ("redis://h/zero", "number"),
            ("redis://h:port/0", "port"),
            ("redis://a:1,b:2/0", r"redis\+cluster://"),
            ("redis+cluster://a:1,b:2/3", "database 0"),
            ("redis+sentinel://s:26379/", "service"),
            ("redis+sentinel://s:26379/m/1/x", "service"),
            ("unix://", "socket path"),
            ("memcached://h", "not a Redis URL"),
            ("redis://h/0?socket_timeout=soon", "not valid"),
        ],
    )
    def test_bad_urls_name_the_fix(self, url: str, needle: str) -> None:
        """Malformed URLs and unknown options raise ConfigurationError saying what to do."""
        with pytest.raises(ConfigurationError, match=needle):
            RedisBackend.from_url(url)

    def test_decode_responses_is_refused(self) -> None:
        """llm_memo stores bytes: a client that decodes to str is refused up front."""
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisBackend.from_url("redis://h/0", client_kwargs={"decode_responses": True})
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisBackend(redis.Redis(decode_responses=True))

    def test_registry_routes_schemes(self) -> None:
        """Every Redis scheme resolves to RedisBackend, or AsyncRedisBackend for async."""
        for url in ("redis://h/0", "rediss://h/0", "unix:///s.sock", "redis+sentinel://s/m"):
            assert type(from_url(url)) is RedisBackend
            assert type(from_url(url, asynchronous=True)) is AsyncRedisBackend
        assert type(from_url("redis+cluster://h:1/", asynchronous=True)) is AsyncRedisBackend


@pytest.fixture(scope="module")
def unix_redis(redis_server: RedisServer) -> Iterator[str]:
    """A second Redis listening on a Unix socket (short path: sun_path is ~107 bytes)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="llm-memo-", dir="/tmp"))
    socket_path = workdir / "r.sock"
    server = start_redis_server(
        binary,
        workdir,
        name="redis-unix",
        extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"],
    )
    yield f"unix://{socket_path}?db=0"
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_unix_socket_serves_the_decorator(unix_redis: str) -> None:
    """A unix:// URL reaches a real server: miss, then hit."""
    calls = []

    @llm_cached(backend=unix_redis, ttl=60, name=f"unix-{uuid.uuid4().hex}")
    def ask(q: str) -> str:
        calls.append(q)
        return q[::-1]

    assert ask("abc") == ask("abc") == "cba"
    assert calls == ["abc"]


# -- event loops and forks -----------------------------------------------------------------------


def test_async_backend_follows_a_new_event_loop(redis_server: RedisServer) -> None:
    """A URL-built AsyncRedisBackend keeps working across asyncio.run() calls (a new client
    per loop, closed with its loop: nothing warns)."""
    redis_server.ensure_running()
    backend = AsyncRedisBackend.from_url(redis_server.url_for_db(7))
    key = make_key(digest=uuid.uuid4().hex)

    async def write() -> None:
        await backend.set(key, make_entry(b"v"), 30)

    async def read_and_close() -> bytes:
        entry = await backend.get(key)
        await backend.close()
        assert entry is not MISSING
        return entry.value

    asyncio.run(write())
    assert asyncio.run(read_and_close()) == b"v"
    gc.collect()  # anything left unclosed would warn here (warnings are errors)


def _named_connections(server: RedisServer, name: str) -> int:
    listing = server.command("CLIENT", "LIST").decode()
    return sum(1 for line in listing.splitlines() if f" name={name} " in f" {line} ")


def _wait_for_connections(server: RedisServer, name: str, expected: int, what: str) -> None:
    """Wait (bounded) until the server lists ``expected`` connections named ``name``; a socket
    closed just before is seen by the server a moment later."""
    try:
        poll_until(lambda: _named_connections(server, name) == expected, timeout=10, what=what)
    except TimeoutError:
        seen = _named_connections(server, name)
        raise AssertionError(
            f"{what}: {seen} connections named {name} open, not {expected}"
        ) from None


@contextlib.contextmanager
def _resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect ResourceWarnings (unclosed connections, sockets, transports) raised in the block,
    including from finalizers run by a gc.collect() at its end."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        yield seen
        gc.collect()
    seen[:] = [w for w in seen if issubclass(w.category, ResourceWarning)]


class TestEventLoops:
    """The async backend builds one client per event loop and closes it with its loop (issue 9:
    a cached ``async def`` across ``asyncio.run()`` calls left a connection open per loop)."""

    def test_each_asyncio_run_closes_its_connections(self, redis_scratch: RedisServer) -> None:
        """Five asyncio.run() in a row through the decorator: after each, the server lists none
        of the backend's connections, and nothing warns about an unclosed one."""
        name = f"loops-{uuid.uuid4().hex[:8]}"
        url = f"{redis_scratch.url}?client_name={name}"
        calls = []

        @llm_cached(backend=url, ttl=60, name=f"loops-{uuid.uuid4().hex}")
        async def ask(prompt: str) -> str:
            calls.append(prompt)
            return prompt.upper()

        async def once() -> str:
            assert _named_connections(redis_scratch, name) <= 1
            return await ask("q")

        with _resource_warnings() as seen:
            for i in range(5):
                assert asyncio.run(once()) == "Q"
                _wait_for_connections(redis_scratch, name, 0, f"after asyncio.run #{i + 1}")
        assert calls == ["q"]  # the later runs were hits, on a fresh connection each
        assert [str(w.message) for w in seen] == []

    def test_a_loop_closed_without_shutdown_is_swept(self, redis_scratch: RedisServer) -> None:
        """A loop closed by hand (no shutdown_asyncgens) cannot close its connections itself:
        the backend releases them, without a warning, when another loop uses it."""
        name = f"sweep-{uuid.uuid4().hex[:8]}"
        backend = AsyncRedisBackend.from_url(f"{redis_scratch.url}?client_name={name}")
        key = make_key(digest=uuid.uuid4().hex)
        with _resource_warnings() as seen:
            for _ in range(3):
                loop = asyncio.new_event_loop()
                loop.run_until_complete(backend.set(key, make_entry(b"v"), 30))
                loop.close()
            got = asyncio.run(backend.get(key))
            assert got is not MISSING
            _wait_for_connections(redis_scratch, name, 0, "after the swept loops")
        assert [str(w.message) for w in seen] == []

    @pytest.mark.parametrize("deployment", ["cluster", "sentinel"])
    def test_cluster_and_sentinel_clients_close_with_their_loop(
        self, deployment: str, request: pytest.FixtureRequest
    ) -> None:
        """The same for a cluster client (connections to every node) and a Sentinel client
        (connections to the master and to the sentinels): asyncio.run() in a row, then a loop
        closed by hand and swept; nothing is left to warn about."""
        target = request.getfixturevalue(f"redis_{deployment}")
        backend = AsyncRedisBackend.from_url(target.url)
        key = make_key(digest=uuid.uuid4().hex)
        with _resource_warnings() as seen:
            for _ in range(3):
                asyncio.run(backend.set(key, make_entry(b"v"), 30))
            loop = asyncio.new_event_loop()
            got = loop.run_until_complete(backend.get(key))
            loop.close()
            assert got is not MISSING
            asyncio.run(backend.get(key))
        assert [str(w.message) for w in seen] == []

    def test_loops_in_threads_keep_their_own_clients(self, redis_scratch: RedisServer) -> None:
        """Two threads, each running its own loops, share one backend: each loop gets its own
        client, none is closed under another's feet, all are closed with their loops."""
        name = f"threads-{uuid.uuid4().hex[:8]}"
        backend = AsyncRedisBackend.from_url(f"{redis_scratch.url}?client_name={name}")
        errors: list[BaseException] = []

        async def work(tag: str) -> None:
            for i in range(50):
                key = make_key(digest=f"{tag}{i:031d}")
                await backend.set(key, make_entry(tag.encode()), 30)
                got = await backend.get(key)
                assert got is not MISSING, (tag, i)
                assert got.value == tag.encode(), (tag, i, got)
                await asyncio.sleep(0)

        def thread(tag: str) -> None:
            try:
                for _ in range(3):
                    asyncio.run(work(tag))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        with _resource_warnings() as seen:
            threads = [threading.Thread(target=thread, args=(t,)) for t in "ab"]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            _wait_for_connections(redis_scratch, name, 0, "after both threads' loops")
        assert errors == []
        assert [str(w.message) for w in seen] == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
def test_forked_child_gets_closed_breaker_and_own_connection(redis_server: RedisServer) -> None:
    """A child forked while the parent's breaker is open starts closed and connects anew."""
    redis_server.ensure_running()
    backend = RedisBackend.from_url(redis_server.url_for_db(8))
    key = make_key(digest=uuid.uuid4().hex)
    backend.set(key, make_entry(b"parent"), 30)
    parent_client = backend.client
    for _ in range(backend._breaker.failures):
        backend._breaker.failure()
    assert backend._breaker.is_open
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            ok = (
                not backend._breaker.is_open
                and backend.client is not parent_client
                and backend.get(key) is not MISSING
            )
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend._breaker.is_open  # the parent's own state is untouched
    backend._breaker.reset()
    backend.close()
