"""Pure decisions: resolved directives + an entry's metadata + now -> what a call does.

No I/O and no event loop here, so every rule is tested directly. The drivers (``_drivers/``)
ask these questions and act on the answers:

* :func:`resolve`: which directives apply, every level merged and UNSET replaced by the
  built-in default.
* :func:`freshness`: may this entry answer the call now (``FRESH``), only if the call fails
  (``STALE``), or not at all (``UNUSABLE``)?
* :func:`write_plan`: should the result be stored, and with which expiry, stale window and
  retention?
* :func:`call_outcome`: the outcome of a call that ran the function (``miss``, ``refresh`` or
  ``error``).
* :func:`read_failure`: what a failed backend read makes the call do (raise
  :class:`~llm_memo.errors.CacheMiss`, raise
  :class:`~llm_memo.errors.BackendUnavailableError`, or call through).
* :func:`stale_fallback`: which entry, if any, answers a call whose function raised.

The meanings follow HTTP caching:

* ``no_cache`` (RFC 9111 §5.2.1.4): do not answer from the cache; call, then store.
* ``no_store`` (RFC 9111 §5.2.1.5): never write; reading is still allowed.
* ``max_age`` (RFC 9111 §5.2.1.1, ``s_maxage`` §5.2.2.10): the caller accepts an entry at most
  this old, whatever its own ``ttl`` says: effective lifetime = min(ttl, max_age).
* ``ttl``: the entry's freshness lifetime, fixed when it is written (RFC 9111 §4.2.1, as an
  ``Expires`` would be).
* ``stale_if_error`` (RFC 5861 §4): when the call fails, an entry stale by at most this many
  seconds may answer instead. Entries written under it are retained that much longer, and
  every entry is retained for the grace window past its expiry, so the directive may be given
  at read time only; an expired entry answers nothing else.
* ``only_if_cached`` (RFC 9111 §5.2.1.7): never call; no usable entry is an error (here
  :class:`~llm_memo.errors.CacheMiss`, the analogue of a 504).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .controls import UNSET, Directives
from .entry import Entry
from .events import Outcome

__all__ = [
    "Freshness",
    "Policy",
    "ReadFailure",
    "WritePlan",
    "call_outcome",
    "freshness",
    "read_failure",
    "resolve",
    "retained_until",
    "stale_fallback",
    "write_plan",
]

#: Namespace of calls that name none.
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class Policy:
    """Directives with every level merged and defaults filled in: what one call obeys."""

    enabled: bool = True
    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    max_age: float | None = None
    stale_if_error: float | None = None
    only_if_cached: bool = False
    namespace: str = DEFAULT_NAMESPACE
    backend: Any = UNSET
    threshold: float | None = None
    #: Whether the cache may answer this call (not bypassed, not a refresh). Derived, like
    #: :attr:`writes`, once per policy: a policy is built once per settings / block state and
    #: read on every call.
    reads: bool = field(init=False, repr=False, compare=False)
    #: Whether the result may be stored.
    writes: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", self.enabled and not self.no_cache)
        object.__setattr__(self, "writes", self.enabled and not self.no_store)


def resolve(directives: Directives) -> Policy:
    """Fill the UNSET fields of fully merged ``directives`` with the built-in defaults."""
    given = directives.given()
    return Policy(**given) if given else Policy()


class Freshness(enum.Enum):
    """Whether an entry may answer a call."""

    FRESH = "fresh"
    #: Past its lifetime but within ``stale_if_error``: usable only if the call fails.
    STALE = "stale"
    UNUSABLE = "unusable"


def freshness(entry: Entry, now: float, policy: Policy) -> Freshness:
    """Judge ``entry`` at time ``now`` under ``policy``."""
    expires = entry.expires_at
    if policy.max_age is not None:
        limit = entry.created_at + policy.max_age
        expires = limit if expires is None or limit < expires else expires
    if expires is None or now < expires:
        return Freshness.FRESH
    grace = policy.stale_if_error
    if grace is not None and now - expires <= grace:
        return Freshness.STALE
    return Freshness.UNUSABLE


@dataclass(frozen=True, slots=True)
class WritePlan:
    """How to store a fresh result."""

    expires_at: float | None
    stale_window: float
    #: Seconds the backend keeps the entry (lifetime + the larger of the stale window and the
    #: grace window); ``None`` = no limit.
    retention: float | None


def write_plan(policy: Policy, now: float, grace: float = 0.0) -> WritePlan | None:
    """The expiry of a result produced at ``now``, or ``None`` when it must not be stored.

    ``grace``: seconds every entry is kept past its expiry (``configure(grace=...)``), so that
    a ``stale_if_error`` given only at read time (RFC 5861 §4 lets the *request* carry it) can
    still serve it; an entry written under ``stale_if_error=N`` is kept at least ``N``. The
    entry's own ``stale_window`` stays the write-time directive: a read without
    ``stale_if_error`` never serves an expired entry, whatever is retained.

    An entry with ``ttl=0`` is stale on arrival; it is kept only when a stale or grace window
    gives it a use.
    """
    if not policy.writes:
        return None
    ttl = policy.ttl
    window = float(policy.stale_if_error or 0.0)
    if ttl is None:
        return WritePlan(None, window, None)
    retention = ttl + max(window, grace)
    if retention <= 0:
        return None
    return WritePlan(now + ttl, window, retention)


def retained_until(entry: Entry, grace: float) -> float | None:
    """When ``entry`` is of no use to anyone any more (``None``: never): its expiry plus the
    larger of its own stale window and the grace window. What ``purge --expired`` removes."""
    if entry.expires_at is None:
        return None
    return entry.expires_at + max(entry.stale_window, grace)


def call_outcome(policy: Policy, failed: bool) -> Outcome:
    """The outcome of a call that ran the function: ``error`` when a backend failed during it
    (the call still went through: fail-open), else ``refresh`` under ``no_cache``, else
    ``miss``."""
    if failed:
        return Outcome.ERROR
    return Outcome.REFRESH if policy.no_cache else Outcome.MISS


class ReadFailure(enum.Enum):
    """What a call does when the backend read (``get`` or a similarity search) failed."""

    #: ``only_if_cached`` (RFC 9111 §5.2.1.7): the call may not run, and nothing was read.
    RAISE_CACHE_MISS = "cache_miss"
    #: ``strict=True``: the failure is the caller's to see.
    RAISE_UNAVAILABLE = "unavailable"
    #: Fail-open: log, count, and call the function as on a miss.
    CALL_THROUGH = "call_through"

    @property
    def raises(self) -> bool:
        """Whether the call ends here (its ``error`` event is emitted before raising)."""
        return self is not ReadFailure.CALL_THROUGH


def read_failure(policy: Policy, strict: bool) -> ReadFailure:
    """Decide what a failed read means: ``only_if_cached`` wins over ``strict``, which wins
    over failing open."""
    if policy.only_if_cached:
        return ReadFailure.RAISE_CACHE_MISS
    if strict:
        return ReadFailure.RAISE_UNAVAILABLE
    return ReadFailure.CALL_THROUGH


def stale_fallback(stale: Entry | None, policy: Policy) -> Entry | None:
    """The entry that answers a call whose function raised (RFC 5861 §4), or ``None``.

    ``stale`` is the entry the read judged :attr:`Freshness.STALE` (past its lifetime, within
    ``stale_if_error``); it answers with outcome ``stale`` instead of the exception. Waiters of
    an identical call in flight whose leader raised follow the same rule with their own read.
    """
    if stale is None or policy.stale_if_error is None:
        return None
    return stale
