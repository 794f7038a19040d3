"""MemoryBackend: the conformance suite plus LRU bounds and URL options."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from llm_memo.backends import MISSING, from_url
from llm_memo.backends.memory import MemoryBackend
from llm_memo.errors import ConfigurationError
from llm_memo.testing import FakeClock

from .conformance import BackendConformance, make_entry, make_key


class TestMemoryConformance(BackendConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, clock: FakeClock) -> Iterator[MemoryBackend]:
        backend = MemoryBackend(clock=clock)
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    # The memory backend keeps Entry objects, never bytes: there is nothing raw to damage, and
    # corrupt *values* are covered through the decorator (tests/test_decorator.py).
    test_garbage_reads_as_missing = None  # type: ignore[assignment]


class TestMemoryBounds:
    def test_evicts_least_recently_used_beyond_max_entries(self) -> None:
        """Past max_entries, the least recently *used* entry goes first."""
        backend = MemoryBackend(max_entries=2)
        a, b, c = (make_key(digest=d * 32) for d in "abc")
        backend.set(a, make_entry(), None)
        backend.set(b, make_entry(), None)
        assert backend.get(a) is not MISSING  # a is now more recent than b
        backend.set(c, make_entry(), None)
        assert backend.get(b) is MISSING
        assert backend.get(a) is not MISSING
        assert backend.get(c) is not MISSING

    def test_bounded_by_bytes(self) -> None:
        """Total size stays under max_bytes; an entry larger than the bound is not stored."""
        backend = MemoryBackend(max_bytes=10_000)
        for i in range(10):
            backend.set(make_key(digest=f"{i:032d}"), make_entry(b"x" * 3000), None)
        assert backend.total_bytes <= 10_000
        assert len(backend) == 3
        huge = make_key(digest="f" * 32)
        backend.set(huge, make_entry(b"x" * 20_000), None)
        assert backend.get(huge) is MISSING

    def test_overwrite_accounts_bytes(self) -> None:
        """Replacing an entry does not leak its old size."""
        backend = MemoryBackend()
        key = make_key()
        for _ in range(100):
            backend.set(key, make_entry(b"x" * 1000), None)
        assert backend.total_bytes == make_entry(b"x" * 1000).size + len(key)

    def test_from_url_options(self) -> None:
        """memory:// takes max_entries and max_bytes; unknown options are errors."""
        backend = from_url("memory://?max_entries=7&max_bytes=1000")
        assert isinstance(backend, MemoryBackend)
        assert (backend.max_entries, backend.max_bytes) == (7, 1000)
        with pytest.raises(ConfigurationError, match="unknown memory:// option"):
            from_url("memory://?size=3")


class TestMemoryRobustness:
    def test_oversized_entry_is_logged_and_counted(self, caplog: pytest.LogCaptureFixture) -> None:
        backend = MemoryBackend(max_bytes=1000)
        with caplog.at_level("WARNING", "llm_memo"):
            backend.set(make_key(), make_entry(b"x" * 2000), None)
        assert backend.rejected == 1
        assert "exceeds max_bytes" in caplog.text

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
    def test_forked_child_does_not_inherit_a_held_lock(self) -> None:
        """A lock another thread held at fork time is fresh in the child."""
        import os
        import signal
        import threading

        backend = MemoryBackend()
        backend.set(make_key(), make_entry(), None)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with backend._lock:
                held.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        held.wait(10)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            signal.alarm(5)  # a deadlock would end the child with SIGALRM
            ok = backend.get(make_key()) is not MISSING
            os._exit(0 if ok else 1)
        release.set()
        t.join()
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
