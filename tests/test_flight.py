"""Single-flight (SPEC §7): concurrent identical misses make one call."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from llm_memo import configure, llm_cached
from llm_memo.testing import CacheRecorder


class TestThreads:
    def test_64_threads_make_one_call(self, llm_cache: CacheRecorder) -> None:
        """64 threads asking the same thing at once cause exactly one call; each gets a copy."""
        calls = []
        gate = threading.Barrier(64)

        @llm_cached
        def ask(q: str) -> dict[str, Any]:
            calls.append(q)
            time.sleep(0.2)
            return {"answer": q, "items": [1]}

        results: list[Any] = [None] * 64

        def run(i: int) -> None:
            gate.wait()
            results[i] = ask("same")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1
        assert all(r == {"answer": "same", "items": [1]} for r in results)
        assert len({id(r) for r in results}) == 64  # every caller has its own object
        assert llm_cache.misses == 1
        assert llm_cache.hits == 63

    def test_waiters_get_the_same_exception(self, llm_cache: CacheRecorder) -> None:
        calls = []
        gate = threading.Barrier(8)

        @llm_cached
        def ask(q: str) -> str:
            calls.append(q)
            time.sleep(0.2)
            raise ValueError("model refused")

        errors: list[BaseException] = []

        def run() -> None:
            gate.wait()
            try:
                ask("x")
            except ValueError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1
        assert len(errors) == 8
        assert len({id(e) for e in errors}) == 1

    def test_waiter_gives_up_after_wait_timeout(self, llm_cache: CacheRecorder) -> None:
        """A waiter stops waiting for a slow leader after wait_timeout and calls itself."""
        configure(wait_timeout=0.05)
        calls = []
        leader_in = threading.Event()

        @llm_cached
        def ask(q: str) -> str:
            calls.append(q)
            leader_in.set()
            if len(calls) == 1:
                time.sleep(0.5)
            return q

        leader = threading.Thread(target=ask, args=("x",))
        leader.start()
        leader_in.wait()
        assert ask("x") == "x"
        leader.join()
        assert len(calls) == 2


class TestTasks:
    @pytest.mark.asyncio
    async def test_64_tasks_make_one_call(self, llm_cache: CacheRecorder) -> None:
        calls = []

        @llm_cached
        async def ask(q: str) -> dict[str, str]:
            calls.append(q)
            await asyncio.sleep(0.05)
            return {"answer": q}

        results = await asyncio.gather(*(ask("same") for _ in range(64)))
        assert len(calls) == 1
        assert all(r == {"answer": "same"} for r in results)
        assert len({id(r) for r in results}) == 64

    @pytest.mark.asyncio
    async def test_cancelled_leader_hands_over(self, llm_cache: CacheRecorder) -> None:
        """If the leader is cancelled, a waiter takes over and still gets an answer."""
        calls = []
        started = asyncio.Event()

        @llm_cached
        async def ask(q: str) -> str:
            calls.append(q)
            started.set()
            await asyncio.sleep(0.1)
            return q

        leader = asyncio.create_task(ask("x"))
        await started.wait()
        waiter = asyncio.create_task(ask("x"))
        await asyncio.sleep(0.01)
        leader.cancel()
        assert await waiter == "x"
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert len(calls) == 2

    @pytest.mark.asyncio
    async def test_different_keys_do_not_wait(self, llm_cache: CacheRecorder) -> None:
        calls = []

        @llm_cached
        async def ask(q: str) -> str:
            calls.append(q)
            await asyncio.sleep(0.01)
            return q

        assert await asyncio.gather(ask("a"), ask("b")) == ["a", "b"]
        assert sorted(calls) == ["a", "b"]


def test_waiters_count_the_tokens_they_saved(llm_cache: CacheRecorder) -> None:
    """A caller answered by an identical call in flight saved that call's tokens."""
    gate = threading.Barrier(4)

    @llm_cached
    def ask(q: str) -> dict[str, Any]:
        time.sleep(0.2)
        return {"usage": {"total_tokens": 10}}

    def run() -> None:
        gate.wait()
        ask("x")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = ask.cache.stats()
    assert (stats.misses, stats.hits, stats.tokens_saved) == (1, 3, 30)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_forked_child_starts_with_an_empty_flight_table() -> None:
    """A call in flight at fork time is not the child's: an identical call there leads (and
    calls) instead of waiting for a leader that does not exist in the child."""
    import os
    import signal

    from llm_memo._flight import SYNC_FLIGHTS

    flight, leader = SYNC_FLIGHTS.join("llm_memo:test:in-flight-at-fork")
    assert leader
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            signal.alarm(5)
            _, leads = SYNC_FLIGHTS.join("llm_memo:test:in-flight-at-fork")
            os._exit(0 if leads else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        SYNC_FLIGHTS.land("llm_memo:test:in-flight-at-fork", flight)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0, "the child inherited the parent's flight"
