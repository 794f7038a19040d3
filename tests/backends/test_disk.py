"""DiskBackend: the conformance suite, pickle refusal (CVE-2025-69872), multi-process use."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import pytest

from llm_memo import Outcome, cache_controls, llm_cached
from llm_memo.backends import MISSING, from_url
from llm_memo.backends.disk import DiskBackend, default_directory
from llm_memo.errors import ConfigurationError

from .conformance import BackendConformance, make_entry, make_key


class TestDiskConformance(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[DiskBackend]:
        backend = DiskBackend(tmp_path / "cache")
        yield backend
        backend.close()

    @pytest.fixture
    def plant(self, tmp_path: Path) -> Callable[[str, bytes], None]:
        raw = diskcache.Cache(str(tmp_path / "cache"))

        def plant(key: str, data: bytes) -> None:
            raw.set(key, data)

        return plant


class Evil:
    """Unpickling this would run code."""

    def __reduce__(self) -> tuple[object, ...]:
        return (Path("/tmp/llm_memo_pwned").touch, ())


class TestDiskSafety:
    def test_pickled_value_is_never_loaded(self, tmp_path: Path) -> None:
        """A value another diskcache client stored as pickle reads as a miss, unexecuted."""
        marker = Path("/tmp/llm_memo_pwned")
        marker.unlink(missing_ok=True)
        backend = DiskBackend(tmp_path)
        key = make_key()
        diskcache.Cache(str(tmp_path)).set(key, Evil())
        assert backend.get(key) is MISSING
        assert not marker.exists()

    def test_pickled_key_is_never_loaded(self, tmp_path: Path) -> None:
        """Listing keys never unpickles a pickled key planted in the same directory."""
        marker = Path("/tmp/llm_memo_pwned")
        marker.unlink(missing_ok=True)
        diskcache.Cache(str(tmp_path)).set((Evil(),), b"x")
        backend = DiskBackend(tmp_path)
        backend.set(make_key(), make_entry(), None)
        assert list(backend.keys()) == [make_key()]
        assert backend.clear("llm_memo:") == 1
        assert not marker.exists()

    def test_purge_expired(self, tmp_path: Path) -> None:
        """purge_expired() removes expired entries now and keeps live ones."""
        import time

        backend = DiskBackend(tmp_path)
        now = time.time()
        backend.set(make_key(digest="1" * 32), make_entry(), 0.05)  # native expiry
        backend.set(make_key(digest="2" * 32), make_entry(), None)
        backend.set(make_key(digest="3" * 32), make_entry(expires_at=now - 10), None)
        backend.set(
            make_key(digest="4" * 32), make_entry(expires_at=now - 10, stale_window=60), None
        )
        time.sleep(0.1)
        assert make_key(digest="1" * 32) not in list(backend.keys())
        assert backend.purge_expired(grace=0) == 2
        assert sorted(backend.keys()) == [make_key(digest="2" * 32), make_key(digest="4" * 32)]

    def test_purge_expired_keeps_the_grace_window(self, tmp_path: Path) -> None:
        """purge_expired() keeps an expired entry until expiry + grace (default: the backend's,
        24 h), so a read-time stale_if_error can still serve it; past it, the entry goes."""
        import time

        backend = DiskBackend(tmp_path)
        now = time.time()
        recent, old = make_key(digest="3" * 32), make_key(digest="5" * 32)
        backend.set(recent, make_entry(expires_at=now - 10), None)
        backend.set(old, make_entry(expires_at=now - 3600), None)
        assert backend.purge_expired() == 0, "the default 24 h grace keeps both"
        assert backend.purge_expired(grace=60) == 1
        assert list(backend.keys()) == [recent]
        backend.close()
        assert DiskBackend(tmp_path, grace=5).purge_expired() == 1, "the backend's grace"
        assert list(backend.keys()) == []

    def test_configured_grace_reaches_the_backends_config_builds(self, tmp_path: Path) -> None:
        """configure(grace=...) is the grace of the disk backends the config layer builds
        (from a URL or a bare path), so their purge_expired() keeps that window."""
        from llm_memo import config, configure

        configure(grace=5)
        for spec in (f"disk://{tmp_path / 'a'}", str(tmp_path / "b")):
            backend = config.backend_from_spec(spec, asynchronous=False)
            assert isinstance(backend, DiskBackend)
            assert backend.grace == 5

    def test_default_grace_is_the_configured_default(self) -> None:
        """The backend's default grace is configure()'s default (24 h)."""
        from llm_memo import config
        from llm_memo.backends.disk import DEFAULT_GRACE

        assert DEFAULT_GRACE == config.DEFAULT_GRACE == DiskBackend().grace

    @pytest.mark.parametrize("grace", [-1, float("nan"), float("inf"), True, "60"])
    def test_bad_grace_is_refused(self, grace: object) -> None:
        """A grace that is not a finite, non-negative number is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="grace"):
            DiskBackend(grace=grace)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="grace"):
            DiskBackend.check_url("disk:///tmp/x", grace=grace)

    def test_refuses_to_store_non_bytes(self, tmp_path: Path) -> None:
        """The Disk refuses anything but bytes, so nothing is ever pickled on write."""
        backend = DiskBackend(tmp_path)
        backend.open()
        assert backend._cache is not None
        with pytest.raises(TypeError):
            backend._cache.set("k", {"a": 1})
        assert pickle.dumps  # the module is not used by the backend itself

    def test_size_limit_is_explicit(self, tmp_path: Path) -> None:
        """The size limit given is the one diskcache enforces."""
        backend = DiskBackend(tmp_path, size_limit=123_456_789)
        backend.open()
        assert backend._cache is not None
        assert backend._cache.size_limit == 123_456_789

    def test_url_and_bare_path(self, tmp_path: Path) -> None:
        """disk:///path, a bare path and query options all build a DiskBackend."""
        by_url = from_url(f"disk://{tmp_path}/a?size_limit=5000000")
        assert isinstance(by_url, DiskBackend)
        assert by_url.directory == f"{tmp_path}/a"
        assert by_url.size_limit == 5_000_000
        bare = from_url(str(tmp_path / "b"))
        assert isinstance(bare, DiskBackend)
        assert bare.directory == str(tmp_path / "b")
        with pytest.raises(ConfigurationError):
            from_url(f"disk://{tmp_path}?bogus=1")

    def test_default_directory_follows_platform(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The embedded default lives under the user cache dir (XDG on Linux)."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert default_directory() == str(tmp_path / "llm_memo" / "cache")


def _write_many(directory: str, worker: int) -> None:
    backend = DiskBackend(directory)
    for i in range(50):
        backend.set(
            make_key(digest=f"{worker:02d}{i:030d}"), make_entry(bytes([worker]) * 100), None
        )


class TestDiskMultiProcess:
    def test_processes_share_one_cache(self, tmp_path: Path) -> None:
        """Entries written by 4 processes at once are all readable afterwards."""
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        backend = DiskBackend(tmp_path)
        for w in range(4):
            for i in range(50):
                got = backend.get(make_key(digest=f"{w:02d}{i:030d}"))
                assert got is not MISSING
                assert got.value == bytes([w]) * 100


class TestDiskFailOpen:
    def test_locked_database_fails_open(self, tmp_path: Path) -> None:
        """A cache another process holds locked is a BackendError after the timeout, and a
        decorated call still returns its result."""
        import sqlite3

        from llm_memo import Outcome, cache_controls, llm_cached
        from llm_memo.errors import BackendError

        backend = DiskBackend(tmp_path, timeout=0.05)
        holder = sqlite3.connect(tmp_path / "cache.db", timeout=0.05, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(BackendError):
                backend.set(make_key(), make_entry(), None)

            @llm_cached(backend=backend)
            def ask(q: str) -> str:
                return q.upper()

            with cache_controls() as scope:
                assert ask("x") == "X"
            assert [e.outcome for e in scope.events] == [Outcome.ERROR]
        finally:
            holder.execute("ROLLBACK")
            holder.close()


class TestLockWait:
    """Async callers use the disk inline but wait for another writer's SQLite lock only
    ``async_timeout`` (a timeout is a miss, counted); sync callers wait ``timeout`` as before."""

    @staticmethod
    def hold_write_lock(directory: Path) -> sqlite3.Connection:
        holder = sqlite3.connect(
            directory / "cache.db", isolation_level=None, timeout=30, check_same_thread=False
        )
        holder.execute("BEGIN EXCLUSIVE")
        return holder

    def test_async_call_under_a_held_lock_goes_through_as_an_error(self, tmp_path: Path) -> None:
        """Another connection holds the write lock (BEGIN EXCLUSIVE) while an async def on the
        disk cache is awaited: it returns the function's result with outcome error."""
        backend = DiskBackend(tmp_path)
        backend.open()
        calls: list[str] = []

        @llm_cached(backend=backend)
        async def ask(q: str) -> str:
            calls.append(q)
            return q.upper()

        holder = self.hold_write_lock(tmp_path)
        try:

            async def run() -> tuple[str, list[Outcome]]:
                with cache_controls() as scope:
                    result = await asyncio.wait_for(ask("q"), timeout=60)
                return result, [e.outcome for e in scope.events]

            result, outcomes = asyncio.run(run())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert result == "Q"
        assert outcomes == [Outcome.ERROR], outcomes
        assert ask.cache.stats().errors == 1
        assert calls == ["q"]

        # The lock is free again: the next call stores, the one after hits.
        async def twice() -> list[Outcome]:
            with cache_controls() as scope:
                await ask("q")
                await ask("q")
            return [e.outcome for e in scope.events]

        assert asyncio.run(twice()) == [Outcome.MISS, Outcome.HIT]

    def test_opening_on_a_loop_under_a_held_lock_does_not_stall(self, tmp_path: Path) -> None:
        """The first use of a disk cache from an event loop while another connection holds the
        write lock: opening (which writes diskcache's Settings table, retried for 60 s by
        diskcache) gives up after async_timeout; the call returns with outcome error."""
        DiskBackend(tmp_path).open()  # the database exists, as when another process uses it
        backend = DiskBackend(tmp_path)

        @llm_cached(backend=backend)
        async def ask(q: str) -> str:
            return q.upper()

        async def run() -> tuple[str, list[Outcome]]:
            with cache_controls() as scope:
                result = await ask("q")
            return result, [e.outcome for e in scope.events]

        done: list[tuple[str, list[Outcome]]] = []
        holder = self.hold_write_lock(tmp_path)
        try:
            worker = threading.Thread(target=lambda: done.append(asyncio.run(run())))
            worker.start()
            worker.join(timeout=30)  # generous: without the bound, diskcache waits 60 s
            assert done, "the event loop was still blocked opening the cache after 30 s"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            worker.join()
        assert done == [("Q", [Outcome.ERROR])], done

    def test_busy_timeout_follows_the_caller(self, tmp_path: Path) -> None:
        """On an event loop the connection waits async_timeout; off it, timeout."""
        backend = DiskBackend(tmp_path, timeout=3.0, async_timeout=0.25)
        backend.open()

        def busy() -> int:
            assert backend._cache is not None
            return int(backend._cache._con.execute("PRAGMA busy_timeout").fetchone()[0])

        backend.get("k")
        assert busy() == 3000

        async def inline() -> int:
            backend.get("k")
            return busy()

        assert asyncio.run(inline()) == 250
        backend.get("k")
        assert busy() == 3000, "a sync caller after an async one gets its own timeout back"

    def test_sync_caller_still_waits_for_the_lock(self, tmp_path: Path) -> None:
        """A sync caller waits for the lock as before: released while it waits, the write
        succeeds (outcome miss, then a hit)."""
        backend = DiskBackend(tmp_path, timeout=60.0)
        backend.open()

        @llm_cached(backend=backend)
        def ask(q: str) -> str:
            return q.upper()

        holder = self.hold_write_lock(tmp_path)

        def free() -> None:
            holder.execute("ROLLBACK")
            holder.close()

        release = threading.Timer(0.3, free)
        release.start()
        try:
            with cache_controls() as scope:
                assert ask("q") == "Q"
                assert ask("q") == "Q"
        finally:
            release.join()
        assert [e.outcome for e in scope.events] == [Outcome.MISS, Outcome.HIT]

    def test_async_timeout_is_validated(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError):
            DiskBackend(tmp_path, async_timeout=-1)
        with pytest.raises(ConfigurationError):
            from_url(f"disk://{tmp_path}?async_timeout=soon")
        assert DiskBackend.from_url(f"disk://{tmp_path}?async_timeout=0.5").async_timeout == 0.5
