"""URL scheme -> backend class, imported only when a URL asks for it.

Each row names the class as a dotted ``"module:Class"`` string plus the extra that provides its
driver, so ``import llm_memo`` stays free of optional imports and a missing extra becomes a
:class:`~llm_memo.errors.MissingDependencyError` that says what to install. The pattern is
fsspec's ``registry.py``.

A row may name a different class for async callers (``AsyncRedisBackend`` for ``redis://``);
memory and disk answer in microseconds and serve both from one class.

Any scheme fsspec knows (``hdfs://``, ``sftp://``, ...) that has no row of its own goes to the
object-store backend.

:func:`check_url` validates a URL where it is given (``configure``, the decorator,
``cache_controls``) without building or opening anything: the scheme, the URL's shape, the
options of backends whose check is cheap, and whether the extra is installed (looked up with
``importlib.util.find_spec``, so a heavy driver is not imported to say it is there). What it
cannot see (a directory that cannot be created, a server that is down) is found at open time and
fails open. :class:`Reopen` is the back-off a backend uses between attempts to open.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import BackendError, ConfigurationError, MissingDependencyError

__all__ = [
    "OPEN_RETRY_MAX",
    "OPEN_RETRY_MIN",
    "Reopen",
    "check_url",
    "from_url",
    "register_backend",
    "scheme_of",
]

#: Seconds before a backend that failed to open is tried again; doubles per failure...
OPEN_RETRY_MIN = 1.0
#: ...up to this many seconds.
OPEN_RETRY_MAX = 60.0


@dataclass(frozen=True)
class _Row:
    sync: str | type[Any]
    asynchronous: str | type[Any]
    extra: str | None
    # Top-level modules the driver needs, looked up (not imported) by check_url.
    requires: tuple[str, ...] = ()
    # "module:Class.method" validating (url, **options) without I/O; imported by check_url,
    # so it names light modules only (None: the scheme and the URL's shape are checked).
    check: str | None = None


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
    # A class is kept as is (a class defined in a function has no importable path).
    sync = target
    asynchronous = sync if async_target is None else async_target
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
_REDIS_CHECK = "llm_memo.backends._registry:_check_redis"
_STORE_CHECK = "llm_memo.backends._registry:_check_object_store"
_S3_MODULES = ("fsspec", "s3fs")
_GCS_MODULES = ("fsspec", "gcsfs")
_AZURE_MODULES = ("fsspec", "adlfs")

for _scheme, _sync, _async, _extra, _requires, _check in [
    ("memory", _MEMORY, _MEMORY, None, (), "llm_memo.backends.memory:MemoryBackend.check_url"),
    ("disk", _DISK, _DISK, None, (), "llm_memo.backends.disk:DiskBackend.check_url"),
    ("file", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "file", ("fsspec",), _STORE_CHECK),
    ("s3", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "s3", _S3_MODULES, _STORE_CHECK),
    ("s3a", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "s3", _S3_MODULES, _STORE_CHECK),
    ("gs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "gcs", _GCS_MODULES, _STORE_CHECK),
    ("gcs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "gcs", _GCS_MODULES, _STORE_CHECK),
    ("az", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure", _AZURE_MODULES, _STORE_CHECK),
    ("abfs", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure", _AZURE_MODULES, _STORE_CHECK),
    ("abfss", _OBJECT_STORE, _ASYNC_OBJECT_STORE, "azure", _AZURE_MODULES, _STORE_CHECK),
    ("redis", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    ("rediss", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    ("unix", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    ("redis+cluster", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    ("rediss+cluster", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    ("redis+sentinel", *_REDIS, "redis", ("redis",), _REDIS_CHECK),
    (
        "redis+semantic",
        "llm_memo.backends.semantic.redis:RedisSemanticBackend",
        "llm_memo.backends.semantic.redis:AsyncRedisSemanticBackend",
        "redis,semantic-local",
        ("redis", "numpy"),
        None,
    ),
    (
        "rediss+semantic",
        "llm_memo.backends.semantic.redis:RedisSemanticBackend",
        "llm_memo.backends.semantic.redis:AsyncRedisSemanticBackend",
        "redis,semantic-local",
        ("redis", "numpy"),
        None,
    ),
    (
        "qdrant",
        "llm_memo.backends.semantic.qdrant:QdrantSemanticBackend",
        "llm_memo.backends.semantic.qdrant:AsyncQdrantSemanticBackend",
        "qdrant",
        ("qdrant_client", "numpy"),
        None,
    ),
    (
        "qdrant+local",
        "llm_memo.backends.semantic.qdrant:QdrantSemanticBackend",
        "llm_memo.backends.semantic.qdrant:AsyncQdrantSemanticBackend",
        "qdrant",
        ("qdrant_client", "numpy"),
        None,
    ),
    (
        "semantic+local",
        "llm_memo.backends.semantic.embedded:EmbeddedSemanticBackend",
        "llm_memo.backends.semantic.embedded:EmbeddedSemanticBackend",
        "ann,semantic-local",
        ("usearch", "numpy"),
        "llm_memo.backends.semantic.embedded._url:check_url",
    ),
    (
        "recordings",
        "llm_memo.recording:RecordingBackend",
        "llm_memo.recording:RecordingBackend",
        None,
        (),
        "llm_memo.backends._registry:_check_recordings",
    ),
]:
    _ROWS[_scheme] = _Row(_sync, _async, _extra, _requires, _check)


# -- settings the configuration layer supplies ----------------------------------------------------
# A backend built from a URL may need a setting given to llm_memo.configure() (a semantic backend
# reads configure(embedder=...)). llm_memo.config installs its reader here when it is imported and
# backends ask for a setting by name, so the dependency points down: nothing under backends/
# imports config.
_settings_reader: Callable[[str], Any] | None = None


def supply_settings(reader: Callable[[str], Any]) -> None:
    """Install ``reader(name)``, the configured value of a setting (``llm_memo.config`` does)."""
    global _settings_reader
    _settings_reader = reader


def configured(name: str) -> Any:
    """The value ``configure()`` holds for the setting ``name`` (``None`` without a reader)."""
    reader = _settings_reader
    return None if reader is None else reader(name)


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


def _missing(scheme: str, extra: str | None, what: object) -> MissingDependencyError:
    hint = f"pip install 'llm-memo[{extra}]'" if extra else "install its driver package"
    # (extra may name several, comma-separated: "redis,semantic-local")
    return MissingDependencyError(
        f"the {scheme}:// backend needs a package that is not installed ({what}); fix: {hint}"
    )


def _load(target: str | type[Any], extra: str | None, scheme: str) -> Any:
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _missing(scheme, extra, exc.name or exc) from exc
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part)
    return found


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        return False


def check_url(url: str | os.PathLike[str], **options: Any) -> None:
    """Validate a backend URL (or bare path) and its options without building or opening it.

    Checks the scheme, the URL's shape, each option of backends whose check needs no driver
    (``memory``, ``disk``, the object stores' keyword options, Redis query parameters), and that
    the scheme's extra is installed, by looking its modules up without importing them. Nothing
    is created and nothing is connected: what only opening can tell (a directory that cannot be
    created, a server that is down) is a backend failure later, which fails open.

    Raises:
        ConfigurationError: unknown scheme, malformed URL, unknown option.
        MissingDependencyError: the scheme's extra is not installed; the message says which.

    Example::

        check_url("disk:///var/cache/llm?size_limit=1000000000")

    .. versionadded:: 0.1.0
    """
    text = os.fspath(url)
    if not isinstance(text, str):
        raise ConfigurationError(f"a backend URL must be text, got {text!r}")
    if options:
        _validate(text, tuple(sorted(options.items(), key=lambda kv: kv[0])))
    else:
        _check_cached(text)


@functools.lru_cache(maxsize=256)
def _check_cached(text: str) -> None:
    # cache_controls(backend="...") is entered per block: check each URL once.
    _validate(text, ())


def _validate(text: str, options: tuple[tuple[str, Any], ...]) -> None:
    scheme = scheme_of(text)
    row = _row_for(scheme)
    if "://" in text:
        try:
            parts = urlsplit(text)
            if "," not in parts.netloc:  # (a host list is the scheme's own check to parse)
                parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as exc:
            raise ConfigurationError(f"malformed backend URL {text!r}: {exc}") from None
    elif scheme == "disk":
        text = "disk://" + os.path.abspath(os.path.expanduser(text))
    for name in row.requires:
        if not _installed(name):
            raise _missing(scheme, row.extra, name)
    if row.check is not None:
        check: Callable[..., Any] = _load(row.check, row.extra, scheme)
        check(text, **dict(options))


def _check_redis(url: str, **options: Any) -> None:
    # redis-py is installed (checked above) and will be imported at first use anyway.
    from .redis._url import _parse_url

    _parse_url(url)
    unknown = sorted(set(options).difference({"prefix", "client_kwargs", "breaker"}))
    if unknown:
        raise ConfigurationError(
            f"unknown Redis backend option(s) {', '.join(unknown)}; known: prefix, "
            "client_kwargs, breaker (redis-py settings go inside client_kwargs={...})"
        )


def _check_object_store(url: str, **options: Any) -> None:
    from .objectstore.target import _OPTIONS  # light: the fsspec drivers are imported on first use

    if "?" in url or "#" in url:
        raise ConfigurationError(
            f"object-store URLs take no query or fragment ({url!r}); pass driver settings "
            "as storage_options={...} and backend settings as keyword arguments"
        )
    unknown = sorted(set(options).difference(_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown object-store option(s) {', '.join(unknown)}; known: "
            f"{', '.join(_OPTIONS)} (driver settings go inside storage_options={{...}})"
        )


def _monotonic() -> float:
    # Looked up per call, so tests can replace the clock of every Reopen at once.
    return time.monotonic()


def _check_recordings(url: str, **options: Any) -> None:
    if not url.partition("://")[2]:
        raise ConfigurationError("recordings:// needs a folder: recordings:///path/to/dir")
    unknown = sorted(set(options).difference({"redact", "rewrite"}))
    if unknown:
        raise ConfigurationError(
            f"unknown recordings:// option(s) {', '.join(unknown)}; known: redact, rewrite"
        )


class Reopen:
    """When to try opening a backend again after it failed to open: exponential back-off.

    The first retry is allowed :data:`OPEN_RETRY_MIN` seconds after a failure, each further
    failure doubles the wait up to :data:`OPEN_RETRY_MAX`; a success resets it. Between
    attempts :meth:`due` is false and the backend raises its last error again, so an outage
    costs a clock read per call, not an ``open()`` or a connect.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_clock", "_delay", "_error", "_retry_at")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock if clock is not None else _monotonic
        self._delay = 0.0
        self._retry_at = 0.0
        self._error: BackendError | None = None

    def due(self) -> bool:
        """Whether an attempt to open may be made now."""
        return self._error is None or self._clock() >= self._retry_at

    def failed(self, error: BackendError) -> BackendError:
        """Record a failed attempt; return ``error`` (to raise)."""
        self._delay = min(max(self._delay * 2, OPEN_RETRY_MIN), OPEN_RETRY_MAX)
        self._retry_at = self._clock() + self._delay
        self._error = error
        return error

    def succeeded(self) -> None:
        """Record a successful open: the next failure starts the back-off again."""
        self._delay = 0.0
        self._error = None

    def error(self) -> BackendError:
        """The last failure, raised again until the next attempt is due."""
        assert self._error is not None
        wait = max(0.0, self._retry_at - self._clock())
        return BackendError(f"{self._error} (next attempt to open in {wait:.0f}s)")

    @property
    def cause(self) -> BaseException | None:
        """What made the last attempt fail (the driver's exception), if any."""
        error = self._error
        return None if error is None else (error.__cause__ or error)


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
