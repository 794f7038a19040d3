"""``disk:///path`` (or a bare path): a diskcache store that never unpickles.

diskcache is SQLite plus files, safe across threads and processes, with native expiry and a size
limit. By default it pickles any value that is not bytes/str/int/float and unpickles whatever it
finds, so a writable cache directory is a code-execution hole (CVE-2025-69872). llm_memo hands
it bytes only, and :class:`SafeDisk` refuses every pickle mode in both directions: a pickled key
or value found on disk is a miss, never ``pickle.loads``.

This is the embedded default: with nothing configured, llm_memo uses a DiskBackend in the user's
cache directory (:func:`default_directory`), so a script run twice hits on the second run.

Opening is a backend operation, not construction: ``DiskBackend(...)`` validates its settings
and touches nothing; the directory and the SQLite file are opened on first use. A cache that
cannot be opened (a read-only directory, a path under a regular file) raises
:class:`~llm_memo.errors.BackendError` from each operation, so cached calls go through, and is
opened again after a back-off (:class:`~llm_memo.backends._registry.Reopen`), so caching resumes
once the directory is fixed.

Code running on an event loop uses the store inline (no thread hop), and a short SQLite busy
timeout (``async_timeout``) bounds how long a write waits for another process's lock: a timeout
is a backend failure (a miss, counted) rather than a stalled loop.

Not here: value encoding (``llm_memo.codec``); the backend stores :meth:`Entry.to_bytes` output.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from asyncio.events import _get_running_loop
from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import diskcache

from .. import _fork
from .._policy import retained_until
from ..entry import Entry
from ..errors import BackendError, CodecError, ConfigurationError
from . import MISSING, Missing
from ._disk_counters import DiskCounters
from ._registry import Reopen

__all__ = [
    "DEFAULT_ASYNC_TIMEOUT",
    "DEFAULT_GRACE",
    "DEFAULT_SIZE_LIMIT",
    "DEFAULT_TIMEOUT",
    "DiskBackend",
    "SafeDisk",
    "default_directory",
]

#: Default size limit of a disk cache: 1 GiB. diskcache evicts least-recently-stored entries
#: beyond it (checked on writes, by diskcache's culling).
DEFAULT_SIZE_LIMIT = 1024**3

#: Seconds :meth:`DiskBackend.purge_expired` keeps an entry past its expiry unless told
#: otherwise: 24 h, the default of ``configure(grace=...)`` (``config.DEFAULT_GRACE``; a test
#: compares them). The config layer passes the configured grace to the backends it builds.
DEFAULT_GRACE = 24 * 3600.0

#: Seconds a writer waits for SQLite's lock before the write counts as a backend failure.
DEFAULT_TIMEOUT = 2.0
#: The same, for code running on an event loop: short, so the loop never stalls on the lock.
DEFAULT_ASYNC_TIMEOUT = 0.1

# diskcache settings that may be passed through (each is also written to the cache's Settings
# table, so anything else is refused before it gets there). size_limit is a parameter of ours.
_SETTINGS = frozenset(diskcache.DEFAULT_SETTINGS).difference({"size_limit"})
# Query parameters of disk:// URLs, and how to read them.
_QUERY = {"size_limit": int, "timeout": float, "async_timeout": float}

# Driver errors that mean "the store failed", wrapped in BackendError for the fail-open path.
_STORE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class UnsafeEntryError(CodecError):
    """The disk held a pickled key or value; it is refused unread."""


class SafeDisk(diskcache.Disk):  # type: ignore[misc]
    """A :class:`diskcache.Disk` that stores and returns ``bytes`` and ``str`` keys only.

    Pickle mode is refused on write (``TypeError``) and on read (:class:`UnsafeEntryError`),
    whoever wrote the entry.

    .. versionadded:: 0.1.0
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError("llm_memo's disk backend only stores str keys")
        return super().put(key)  # type: ignore[no-any-return]

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeEntryError("refusing to unpickle a disk cache key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError("llm_memo's disk backend only stores bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY) or read:
            raise UnsafeEntryError(f"refusing to read a disk cache value stored in mode {mode}")
        return super().fetch(mode, filename, value, read)


class _Cache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's Cache with its lock retries bounded.

    Opening writes the Settings table and sets pragmas, and each new connection sets pragmas
    again; diskcache retries those statements for 60 s while another process holds the lock.
    Here they give up after the backend's ``timeout`` (``async_timeout`` on an event loop), the
    same bound as any write, and the failure fails open like any other.
    """

    def __init__(self, directory: str, *, waits: tuple[float, float], **kwargs: Any) -> None:
        self._waits = waits  # (off an event loop, on one)
        super().__init__(directory, **kwargs)

    def _wait(self) -> float:
        return self._waits[_get_running_loop() is not None]

    @property
    def _sql_retry(self) -> Any:
        sql = self._sql
        limit = self._wait()

        def execute(statement: str, *args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            while True:
                try:
                    return sql(statement, *args, **kwargs)
                except sqlite3.OperationalError as exc:
                    if str(exc) != "database is locked" or time.monotonic() - start > limit:
                        raise
                    time.sleep(0.001)

        return execute

    def reset(self, key: str, value: Any = diskcache.core.ENOVAL, update: bool = True) -> Any:
        if update or value is diskcache.core.ENOVAL or not key.startswith("sqlite_"):
            return super().reset(key, value, update)
        # A pragma only (opening, or a new connection): set it unless it already has the value.
        pragma = key[len("sqlite_") :]
        start, limit = time.monotonic(), self._wait()
        while True:
            try:
                rows = self._sql(f"PRAGMA {pragma}").fetchall()
                if not rows or rows[0][0] != value:
                    self._sql(f"PRAGMA {pragma} = {value}").fetchall()
                break
            except sqlite3.OperationalError as exc:
                if str(exc) != "database is locked" or time.monotonic() - start > limit:
                    raise
                time.sleep(0.001)
        setattr(self, key, value)
        return value


def default_directory() -> str:
    """Where the embedded default cache lives: ``<user cache dir>/llm_memo/cache``.

    The user cache directory follows the platform (``~/.cache`` or ``$XDG_CACHE_HOME`` on
    Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows), via platformdirs.
    ``LLM_MEMO_BACKEND`` (any backend URL or a path) replaces it.
    """
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("llm_memo", appauthor=False), "cache")


class DiskBackend:
    """A persistent, multi-process backend on diskcache.

    Args:
        directory: the cache directory (created on first use if missing); defaults to
            :func:`default_directory`.
        size_limit: bytes on disk before diskcache evicts least-recently-stored entries.
        timeout: seconds a write waits for SQLite's lock before failing (the decorator then
            counts a backend failure; the result is still returned).
        async_timeout: the same for code running on an event loop (``async def`` callers),
            kept short so that another process holding the lock never stalls the loop.
        grace: seconds :meth:`purge_expired` keeps an entry past its expiry (and its own stale
            window), so a read-time ``stale_if_error`` still finds it. The backends llm_memo
            builds from ``configure(backend=...)`` get ``configure(grace=...)``.
        **settings: further diskcache settings (``eviction_policy``, ``cull_limit``,
            ``disk_min_file_size``, ``sqlite_*``...), passed through; other names are refused.

    Raises:
        ConfigurationError: an unknown setting or a bad value (nothing is opened to find out).

    Example::

        @llm_cached(backend=DiskBackend("/var/cache/llm", size_limit=5 * 1024**3))
        def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
        async_timeout: float = DEFAULT_ASYNC_TIMEOUT,
        grace: float = DEFAULT_GRACE,
        **settings: Any,
    ) -> None:
        _check_settings(size_limit, timeout, async_timeout, settings)
        _check_seconds("grace", grace)
        self.grace = float(grace)
        self.directory = os.fspath(directory) if directory is not None else default_directory()
        self.size_limit = size_limit
        self.timeout = float(timeout)
        self.async_timeout = float(async_timeout)
        self._settings = settings
        self._cache: diskcache.Cache | None = None
        self._open_lock = threading.Lock()
        self._reopen = Reopen()
        # Per thread: (id of the SQLite connection, whether it has the async busy timeout).
        self._local = threading.local()
        self._counters = DiskCounters(self.directory, self.timeout)
        _fork.register(self)

    def _after_fork(self) -> None:
        # Another thread may have held the lock at fork time; diskcache itself reconnects.
        self._open_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DiskBackend:
        """Build from ``disk:///path?size_limit=N&timeout=S&async_timeout=S``; ``disk://``
        alone = the default directory. Opens nothing.

        Raises:
            ConfigurationError: unknown or malformed query parameters or options.
        """
        path, kwargs = _parse(url, options)
        return cls(path, **kwargs)

    @classmethod
    def check_url(cls, url: str, **options: Any) -> None:
        """Validate ``url`` and ``options`` as :meth:`from_url` would, touching nothing.

        Raises:
            ConfigurationError: unknown or malformed query parameters or options.
        """
        _, kwargs = _parse(url, options)
        _check_seconds("grace", kwargs.pop("grace", DEFAULT_GRACE))
        size_limit = kwargs.pop("size_limit", DEFAULT_SIZE_LIMIT)
        timeout = kwargs.pop("timeout", DEFAULT_TIMEOUT)
        async_timeout = kwargs.pop("async_timeout", DEFAULT_ASYNC_TIMEOUT)
        _check_settings(size_limit, timeout, async_timeout, kwargs)

    def __repr__(self) -> str:
        return f"DiskBackend({self.directory!r}, size_limit={self.size_limit})"

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the cache now (it is otherwise opened on first use).

        Raises:
            BackendError: the directory or the SQLite file cannot be created or opened.
        """
        self._store()

    def _open(self) -> diskcache.Cache:
        with self._open_lock:
            cache = self._cache
            if cache is not None:
                return cache
            reopen = self._reopen
            if not reopen.due():
                raise reopen.error() from reopen.cause
            try:
                cache = _Cache(
                    self.directory,
                    waits=(self.timeout, self.async_timeout),
                    timeout=self.timeout,
                    disk=SafeDisk,
                    size_limit=self.size_limit,
                    **self._settings,
                )
            except _STORE_ERRORS as exc:
                error = BackendError(f"cannot open disk cache at {self.directory}: {exc}")
                raise reopen.failed(error) from exc
            reopen.succeeded()
            self._local = threading.local()  # connections of a closed cache are gone
            self._cache = cache
            return cache

    def _store(self) -> diskcache.Cache:
        """The open cache, with the busy timeout that suits the calling thread."""
        cache = self._cache
        if cache is None:
            cache = self._open()
        inline = _get_running_loop() is not None
        local = self._local
        state = getattr(local, "state", None)
        if state is None and not inline:
            return cache  # a sync caller's connection already has ``timeout``
        con = cache._con
        if state != (id(con), inline):
            try:
                wait = self.async_timeout if inline else self.timeout
                con.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            except sqlite3.Error as exc:
                raise BackendError(f"disk cache at {self.directory}: {exc}") from exc
            local.state = (id(con), inline)
        return cache

    # -- the Backend protocol --------------------------------------------------------------

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`.

        A pickled or malformed value on disk is a miss.

        Raises:
            BackendError: the cache cannot be opened, or SQLite or the filesystem failed.
        """
        try:
            data = self._store().get(key, default=None)
        except UnsafeEntryError:
            return MISSING
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache read failed: {_describe(exc)}") from exc
        if type(data) is not bytes:
            return MISSING
        try:
            return Entry.from_bytes(data)
        except CodecError:
            return MISSING

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` with diskcache's native expiry of ``ttl`` seconds.

        Raises:
            BackendError: the cache cannot be opened, or SQLite or the filesystem failed (disk
                full, the lock not free within the busy timeout...).
        """
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        try:
            self._store().set(key, entry.to_bytes(), expire=ttl)
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache write failed: {_describe(exc)}") from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        try:
            return bool(self._store().delete(key))
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache delete failed: {_describe(exc)}") from exc

    def clear(self, prefix: str = "") -> int:
        """Remove every key starting with ``prefix`` (all keys for ``""``)."""
        try:
            cache = self._store()
            if not prefix:
                return int(cache.clear(retry=True))
            removed = 0
            for key in list(self.keys(prefix)):
                removed += bool(cache.delete(key, retry=True))
            return removed
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache clear failed: {_describe(exc)}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate live keys starting with ``prefix``, in key order.

        Reads the index directly (only text keys, never unpickling anything diskcache may
        have stored for another client) and skips entries past their retention.
        """
        upper = prefix + "\U0010ffff"
        try:
            rows = (
                self._store()
                ._sql(
                    "SELECT key FROM Cache WHERE raw = 1 AND typeof(key) = 'text'"
                    " AND key >= ? AND key < ? AND (expire_time IS NULL OR expire_time > ?)"
                    " ORDER BY key",
                    (prefix, upper, time.time()),
                )
                .fetchall()
            )
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache listing failed: {_describe(exc)}") from exc
        return iter([row[0] for row in rows])

    def purge_expired(self, grace: float | None = None) -> int:
        """Delete entries that can no longer serve anything; return how many were removed.

        An entry is kept until its expiry plus the larger of its own stale window and the
        grace window (``grace`` seconds; default: the backend's :attr:`grace`, 24 h unless set),
        so a ``stale_if_error`` given at read time still finds it. diskcache's own expiry
        (which it otherwise culls lazily) is already that deadline for entries written by
        this version.
        """
        if grace is None:
            grace = self.grace
        now = time.time()
        try:
            cache = self._store()
            removed = int(cache.expire())
            for key in self.keys():
                entry = self.get(key)
                if entry is MISSING:
                    continue
                until = retained_until(entry, grace)
                if until is not None and until < now:
                    removed += bool(cache.delete(key))
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache purge failed: {_describe(exc)}") from exc
        return removed

    def close(self) -> None:
        """Close the SQLite connections (the cache opens again if used)."""
        with self._open_lock:
            cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()
        self._counters.close()

    # -- the Counting protocol (persist_stats; ``_disk_counters.py``) -------------------------

    def add_counters(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        """Add a batch of per-function counters (diskcache ``incr``, one transaction)."""
        self._counters.add(batch)

    def read_counters(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """Every process's counters for days ``since`` and later."""
        return self._counters.read(since)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, diskcache.Timeout):
        return "the SQLite lock was not free within the busy timeout (another writer holds it)"
    return str(exc) or type(exc).__name__


def _parse(url: str, options: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    parts = urlsplit(url)
    if parts.scheme and parts.scheme.lower() != "disk":
        raise ConfigurationError(f"{url!r} is not a disk:// URL")
    if parts.fragment:
        raise ConfigurationError(f"disk:// URLs take no fragment ({url!r})")
    path = unquote(parts.netloc + parts.path) or None
    kwargs: dict[str, Any] = dict(options)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = _QUERY.get(name)
        if convert is None:
            raise ConfigurationError(
                f"unknown disk:// option {name!r}; known: {', '.join(_QUERY)} (other diskcache "
                "settings as DiskBackend(...) keyword arguments)"
            )
        try:
            kwargs[name] = convert(value)
        except ValueError as exc:
            raise ConfigurationError(f"disk:// option {name}={value!r} has a bad value") from exc
    return path, kwargs


def _check_seconds(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{name} must be a non-negative number of seconds")


def _check_settings(
    size_limit: Any, timeout: Any, async_timeout: Any, settings: Mapping[str, Any]
) -> None:
    if isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit <= 0:
        raise ConfigurationError(f"size_limit must be a positive int, got {size_limit!r}")
    for name, value in (("timeout", timeout), ("async_timeout", async_timeout)):
        _check_seconds(name, value)
    policy = settings.get("eviction_policy", "least-recently-stored")
    if policy not in diskcache.EVICTION_POLICY:
        raise ConfigurationError(
            f"eviction_policy must be one of {', '.join(diskcache.EVICTION_POLICY)}, got {policy!r}"
        )
    unknown = sorted(set(settings).difference(_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"unknown disk backend setting(s) {', '.join(unknown)}; known: size_limit, timeout, "
            f"async_timeout, {', '.join(sorted(_SETTINGS))}"
        )
