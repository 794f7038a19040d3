"""URL scheme -> backend class, imported only when a URL asks for it.

Each row names the class as a dotted ``"module:Class"`` string plus the extra that provides its
driver, so ``import llm_memo`` stays free of optional imports and a missing extra becomes a
:class:`~llm_memo.errors.MissingDependencyError` that says what to install. The pattern is
fsspec's ``registry.py``.

A row may name a different class for async callers (``AsyncRedisBackend`` for ``redis://``);
memory and disk answer in microseconds and serve both from one class.

Any scheme fsspec knows (``hdfs://``, ``sftp://``, ...) that has no row of its own goes to the
object-store backend.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, MissingDependencyError

__all__ = ["from_url", "register_backend", "scheme_of"]


@dataclass(frozen=True)
class _Row:
    sync: str
    asynchronous: str
    extra: str | None


_lock = threading.Lock()
_ROWS: dict[str, _Row] = {}


def register_backend(
    scheme: str,
    target: str | type[Any],
    *,
    async_target: str | type[Any] | None = None,
    extra: str | None = None,
    replace: bool = False,
) -> None:
    """Map a URL scheme to a backend class with a ``from_url(url, **options)`` classmethod.

    Args:
        scheme: the URL scheme, such as ``"memcached"``.
        target: the class, or its dotted path ``"package.module:Class"`` (imported on first use).
        async_target: the class async callers get; defaults to ``target``.
        extra: the pip extra that provides the driver, named in the error when it is missing.
        replace: allow replacing an existing row.

    Raises:
        ConfigurationError: the scheme is taken and ``replace`` is false.

    Example::

        register_backend("memcached", "my_pkg.cache:MemcachedBackend", extra="memcached")

    .. versionadded:: 0.1.0
    """
    scheme = scheme.lower()
    sync = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    if async_target is None:
        asynchronous = sync
    elif isinstance(async_target, str):
        asynchronous = async_target
    else:
        asynchronous = f"{async_target.__module__}:{async_target.__qualname__}"
    with _lock:
        if scheme in _ROWS and not replace:
            raise ConfigurationError(
                f"the URL scheme {scheme!r} is already registered; pass replace=True to override"
            )
        _ROWS[scheme] = _Row(sync, asynchronous, extra)


_OBJECT_STORE = "llm_memo.backends.objectstore:ObjectStoreBackend"
_ASYNC_OBJECT_STORE = "llm_memo.backends.objectstore:AsyncObjectStoreBackend"
_REDIS = ("llm_memo.backends.redis:RedisBackend", "llm_memo.backends.redis:AsyncRedisBackend")
_MEMORY = "llm_memo.backends.memory:MemoryBackend"
_DISK = "llm_memo.backends.disk:DiskBackend"

for _scheme, _sync, _async, _extra in [
    ("memory", _MEMORY, _MEMORY, None),
    ("disk", _DISK, _DISK, None),
    ("file", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "file"),
    ("s3", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "s3"),
    ("s3a", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "s3"),
    ("gs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "gcs"),
    ("gcs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "gcs"),
    ("az", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure"),
    ("abfs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure"),
    ("abfss", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure"),
    ("redis", *_REDIS, "redis"),
    ("rediss", *_REDIS, "redis"),
    ("unix", *_REDIS, "redis"),
    ("redis+cluster", *_REDIS, "redis"),
    ("rediss+cluster", *_REDIS, "redis"),
    ("redis+sentinel", *_REDIS, "redis"),
    (
        "redis+semantic",
        "llm_memo.backends.semantic.redis:RedisSemanticBackend",
        "llm_memo.backends.semantic.redis:AsyncRedisSemanticBackend",
        "redis,semantic-local",
    ),
    (
        "rediss+semantic",
        "llm_memo.backends.semantic.redis:RedisSemanticBackend",
        "llm_memo.backends.semantic.redis:AsyncRedisSemanticBackend",
        "redis,semantic-local",
    ),
    (
        "qdrant",
        "llm_memo.backends.semantic.qdrant:QdrantSemanticBackend",
        "llm_memo.backends.semantic.qdrant:AsyncQdrantSemanticBackend",
        "qdrant",
    ),
    (
        "qdrant+local",
        "llm_memo.backends.semantic.qdrant:QdrantSemanticBackend",
        "llm_memo.backends.semantic.qdrant:AsyncQdrantSemanticBackend",
        "qdrant",
    ),
]:
    _ROWS[_scheme] = _Row(_sync, _async, _extra)


def scheme_of(url: str) -> str:
    """The lower-cased scheme of ``url``; ``"disk"`` for a bare filesystem path."""
    head, sep, _ = url.partition("://")
    if not sep:
        return "disk"
    return head.lower()


def _row_for(scheme: str) -> _Row:
    with _lock:
        row = _ROWS.get(scheme)
    if row is not None:
        return row
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        known_implementations = {}
    if scheme in known_implementations:
        return _Row(_OBJECT_STORE, _ASYNC_OBJECT_STORE, None)
    with _lock:
        known = ", ".join(sorted(_ROWS))
    raise ConfigurationError(
        f"unknown backend URL scheme {scheme!r}; known schemes: {known} "
        "(or any fsspec protocol once fsspec is installed), or a bare filesystem path for the "
        "disk backend; register your own with llm_memo.backends.register_backend()"
    )


def _load(target: str, extra: str | None, scheme: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'llm-memo[{extra}]'" if extra else "install its driver package"
        # (extra may name several, comma-separated: "redis,semantic-local")
        raise MissingDependencyError(
            f"the {scheme}:// backend needs a package that is not installed ({exc.name or exc}); "
            f"fix: {hint}"
        ) from exc
    return getattr(module, attr)


def from_url(url: str | os.PathLike[str], *, asynchronous: bool = False, **options: Any) -> Any:
    """Build a backend from a URL (``memory://``, ``disk:///path``, ``s3://bucket/prefix``, ...).

    Args:
        url: a backend URL, or a bare filesystem path for the disk backend.
        asynchronous: return the class async callers use (``AsyncRedisBackend`` for
            ``redis://``); memory and disk serve both.
        **options: passed to the backend class's ``from_url``.

    Raises:
        ConfigurationError: unknown scheme or invalid URL.
        MissingDependencyError: the scheme's extra is not installed; the message says which.

    Example::

        backend = from_url("memory://?max_entries=1000")

    .. versionadded:: 0.1.0
    """
    text = os.fspath(url)
    scheme = scheme_of(text)
    row = _row_for(scheme)
    if scheme == "disk" and "://" not in text:
        text = "disk://" + os.path.abspath(os.path.expanduser(text))
    cls = _load(row.asynchronous if asynchronous else row.sync, row.extra, scheme)
    return cls.from_url(text, **options)
