"""Faults between llm_memo and Redis, injected by `tests.faults.FaultProxy`: the server refusing
connections, accepting and never answering, resetting mid-reply, black-holing, and answering with
error replies. Each test bounds its whole run with a generous outer timeout (a hang fails the
test instead of the suite) and asserts outcomes, not durations: decorated calls never raise,
each is answered, and caching resumes once the fault is gone. The conformance suite's
concurrency test is also run against backends that fail or tear, to show what it reports."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_memo import BackendError, cache_controls, llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.redis import AsyncRedisBackend, RedisBackend
from llm_memo.entry import Entry
from llm_memo.events import Outcome
from llm_memo.testing import FakeClock
from tests.backends.conformance import BackendConformance, make_entry
from tests.drill import Drill, adrill, drill
from tests.faults import FaultProxy, within
from tests.servers import RedisServer

pytestmark = pytest.mark.redis

# Short client timeouts keep a hang cheap; the outer bound is far above anything they add up to.
# The product's default reply timeout: short enough for the fault phases, long enough that a
# loaded machine does not turn a healthy "before" call into an error.
_TIMEOUTS = "socket_timeout=1.0&socket_connect_timeout=1.0"
_OUTER = 120.0


@pytest.fixture
def proxy(
    redis_scratch: RedisServer, fault_proxy: Callable[[tuple[str, int]], FaultProxy]
) -> FaultProxy:
    return fault_proxy((redis_scratch.host, redis_scratch.port))


def _url(proxy: FaultProxy) -> str:
    return f"redis://{proxy.host}:{proxy.port}/0?{_TIMEOUTS}"


def _raw_ping(proxy: FaultProxy, timeout: float = 5.0) -> bytes:
    # A generous bound where an answer is expected; the no-answer checks pass a short one
    # (a loaded machine can only make those time out sooner, which is what they expect).
    with socket.create_connection(proxy.address, timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError(f"closed after {data!r}")
            data += chunk
        return data


class TestProxy:
    """The proxy itself, at the socket level, in front of a real Redis."""

    def test_each_mode_does_what_it_says_and_switches_at_run_time(self, proxy: FaultProxy) -> None:
        """pass answers; refuse refuses; hang and a black hole never answer; reset cuts the
        reply after N bytes; back to pass answers again, on the same port."""
        assert _raw_ping(proxy) == b"+PONG\r\n"
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            _raw_ping(proxy)
        proxy.pass_through()
        assert _raw_ping(proxy) == b"+PONG\r\n"
        proxy.hang()
        with pytest.raises(TimeoutError):
            _raw_ping(proxy, timeout=0.3)
        proxy.reset_after(3)
        with pytest.raises((ConnectionResetError, ConnectionError)) as info:
            _raw_ping(proxy)
        assert "+PO" in str(info.value) or isinstance(info.value, ConnectionResetError)
        proxy.blackhole_after(2)
        with pytest.raises(TimeoutError):
            _raw_ping(proxy, timeout=0.3)
        proxy.pass_through()
        assert _raw_ping(proxy) == b"+PONG\r\n"
        assert proxy.accepted >= 5

    def test_open_connections_follow_the_switch(self, proxy: FaultProxy) -> None:
        """A connection opened in pass mode hangs once the proxy hangs, and is reset (so its
        client reconnects cleanly) when the proxy passes traffic again."""
        with socket.create_connection(proxy.address, timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(7) == b"+PONG\r\n"
            proxy.hang()
            sock.settimeout(0.3)  # no answer is expected: a short bound
            sock.sendall(b"PING\r\n")
            with pytest.raises(TimeoutError):
                sock.recv(7)
            proxy.pass_through()
            sock.settimeout(5)
            with pytest.raises(ConnectionResetError):
                sock.recv(7)


# -- Redis through the proxy --------------------------------------------------------------------

_FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "refuse": FaultProxy.refuse,
    "hang": FaultProxy.hang,
    "reset-mid-reply": lambda p: p.reset_after(5),
    "blackhole": lambda p: p.blackhole_after(5),
}


def _value(n: int) -> dict[str, Any]:
    return {"n": n, "text": "x" * 2000}  # a reply of a few KB: "mid-reply" is mid-reply


class TestRedisRecovers:
    """Decorated calls through a faulty link never raise, are each answered (by the function),
    and go back to hits once the link is healthy and the breaker's cool-down has passed."""

    @pytest.mark.parametrize("fault", list(_FAULTS))
    def test_sync(self, proxy: FaultProxy, fault: str) -> None:
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=2, cooldown=5, max_cooldown=5, clock=clock)
        backend = RedisBackend.from_url(_url(proxy), breaker=breaker)
        calls: Counter[int] = Counter()

        @llm_cached(backend=backend, ttl=300, name=f"faults-{uuid.uuid4().hex}")
        def ask(n: int) -> dict[str, Any]:
            calls[n] += 1
            return _value(n)

        def body() -> None:
            _check(drill(proxy, _FAULTS[fault], clock, ask, _value), calls, fault)

        within(_OUTER, body)
        backend.close()

    @pytest.mark.parametrize("fault", list(_FAULTS))
    def test_async(self, proxy: FaultProxy, fault: str) -> None:
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=2, cooldown=5, max_cooldown=5, clock=clock)
        backend = AsyncRedisBackend.from_url(_url(proxy), breaker=breaker)
        calls: Counter[int] = Counter()

        @llm_cached(backend=backend, ttl=300, name=f"afaults-{uuid.uuid4().hex}")
        async def ask(n: int) -> dict[str, Any]:
            calls[n] += 1
            return _value(n)

        def body() -> None:
            async def run() -> Drill:
                try:
                    return await adrill(proxy, _FAULTS[fault], clock, ask, _value)
                finally:
                    await backend.close()

            _check(asyncio.run(run()), calls, fault)

        within(_OUTER, body)


def _check(run: Drill, calls: Counter[int], fault: str) -> None:
    run.check(calls, f"{fault}: {run.outcomes}; calls {dict(calls)}")


class TestErrorReplies:
    """The server answers, but refuses: every write gets an OOM error reply. Calls go through,
    reads keep hitting (the breaker never opens on a refusal), and writes resume after."""

    def test_oom_never_stops_caching_reads(self, redis_scratch: RedisServer) -> None:
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
        backend = RedisBackend.from_url(
            f"{redis_scratch.url}?{_TIMEOUTS}", breaker=breaker
        )  # fmt: skip
        calls: Counter[int] = Counter()

        @llm_cached(backend=backend, ttl=300, name=f"oom-{uuid.uuid4().hex}")
        def ask(n: int) -> dict[str, Any]:
            calls[n] += 1
            return _value(n)

        def body() -> None:
            assert ask(1) == _value(1)
            redis_scratch.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            redis_scratch.command("CONFIG", "SET", "maxmemory", "1")
            try:
                outcomes = []
                for n in (1, 2, 1, 2, 1):
                    with cache_controls() as scope:
                        assert ask(n) == _value(n)
                    outcomes.append(scope.events[-1].outcome)
            finally:
                redis_scratch.command("CONFIG", "SET", "maxmemory", "0")
            # 1 hits throughout; 2 is a miss each time (its write refused, then counted).
            assert outcomes[0::2] == [Outcome.HIT] * 3, outcomes
            assert not breaker.is_open
            assert ask(2) == _value(2)
            with cache_controls() as scope:
                assert ask(2) == _value(2)
            assert scope.events[-1].outcome is Outcome.HIT

        within(_OUTER, body)
        assert calls[1] == 1, calls
        backend.close()


# -- the conformance suite's concurrency test under faults ---------------------------------------


class _Flaky:
    """A dict-backed backend whose every third operation times out (a loaded machine)."""

    def __init__(self, tear: bool = False) -> None:
        self._data: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._n = 0
        self._tear = tear

    def _tick(self) -> None:
        with self._lock:
            self._n += 1
            n = self._n
        if n % 3 == 0:
            raise BackendError("redis: GET failed: TimeoutError: Timeout reading from socket")

    def get(self, key: str) -> Entry | Any:
        self._tick()
        entry = self._data.get(key, MISSING)
        if self._tear and entry is not MISSING:
            half = len(entry.value) // 2
            return make_entry(entry.value[:half] + b"\xff" * half)
        return entry

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self._tick()
        self._data[key] = entry


class TestConformanceUnderFaults:
    def test_timeouts_are_not_torn_reads(self) -> None:
        """A third of all operations timing out: the concurrency test passes."""
        BackendConformance().test_concurrent_writers_never_tear(_Flaky())

    def test_a_torn_read_fails_and_says_what_it_saw(self) -> None:
        """A backend that mixes two values fails with the torn values and the counts shown."""
        with pytest.raises(AssertionError) as info:
            BackendConformance().test_concurrent_writers_never_tear(_Flaky(tear=True))
        message = str(info.value)
        assert "torn reads: ['50000 bytes, distinct byte values" in message, message
        assert re.search(r"tolerated failures: \{'BackendError: [^']*': \d+", message), message


def test_breaker_is_used_through_its_guard_only() -> None:
    """No hand-written before()/success()/failure() pairs in the network backends (issue 9)."""
    root = Path(__file__).resolve().parent.parent / "llm_memo" / "backends"
    files = [
        "redis/_async.py",
        "redis/_sync.py",
        "semantic/redis/_async.py",
        "semantic/redis/_sync.py",
        "semantic/qdrant/_async.py",
        "semantic/qdrant/_sync.py",
    ]
    found = {
        name: re.findall(r"\.(?:before|success|failure|neither)\(", (root / name).read_text())
        for name in files
    }
    assert {name: hits for name, hits in found.items() if hits} == {}


class TestGuardPredicate:
    """``CircuitBreaker.guard(outage=<predicate>)``: the predicate decides what is an outage, and
    even a predicate that raises resolves a half-open probe."""

    def _half_open(self) -> tuple[CircuitBreaker, FakeClock]:
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
        breaker.failure()
        clock.advance(10)
        return breaker, clock

    def test_the_predicate_decides(self) -> None:
        breaker, _ = self._half_open()
        is_down = lambda exc: "down" in str(exc)  # noqa: E731
        with pytest.raises(ValueError), breaker.guard(outage=is_down):
            raise ValueError("refused for this request")
        assert not breaker.is_open  # neither: the probe resolved, the next call may probe
        with pytest.raises(ValueError), breaker.guard(outage=is_down):
            raise ValueError("server down")
        assert breaker.is_open

    def test_a_predicate_that_raises_still_resolves_the_probe(self) -> None:
        breaker, _ = self._half_open()

        def broken(exc: BaseException) -> bool:
            raise RuntimeError("bug in the predicate")

        with pytest.raises(RuntimeError), breaker.guard(outage=broken):
            raise ValueError("anything")
        with breaker.guard(outage=broken):
            pass  # not "a probe is already under way"
        assert not breaker.is_open
