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
==============================  ====================================================

Backends named by URL are built once per process (per URL, per sync/async flavour) and
rebuilt in a forked child, so gunicorn or celery workers never share a parent's sockets.

Not here: what the directives mean (``_policy.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .controls import EMPTY, UNSET, Directives, Unset, seconds
from .errors import BackendError, ConfigurationError
from .events import Event

__all__ = ["Settings", "configure", "settings"]

#: Seconds a caller waits for an identical call already in flight before calling itself.
DEFAULT_WAIT_TIMEOUT = 300.0
#: Seconds a cross-process lock (``lock=True``) lives if its holder dies without releasing it.
DEFAULT_LOCK_TTL = 120.0
#: Values whose encoded form is larger than this are zlib-compressed when that saves space.
DEFAULT_COMPRESS_THRESHOLD = 16 * 1024

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
    clock: Callable[[], float] = time.time
    embedder: Any = None
    generation: int = 0
    # Set by the pytest fixture: a backend that replaces every decorator's and configure's.
    override_backend: Any = None
    observers: tuple[Callable[[Event], Any], ...] = field(default=())


_lock = threading.RLock()
_settings: Settings | None = None
_next_generation = 0


def _bool_env(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


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
    return result


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
    clock: Callable[[], float] | Unset = UNSET,
    embedder: Any = UNSET,
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
        clock: the time source for entry timestamps (tests pass a fake clock).
        embedder: the embedder semantic backends built from URLs use.
        **directives: ``ttl``, ``max_age``, ``stale_if_error``, ``namespace``, ``enabled``,
            ``no_cache``, ``no_store``, ``only_if_cached``, ``threshold``.

    Raises:
        ConfigurationError: an unknown option or an invalid value.

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
        if clock is not UNSET:
            if not callable(clock):
                raise ConfigurationError("clock must be a callable returning seconds")
            updated.clock = clock
        if embedder is not UNSET:
            updated.embedder = embedder
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

    URL-built backends are cached per process.
    """
    if spec is UNSET:
        spec = _default_key
    elif not isinstance(spec, (str, os.PathLike)):
        return spec
    cache_key = (os.fspath(spec), asynchronous)
    backend = _backends.get(cache_key)
    if backend is not None:
        return backend
    with _lock:
        backend = _backends.get(cache_key)
        if backend is None:
            from .backends import from_url

            if spec == _default_key:
                from .backends.disk import DiskBackend

                backend = DiskBackend()
            else:
                backend = from_url(spec, asynchronous=asynchronous)
            _backends[cache_key] = backend
    return backend


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


def _after_fork_in_child() -> None:
    # A forked worker must not reuse the parent's connections or a lock another thread held
    # at fork time: forget URL-built backends (they are rebuilt on first use) and re-create
    # the locks.
    global _lock
    _lock = threading.RLock()
    _backends.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
