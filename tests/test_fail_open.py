"""Fail-open starts at construction: a backend that cannot be built, opened or connected is a
backend failure like any other (issue 9, section 1; SPEC §6).

Every path that obtains a backend is covered: the four drivers, ``fn.cache`` handles, tiered
backends, ``cache_controls(backend=...)``, URL-built and object backends, and the embedded
default for a user without a writable cache directory (in a subprocess).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_memo import (
    BackendUnavailableError,
    CacheMiss,
    Outcome,
    cache_controls,
    configure,
)
from llm_memo.backends import _registry, register_backend
from llm_memo.backends import disk as disk_module
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.tiered import TieredBackend
from llm_memo.errors import BackendError

from .test_decorator import KINDS, Probe, answer


class FakeMonotonic:
    """The clock every back-off reads (``Reopen``), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    clock = FakeMonotonic()
    monkeypatch.setattr(_registry, "_monotonic", clock)
    return clock


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def blocked_dir(tmp_path: Path) -> Path:
    """A cache directory that cannot be created, even by root: its parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a directory")
    return blocker / "cache"


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


SPECS: dict[str, Callable[[Path], Any]] = {
    "path": lambda d: str(d),
    "url": lambda d: f"disk://{d}",
    "object": lambda d: DiskBackend(d),
}


class TestUnopenableBackend:
    @pytest.mark.parametrize("spec", sorted(SPECS))
    def test_every_driver_calls_through(
        self, kind: str, spec: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A disk cache under a regular file: every call goes through with outcome error,
        counted, and logged once per burst (not once per call)."""
        backend = SPECS[spec](blocked_dir(tmp_path))
        probe = Probe(kind, answer, backend=backend)
        with caplog.at_level(logging.WARNING, "llm_memo"), cache_controls() as scope:
            results = [probe(), probe(), probe()]
        assert results == [answer("q")] * 3
        assert len(probe.calls) == 3
        outcomes = [e.outcome for e in scope.events]
        assert outcomes == [Outcome.ERROR] * 3, outcomes
        # (a stream also counts its failed write, after the call's event)
        errors = probe.fn.cache.stats().errors
        assert errors == (3 if kind in ("sync", "async") else 6), errors
        logged = warnings_about(caplog, "cannot open")
        assert len(logged) == 1, logged
        assert "blocker" in logged[0], logged
        assert "calling through" in logged[0], logged

    def test_strict_raises_backend_unavailable(self, kind: str, tmp_path: Path) -> None:
        """strict=True: the open failure raises BackendUnavailableError, the cause chained."""
        probe = Probe(kind, answer, backend=str(blocked_dir(tmp_path)), strict=True)
        with pytest.raises(BackendUnavailableError) as info:
            probe()
        assert isinstance(info.value.__cause__, BackendError), info.value.__cause__
        assert probe.calls == []

    def test_only_if_cached_is_a_cache_miss_with_the_cause(self, kind: str, tmp_path: Path) -> None:
        """only_if_cached: CacheMiss, with the open failure as its cause; never a call."""
        probe = Probe(kind, answer, backend=str(blocked_dir(tmp_path)), only_if_cached=True)
        with pytest.raises(CacheMiss) as info:
            probe()
        cause = info.value.__cause__
        assert isinstance(cause, BackendError), cause
        assert "cannot open" in str(cause), cause
        assert probe.calls == []

    def test_cache_controls_backend_fails_open(self, tmp_path: Path) -> None:
        """A block routed to an unopenable backend calls through (the decorator's own backend
        is not used inside the block)."""
        own = MemoryBackend()
        probe = Probe("sync", answer, backend=own)
        with cache_controls(backend=str(blocked_dir(tmp_path))) as scope:
            assert probe() == answer("q")
        assert [e.outcome for e in scope.events] == [Outcome.ERROR]
        assert len(own) == 0

    def test_a_driver_error_from_opening_becomes_backend_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Whatever SQLite or diskcache raise while opening reaches the decorator as a
        BackendError (so the call fails open), never as the driver's own exception."""
        import sqlite3

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(disk_module, "_Cache", refuse)
        backend = DiskBackend(tmp_path / "c")
        with pytest.raises(BackendError) as info:
            backend.get("k")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        probe = Probe("sync", answer, backend=backend)
        with cache_controls() as scope:
            assert probe() == answer("q")
        assert [e.outcome for e in scope.events] == [Outcome.ERROR]

    def test_construction_opens_nothing(self, tmp_path: Path) -> None:
        """DiskBackend(...) and the decorator touch nothing: the directory appears on first
        use only."""
        directory = tmp_path / "later"
        probe = Probe("sync", answer, backend=DiskBackend(directory))
        configure(backend=str(tmp_path / "configured"))
        assert not directory.exists()
        assert not (tmp_path / "configured").exists()
        probe()
        probe()
        assert directory.is_dir()
        assert len(probe.calls) == 1


class TestReopening:
    def test_caching_resumes_after_the_directory_is_fixed(
        self, kind: str, tmp_path: Path, monotonic: FakeMonotonic
    ) -> None:
        """A backend that failed to open is tried again after its back-off, not on every call
        and not never: once the directory can be created, calls hit again."""
        target = blocked_dir(tmp_path)
        probe = Probe(kind, answer, backend=f"disk://{target}")
        with cache_controls() as scope:
            probe()
            (tmp_path / "blocker").unlink()  # the directory could be created now...
            probe()  # ...but the back-off has not passed: no new attempt yet
            assert not target.exists(), "opened again before the back-off passed"
            monotonic.now += 1.5
            probe()  # opened: a miss that stores
            probe()  # a hit
        outcomes = [e.outcome for e in scope.events]
        assert outcomes == [Outcome.ERROR, Outcome.ERROR, Outcome.MISS, Outcome.HIT], outcomes
        assert target.is_dir()

    def test_back_off_doubles_and_is_bounded(
        self, tmp_path: Path, monotonic: FakeMonotonic, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Attempts to open are spaced 1 s, 2 s, 4 s... apart up to 60 s; calls in between
        cost no attempt."""
        attempts: list[float] = []
        real = disk_module._Cache

        def spy(*args: Any, **kwargs: Any) -> Any:
            attempts.append(monotonic.now)
            return real(*args, **kwargs)

        monkeypatch.setattr(disk_module, "_Cache", spy)
        backend = DiskBackend(blocked_dir(tmp_path))
        for _ in range(400):
            with pytest.raises(BackendError):
                backend.get("k")
            monotonic.now += 0.5
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0], gaps
        assert set(gaps[6:]) == {60.0}, gaps
        assert len(attempts) < 20, f"{len(attempts)} attempts for 400 calls"

    def test_url_built_backend_that_raises_at_build_is_retried(
        self, monotonic: FakeMonotonic
    ) -> None:
        """A backend whose from_url fails (a driver refusing, a lock held) is a stand-in that
        raises BackendError; it is built again once the back-off has passed."""
        built: list[str] = []

        class Flaky(MemoryBackend):
            broken = True

            @classmethod
            def from_url(cls, url: str, **options: Any) -> Flaky:
                built.append(url)
                if cls.broken:
                    raise OSError("connection refused")
                return cls()

        register_backend("flaky-open", Flaky, replace=True)
        probe = Probe("async", answer, backend="flaky-open://x")
        with cache_controls() as scope:
            probe()
            probe()
            Flaky.broken = False
            monotonic.now += 1.5
            probe()
            probe()
        outcomes = [e.outcome for e in scope.events]
        assert outcomes == [Outcome.ERROR, Outcome.ERROR, Outcome.MISS, Outcome.HIT], outcomes
        assert len(built) == 2, built


class TestHandle:
    """``fn.cache`` is the explicit management API: an unopenable backend raises
    BackendError there (with the cause chained), as any other backend failure does; never the
    driver's OSError or sqlite3 error. ``stats()`` needs no backend."""

    def test_sync_handle(self, tmp_path: Path) -> None:
        probe = Probe("sync", answer, backend=str(blocked_dir(tmp_path)))
        probe()
        for call in (
            lambda: probe.fn.cache.get("q"),
            lambda: probe.fn.cache.contains("q"),
            lambda: probe.fn.cache.delete("q"),
            lambda: probe.fn.cache.clear(),
        ):
            with pytest.raises(BackendError) as info:
                call()
            assert isinstance(info.value.__cause__, OSError), info.value.__cause__
        assert probe.fn.cache.stats().errors == 1

    def test_async_handle(self, tmp_path: Path) -> None:
        probe = Probe("async", answer, backend=f"disk://{blocked_dir(tmp_path)}")

        async def each() -> list[type[BaseException]]:
            raised: list[type[BaseException]] = []
            cache = probe.fn.cache
            for call in (cache.aget("q"), cache.acontains("q"), cache.adelete("q"), cache.aclear()):
                try:
                    await call
                except BackendError:
                    raised.append(BackendError)
            return raised

        assert asyncio.run(each()) == [BackendError] * 4


class TestTiered:
    def test_unopenable_l2_fails_open(self, tmp_path: Path) -> None:
        """L1 answers what it has; an L2 that cannot open makes a miss an error, not a crash."""
        tiered = TieredBackend(MemoryBackend(), DiskBackend(blocked_dir(tmp_path)))
        probe = Probe("sync", answer, backend=tiered)
        with cache_controls() as scope:
            probe()
            probe()  # L1 was written even though L2 failed
        assert [e.outcome for e in scope.events] == [Outcome.ERROR, Outcome.HIT]

    def test_unopenable_l1_is_reported_and_l2_serves(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A disk L1 that cannot open reads as a miss; L2 serves hits; one warning names it."""
        tiered = TieredBackend(DiskBackend(blocked_dir(tmp_path)), MemoryBackend())
        probe = Probe("sync", answer, backend=tiered)
        with caplog.at_level(logging.WARNING, "llm_memo"), cache_controls() as scope:
            for _ in range(4):
                probe()
        assert [e.outcome for e in scope.events] == [Outcome.MISS] + [Outcome.HIT] * 3
        logged = warnings_about(caplog, "L1")
        assert len(logged) == 1, logged
        assert "cannot open" in logged[0], logged


def test_default_cache_locked_by_another_process_stays_on_disk(tmp_path: Path) -> None:
    """A default cache that is merely locked right now (another process writing) is not a
    reason to give up on disk: the call fails open, and the backend stays the disk cache."""
    import sqlite3

    from llm_memo.backends.disk import default_directory
    from llm_memo.config import backend_from_spec
    from llm_memo.controls import UNSET

    directory = Path(default_directory())  # under the test's XDG_CACHE_HOME
    DiskBackend(directory).open()
    holder = sqlite3.connect(directory / "cache.db", isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        probe = Probe("async", answer)
        with cache_controls() as scope:
            assert probe() == answer("q")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [e.outcome for e in scope.events] == [Outcome.ERROR]
    assert type(backend_from_spec(UNSET, True)) is DiskBackend


RUN_DEFAULT = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from llm_memo import cache_controls, llm_cached
    from llm_memo.config import backend_from_spec
    from llm_memo.controls import UNSET

    calls = []

    @llm_cached
    def ask(q):
        calls.append(q)
        return q.upper()

    with cache_controls() as scope:
        assert ask("hi") == "HI"
        assert ask("hi") == "HI"
    print(type(backend_from_spec(UNSET, False)).__name__)
    print(",".join(e.outcome.value for e in scope.events), len(calls))
    """
)


class TestEmbeddedDefault:
    def run(self, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_MEMO_", "XDG_"))}
        return subprocess.run(
            [sys.executable, "-c", RUN_DEFAULT],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def test_no_home_falls_back_to_memory_with_one_warning(self, tmp_path: Path) -> None:
        """A service user with HOME=/nonexistent and nothing configured: calls work (memory,
        so the second call hits), one warning, and no directory is created anywhere."""
        home = tmp_path / "nonexistent"
        done = self.run({"HOME": str(home)})
        assert done.returncode == 0, done.stderr
        backend, outcomes = done.stdout.split()[0], done.stdout.split()[1]
        assert backend == "MemoryBackend", done.stdout
        assert outcomes == "miss,hit", done.stdout
        warned = [line for line in done.stderr.splitlines() if "default disk cache" in line]
        assert len(warned) == 1, done.stderr
        assert "LLM_MEMO_BACKEND" in warned[0], warned
        assert not home.exists(), "the missing home directory was created"

    def test_unwritable_xdg_cache_home_falls_back_to_memory(self, tmp_path: Path) -> None:
        """XDG_CACHE_HOME that cannot hold a directory: memory, one warning, never /tmp."""
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        done = self.run({"HOME": str(tmp_path), "XDG_CACHE_HOME": str(blocker)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[:2] == ["MemoryBackend", "miss,hit"], done.stdout
        assert sum("default disk cache" in line for line in done.stderr.splitlines()) == 1
        assert "/tmp" not in done.stderr.replace(str(tmp_path), "<tmp_path>"), done.stderr

    def test_writable_home_uses_disk(self, tmp_path: Path) -> None:
        """With a usable cache directory the default stays on disk (the fallback is only a
        fallback)."""
        done = self.run({"HOME": str(tmp_path)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[:2] == ["DiskBackend", "miss,hit"], done.stdout
        assert (tmp_path / ".cache" / "llm_memo").is_dir()
        assert "default disk cache" not in done.stderr
