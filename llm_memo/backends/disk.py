"""``disk:///path`` (or a bare path): a diskcache store that never unpickles.

diskcache is SQLite plus files, safe across threads and processes, with native expiry and a size
limit. By default it pickles any value that is not bytes/str/int/float and unpickles whatever it
finds, so a writable cache directory is a code-execution hole (CVE-2025-69872). llm_memo hands
it bytes only, and :class:`SafeDisk` refuses every pickle mode in both directions: a pickled key
or value found on disk is a miss, never ``pickle.loads``.

This is the embedded default: with nothing configured, llm_memo uses a DiskBackend in the user's
cache directory (:func:`default_directory`), so a script run twice hits on the second run.

Not here: value encoding (``codec.py``); the backend stores :meth:`Entry.to_bytes` output.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import diskcache

from ..entry import Entry
from ..errors import BackendError, CodecError, ConfigurationError
from . import MISSING, Missing

__all__ = ["DEFAULT_SIZE_LIMIT", "DiskBackend", "SafeDisk", "default_directory"]

#: Default size limit of a disk cache: 1 GiB. diskcache evicts least-recently-stored entries
#: beyond it (checked on writes, by diskcache's culling).
DEFAULT_SIZE_LIMIT = 1024**3

#: Seconds a writer waits for SQLite's lock before the write counts as a backend failure.
DEFAULT_TIMEOUT = 2.0

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
        directory: the cache directory (created if missing); defaults to
            :func:`default_directory`.
        size_limit: bytes on disk before diskcache evicts least-recently-stored entries.
        timeout: seconds to wait for SQLite's write lock before failing (the decorator then
            falls through to the call).
        **settings: further diskcache settings (``eviction_policy``, ``cull_limit``,
            ``disk_min_file_size``...), passed through.

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
        **settings: Any,
    ) -> None:
        if size_limit <= 0:
            raise ConfigurationError("size_limit must be positive")
        self.directory = os.fspath(directory) if directory is not None else default_directory()
        self.size_limit = size_limit
        try:
            self._cache = diskcache.Cache(
                self.directory,
                timeout=timeout,
                disk=SafeDisk,
                size_limit=size_limit,
                **settings,
            )
        except _STORE_ERRORS as exc:
            raise BackendError(f"cannot open disk cache at {self.directory}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DiskBackend:
        """Build from ``disk:///path?size_limit=N&timeout=S``; ``disk://`` alone = default dir.

        Raises:
            ConfigurationError: unknown or malformed query parameters.
        """
        parts = urlsplit(url)
        path = unquote(parts.netloc + parts.path) or None
        kwargs: dict[str, Any] = dict(options)
        for name, value in parse_qsl(parts.query):
            try:
                if name == "size_limit":
                    kwargs[name] = int(value)
                elif name == "timeout":
                    kwargs[name] = float(value)
                else:
                    raise ConfigurationError(
                        f"unknown disk:// option {name!r}; known: size_limit, timeout"
                    )
            except ValueError as exc:
                raise ConfigurationError(f"disk:// option {name} has a bad value") from exc
        return cls(path, **kwargs)

    def __repr__(self) -> str:
        return f"DiskBackend({self.directory!r}, size_limit={self.size_limit})"

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`.

        A pickled or malformed value on disk is a miss.

        Raises:
            BackendError: SQLite or the filesystem failed.
        """
        try:
            data = self._cache.get(key, default=None)
        except UnsafeEntryError:
            return MISSING
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache read failed: {exc}") from exc
        if type(data) is not bytes:
            return MISSING
        try:
            return Entry.from_bytes(data)
        except CodecError:
            return MISSING

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` with diskcache's native expiry of ``ttl`` seconds.

        Raises:
            BackendError: SQLite or the filesystem failed (disk full, lock timeout...).
        """
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        try:
            self._cache.set(key, entry.to_bytes(), expire=ttl)
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache write failed: {exc}") from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        try:
            return bool(self._cache.delete(key))
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache delete failed: {exc}") from exc

    def clear(self, prefix: str = "") -> int:
        """Remove every key starting with ``prefix`` (all keys for ``""``)."""
        try:
            if not prefix:
                return int(self._cache.clear(retry=True))
            removed = 0
            for key in list(self.keys(prefix)):
                removed += bool(self._cache.delete(key, retry=True))
            return removed
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache clear failed: {exc}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate live keys starting with ``prefix``, in key order.

        Reads the index directly (only text keys, never unpickling anything diskcache may
        have stored for another client) and skips expired entries.
        """
        upper = prefix + "\U0010ffff"
        try:
            rows = self._cache._sql(
                "SELECT key FROM Cache WHERE raw = 1 AND typeof(key) = 'text'"
                " AND key >= ? AND key < ? AND (expire_time IS NULL OR expire_time > ?)"
                " ORDER BY key",
                (prefix, upper, time.time()),
            ).fetchall()
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache listing failed: {exc}") from exc
        return iter([row[0] for row in rows])

    def purge_expired(self) -> int:
        """Delete entries that can no longer serve anything: past diskcache's expiry (which it
        otherwise culls lazily), or past their own expiry plus stale window. Return how many
        were removed."""
        now = time.time()
        try:
            removed = int(self._cache.expire())
            for key in self.keys():
                entry = self.get(key)
                if entry is MISSING:
                    continue
                retain = entry.retain_until
                if retain is not None and retain < now:
                    removed += bool(self._cache.delete(key))
        except _STORE_ERRORS as exc:
            raise BackendError(f"disk cache purge failed: {exc}") from exc
        return removed

    def close(self) -> None:
        """Close the SQLite connections."""
        self._cache.close()
