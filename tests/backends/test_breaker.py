"""The circuit breaker's guard resolves every exit path: success, failure or neither."""

from __future__ import annotations

import asyncio

import pytest

from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.errors import BackendUnavailableError
from llm_memo.testing import FakeClock


def _opened(clock: FakeClock) -> CircuitBreaker:
    breaker = CircuitBreaker(failures=2, cooldown=1.0, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker.guard(outage=ConnectionError):
            raise ConnectionError("refused")
    assert breaker.is_open
    clock.advance(1.5)  # past the cool-down: the next operation is the half-open probe
    return breaker


class TestGuard:
    def test_outage_exceptions_open_the_breaker(self) -> None:
        """Only the outage classes count as failures."""
        breaker = _opened(FakeClock(0.0))
        assert breaker._count == 2

    def test_other_exceptions_count_for_nothing(self) -> None:
        """A per-request refusal (an error reply) never moves the failure count."""
        breaker = CircuitBreaker(failures=1, clock=FakeClock(0.0))
        with pytest.raises(ValueError), breaker.guard(outage=ConnectionError):
            raise ValueError("WRONGTYPE")
        assert not breaker.is_open
        with breaker.guard(outage=ConnectionError):
            pass

    @pytest.mark.parametrize(
        "exc",
        [asyncio.CancelledError(), KeyboardInterrupt(), ValueError("OOM command not allowed")],
    )
    def test_a_probe_that_ends_in_neither_lets_the_next_call_probe(
        self, exc: BaseException
    ) -> None:
        """A cancelled probe or one that got an error reply still resolves the half-open state."""
        breaker = _opened(FakeClock(0.0))
        with pytest.raises(type(exc)), breaker.guard(outage=ConnectionError):
            raise exc
        # Without the guard resolving it, every later call would see "a probe is under way".
        with breaker.guard(outage=ConnectionError):
            pass
        assert not breaker.is_open
        assert breaker._count == 0

    def test_a_failed_probe_reopens_for_a_longer_cooldown(self) -> None:
        clock = FakeClock(0.0)
        breaker = _opened(clock)
        with pytest.raises(ConnectionError), breaker.guard(outage=ConnectionError):
            raise ConnectionError("still down")
        assert breaker.is_open
        with pytest.raises(BackendUnavailableError), breaker.guard(outage=ConnectionError):
            pass  # pragma: no cover - refused on enter

    def test_a_probe_under_way_refuses_concurrent_calls(self) -> None:
        breaker = _opened(FakeClock(0.0))
        outer = breaker.guard(outage=ConnectionError)
        inner = breaker.guard(outage=ConnectionError)
        with outer, pytest.raises(BackendUnavailableError), inner:
            pass  # pragma: no cover


class TestTrip:
    def test_trip_is_deprecated_and_still_opens_the_breaker(self) -> None:
        """trip() warns DeprecationWarning and, for this release, still opens the breaker."""
        clock = FakeClock(0.0)
        breaker = CircuitBreaker(failures=3, cooldown=1.0, clock=clock)
        with pytest.deprecated_call(match=r"trip\(\) is deprecated"):
            breaker.trip()
        assert breaker.is_open
        with pytest.raises(BackendUnavailableError), breaker.guard(outage=ConnectionError):
            pass
        clock.advance(1.5)
        with breaker.guard(outage=ConnectionError):  # the probe succeeds: closed again
            pass
        assert not breaker.is_open
