"""Process-wide defaults: ``configure()``, the ``LLM_MEMO_*`` environment, and backend resolution.

Settings start from the environment, read once on first use (not at import), and
``configure(...)`` updates them; an explicit ``configure`` wins over the environment. Each change
bumps a generation counter, which is how decorated functions know to drop what they derived from
the old settings.

Environment variables:

==============================  ====================================================
``LLM_MEMO_BACKEND``            backend URL or path (default: disk, user cache dir)
``LLM_MEMO_TTL``                seconds; ``none`` for no expiry
``LLM_MEMO_MAX_AGE``            seconds
``LLM_MEMO_STALE_IF_ERROR``     seconds
``LLM_MEMO_NAMESPACE``          namespace name
``LLM_MEMO_ENABLED``            ``0``/``false`` turns caching off
``LLM_MEMO_NO_CACHE``           ``1``/``true``: refresh everything
``LLM_MEMO_NO_STORE``           ``1``/``true``: read only
``LLM_MEMO_ONLY_IF_CACHED``     ``1``/``true``: never call (offline replay)
``LLM_MEMO_STRICT``             ``1``/``true``: raise on backend failures
``LLM_MEMO_SIGNING_KEY``        HMAC key(s), comma-separated; the first signs
``LLM_MEMO_GRACE``              seconds expired entries are kept for ``stale_if_error``
``LLM_MEMO_PERSIST_STATS``      ``1``/``true``, or seconds between flushes: keep
                                per-function counters in the backend
==============================  ====================================================

Backends named by URL are built once per process (per URL, per sync/async flavour) and
rebuilt in a forked child, so gunicorn or celery workers never share a parent's sockets.

A URL is validated where it is given (``configure``, the decorator, ``cache_controls``,
``LLM_MEMO_BACKEND`` on first read) and built on first use. Building or opening it can still
fail (a directory that cannot be created, a folder another process locks): then the call gets a
stand-in whose every operation raises that failure as a
:class:`~llm_memo.errors.BackendError`, so calls go through uncached (logged, counted), and the
backend is built again after a back-off. The embedded default (nothing configured) whose cache
directory cannot be opened falls back to an in-memory backend for the process, with one warning.

Not here: what the directives mean (``_policy.py``). Past 500 lines on purpose: the settings and
the backends built from them share one lock and one fork hook (``_fork.on_fork``), which a split
would have to share across modules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _fork
from ._text import parse_bool
from .backends import _registry
from .controls import EMPTY, UNSET, Directives, Unset, seconds
from .errors import BackendError, ConfigurationError
from .events import Event

__all__ = ["DEFAULT_GRACE", "Settings", "Unopened", "configure", "settings"]

#: Seconds a caller waits for an identical call already in flight before calling itself.
DEFAULT_WAIT_TIMEOUT = 300.0
#: Seconds a cross-process lock (``lock=True``) lives if its holder dies without releasing it.
DEFAULT_LOCK_TTL = 120.0
#: Values whose encoded form is larger than this are zlib-compressed when that saves space.
DEFAULT_COMPRESS_THRESHOLD = 16 * 1024
#: Seconds every backend keeps an entry past its expiry, so that a ``stale_if_error`` given at
#: read time (in an outage handler) can still serve it: 24 hours. ``0``: ``ttl`` is when an
#: entry is deleted.
DEFAULT_GRACE = 24 * 3600.0

logger = logging.getLogger("llm_memo")


@dataclass
class Settings:
    """The process-wide configuration; read it with :func:`settings`, change it with
    :func:`configure`.

    .. versionadded:: 0.1.0
    """

    directives: Directives = EMPTY
    strict: bool = False
    signing_keys: tuple[bytes, ...] = ()
    on_event: tuple[Callable[[Event], Any], ...] = ()
    allow_pickle: bool = False
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    lock: bool = False
    lock_ttl: float = DEFAULT_LOCK_TTL
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    grace: float = DEFAULT_GRACE
    clock: Callable[[], float] = time.time
    embedder: Any = None
    generation: int = 0
    # Set by the pytest fixture: a backend that replaces every decorator's and configure's.
    override_backend: Any = None
    observers: tuple[Callable[[Event], Any], ...] = field(default=())
    #: Prices for cost saved (``configure(prices=)``); ``None``: ``prices.default_table()``.
    prices: Any = None
    #: Seconds between flushes of the persistent counters; 0: they are off.
    persist_stats: float = 0.0


_lock = threading.RLock()
_settings: Settings | None = None
_next_generation = 0


def _bool_env(name: str, raw: str) -> bool:
    try:
        return parse_bool(raw, name)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def _from_env() -> Settings:
    env = os.environ
    given: dict[str, Any] = {}
    if raw := env.get("LLM_MEMO_BACKEND", "").strip():
        given["backend"] = raw
    for name in ("ttl", "max_age", "stale_if_error"):
        var = f"LLM_MEMO_{name.upper()}"
        if (raw := env.get(var, "").strip()) != "":
            if raw.lower() == "none":
                given[name] = None
            else:
                try:
                    given[name] = float(raw)
                except ValueError as exc:
                    raise ConfigurationError(f"{var}={raw!r} is not a number of seconds") from exc
    if raw := env.get("LLM_MEMO_NAMESPACE", "").strip():
        given["namespace"] = raw
    for name in ("enabled", "no_cache", "no_store", "only_if_cached"):
        var = f"LLM_MEMO_{name.upper()}"
        if raw := env.get(var, "").strip():
            given[name] = _bool_env(var, raw)
    result = Settings(directives=Directives.build(**given))
    if raw := env.get("LLM_MEMO_STRICT", "").strip():
        result.strict = _bool_env("LLM_MEMO_STRICT", raw)
    if raw := env.get("LLM_MEMO_SIGNING_KEY", "").strip():
        result.signing_keys = _keys([k.strip() for k in raw.split(",") if k.strip()])
    if raw := env.get("LLM_MEMO_GRACE", "").strip():
        try:
            result.grace = _grace(float(raw))
        except ValueError as exc:
            raise ConfigurationError(f"LLM_MEMO_GRACE={raw!r} is not a number of seconds") from exc
    if raw := env.get("LLM_MEMO_PERSIST_STATS", "").strip():
        try:
            value: bool | float = float(raw)
        except ValueError:
            value = _bool_env("LLM_MEMO_PERSIST_STATS", raw)
        result.persist_stats = _persist("LLM_MEMO_PERSIST_STATS", value) if value else 0.0
    return result


#: Seconds between flushes of persistent counters when ``persist_stats=True``.
DEFAULT_STATS_FLUSH = 30.0


def _persist(name: str, value: Any) -> float:
    if value is True:
        return DEFAULT_STATS_FLUSH
    if value is False:
        return 0.0
    interval = seconds(name, value, allow_none=False)
    if interval is None or not (math.isfinite(interval) and interval > 0):
        raise ConfigurationError(
            f"{name} must be True, False or a positive number of seconds, got {value!r}"
        )
    return interval


def _grace(value: Any) -> float:
    grace = seconds("grace", value, allow_none=False)
    if grace is None or not math.isfinite(grace):
        raise ConfigurationError(f"grace must be a finite number of seconds, got {value!r}")
    return grace


def settings() -> Settings:
    """The current settings (built from the environment on first use).

    .. versionadded:: 0.1.0
    """
    current = _settings
    if current is not None:
        return current
    return _init()


def _init() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            fresh = _from_env()
            # Generations only grow, so functions notice a reset() as a change.
            fresh.generation = _next_generation
            _settings = fresh
        return _settings


def _prices(value: Any) -> Any:
    from .prices import PriceTable  # its module reads prices.json only when asked

    if value is None or isinstance(value, PriceTable):
        return value
    return PriceTable(value)


def _keys(value: Any) -> tuple[bytes, ...]:
    if isinstance(value, (str, bytes)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ConfigurationError("signing_keys must be a list of str or bytes keys")
    out = []
    for k in value:
        if isinstance(k, str):
            k = k.encode()
        if not isinstance(k, bytes) or len(k) < 16:
            raise ConfigurationError("each signing key must be str or bytes of 16+ bytes")
        out.append(k)
    return tuple(out)


def configure(
    backend: Any = UNSET,
    *,
    strict: bool | Unset = UNSET,
    signing_keys: Sequence[str | bytes] | Unset = UNSET,
    on_event: Callable[[Event], Any] | Sequence[Callable[[Event], Any]] | Unset = UNSET,
    allow_pickle: bool | Unset = UNSET,
    wait_timeout: float | Unset = UNSET,
    lock: bool | Unset = UNSET,
    lock_ttl: float | Unset = UNSET,
    compress_threshold: int | Unset = UNSET,
    grace: float | datetime.timedelta | Unset = UNSET,
    clock: Callable[[], float] | Unset = UNSET,
    embedder: Any = UNSET,
    prices: Any = UNSET,
    persist_stats: bool | float | datetime.timedelta | Unset = UNSET,
    **directives: Any,
) -> Settings:
    """Set process-wide defaults for every cached function.

    Only the arguments given change; the rest keep their current value (initially from the
    ``LLM_MEMO_*`` environment). Directives given here sit below the decorator's and any
    ``cache_controls`` block's.

    Args:
        backend: default backend: a URL (``"redis://..."``), a path, or a backend object.
        strict: raise :class:`~llm_memo.errors.BackendUnavailableError` when a backend read
            fails, instead of calling through.
        signing_keys: HMAC keys; the first signs new entries, every one verifies (rotation).
            With keys set, unsigned or tampered entries are misses.
        on_event: callback(s) receiving every :class:`~llm_memo.events.Event`; replaces
            earlier ones.
        allow_pickle: let the codec store values it cannot encode as data with pickle, and read
            them back. Only for caches no one else can write to.
        wait_timeout: seconds an identical concurrent call waits for the one in flight.
        lock: cross-process single-flight by default, on backends that support it.
        lock_ttl: seconds a cross-process lock outlives a crashed holder.
        compress_threshold: encoded size in bytes above which values are compressed.
        grace: seconds (or a timedelta) every backend keeps an entry past its expiry, so that
            a ``stale_if_error`` given only at read time can serve it (default 24 h,
            ``LLM_MEMO_GRACE``). Normal reads never serve an expired entry. ``0`` makes
            ``ttl`` the deletion time; entries written under ``stale_if_error=N`` are kept at
            least ``ttl + N`` either way.
        clock: the time source for entry timestamps (tests pass a fake clock).
        embedder: the embedder semantic backends built from URLs use.
        prices: what tokens cost, for ``cost_saved`` in stats, scopes, events and ``llm-memo
            stats``: a :class:`~llm_memo.prices.PriceTable`, or a mapping it takes (function
            identity, glob or model name -> USD per 1M tokens, or ``{"input": .., "output":
            .., "cached_input": ..}``); ``None``: the shipped list prices only.
        persist_stats: keep per-function counters (hits, misses, tokens and cost saved, per
            day) in backends that can (Redis, disk, object stores), for ``llm-memo stats``
            across processes: ``True`` (flushed every 30 s), seconds between flushes, or
            ``False`` (default; ``LLM_MEMO_PERSIST_STATS``). Flushed in the background and at
            exit, never on a call's own path.
        **directives: ``ttl``, ``max_age``, ``stale_if_error``, ``namespace``, ``enabled``,
            ``no_cache``, ``no_store``, ``only_if_cached``, ``threshold``.

    Raises:
        ConfigurationError: an unknown option or an invalid value, including a backend URL
            with an unknown scheme or option, a malformed one, or one whose extra is not
            installed (checked now, without opening anything).

    Example::

        configure(backend="redis://localhost:6379/0", ttl=3600, namespace="prod")

    .. versionadded:: 0.1.0
    """
    global _settings
    if backend is not UNSET:
        directives["backend"] = backend
    new_directives = Directives.build(**directives)
    with _lock:
        current = settings()
        updated = dataclasses.replace(current)
        updated.directives = new_directives.over(current.directives)
        if strict is not UNSET:
            updated.strict = _flag("strict", strict)
        if signing_keys is not UNSET:
            updated.signing_keys = _keys(signing_keys)
        if on_event is not UNSET:
            updated.on_event = (on_event,) if callable(on_event) else tuple(on_event)
        if allow_pickle is not UNSET:
            updated.allow_pickle = _flag("allow_pickle", allow_pickle)
        if wait_timeout is not UNSET:
            updated.wait_timeout = seconds("wait_timeout", wait_timeout, allow_none=False) or 0.0
        if lock is not UNSET:
            updated.lock = _flag("lock", lock)
        if lock_ttl is not UNSET:
            updated.lock_ttl = seconds("lock_ttl", lock_ttl, allow_none=False) or 0.0
        if compress_threshold is not UNSET:
            if not isinstance(compress_threshold, int) or compress_threshold < 0:
                raise ConfigurationError("compress_threshold must be a non-negative int")
            updated.compress_threshold = compress_threshold
        if grace is not UNSET:
            updated.grace = _grace(grace)
        if clock is not UNSET:
            if not callable(clock):
                raise ConfigurationError("clock must be a callable returning seconds")
            updated.clock = clock
        if embedder is not UNSET:
            updated.embedder = embedder
        if prices is not UNSET:
            updated.prices = _prices(prices)
        if persist_stats is not UNSET:
            updated.persist_stats = _persist("persist_stats", persist_stats)
        updated.generation = current.generation + 1
        _settings = updated
        return updated


def _replace(**changes: Any) -> Settings:
    """Internal: swap fields (used by the test fixture) and bump the generation."""
    global _settings
    with _lock:
        current = settings()
        updated = dataclasses.replace(current)
        for name, value in changes.items():
            setattr(updated, name, value)
        updated.generation = current.generation + 1
        _settings = updated
        return updated


def reset() -> None:
    """Forget ``configure()`` calls and re-read the environment on next use; close URL-built
    backends. For tests.

    .. versionadded:: 0.1.0
    """
    global _settings, _next_generation
    with _lock:
        if _settings is not None:
            _next_generation = _settings.generation + 1
        _settings = None
    close_backends()


# -- backends built from URLs ------------------------------------------------------------------

_backends: dict[tuple[str, bool], Any] = {}
_default_key = "<default>"


def backend_from_spec(spec: Any, asynchronous: bool) -> Any:
    """Turn a ``backend=`` value (URL, path, object, or UNSET for the default) into a backend.

    URL-built backends are cached per process. One that cannot be built comes back as an
    :class:`Unopened` stand-in that raises the failure from every operation; it is built again
    once its back-off has passed (``Unopened.due``).
    """
    if spec is UNSET:
        spec = _default_key
    elif not isinstance(spec, (str, os.PathLike)):
        return spec
    cache_key = (os.fspath(spec), asynchronous)
    backend = _backends.get(cache_key)
    if backend is not None and not (type(backend) is Unopened and backend.due()):
        return backend
    with _lock:
        backend = _backends.get(cache_key)
        if backend is None or (type(backend) is Unopened and backend.due()):
            backend = _build(cache_key[0], asynchronous, backend)
            _backends[cache_key] = backend
    return backend


def _build(spec: str, asynchronous: bool, before: Unopened | None) -> Any:
    from .backends import from_url
    from .backends._registry import Reopen, scheme_of

    if spec == _default_key:
        return _default_backend()
    # A disk cache's purge_expired() keeps entries for the configured grace window.
    options = {"grace": settings().grace} if scheme_of(spec) == "disk" else {}
    try:
        return from_url(spec, asynchronous=asynchronous, **options)
    except (BackendError, ConfigurationError, OSError) as exc:
        # Found at build time, not where the URL was given (which validated it): a folder
        # another process locks, no embedder configured yet, a driver refusing its settings.
        # Like any backend failure it fails open and is retried after a back-off.
        reopen = before.reopen if before is not None else Reopen()
        error = BackendError(f"cannot open backend {_redact(spec)}: {exc}")
        error.__cause__ = exc
        reopen.failed(error)
        return Unopened(_redact(spec), reopen)


def _redact(spec: str) -> str:
    # A URL's password never reaches a log line.
    head, sep, rest = spec.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return spec
    return f"{head}://{userinfo.partition(':')[0]}:***@{tail}"


def default_backend_url() -> str:
    """Where calls are cached when nothing is configured in code: ``LLM_MEMO_BACKEND``, else
    the embedded disk cache in the user's cache directory (what the CLI opens by default)."""
    if env := os.environ.get("LLM_MEMO_BACKEND", "").strip():
        return env
    from .backends.disk import default_directory

    return "disk://" + default_directory()


def _default_backend() -> Any:
    """The embedded default: a disk cache in the user's cache directory, or, for a user
    without a writable one (a service account with ``HOME=/nonexistent``), memory.

    Never a shared world-writable folder such as ``/tmp``: another user could plant entries.
    """
    from .backends.disk import DiskBackend, default_directory
    from .backends.memory import MemoryBackend

    disk = None
    try:
        directory = default_directory()
        home = os.path.expanduser("~")
        if directory.startswith(home + os.sep) and not os.path.isdir(home):
            # A service account's HOME=/nonexistent: creating it (as root could) is not ours.
            raise BackendError(f"{directory} is under the home directory {home}, which is absent")
        disk = DiskBackend(directory, grace=settings().grace)
        disk.open()
    except (BackendError, OSError) as exc:
        if disk is not None and _locked(exc):
            # Another process holds the cache's lock right now: the directory is fine. The
            # backend fails open meanwhile and opens again after its back-off.
            return disk
        logger.warning(
            "llm_memo: the default disk cache cannot be opened (%s); caching in memory for "
            "this process instead. Set LLM_MEMO_BACKEND or configure(backend=...) to a "
            "writable location to keep entries across runs",
            exc,
        )
        return MemoryBackend()
    return disk


def _locked(exc: BaseException) -> bool:
    import sqlite3

    cause = exc.__cause__
    return isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)


class Unopened:
    """Stands in for a backend that could not be built or opened.

    Every operation raises the failure as a :class:`~llm_memo.errors.BackendError` (the
    driver's exception chained), so the decorator's fail-open path handles it like any other
    backend failure: logged once per burst, counted, the call goes through; ``strict=True``
    raises :class:`~llm_memo.errors.BackendUnavailableError`. Once :meth:`due`, the backend is
    built again (back-off: 1 s doubling to 60 s).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("reopen", "spec")

    def __init__(self, spec: str, reopen: Any) -> None:
        self.spec = spec
        self.reopen = reopen

    def __repr__(self) -> str:
        return f"Unopened({self.spec!r})"

    def due(self) -> bool:
        """Whether building the backend may be tried again now."""
        return bool(self.reopen.due())

    def _fail(self) -> BackendError:
        return BackendError(str(self.reopen.error()))

    def get(self, key: str) -> Any:
        """Raise the failure to open."""
        raise self._fail() from self.reopen.cause

    def set(self, key: str, entry: Any, ttl: float | None) -> None:
        """Raise the failure to open."""
        raise self._fail() from self.reopen.cause

    def delete(self, key: str) -> bool:
        """Raise the failure to open."""
        raise self._fail() from self.reopen.cause

    def clear(self, prefix: str = "") -> int:
        """Raise the failure to open."""
        raise self._fail() from self.reopen.cause

    def close(self) -> None:
        """Nothing to release."""


def close_backends() -> None:
    """Close and forget every backend built from a URL."""
    with _lock:
        built = list(_backends.values())
        _backends.clear()
    for backend in built:
        close = getattr(backend, "close", None)
        if close is None:
            continue
        try:
            result = close()
            if inspect.iscoroutine(result):
                _run_close(result)
        except (BackendError, OSError, RuntimeError):  # closing is best effort: nothing is lost
            continue


def _run_close(coro: Any) -> None:
    # An async backend's close() is a coroutine: await it now when no loop is running here,
    # else leave it to the running loop.
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    task = loop.create_task(coro)
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[Any]] = set()


@_fork.on_fork
def _after_fork_in_child() -> None:
    # A forked worker must not reuse the parent's connections or a lock another thread held
    # at fork time: forget URL-built backends (they are rebuilt on first use) and re-create
    # the locks.
    global _lock
    _lock = threading.RLock()
    _backends.clear()


# Backends built from URLs read configure(embedder=...) through the registry, which asks this
# reader (see backends._registry.configured): config depends on backends, never the reverse.
_registry.supply_settings(lambda name: getattr(settings(), name))
