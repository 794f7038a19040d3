"""Single-flight: concurrent identical misses in one process make one call.

The first caller of a key becomes the *leader* and calls the function; callers arriving while it
runs become *waiters* and block (a thread) or await (a task) until the leader publishes. The
leader publishes the encoded result, so each waiter decodes its own fresh copy; or the
exception, which every waiter re-raises; or "abandoned" when the leader was cancelled or
interrupted, in which case one waiter takes over as the new leader. A waiter gives up after
``wait_timeout`` seconds and calls the function itself, so a hung leader never hangs everyone.

Threads and asyncio tasks use separate tables: a thread never blocks an event loop, and a task
never waits on a future of another loop. The tables are reset in a forked child.

Not here: cross-process single-flight (a backend lock, ``lock=True``).
"""

from __future__ import annotations

import asyncio
import enum
import threading
import weakref
from typing import Any

from . import _fork

__all__ = ["AsyncFlights", "Flight", "Landing", "SyncFlights"]


class Landing(enum.Enum):
    """How a flight ended."""

    #: ``payload`` holds ``(tag, bytes)`` to decode, or ``value`` an object to copy.
    VALUE = "value"
    ERROR = "error"
    #: The leader was cancelled or interrupted, or produced a stream: waiters retry.
    ABANDONED = "abandoned"


class Flight:
    """One in-flight call and, once landed, its result."""

    __slots__ = ("_done", "error", "landing", "payload", "value")

    def __init__(self, done: threading.Event | asyncio.Future[None] | None) -> None:
        self._done = done
        self.landing = Landing.ABANDONED
        self.payload: tuple[str, bytes] | None = None
        self.value: Any = None
        self.error: BaseException | None = None

    def land_value(self, value: Any, payload: tuple[str, bytes] | None) -> None:
        self.landing, self.value, self.payload = Landing.VALUE, value, payload

    def land_error(self, error: BaseException) -> None:
        self.landing, self.error = Landing.ERROR, error


class SyncFlights:
    """The flight table for threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def join(self, key: str) -> tuple[Flight, bool]:
        """Return the flight for ``key`` and whether the caller leads it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                # The event is made by the first waiter, under the table lock: most flights
                # never have a waiter, and a threading.Event costs more than the rest.
                if flight._done is None:
                    flight._done = threading.Event()
                return flight, False
            flight = Flight(None)
            self._flights[key] = flight
            return flight, True

    def land(self, key: str, flight: Flight) -> None:
        """Publish ``flight``'s result (set on it beforehand) and wake its waiters."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            done = flight._done
        if done is not None:
            done.set()  # type: ignore[union-attr]

    @staticmethod
    def wait(flight: Flight, timeout: float) -> bool:
        """Block until ``flight`` lands; ``False`` after ``timeout`` seconds."""
        return flight._done.wait(timeout)  # type: ignore[union-attr]

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._flights = {}


class AsyncFlights:
    """The flight tables for asyncio tasks, one per event loop."""

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Flight]] = (
            weakref.WeakKeyDictionary()
        )

    def join(self, key: str) -> tuple[Flight, bool]:
        """Return the flight for ``key`` in the running loop and whether the caller leads."""
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables.setdefault(loop, {})
        flight = table.get(key)
        if flight is not None:
            return flight, False
        flight = Flight(loop.create_future())
        table[key] = flight
        return flight, True

    def land(self, key: str, flight: Flight) -> None:
        """Publish ``flight``'s result and wake its waiters."""
        table = self._tables.get(asyncio.get_running_loop())
        if table is not None and table.get(key) is flight:
            del table[key]
        done: asyncio.Future[None] = flight._done  # type: ignore[assignment]
        if not done.done():
            done.set_result(None)

    @staticmethod
    async def wait(flight: Flight, timeout: float) -> bool:
        """Wait until ``flight`` lands; ``False`` after ``timeout`` seconds."""
        done: asyncio.Future[None] = flight._done  # type: ignore[assignment]
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _reset(self) -> None:
        self._tables = weakref.WeakKeyDictionary()


SYNC_FLIGHTS = SyncFlights()
ASYNC_FLIGHTS = AsyncFlights()

_fork.on_fork(SYNC_FLIGHTS._reset)
_fork.on_fork(ASYNC_FLIGHTS._reset)
