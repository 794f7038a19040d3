"""Fault benchmarks for the Redis backend: what a decorated function sees when Redis
dies, hangs or resets, with llm_memo's default timeouts and breaker.

* **kill -9 and restart**: a decorated function called in a loop while ``redis-server`` is
  SIGKILLed and, a few seconds later, restarted on the same port. Reports the calls made, the
  calls that raised (must be 0), outcomes per phase, worst call latency per phase, and the time
  from the restart to the first hit again.
* **a store that hangs** (``tests.faults.FaultProxy`` in hang mode: connections accepted, never
  answered), **refuses**, or **resets mid-reply**: median and worst call latency while the fault
  lasts, how many calls paid a timeout, and the time from the fault's end to the first hit.

Everything runs on loopback against a real redis-server (started here, stopped at the end).
Timings are wall-clock on a shared machine: read the medians, the worst cases and their order of
magnitude, not the digits. Nothing is asserted about speed; the run exits 0 (non-zero only if a
decorated call raised, which is a bug).

Run:  python -m benchmarks.bench_faults     (from the repository root)
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_memo import cache_controls, llm_cached
from llm_memo.backends.redis import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    AsyncRedisBackend,
    RedisBackend,
)
from llm_memo.events import Outcome
from tests.faults import FaultProxy
from tests.samples import completion_dict
from tests.servers import RedisServer, start_redis_server

KEYS = 5  # the loop cycles over this many requests, so a healthy cache answers with hits
PAUSE = 0.002  # between calls: a busy service, not a tight loop
# How long each proxy fault lasts: longer than the 3 read timeouts it takes a hanging store to
# open the breaker, so the table shows the calls after that too.
FAULT_SECONDS = 5.0


@dataclass
class Call:
    start: float
    end: float
    outcome: Outcome | None
    raised: BaseException | None


@dataclass
class Phase:
    name: str
    start: float
    end: float = float("inf")


class Runner:
    """Calls ``ask`` in a loop on a thread, recording each call; phases are marks in time.

    A phase's row counts the calls that *ended* in it. :meth:`worst_during` is the slowest call
    that *overlapped* a phase: a call that started just before a fault and waited for its
    timeout is the fault's worst case.
    """

    def __init__(self, ask: Callable[[int], Any]) -> None:
        self.ask = ask
        self.calls: list[Call] = []
        self.phases: list[Phase] = [Phase("before", time.perf_counter())]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def phase(self, name: str) -> float:
        now = time.perf_counter()
        with self.lock:
            self.phases[-1].end = now
            self.phases.append(Phase(name, now))
        return now

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            n = i % KEYS
            i += 1
            t0 = time.perf_counter()
            outcome: Outcome | None = None
            raised: BaseException | None = None
            try:
                with cache_controls() as scope:
                    self.ask(n)
                outcome = scope.events[-1].outcome if scope.events else None
            except BaseException as exc:  # noqa: BLE001 - a raise is the finding
                raised = exc
            with self.lock:
                self.calls.append(Call(t0, time.perf_counter(), outcome, raised))
            time.sleep(PAUSE)

    def first_hit_after(self, since: float, limit: float = 120.0) -> float | None:
        """Seconds from ``since`` to the end of the first hit that started after it (None: no
        hit within ``limit`` seconds)."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            with self.lock:
                hits = [c.end for c in self.calls if c.start >= since and c.outcome is Outcome.HIT]
            if hits:
                return hits[0] - since
            time.sleep(0.005)
        return None

    def worst_during(self, name: str) -> float:
        """The slowest call that overlapped phase ``name``, in seconds."""
        phase = next(p for p in self.phases if p.name == name)
        return max(
            (c.end - c.start for c in self.calls if c.start < phase.end and c.end > phase.start),
            default=0.0,
        )

    @property
    def raised(self) -> int:
        return sum(1 for c in self.calls if c.raised is not None)

    def rows(self) -> list[str]:
        self.phases[-1].end = max((c.end for c in self.calls), default=self.phases[-1].start)
        rows = []
        for phase in self.phases:
            ended = [c for c in self.calls if phase.start <= c.end < phase.end] or [
                c for c in self.calls if c.end == phase.end
            ]
            latencies = sorted(c.end - c.start for c in ended) or [0.0]
            worst = latencies[-1]
            outcomes = Counter(str(c.outcome) for c in ended)
            listed = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            rows.append(
                f"  {phase.name:<10} calls {len(ended):>6}   raised "
                f"{sum(1 for c in ended if c.raised is not None):>2}   median "
                f"{statistics.median(latencies) * 1e3:8.3f} ms   worst {worst * 1e3:8.1f} ms   "
                f"slow (>100 ms) {sum(1 for x in latencies if x > 0.1):>3}   [{listed}]"
            )
        return rows


def _ask(backend: Any, name: str) -> Callable[[int], Any]:
    response = completion_dict()

    @llm_cached(backend=backend, ttl=3600, name=name)
    def ask(n: int) -> dict[str, Any]:
        return {**response, "id": f"chatcmpl-{n}"}

    return ask


def kill_and_restart(server: RedisServer) -> int:
    print("\n## kill -9 and restart on the same port (sync, default timeouts and breaker)\n")
    backend = RedisBackend.from_url(server.url)
    runner = Runner(_ask(backend, "bench.faults.kill"))
    runner.thread.start()
    time.sleep(1.0)
    runner.phase("down")
    server.kill()
    time.sleep(3.0)
    since = runner.phase("restarted")
    server.restart()
    resumed = runner.first_hit_after(since)
    time.sleep(1.0)
    runner.stop.set()
    runner.thread.join(30)
    backend.close()
    raised = runner.raised
    print(f"  calls made {len(runner.calls)}, calls that raised {raised}")
    print("\n".join(runner.rows()))
    print(f"  worst call while Redis was down: {runner.worst_during('down') * 1e3:.1f} ms")
    text = "never (within 120 s)" if resumed is None else f"{resumed:.2f} s"
    print(f"  time from restart (server answering) to the first hit again: {text}")
    return raised


def faults_through_proxy(server: RedisServer, asynchronous: bool) -> int:
    flavour = "async" if asynchronous else "sync"
    print(f"\n## faults through the proxy ({flavour}, default timeouts and breaker)\n")
    raised = 0
    faults: list[tuple[str, Callable[[FaultProxy], None]]] = [
        ("hang", FaultProxy.hang),
        ("refuse", FaultProxy.refuse),
        ("reset", lambda p: p.reset_after(64)),
        ("blackhole", lambda p: p.blackhole_after(64)),
    ]
    for label, inject in faults:
        with FaultProxy((server.host, server.port)) as proxy:
            url = f"redis://:{server.password}@{proxy.host}:{proxy.port}/0"
            if asynchronous:
                loop = asyncio.new_event_loop()
                loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
                loop_thread.start()
                abackend = AsyncRedisBackend.from_url(url)
                aask = _aask(abackend, f"bench.faults.a{label}")

                def ask(n: int, aask: Any = aask, loop: Any = loop) -> Any:
                    return asyncio.run_coroutine_threadsafe(aask(n), loop).result(120)

                runner = Runner(ask)
            else:
                backend = RedisBackend.from_url(url)
                runner = Runner(_ask(backend, f"bench.faults.{label}"))
            runner.thread.start()
            time.sleep(0.5)
            runner.phase(label)
            inject(proxy)
            time.sleep(FAULT_SECONDS)
            since = runner.phase("recovered")
            proxy.pass_through()
            resumed = runner.first_hit_after(since)
            time.sleep(0.3)
            runner.stop.set()
            runner.thread.join(60)
            if asynchronous:
                asyncio.run_coroutine_threadsafe(abackend.close(), loop).result(30)
                loop.call_soon_threadsafe(loop.stop)
                loop_thread.join(10)
                loop.close()
            else:
                backend.close()
        raised += runner.raised
        print("\n".join(runner.rows()))
        print(f"  {label}: worst call while the fault lasted: {runner.worst_during(label):.2f} s")
        text = "never (within 120 s)" if resumed is None else f"{resumed:.2f} s"
        print(f"  {label}: time from the fault's end to the first hit again: {text}\n")
    return raised


def _aask(backend: Any, name: str) -> Any:
    response = completion_dict()

    @llm_cached(backend=backend, ttl=3600, name=name)
    async def ask(n: int) -> dict[str, Any]:
        return {**response, "id": f"chatcmpl-{n}"}

    return ask


def main() -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed (scripts/install-services)")
        return 0
    print(
        f"defaults: connect timeout {DEFAULT_CONNECT_TIMEOUT} s, read timeout "
        f"{DEFAULT_SOCKET_TIMEOUT} s, breaker: opens after 3 consecutive failures, "
        "cool-down 2 s doubling to 30 s while probes fail"
    )
    with tempfile.TemporaryDirectory(prefix="llm-memo-bench-faults-") as tmp:
        server = start_redis_server(binary, Path(tmp), password="bench-faults")
        try:
            raised = kill_and_restart(server)
            raised += faults_through_proxy(server, asynchronous=False)
            raised += faults_through_proxy(server, asynchronous=True)
        finally:
            server.stop()
    print(f"\ndecorated calls that raised, all runs: {raised} (must be 0)")
    return 1 if raised else 0


if __name__ == "__main__":
    sys.exit(main())
