"""The fault drill the Redis and the object-store fault suites run through a `FaultProxy`.

A decorated ``ask(n)`` is called before a fault (1, 2, 1, 2: two misses, two hits), during it
(1, 2, 3, three times: each answered by the function), and after it, once the proxy passes
traffic again: the breaker's fake clock is advanced a cool-down at a time until a probe gets
through and ``ask(1)`` is a hit, then ``ask(2)`` must hit too. :func:`drill` and
:func:`adrill` (the same steps, awaited) record each call's outcome; :meth:`Drill.check`
asserts what every store must show. What a store adds (proxy counters, extra calls) its own
suite checks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llm_memo import cache_controls
from llm_memo.events import Outcome
from llm_memo.testing import FakeClock
from tests.faults import FaultProxy

__all__ = ["Drill", "adrill", "drill"]

_BEFORE = (1, 2, 1, 2)
_DURING = (1, 2, 3) * 3
#: Cool-downs to wait at most: a probe that gets through closes the breaker.
_COOL_DOWNS = 20


@dataclass
class Drill:
    """What one drill saw: each call's ``(phase, outcome)``, in order."""

    outcomes: list[tuple[str, Outcome]]
    #: Reply bytes the proxy counted while the fault was on, for failure messages only: the
    #: proxy counts a chunk after sending it, so the last reply before the switch may land here.
    during_bytes: int

    def by_phase(self) -> dict[str, list[Outcome]]:
        phases: dict[str, list[Outcome]] = {}
        for phase, outcome in self.outcomes:
            phases.setdefault(phase, []).append(outcome)
        return phases

    def check(self, calls: Counter[int], report: str) -> None:
        """Before the fault, two misses and two hits; during it, every call an ``error``
        answered by the function (nothing served from the store); after it, hits again from
        the entries written before the fault. ``calls``: the function's calls per ``n``."""
        phases = self.by_phase()
        assert phases["before"] == [Outcome.MISS, Outcome.MISS, Outcome.HIT, Outcome.HIT], report
        assert set(phases["during"]) == {Outcome.ERROR}, report
        assert phases["after"][-2:] == [Outcome.HIT, Outcome.HIT], report
        assert calls[1] == 1 + 3, report  # once before, three times during the fault


def drill(
    proxy: FaultProxy,
    fault: Callable[[FaultProxy], None],
    clock: FakeClock,
    ask: Callable[[int], Any],
    value: Callable[[int], Any],
) -> Drill:
    """Run the drill on a sync ``ask``, whose answer to ``n`` must be ``value(n)``; ``fault``
    switches the proxy into the fault, ``clock`` is the breaker's."""
    outcomes: list[tuple[str, Outcome]] = []

    def call(phase: str, n: int) -> None:
        with cache_controls() as scope:
            assert ask(n) == value(n), (phase, n)
        outcomes.append((phase, scope.events[-1].outcome))

    for n in _BEFORE:
        call("before", n)
    down = proxy.bytes_down
    fault(proxy)
    for n in _DURING:
        call("during", n)
    during_bytes = proxy.bytes_down - down
    proxy.pass_through()
    for _ in range(_COOL_DOWNS):
        clock.advance(6)
        call("after", 1)
        if outcomes[-1][1] is Outcome.HIT:
            break
    call("after", 2)
    return Drill(outcomes, during_bytes)


async def adrill(
    proxy: FaultProxy,
    fault: Callable[[FaultProxy], None],
    clock: FakeClock,
    ask: Callable[[int], Awaitable[Any]],
    value: Callable[[int], Any],
) -> Drill:
    """:func:`drill` on an async ``ask``."""
    outcomes: list[tuple[str, Outcome]] = []

    async def call(phase: str, n: int) -> None:
        with cache_controls() as scope:
            assert await ask(n) == value(n), (phase, n)
        outcomes.append((phase, scope.events[-1].outcome))

    for n in _BEFORE:
        await call("before", n)
    down = proxy.bytes_down
    fault(proxy)
    for n in _DURING:
        await call("during", n)
    during_bytes = proxy.bytes_down - down
    proxy.pass_through()
    for _ in range(_COOL_DOWNS):
        clock.advance(6)
        await call("after", 1)
        if outcomes[-1][1] is Outcome.HIT:
            break
    await call("after", 2)
    return Drill(outcomes, during_bytes)
