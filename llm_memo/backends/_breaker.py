"""A circuit breaker for network backends: stop calling a store that keeps failing.

After ``failures`` consecutive failures the breaker *opens*: for ``cooldown`` seconds every
operation fails at once with :class:`~llm_memo.errors.BackendUnavailableError` (the decorator
then calls the function directly, fail-open) instead of waiting on a connect timeout per call.
When the cool-down has passed, one operation is let through as a probe (*half-open*): success
closes the breaker, failure opens it for another cool-down, doubled up to ``max_cooldown``.

Thread-safe; one breaker per backend object. Async backends use the same object: its methods
never block.

Backends use it through one guard, :meth:`CircuitBreaker.guard`, a context manager that resolves
every exit path: a clean exit is a success, an exception of the *outage* classes ("the store is
unreachable": refused, reset, timed out) is a failure, and anything else (a per-request refusal
such as an error reply or a name the store rejects, a cancelled task, ``KeyboardInterrupt``) is
*neither*: it counts for nothing, but it always ends a half-open probe, so the breaker can never
stay open for the life of the process with a healthy store behind it.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TypeAlias

from ..errors import BackendUnavailableError

__all__ = ["BreakerGuard", "CircuitBreaker", "Outage"]

#: What :meth:`CircuitBreaker.guard` counts as "the store is unreachable": exception classes, or
#: a predicate for stores whose outages and refusals share a class (an HTTP status, a gRPC code).
Outage: TypeAlias = (
    "type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]"
)


class CircuitBreaker:
    """Consecutive-failure circuit breaker with exponential cool-down.

    Args:
        failures: consecutive failures that open the breaker.
        cooldown: seconds the breaker stays open the first time.
        max_cooldown: upper bound of the doubled cool-down.
        clock: monotonic seconds (tests pass a fake one).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 2.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._open_until = 0.0
        self._current_cooldown = cooldown
        self._probing = False

    @property
    def is_open(self) -> bool:
        """Whether operations are currently refused."""
        return self._count >= self.failures and self._clock() < self._open_until

    def before(self, name: str = "backend") -> None:
        """Call before an operation.

        Raises:
            BackendUnavailableError: the breaker is open (or a probe is already under way).
        """
        if self._count < self.failures:
            return
        with self._lock:
            if self._count < self.failures:
                return
            now = self._clock()
            if now < self._open_until or self._probing:
                raise BackendUnavailableError(
                    f"{name} is unavailable (circuit open after {self._count} failures); "
                    "calls go straight to the function until it recovers"
                )
            self._probing = True

    def guard(self, name: str = "backend", outage: Outage = (OSError,)) -> BreakerGuard:
        """A context manager around one operation on the store.

        Args:
            name: the store's name, for the open-circuit error message.
            outage: exception classes that mean "the store is unreachable" (counted as failures),
                or a predicate that tells such an exception; every other exception,
                cancellation included, counts as neither.

        Raises:
            BackendUnavailableError: on enter, when the breaker is open.

        Example::

            with self._breaker.guard("redis", outage=(ConnectionError, TimeoutError)):
                raw = client.get(key)
        """
        return BreakerGuard(self, name, outage)

    def success(self) -> None:
        """Record a successful operation: closes the breaker."""
        if self._count or self._probing:
            with self._lock:
                self._count = 0
                self._probing = False
                self._current_cooldown = self.cooldown

    def failure(self) -> None:
        """Record a failed operation; may open the breaker."""
        with self._lock:
            self._count += 1
            if self._count >= self.failures:
                if self._probing:
                    self._current_cooldown = min(self._current_cooldown * 2, self.max_cooldown)
                self._open_until = self._clock() + self._current_cooldown
                self._probing = False

    def neither(self) -> None:
        """Record an operation that says nothing about the store's health (cancelled, or refused
        for its own sake): counts for nothing, but ends a half-open probe so the next operation
        may probe again."""
        if self._probing:
            with self._lock:
                self._probing = False

    def trip(self) -> None:
        """Open the breaker now, whatever the failure count.

        .. deprecated:: 0.3.0
            No backend calls it: failures reach the breaker through :meth:`guard`, which
            counts an unreachable store. It keeps working for a release, then goes.
        """
        warnings.warn(
            "CircuitBreaker.trip() is deprecated and will be removed in the next release; "
            "count failures through CircuitBreaker.guard()",
            DeprecationWarning,
            stacklevel=2,
        )
        with self._lock:
            self._count = max(self._count, self.failures)
            self._open_until = self._clock() + self._current_cooldown
            self._probing = False

    def reset(self) -> None:
        """Close the breaker (after a fork, or in tests)."""
        with self._lock:
            self._count = 0
            self._open_until = 0.0
            self._probing = False
            self._current_cooldown = self.cooldown


class BreakerGuard:
    """One guarded operation; see :meth:`CircuitBreaker.guard`. Re-usable, not re-entrant."""

    __slots__ = ("_breaker", "_name", "_outage")

    def __init__(self, breaker: CircuitBreaker, name: str, outage: Outage) -> None:
        self._breaker = breaker
        self._name = name
        self._outage = outage

    def __enter__(self) -> BreakerGuard:
        self._breaker.before(self._name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._breaker.success()
            return
        failed = False
        try:
            failed = self._is_outage(exc_type, exc)
        finally:  # even a predicate that raises resolves a half-open probe
            if failed:
                self._breaker.failure()
            else:
                self._breaker.neither()

    def _is_outage(self, exc_type: type[BaseException], exc: BaseException | None) -> bool:
        outage = self._outage
        if isinstance(outage, (type, tuple)):
            return issubclass(exc_type, outage)
        return exc is not None and outage(exc)
