"""Directives and the ``cache_controls`` block that applies them to a thread's or task's calls.

:class:`Directives` is one frozen record of every directive, each either a value or
:data:`UNSET`. Levels merge per field, strongest first: innermost ``cache_controls`` block,
outer blocks, the decorator, ``configure()``, the built-in defaults. ``UNSET`` (not ``None``)
marks "not given here": ``ttl=None`` given explicitly means "no expiry" and wins.

The state of the active blocks is one :class:`contextvars.ContextVar` holding the merged
directives of all open blocks plus the scopes that record events, so a call reads it with one
``get()``. Each thread and each asyncio task sees its own value; ``propagate(fn)`` (or
``contextvars.copy_context().run``) carries it into a thread pool. That value is a stack with
one node per entry, so a scope object can be entered again while it is open (nested, or from
several threads or tasks at once): each exit removes its own entry in its own context.

Inputs are converted once, here: ``ttl`` / ``max_age`` / ``stale_if_error`` accept int, float or
:class:`datetime.timedelta` and become float seconds.

Not here: what the directives make a call do (``_policy.py``).
"""

from __future__ import annotations

import collections
import contextvars
import datetime as _dt
import enum
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

from .errors import ConfigurationError
from .events import CacheStats, Outcome, Stats

if TYPE_CHECKING:
    from .events import Event

__all__ = [
    "UNSET",
    "CacheScope",
    "Directives",
    "Unset",
    "cache_controls",
    "current_scopes",
    "propagate",
]

P = ParamSpec("P")
R = TypeVar("R")


class Unset(enum.Enum):
    """Type of :data:`UNSET`: "not given at this level, inherit from the one below"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET

#: Names of the directives, as accepted by ``cache_controls``, the decorator and ``configure``.
DIRECTIVE_NAMES = (
    "enabled",
    "no_cache",
    "no_store",
    "ttl",
    "max_age",
    "stale_if_error",
    "only_if_cached",
    "namespace",
    "backend",
    "threshold",
)


def seconds(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    """Convert a duration given as int, float or timedelta to float seconds.

    Raises:
        ConfigurationError: negative, not a number, or ``None`` where not allowed.
    """
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} must be a number of seconds, not None")
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name} must be seconds (int, float or datetime.timedelta), got {value!r}"
        )
    if value < 0 or value != value:
        raise ConfigurationError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Directives:
    """Every cache directive at one level; :data:`UNSET` fields inherit from the level below.

    Build it with :meth:`build` (which validates and converts) rather than directly.

    .. versionadded:: 0.1.0
    """

    enabled: bool | Unset = UNSET
    no_cache: bool | Unset = UNSET
    no_store: bool | Unset = UNSET
    ttl: float | Unset | None = UNSET
    max_age: float | Unset | None = UNSET
    stale_if_error: float | Unset | None = UNSET
    only_if_cached: bool | Unset = UNSET
    namespace: str | Unset = UNSET
    backend: Any = UNSET
    threshold: float | Unset | None = UNSET

    @classmethod
    def build(cls, **given: Any) -> Directives:
        """Validate and convert directives given as keyword arguments.

        ``s_maxage`` is accepted as an alias of ``max_age`` (RFC 9111 §5.2.2.10).

        Raises:
            ConfigurationError: an unknown name or an invalid value.
        """
        if "s_maxage" in given:
            if "max_age" in given:
                raise ConfigurationError("give max_age or its alias s_maxage, not both")
            given["max_age"] = given.pop("s_maxage")
        unknown = set(given) - set(DIRECTIVE_NAMES)
        if unknown:
            raise ConfigurationError(
                f"unknown directive(s) {sorted(unknown)}; known: {', '.join(DIRECTIVE_NAMES)}"
            )
        out: dict[str, Any] = {}
        for name, value in given.items():
            if value is UNSET:
                continue
            if name in ("enabled", "no_cache", "no_store", "only_if_cached"):
                out[name] = _flag(name, value)
            elif name in ("ttl", "max_age", "stale_if_error"):
                out[name] = seconds(name, value)
            elif name == "namespace":
                if not isinstance(value, str) or not value:
                    raise ConfigurationError(f"namespace must be a non-empty str, got {value!r}")
                out[name] = value
            elif name == "threshold":
                if value is not None and (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not -1.0 <= value <= 1.0
                ):
                    raise ConfigurationError(
                        f"threshold must be a cosine similarity in [-1, 1], got {value!r}"
                    )
                out[name] = None if value is None else float(value)
            else:  # backend: a URL, a path or a backend object; resolved on first use
                if value is None:
                    raise ConfigurationError("backend=None is not a backend; omit it to inherit")
                if isinstance(value, (str, os.PathLike)):
                    # Validated here, where it is given; opened on first use (failing open).
                    from .backends._registry import check_url

                    check_url(value)
                out[name] = value
        return cls(**out)

    def over(self, base: Directives) -> Directives:
        """This level merged over ``base``: each field from ``self`` unless UNSET here."""
        changes = {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not UNSET}
        return replace(base, **changes) if changes else base

    def given(self) -> dict[str, Any]:
        """The directives set at this level, by name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not UNSET}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.given().items())
        return f"Directives({inner})"


EMPTY: Final = Directives()


class CacheScope:
    """What happened inside one ``cache_controls`` block, as it happens.

    Attributes:
        directives: the directives this block set (before merging with outer blocks).
        events: the most recent events (at most ``max_events``), oldest first.
        hits: calls answered from the cache (outcome ``hit``).
        misses: calls that ran the function (outcomes ``miss`` and ``refresh``).
        tokens_saved: tokens the block's hits (and stale answers) did not spend again.
        cost_saved: estimated US dollars of those tokens (``llm_memo.prices``).

    Calls in nested blocks are recorded by every enclosing scope. :meth:`stats` gives every
    counter, as ``fn.cache.stats()`` does for a function.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_stats", "directives", "events")

    def __init__(self, directives: Directives, max_events: int = 1000) -> None:
        self.directives = directives
        self.events: collections.deque[Event] = collections.deque(maxlen=max_events)
        # The same counters as fn.cache.stats(), for the calls of this block.
        self._stats = Stats()

    @property
    def hits(self) -> int:
        """Calls answered from the cache (outcome ``hit``)."""
        return self._stats.hits

    @property
    def misses(self) -> int:
        """Calls that ran the function (outcomes ``miss`` and ``refresh``)."""
        return self._stats.misses + self._stats.refreshes

    @property
    def tokens_saved(self) -> int:
        """Tokens the block's hits and stale answers did not spend again."""
        return self._stats.snapshot().tokens_saved

    @property
    def cost_saved(self) -> float:
        """Estimated US dollars the block's hits and stale answers did not spend again."""
        return self._stats.snapshot().cost_saved

    def stats(self) -> CacheStats:
        """Every counter of the block's calls (hits, misses, ..., tokens and cost saved)."""
        return self._stats.snapshot()

    def record(self, event: Event) -> None:
        """Add one event (called by the runners)."""
        self.events.append(event)  # a deque's append is atomic
        outcome = event.outcome
        if event.tokens and (outcome is Outcome.HIT or outcome is Outcome.STALE):
            self._stats.record(
                outcome,
                event.tokens,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cached_input_tokens=event.cached_input_tokens,
                cost_saved=event.cost_saved or 0.0,
            )
        else:
            self._stats.record(outcome)

    def __repr__(self) -> str:
        return f"<CacheScope {self.directives!r} hits={self.hits} misses={self.misses}>"

    # -- the context-manager protocol; `cache_controls(...)` returns the scope itself --------
    #
    # The scope object keeps no per-entry state: each entry pushes one _State (owned by this
    # scope) onto the stack in the current context, and each exit removes this scope's most
    # recent entry from the stack *of the context it runs in*. So one object can be entered
    # again while open (nested, from several threads or tasks, with `with` and `async with`
    # mixed): every exit undoes exactly its own entry, and nothing is left behind, also when
    # the block raises or its task is cancelled (the exit runs either way).

    def __enter__(self) -> CacheScope:
        _STATE.set(_push(_STATE.get(), self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        state = _STATE.get()
        if state is not None and state.owner is self:  # the usual, well-nested exit
            _STATE.set(state.parent)
        elif state is not None:
            _STATE.set(_without(state, self))
        # else: this scope was never entered in this context; there is nothing to undo here.
        return False

    async def __aenter__(self) -> CacheScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


@dataclass(frozen=True, slots=True)
class _State:
    """The open blocks in one context: one node per entry, innermost first via ``parent``."""

    directives: Directives
    scopes: tuple[CacheScope, ...]
    owner: CacheScope
    parent: _State | None


def _push(outer: _State | None, scope: CacheScope) -> _State:
    """The state after entering ``scope`` inside ``outer``."""
    if outer is None:
        return _State(scope.directives, (scope,), scope, None)
    # A scope entered again records each call once, not once per entry.
    scopes = outer.scopes if scope in outer.scopes else (*outer.scopes, scope)
    return _State(scope.directives.over(outer.directives), scopes, scope, outer)


def _without(state: _State, scope: CacheScope) -> _State | None:
    """``state`` with ``scope``'s innermost entry removed (an exit out of nesting order); the
    entries around it are merged again. ``state`` itself when ``scope`` has no entry in it."""
    owners: list[CacheScope] = []
    node: _State | None = state
    while node is not None:
        owners.append(node.owner)
        node = node.parent
    if scope not in owners:
        return state
    owners.remove(scope)  # the innermost entry: owners is innermost first
    rebuilt: _State | None = None
    for owner in reversed(owners):
        rebuilt = _push(rebuilt, owner)
    return rebuilt


_STATE: contextvars.ContextVar[_State | None] = contextvars.ContextVar(
    "llm_memo_controls", default=None
)


#: ``current()``: the merged state of the open blocks in this context, or ``None`` outside any
#: block. The ContextVar's own ``get`` (no Python frame: every cached call asks).
current: Callable[[], _State | None] = _STATE.get


def current_scopes() -> tuple[CacheScope, ...]:
    """The scopes of the open ``cache_controls`` blocks, outermost first.

    .. versionadded:: 0.1.0
    .. deprecated:: 0.2.0
       Nothing in llm_memo needs it; keep the scope ``cache_controls(...)`` returns instead.
       It will be removed in the release after next.
    """
    warnings.warn(
        "llm_memo.controls.current_scopes() is deprecated and will be removed; keep the "
        "CacheScope that cache_controls(...) returns instead",
        DeprecationWarning,
        stacklevel=2,
    )
    state = _STATE.get()
    return () if state is None else state.scopes


def cache_controls(**directives: Any) -> CacheScope:
    """Apply cache directives to every cached call in a ``with`` (or ``async with``) block.

    Directives apply in this thread or asyncio task only, and nest: an inner block wins per
    directive. The block yields a :class:`CacheScope` recording the calls inside it.

    The returned object may be entered more than once, also while it is open: nested
    (``with c: ... with c:``), from several threads or asyncio tasks at once, with ``with`` and
    ``async with`` mixed. Each entry applies the directives in its own thread or task and each
    exit removes exactly that entry, also when the block raises or the task is cancelled; the
    scope records every call made under any of its entries, once.

    Args:
        **directives: any of ``enabled``, ``no_cache``, ``no_store``, ``ttl``, ``max_age``
            (alias ``s_maxage``), ``stale_if_error``, ``only_if_cached``, ``namespace``,
            ``backend``, ``threshold``.

    Raises:
        ConfigurationError: an unknown directive or an invalid value (raised here, at the
            ``with``, not at the first call).

    Example::

        with cache_controls(no_store=True) as scope:
            ask("gpt-4o-mini", messages)
        assert scope.misses == 1

    .. versionadded:: 0.1.0
    """
    return CacheScope(Directives.build(**directives))


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so it runs with the directives active *now*, in whichever thread calls it.

    Use it to hand work to a thread pool from inside a ``cache_controls`` block::

        with cache_controls(namespace="batch-7"):
            results = list(pool.map(propagate(ask), prompts))

    .. versionadded:: 0.1.0
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can only be entered by one thread at a time; copy it per call so that
        # the same wrapped function can run in many pool threads at once.
        return context.copy().run(fn, *args, **kwargs)

    return run
