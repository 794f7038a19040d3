"""Object stores through fsspec: ``file://``, ``s3://``, ``gs://``, ``az://`` and any fsspec URL.

One entry is one object. Its path comes from the key alone, so a hit is a single read of a known
name: ``cat_file`` (one GET), never an ``exists``/``info``/LIST first, with a missing object
(``FileNotFoundError``) read as a miss. The key ``llm_memo:<ver>:<ns>:<fn>:<hash>`` is stored at
``<root>/<ver>/<ns>/<fn>/<hash[:2]>/<hash>``: a namespace or a function is a subtree (cleared by
one listing plus bulk deletes), and the hash fan-out keeps every directory small. A key of any
other shape is stored, escaped, in an ``_other/`` directory below its last plain level. A path
segment too long for a file name (over 100 characters) is shortened to a readable prefix, ``!``
and a digest (:func:`_fit`), so any namespace or function name fits every store.

Object stores have no per-object expiry, so the object is framed: a header (magic, a keep-until
deadline as f64 seconds since the epoch, the full key) in front of :meth:`Entry.to_bytes`. A read
past the deadline, of another key's object, or of anything that is not a whole frame, is a
miss; listings read the key from the header where the path no longer says it;
:meth:`purge_expired` (or a bucket lifecycle rule on object age) deletes what has expired.

Writes replace the whole object: one PUT on S3, GCS and Azure; on local files a temporary file in
the same directory renamed over the target (``os.replace``), so no reader ever sees a torn entry.

:class:`ObjectStoreBackend` uses each filesystem's sync API; :class:`AsyncObjectStoreBackend`
uses fsspec's async implementations (``fs._cat_file``, ...) on a filesystem it creates with
``asynchronous=True`` inside each running event loop. Local files answer in microseconds, so the
async class calls them inline. Everything the two classes share (layout, framing, parsing,
expiry, error mapping) is a module-level function; the per-operation I/O is in small classes
side by side (``_LocalIO``, ``_FsspecIO``, ``_AsyncFsspecIO``; ``_LoopIO`` runs the async one's
coroutines on fsspec's loop for sync callers), so each backend method is a few lines.

Failures fail open: every exception a driver raises (botocore, aiohttp, Azure SDK, ``OSError``,
timeouts, anything else) is raised as :class:`~llm_memo.errors.BackendError`. Each backend has a
:class:`~llm_memo.backends._breaker.CircuitBreaker`, used through its guard, that counts only an
unreachable store (no answer, a deadline passed, 5xx): a refusal of one request (a name the store
rejects, a 403, a value too large) never stops caching for everyone. Each get/set/delete has one
deadline covering the driver's own retries; management calls have one per listing step.

Not here: value encoding (``codec.py``); Redis-style native expiry or locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import inspect
import math
import os
import re
import secrets
import struct
import sys
import time
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import quote, unquote

from ..entry import Entry
from ..errors import (
    BackendError,
    CodecError,
    ConfigurationError,
    MissingDependencyError,
)
from . import MISSING, Missing
from ._breaker import CircuitBreaker

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "LISTING_TIMEOUT",
    "READ_TIMEOUT",
    "AsyncObjectStoreBackend",
    "ObjectStoreBackend",
]

#: Seconds one get, set or delete may take in all, the driver's own retries included; past it
#: the operation fails open (outcome ``error``) and counts as one circuit-breaker failure.
DEFAULT_TIMEOUT: Final = 2.0
#: Seconds one step of a management call (``clear``, ``keys``, ``purge_expired``) may take on a
#: network store: one listing, or one batch of 1,000 header reads or deletes (at least
#: ``timeout``; none when ``timeout`` is ``None``). Without it a hanging store would hold
#: ``fn.cache.clear()`` or ``llm-memo ls`` for minutes of driver retries.
LISTING_TIMEOUT: Final = 60.0
#: Seconds to establish a connection, passed to each driver's own options.
CONNECT_TIMEOUT: Final = 1
#: Seconds to wait for the next bytes of a response, passed to each driver's own options.
READ_TIMEOUT: Final = 2

_LOCAL: Final = frozenset({"file", "local"})
_S3: Final = frozenset({"s3", "s3a"})
_GCS: Final = frozenset({"gs", "gcs"})
_AZURE: Final = frozenset({"az", "abfs", "abfss"})
# Stores whose DELETE of a missing object is an error (-> FileNotFoundError), so delete() can
# report "was it there" from the DELETE alone. S3 answers 204 either way and needs a HEAD first.
_DELETE_REPORTS_MISSING: Final = _LOCAL | _GCS | _AZURE
# Stores without directories: a write never needs a parent created (and must never create a
# bucket, which s3fs's makedirs would do).
_FLAT: Final = _S3 | _GCS | _AZURE | frozenset({"adl", "oss", "gcsfs", "r2"})
_EXTRAS: Final = {
    **{p: "s3" for p in _S3},
    **{p: "gcs" for p in _GCS},
    **{p: "azure" for p in _AZURE},
}
# Keys the backend sets itself when it builds a filesystem.
_MODE_KEYS: Final = frozenset({"asynchronous", "loop", "skip_instance_cache"})
_OPTIONS: Final = ("storage_options", "timeout", "breaker", "clock")

# -- object layout -----------------------------------------------------------------------------

_TAG: Final = "llm_memo"  # the first part of every key (keys._KEY_PREFIX)
_OTHER: Final = "_other"  # where a key that leaves the llm_memo shape goes, at that level
_PART = r"[A-Za-z0-9_.~%-]+"
_DIGEST = r"[A-Za-z0-9_~%-][A-Za-z0-9_.~%-]*"
_NESTED = re.compile(rf"{_TAG}:({_PART}):({_PART}):({_PART}):({_DIGEST})")
_LEVEL = re.compile(_PART)
_DOTS: Final = frozenset({".", ".."})


def _plain(part: str) -> bool:
    """A key part that is safe as a path segment on every store (keys.py escapes to these)."""
    return part not in _DOTS and _LEVEL.fullmatch(part) is not None


def _escape(rest: str) -> str:
    # One path segment for any text: "_" + percent-escaped, "." escaped too, so a segment is
    # never empty, "." or "..", hidden, or a separator.
    return "_" + quote(rest, safe="").replace(".", "%2E")


def _levels(text: str) -> tuple[list[str], str, bool]:
    """Split ``<ver>:<ns>:<fn>:<rest>`` (the key after ``llm_memo:``) into the plain levels
    that lead it, the rest, and whether the descent stopped at a level that is not plain."""
    levels: list[str] = []
    for _ in range(3):
        level, sep, tail = text.partition(":")
        if not sep:
            return levels, text, False
        if not _plain(level):
            return levels, text, True
        levels.append(level)
        text = tail
    return levels, text, False


def _segments(key: str) -> list[str]:
    """The object's path segments below the root, before any is shortened.

    ``llm_memo:<ver>:<ns>:<fn>:<hash>`` goes to ``<ver>/<ns>/<fn>/<hash[:2]>/<hash>``. A key
    that leaves this shape goes to ``_other/<escaped>`` below its last plain level (so a
    namespace's or function's subtree holds all of its keys), or below the root.
    """
    match = _NESTED.fullmatch(key)
    if match is not None:
        ver, ns, fn, digest = match.groups()
        if ver not in _DOTS and ns not in _DOTS and fn not in _DOTS:
            return [ver, ns, fn, digest[:2], digest]
    tag, sep, tail = key.partition(":")
    levels, rest, _ = _levels(tail) if tag == _TAG and sep else ([], key, False)
    return [*levels, _OTHER, _escape(rest if levels else key)]


# A path segment longer than _SEGMENT_MAX characters (all segments are ASCII: keys.py and
# _escape percent-escape everything else) is shortened to its first _SEGMENT_KEEP characters,
# "!" and a 128-bit BLAKE2b digest of the whole segment: at most 93 bytes, so any namespace or
# function fits a POSIX file name (255 bytes per component) and a whole object name stays
# under 5 x 101 bytes, far below S3's and GCS's 1024-byte and Azure's 1024-character limits.
# "!" never occurs in a plain or escaped segment (quote() escapes it), so a shortened segment
# cannot equal another key's plain one; the full key is in the object's header (LMO2 frame),
# where listings read it back and every read checks it.
_SEGMENT_MAX: Final = 100
_SEGMENT_KEEP: Final = 60
_MARK: Final = "!"


def _fit(segment: str) -> str:
    """``segment``, or its shortened form when it is too long to be a path component."""
    if len(segment) <= _SEGMENT_MAX:
        return segment
    head = segment[:_SEGMENT_KEEP]
    cut = head.rfind("%", len(head) - 2)  # never end the readable part inside a %XX escape
    if cut != -1:
        head = head[:cut]
    digest = hashlib.blake2b(segment.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{head}{_MARK}{digest.hexdigest()}"


def _object_name(key: str) -> str:
    """The object's path below the root (see :func:`_segments` and :func:`_fit`)."""
    return "/".join(_fit(segment) for segment in _segments(key))


def _join(root: str, *parts: str) -> str:
    return "/".join((root, *parts))


def _key_from(segments: Sequence[str]) -> str | None:
    """Invert :func:`_segments` (unshortened segments), or ``None`` for another shape."""
    if len(segments) >= 2 and segments[-2] == _OTHER and segments[-1].startswith("_"):
        rest = unquote(segments[-1][1:])
        levels = segments[:-2]
        return ":".join((_TAG, *levels, rest)) if levels else rest
    if len(segments) == 5:
        ver, ns, fn, _, digest = segments
        return f"{_TAG}:{ver}:{ns}:{fn}:{digest}"
    return None


def _prefix_levels(prefix: str) -> tuple[list[str], bool]:
    """The plain levels that lead a key prefix, and whether the prefix then leaves the
    llm_memo shape (its keys are in the ``_other/`` directory below those levels)."""
    tag, sep, tail = prefix.partition(":")
    if not sep or tag != _TAG:
        return [], True
    levels, _, odd = _levels(tail)
    return levels, odd


def _scan_top(root: str, prefix: str) -> str:
    """The directory whose subtree holds every object whose key starts with ``prefix``: a
    namespace or function prefix is its own subtree; other prefixes widen to what holds them."""
    if ":" not in prefix and _TAG.startswith(prefix):
        return root
    levels, odd = _prefix_levels(prefix)
    fitted = [_fit(level) for level in levels]
    return _join(root, *fitted, _OTHER) if odd else _join(root, *fitted)


def _entries_in(root: str, prefix: str, listed: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Sort listed paths: ``{path: key}`` of the entries whose key starts with ``prefix`` and
    can be read off the path, and the paths with a shortened segment, whose key is in their
    header. Anything else (temporary files, foreign objects) is neither.

    Below a namespace or function prefix, its own shortened levels are known from the prefix,
    so clearing or listing a long namespace needs no header reads.
    """
    head = root + "/"
    known, _ = _prefix_levels(prefix)
    fitted = [_fit(level) for level in known]
    found: dict[str, str] = {}
    unnamed: list[str] = []
    for path in listed:
        if not path.startswith(head):
            continue
        name = path[len(head) :]
        segments = name.split("/")
        if segments[: len(fitted)] == fitted:
            segments[: len(known)] = known
        if any(_MARK in segment for segment in segments):
            if not segments[-1].startswith("."):  # a temporary file is never an entry
                unnamed.append(path)
            continue
        key = _key_from(segments)
        if key is not None and key.startswith(prefix) and _object_name(key) == name:
            found[path] = key
    return found, unnamed


def _key_of(root: str, path: str) -> str | None:
    """The key stored at ``path`` when the path alone says it (no shortened segment), else
    ``None``. Exactly inverts :func:`_object_name` for such keys."""
    return _entries_in(root, "", [path])[0].get(path)


def _named(
    root: str, prefix: str, paths: Sequence[str], heads: Sequence[bytes | None]
) -> tuple[dict[str, str], list[str]]:
    """``{path: key}`` for paths whose header names a key that starts with ``prefix`` and
    belongs at that path (a copied or moved object does not); and the paths whose header is
    longer than what was read."""
    found: dict[str, str] = {}
    longer: list[str] = []
    for path, head in zip(paths, heads, strict=True):
        key = _header_key(head)
        if isinstance(key, int):
            longer.append(path)
        elif key is not None and key.startswith(prefix) and _join(root, _object_name(key)) == path:
            found[path] = key
    return found, longer


# -- framing: keep-until header, the key, Entry.to_bytes() ------------------------------------

_FRAME = struct.Struct("<4sd")  # magic, keep-until (f64 seconds since the epoch)
_KEY_LENGTH = struct.Struct("<I")
_MAGIC: Final = b"LMO2"  # then the key: u32 length + UTF-8, then the entry
_OLD_MAGIC: Final = b"LMO1"  # no key; still judged by purge_expired(), never read as an entry
_HEAD: Final = _FRAME.size + _KEY_LENGTH.size
#: Bytes read from each object whose key is not in its path, to list it: enough for any key
#: the decorator makes; a longer key costs a second read of that object.
_HEAD_READ: Final = 4096


def _frame(key: str, entry: Entry, ttl: float | None, now: float) -> bytes | None:
    """The object's bytes, or ``None`` when ``ttl`` leaves nothing to keep."""
    if ttl is not None and ttl <= 0:
        return None
    keep_until = math.inf if ttl is None else now + ttl
    raw = key.encode("utf-8", "surrogatepass")
    return _FRAME.pack(_MAGIC, keep_until) + _KEY_LENGTH.pack(len(raw)) + raw + entry.to_bytes()


def _keep_until(head: bytes | None) -> float | None:
    """The deadline in a frame header, ``None`` if the bytes are not one."""
    if head is None or len(head) < _FRAME.size:
        return None
    magic, keep_until = _FRAME.unpack_from(head)
    return float(keep_until) if magic in (_MAGIC, _OLD_MAGIC) else None


def _header_key(head: bytes | None) -> str | int | None:
    """The key in a frame header; the header's length when ``head`` is only its start;
    ``None`` for bytes that are not a keyed frame."""
    if head is None or len(head) < _HEAD or head[:4] != _MAGIC:
        return None
    end = _HEAD + int(_KEY_LENGTH.unpack_from(head, _FRAME.size)[0])
    if len(head) < end:
        return end
    try:
        return head[_HEAD:end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def _unframe(data: bytes, now: float, key: str) -> Entry | Literal[Missing.MISSING]:
    """Parse an object: ``key``'s entry within its deadline, else MISSING (expired, foreign,
    torn, or another key's object copied here)."""
    keep_until = _keep_until(data)
    if keep_until is None or not keep_until > now:  # NaN is never "> now"
        return MISSING
    if _header_key(data) != key:
        return MISSING
    (length,) = _KEY_LENGTH.unpack_from(data, _FRAME.size)
    try:
        return Entry.from_bytes(data[_HEAD + length :])
    except CodecError:
        return MISSING


def _expired(paths: Sequence[str], heads: Sequence[bytes | None], now: float) -> list[str]:
    """The paths whose frame header says they are past their deadline (unknown bytes are kept:
    they may belong to another version of llm_memo)."""
    out = []
    for path, head in zip(paths, heads, strict=True):
        keep_until = _keep_until(head)
        if keep_until is not None and keep_until <= now:
            out.append(path)
    return out


# -- errors: "the store is unreachable" versus "this request was refused" --------------------
#
# Only the first counts as a circuit-breaker failure (SPEC 6): one tenant's name the store
# refuses, a value too large or an error reply on one object must never stop everyone caching.

# Driver exceptions that mean no answer came: connection refused, reset or dropped mid-reply,
# DNS failure, timeouts. Looked up only in modules already imported (building a filesystem
# imports its driver), so an S3 user never imports the Azure SDK for an isinstance check.
_UNREACHABLE: Final = (
    ("botocore.exceptions", ("ConnectionError", "HTTPClientError")),
    ("aiohttp", ("ClientConnectionError", "ClientPayloadError")),
    ("azure.core.exceptions", ("ServiceRequestError", "ServiceResponseError")),
    ("google.auth.exceptions", ("TransportError",)),
    # gcsfs turns a 502 into requests' ProxyError, a requests ConnectionError.
    ("requests.exceptions", ("ConnectionError", "Timeout")),
)
# OSError codes of an unreachable store (a network filesystem too); every other code (a name
# too long, permission denied, file too large, no space, EIO for an unknown S3 error) is about
# the one request.
_UNREACHABLE_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH",
        "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "ENOTCONN", "ESTALE",
    )
    if hasattr(errno, name)
)  # fmt: skip


def _unreachable_classes() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, asyncio.TimeoutError]
    for module_name, names in _UNREACHABLE:
        module = sys.modules.get(module_name)
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a driver's error reply (botocore, Azure SDK, gcsfs, aiohttp)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    for name in ("status_code", "status", "code"):
        status = getattr(exc, name, None)
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
            return status
    return None


def _is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: s3fs and adlfs re-raise driver errors ``from``
    them) says the store did not answer, or answered 5xx after the driver's retries."""
    kinds = _unreachable_classes()
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, kinds):
            return True
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS:
            return True
        status = _status(cause)
        if status is not None and status >= 500:
            return True
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


class _UnreachableError(BackendError):
    """The store did not answer: the one kind of failure the circuit breaker counts."""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


# -- resolving URLs and filesystems ------------------------------------------------------------


def _protocols(fs: Any) -> frozenset[str]:
    proto = fs.protocol
    return frozenset((proto,) if isinstance(proto, str) else proto)


def _driver_defaults(protocol: str) -> dict[str, Any]:
    """Short timeouts and no listing cache, in each driver's own option names."""
    if protocol in _S3:
        return {
            "use_listings_cache": False,
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT,
                "read_timeout": READ_TIMEOUT,
                "retries": {"total_max_attempts": 2, "mode": "standard"},
            },
        }
    if protocol in _GCS:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        return {"use_listings_cache": False, "session_kwargs": {"timeout": timeout}}
    if protocol in _AZURE:
        return {
            "use_listings_cache": False,
            "connection_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
        }
    return {}


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``; nested option mappings (``config_kwargs``) merge one level."""
    out = dict(defaults)
    for name, value in given.items():
        base = out.get(name)
        if isinstance(value, Mapping) and isinstance(base, Mapping):
            out[name] = {**base, **value}
        else:
            out[name] = value
    return out


def _filesystem_class(protocol: str) -> Any:
    import fsspec

    try:
        return fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        extra = _EXTRAS.get(protocol)
        hint = f"pip install 'llm-memo[{extra}]'" if extra else "install its fsspec driver"
        raise MissingDependencyError(
            f"the {protocol}:// object store needs a package that is not installed "
            f"({exc.name or exc}); fix: {hint}"
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"fsspec does not know the protocol {protocol!r}") from exc


@dataclass(frozen=True)
class _Target:
    """Where the entries live: a protocol, a root path and how to reach it."""

    protocol: str
    root: str
    options: Mapping[str, Any]
    fs: Any  # a filesystem the caller gave (not ours to close), or None

    @property
    def local(self) -> bool:
        return self.protocol in _LOCAL

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.root}"

    @classmethod
    def resolve(cls, url_or_fs: Any, root: str | None, options: Mapping[str, Any]) -> _Target:
        clash = sorted(_MODE_KEYS.intersection(options))
        if clash:
            raise ConfigurationError(
                f"storage_options may not set {', '.join(clash)}: the backend builds its "
                "filesystems in the mode each class needs"
            )
        if isinstance(url_or_fs, (str, os.PathLike)):
            if root is not None:
                raise ConfigurationError("root= goes with a filesystem object; put it in the URL")
            return cls._from_url(os.fspath(url_or_fs), options)
        if not hasattr(url_or_fs, "_strip_protocol") or not hasattr(url_or_fs, "protocol"):
            raise ConfigurationError(
                f"expected a URL or an fsspec filesystem, got {type(url_or_fs).__name__}"
            )
        if root is None:
            raise ConfigurationError("with a filesystem object, give root= (bucket/prefix)")
        proto = url_or_fs.protocol
        protocol = proto if isinstance(proto, str) else proto[0]
        path = url_or_fs._strip_protocol(root).rstrip("/")
        return cls._checked(protocol, path, dict(options), url_or_fs)

    @classmethod
    def _from_url(cls, url: str, options: Mapping[str, Any]) -> _Target:
        from fsspec.core import split_protocol

        if "?" in url or "#" in url:
            raise ConfigurationError(
                f"object-store URLs take no query or fragment ({url!r}); pass driver settings "
                "as storage_options={...} and backend settings as keyword arguments"
            )
        protocol, path = split_protocol(url)
        protocol = (protocol or "file").lower()
        fs_cls = _filesystem_class(protocol)
        if protocol in _LOCAL:
            path = os.path.expanduser(path)
        root = fs_cls._strip_protocol(path if protocol in _LOCAL else url).rstrip("/")
        from_url = fs_cls._get_kwargs_from_urls(url) if protocol not in _LOCAL else {}
        merged = _merge(_driver_defaults(protocol), {**from_url, **options})
        return cls._checked(protocol, root, merged, None)

    @classmethod
    def _checked(cls, protocol: str, root: str, options: dict[str, Any], fs: Any) -> _Target:
        if not root and protocol not in _LOCAL:
            raise ConfigurationError(
                f"a {protocol}:// backend needs at least a bucket or container in its root, "
                f"such as {protocol}://my-bucket/llm-cache"
            )
        return cls(protocol, root, options, fs)

    def _build(self, **mode: Any) -> Any:
        import fsspec

        try:
            return fsspec.filesystem(
                self.protocol, skip_instance_cache=True, **self.options, **mode
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot build the {self.protocol}:// filesystem from storage_options: {exc}"
            ) from exc

    def sync_io(self, timeout: float | None, *, forked: bool = False) -> _SyncIO:
        """I/O for the sync backend; ``forked``: in a child process, where fsspec's async
        filesystems (and their loop thread) from the parent cannot be used."""
        if self.local:
            return _LocalIO()
        fs = self.fs
        if fs is None:
            fs = self._build(asynchronous=False)
        elif getattr(fs, "async_impl", False) and (forked or getattr(fs, "asynchronous", False)):
            fs = _clone(fs, asynchronous=False)
        return _LoopIO(fs, timeout) if getattr(fs, "async_impl", False) else _FsspecIO(fs)

    def async_io(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> _AsyncIO:
        if self.local:
            return _InlineIO(_LocalIO())
        fs, owned = self.fs, False
        if fs is None:
            fs, owned = self._build(asynchronous=True, loop=loop), True
        elif not getattr(fs, "async_impl", False):
            # A filesystem with only a sync API (sftp, hdfs, ...): fsspec's wrapper runs each
            # call in a worker thread (asyncio.to_thread).
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            fs = AsyncFileSystemWrapper(fs, asynchronous=True)
        elif not fs.asynchronous:
            fs, owned = _clone(fs, asynchronous=True, loop=loop), True
        return _AsyncFsspecIO(fs, timeout, owned=owned)


def _clone(fs: Any, **mode: Any) -> Any:
    """The same filesystem (same constructor options) in another sync/async mode."""
    options = {k: v for k, v in fs.storage_options.items() if k not in _MODE_KEYS}
    return type(fs)(**options, skip_instance_cache=True, **mode)


def _read_options(fs: Any) -> dict[str, Any]:
    # Recent s3fs asks for an object's size (a HEAD) before reading it, to split big objects
    # into concurrent ranged GETs, unless max_concurrency=1: one GET per hit needs that off.
    # Older s3fs has neither the parameter nor the HEAD; adlfs takes it harmlessly.
    impl = getattr(type(fs), "_cat_file", None)
    try:
        params = inspect.signature(impl).parameters if impl is not None else {}
    except (TypeError, ValueError):
        return {}
    return {"max_concurrency": 1} if "max_concurrency" in params else {}


# -- per-operation I/O, sync and async ---------------------------------------------------------
#
# The same six operations three times: local files (os calls), any filesystem's sync API, any
# filesystem's async API. They differ in dialect only; keep them side by side and in step.


class _SyncIO(Protocol):
    def read(self, path: str) -> bytes | None: ...
    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]: ...
    def write(self, path: str, data: bytes) -> None: ...
    def remove(self, path: str, *, report: bool) -> bool: ...
    def remove_many(self, paths: Sequence[str]) -> None: ...
    def find(self, top: str) -> list[str]: ...
    def close(self) -> None: ...


class _AsyncIO(Protocol):
    async def read(self, path: str) -> bytes | None: ...
    async def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]: ...
    async def write(self, path: str, data: bytes) -> None: ...
    async def remove(self, path: str, *, report: bool) -> bool: ...
    async def remove_many(self, paths: Sequence[str]) -> None: ...
    async def find(self, top: str) -> list[str]: ...
    async def close(self) -> None: ...


_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_BATCH: Final = 1000  # paths per bulk delete (S3's DeleteObjects limit)


class _LocalIO:
    """Local files through ``os``: a read is one open+read; a write goes to a hidden temporary
    file in the target's directory and is renamed over it (atomic on POSIX and Windows), so
    readers in any process see the old entry or the new one, never a torn one."""

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        heads: list[bytes | None] = []
        for path in paths:
            try:
                with open(path, "rb") as file:
                    heads.append(file.read(size))
            except OSError:
                heads.append(None)
        return heads

    def write(self, path: str, data: bytes) -> None:
        directory, name = os.path.split(path)
        # A leading "." keeps temporary files out of listings (_key_of never maps them).
        temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(temp, _CREATE, 0o666)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(temp, _CREATE, 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def remove(self, path: str, *, report: bool) -> bool:
        try:
            os.remove(path)
        except FileNotFoundError:
            return False
        return True

    def remove_many(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def find(self, top: str) -> list[str]:
        found: list[str] = []
        for directory, _, names in os.walk(top or "/"):
            base = directory.replace(os.sep, "/").rstrip("/")
            found.extend(f"{base}/{name}" for name in names if not name.startswith("."))
        return found

    def close(self) -> None:
        pass


class _InlineIO:
    """Local files for async callers: microseconds each, so inline, with no thread hop."""

    def __init__(self, io: _LocalIO) -> None:
        self._io = io

    async def read(self, path: str) -> bytes | None:
        return self._io.read(path)

    async def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        return self._io.read_heads(paths, size)

    async def write(self, path: str, data: bytes) -> None:
        self._io.write(path, data)

    async def remove(self, path: str, *, report: bool) -> bool:
        return self._io.remove(path, report=report)

    async def remove_many(self, paths: Sequence[str]) -> None:
        self._io.remove_many(paths)

    async def find(self, top: str) -> list[str]:
        return self._io.find(top)

    async def close(self) -> None:
        pass


class _FsspecIO:
    """A filesystem with only a sync API (sftp, hdfs, ...) through that API: no deadline of
    ours, only the driver's own timeouts."""

    def __init__(self, fs: Any) -> None:
        protocols = _protocols(fs)
        self.fs = fs
        self._probe = not protocols & _DELETE_REPORTS_MISSING
        self._dirs = not protocols & _FLAT

    def read(self, path: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        if not paths:
            return []
        n = len(paths)
        heads = self.fs.cat_ranges(list(paths), [0] * n, [size] * n, on_error="return")
        return [bytes(h) if isinstance(h, (bytes, bytearray)) else None for h in heads]

    def write(self, path: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(path, data)
        except FileNotFoundError:
            if not self._dirs:
                raise  # a missing bucket or container: a store error
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
            self.fs.pipe_file(path, data)

    def remove(self, path: str, *, report: bool) -> bool:
        try:
            if report and self._probe and self.fs.info(path)["type"] != "file":
                return False
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def remove_many(self, paths: Sequence[str]) -> None:
        for start in range(0, len(paths), _BATCH):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(list(paths[start : start + _BATCH]))

    def find(self, top: str) -> list[str]:
        self.fs.invalidate_cache(top)
        try:
            return list(self.fs.find(top))
        except FileNotFoundError:
            return []

    def close(self) -> None:
        self.fs = None


_T = TypeVar("_T")


class _LoopIO:
    """An async-capable filesystem (s3fs, gcsfs, adlfs) in sync mode: the same coroutines as
    :class:`_AsyncFsspecIO`, deadlines included, run on fsspec's own I/O loop thread (what
    the filesystem's sync methods do too), so a sync get/set/delete has one deadline over the
    whole operation and a timed-out request is cancelled, not left running."""

    def __init__(self, fs: Any, timeout: float | None) -> None:
        self.fs = fs
        self._aio = _AsyncFsspecIO(fs, timeout, owned=False)

    def _run(self, op: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        from fsspec.asyn import sync

        result: _T = sync(self.fs.loop, op, *args, **kwargs)
        return result

    def read(self, path: str) -> bytes | None:
        return self._run(self._aio.read, path)

    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        return self._run(self._aio.read_heads, paths, size)

    def write(self, path: str, data: bytes) -> None:
        self._run(self._aio.write, path, data)

    def remove(self, path: str, *, report: bool) -> bool:
        return self._run(self._aio.remove, path, report=report)

    def remove_many(self, paths: Sequence[str]) -> None:
        self._run(self._aio.remove_many, paths)

    def find(self, top: str) -> list[str]:
        return self._run(self._aio.find, top)

    def close(self) -> None:
        # Sync-mode s3fs, gcsfs and adlfs close their sessions from weakref finalizers on
        # fsspec's loop when the filesystem is collected; dropping it is the close.
        self.fs = None
        self._aio.fs = None


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: never "exception was never retrieved"


async def _bounded(operation: Awaitable[_T], timeout: float | None) -> _T:
    """Await ``operation`` for at most ``timeout`` seconds, then cancel it and raise
    ``TimeoutError``, without waiting for the cancellation to finish: unlike
    ``asyncio.wait_for``, a driver that is slow to honour a cancellation (the Azure SDK's blob
    listing waits out its read timeout and retry back-offs first) cannot stretch the bound."""
    if timeout is None:
        return await operation
    task = asyncio.ensure_future(operation)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:  # cancelled from outside: take the operation down with us
        task.cancel()
        task.add_done_callback(_consume)
        raise
    if done:
        return task.result()
    task.cancel()
    task.add_done_callback(_consume)
    raise TimeoutError(f"no answer within {timeout:g} s")


class _AsyncFsspecIO:
    """Any fsspec filesystem through its async API, on the running loop. ``timeout`` is one
    ``asyncio.wait_for`` deadline over each whole get/set/delete (a delete's HEAD included),
    the driver's own retries included: gcsfs retries for ~30 s, botocore and s3fs retry
    read timeouts, the Azure SDK backs off 15 s; none of them can multiply the bound."""

    def __init__(self, fs: Any, timeout: float | None, *, owned: bool) -> None:
        protocols = _protocols(fs)
        self.fs = fs
        self._owned = owned
        self._read = _read_options(fs)
        self._timeout = timeout or None
        self._listing = max(LISTING_TIMEOUT, timeout) if timeout else None
        self._probe = not protocols & _DELETE_REPORTS_MISSING
        self._dirs = not protocols & _FLAT
        self._connected = False

    async def _connect(self) -> None:
        # Building the driver's client is opening the backend, not a request: s3fs loads
        # botocore's service model and resolves credentials (over a second of CPU on a busy
        # machine), gcsfs opens its aiohttp session. It happens once, outside the deadline.
        if self._connected:
            return
        if inspect.iscoroutinefunction(getattr(self.fs, "set_session", None)):
            await self.fs.set_session()  # s3fs
        elif inspect.iscoroutinefunction(getattr(self.fs, "_set_session", None)):
            await self.fs._set_session()  # gcsfs
        self._connected = True

    async def read(self, path: str) -> bytes | None:
        await self._connect()
        return await _bounded(self._get(path), self._timeout)

    async def _get(self, path: str) -> bytes | None:
        try:
            data = await self.fs._cat_file(path, **self._read)
        except FileNotFoundError:
            return None
        return bytes(data)

    async def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        await self._connect()
        heads: list[bytes | None] = []
        for start in range(0, len(paths), _BATCH):
            batch = list(paths[start : start + _BATCH])
            n = len(batch)
            ranges = self.fs._cat_ranges(batch, [0] * n, [size] * n, on_error="return")
            got = await _bounded(ranges, self._listing)
            heads.extend(bytes(h) if isinstance(h, (bytes, bytearray)) else None for h in got)
        return heads

    async def write(self, path: str, data: bytes) -> None:
        await self._connect()
        await _bounded(self._put(path, data), self._timeout)

    async def _put(self, path: str, data: bytes) -> None:
        try:
            await self.fs._pipe_file(path, data)
        except FileNotFoundError:
            if not self._dirs:
                raise  # a missing bucket or container: a store error
            await self.fs._makedirs(self.fs._parent(path), exist_ok=True)
            await self.fs._pipe_file(path, data)

    async def remove(self, path: str, *, report: bool) -> bool:
        await self._connect()
        return await _bounded(self._delete(path, report), self._timeout)

    async def _delete(self, path: str, report: bool) -> bool:
        try:
            if report and self._probe:
                info = await self.fs._info(path)
                if info["type"] != "file":
                    return False
            await self.fs._rm_file(path)
        except FileNotFoundError:
            return False
        return True

    async def remove_many(self, paths: Sequence[str]) -> None:
        await self._connect()
        for start in range(0, len(paths), _BATCH):
            with contextlib.suppress(FileNotFoundError):
                batch = list(paths[start : start + _BATCH])
                await _bounded(self.fs._rm(batch), self._listing)

    async def find(self, top: str) -> list[str]:
        await self._connect()
        self.fs.invalidate_cache(top)
        try:
            return list(await _bounded(self.fs._find(top), self._listing))
        except FileNotFoundError:
            return []

    async def close(self) -> None:
        if self._owned:
            await _close_async_fs(self.fs)


async def _close_async_fs(fs: Any) -> None:
    """End the sessions of an async filesystem this backend created.

    fsspec has no close(); each driver documents its own: s3fs's aiobotocore client (the one
    ``set_session()`` returns), gcsfs's aiohttp session, adlfs's ``BlobServiceClient``.
    """
    s3_client = getattr(fs, "_s3", None)
    if s3_client is not None:
        await s3_client.close()
    session = getattr(fs, "_session", None)
    if session is not None and not getattr(session, "closed", True):
        await session.close()
    service = getattr(fs, "service_client", None)
    if service is not None:
        await service.close()
    _detach_finalizers(fs)


def _detach_finalizers(fs: Any) -> None:
    # adlfs registers weakref.finalize(fs, sync, fs.loop, close_service_client, fs) even in
    # async mode, where fs.loop is None (fsspec/adlfs#495): the finalizer holds the filesystem
    # alive until exit and then fails with "Loop is not running". Its sessions are closed
    # above, so detach such finalizers. Reads CPython's finalize registry; a no-op elsewhere.
    registry = getattr(weakref.finalize, "_registry", None)
    if not isinstance(registry, dict):
        return
    for finalizer, info in list(registry.items()):
        if any(arg is fs for arg in getattr(info, "args", ()) or ()):
            finalizer.detach()


# -- the backends ------------------------------------------------------------------------------

_B = TypeVar("_B", bound="_ObjectStore")


class _ObjectStore:
    """Configuration and failure handling shared by the sync and async backends."""

    def __init__(
        self,
        url_or_fs: Any,
        root: str | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._target = _Target.resolve(url_or_fs, root, storage_options or {})
        self.protocol = self._target.protocol
        self.root = self._target.root
        self.url = self._target.url
        self.timeout = timeout
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._clock = clock

    @classmethod
    def from_url(cls: type[_B], url: str, **options: Any) -> _B:
        """Build from ``file:///path``, ``s3://bucket/prefix``, ``gs://...``, ``az://...``.

        Args:
            url: an fsspec URL; its path is the root under which entries are stored.
            **options: ``storage_options`` (one mapping passed to the fsspec filesystem),
                ``timeout``, ``breaker``, ``clock``.

        Raises:
            ConfigurationError: an unknown option, a query string, or no bucket in the URL.
            MissingDependencyError: the protocol's fsspec driver is not installed.
        """
        unknown = sorted(set(options).difference(_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown object-store option(s) {', '.join(unknown)}; known: "
                f"{', '.join(_OPTIONS)} (driver settings go inside storage_options={{...}})"
            )
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _path(self, key: str) -> str:
        return _join(self.root, _object_name(key))

    @contextlib.contextmanager
    def _guard(self, op: str) -> Iterator[None]:
        """One operation on the store: driver errors become BackendError, and the breaker
        (through its guard) counts only "the store is unreachable" as a failure. A refusal of
        this one request, a cancelled task or KeyboardInterrupt counts as neither, which still
        ends a half-open probe."""
        with self.breaker.guard(self.url, outage=_UnreachableError):
            try:
                yield
            except BackendError:
                raise
            except Exception as exc:
                # The BackendError boundary: whatever a driver raises (aiohttp, botocore, the
                # Azure SDK, OSError, a driver's own bug) fails open for this call.
                if _is_unreachable(exc):
                    raise _UnreachableError(
                        f"{self.url}: {op} failed, store unreachable: {_describe(exc)}"
                    ) from exc
                raise BackendError(f"{self.url}: {op} refused: {_describe(exc)}") from exc


class ObjectStoreBackend(_ObjectStore):
    """Entries as objects in any fsspec filesystem: local files, S3, GCS, Azure Blob, ...

    Args:
        url_or_fs: an fsspec URL (``s3://bucket/prefix``) or a ready filesystem object (then
            give ``root``).
        root: with a filesystem object, the path under which entries are stored.
        storage_options: passed to the fsspec filesystem as one mapping (credentials,
            ``endpoint_url``, ``config_kwargs``...); merged over short default timeouts.
        timeout: seconds one get/set/delete may take in all (``None``: no deadline).
        breaker: the circuit breaker (one per backend by default).
        clock: wall-clock seconds used for ``ttl`` deadlines (tests pass a fake one).

    Raises:
        ConfigurationError: a malformed URL, no bucket, or options fsspec rejects.
        MissingDependencyError: the protocol's driver (s3fs, gcsfs, adlfs) is not installed.

    Example::

        backend = ObjectStoreBackend("s3://my-bucket/llm-cache",
                                     storage_options={"profile": "prod"})

        @llm_cached(backend=backend, ttl=86400)
        def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        url_or_fs: Any,
        root: str | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            url_or_fs,
            root,
            storage_options=storage_options,
            timeout=timeout,
            breaker=breaker,
            clock=clock,
        )
        self._pid = os.getpid()
        self._sync_io = self._target.sync_io(timeout)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem in use (``None`` for local files, which use ``os`` directly)."""
        return getattr(self._io, "fs", None)

    @property
    def _io(self) -> _SyncIO:
        # fsspec's async filesystems refuse to run in a forked child ("not fork-safe"); a
        # worker forked after the backend was built gets a filesystem of its own.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._sync_io = self._target.sync_io(self.timeout, forked=True)
        return self._sync_io

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`: one GET, nothing else.

        A missing, expired or unparsable object, or one that holds another key, is a miss.

        Raises:
            BackendError: the store failed (or the breaker is open).
        """
        path = self._path(key)
        with self._guard("get"):
            data = self._io.read(path)
        return MISSING if data is None else _unframe(data, self._clock(), key)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write ``entry`` as one whole object, readable for ``ttl`` seconds (``None``: forever).

        Raises:
            BackendError: the store failed.
        """
        path, data = self._path(key), _frame(key, entry, ttl, self._clock())
        with self._guard("set"):
            if data is None:
                self._io.remove(path, report=False)
            else:
                self._io.write(path, data)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there.

        Raises:
            BackendError: the store failed.
        """
        path = self._path(key)
        with self._guard("delete"):
            return self._io.remove(path, report=True)

    def _entries(self, io: _SyncIO, prefix: str, top: str) -> dict[str, str]:
        """``{path: key}`` of the entries below ``top`` whose key starts with ``prefix``; keys
        that are not in their path are read from the objects' headers."""
        found, unnamed = _entries_in(self.root, prefix, io.find(top))
        if unnamed:
            named, longer = _named(self.root, prefix, unnamed, io.read_heads(unnamed, _HEAD_READ))
            found.update(named)
            found.update(_named(self.root, prefix, longer, [io.read(p) for p in longer])[0])
        return found

    def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix``; return how many.

        A namespace or function prefix lists and deletes only its subtree; ``""`` removes every
        entry under the root (objects that are not entries are left alone).

        Raises:
            BackendError: the store failed.
        """
        with self._guard("clear"):
            io = self._io
            doomed = list(self._entries(io, prefix, _scan_top(self.root, prefix)))
            io.remove_many(doomed)
        return len(doomed)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate the stored keys starting with ``prefix``, in full however long (expired ones
        included until :meth:`purge_expired` or a lifecycle rule removes them).

        Raises:
            BackendError: the listing failed.
        """
        with self._guard("keys"):
            found = self._entries(self._io, prefix, _scan_top(self.root, prefix))
        return iter(found.values())

    def purge_expired(self) -> int:
        """Delete every entry past its ttl; return how many. Lists the whole tree and reads
        each object's 12-byte header (ranged GETs).

        Raises:
            BackendError: the store failed.
        """
        with self._guard("purge_expired"):
            io = self._io
            paths = list(self._entries(io, "", self.root))
            doomed = _expired(paths, io.read_heads(paths, _FRAME.size), self._clock())
            io.remove_many(doomed)
        return len(doomed)

    def close(self) -> None:
        """Release the filesystem (sessions of filesystems the backend built)."""
        self._sync_io.close()


class AsyncObjectStoreBackend(_ObjectStore):
    """The async twin of :class:`ObjectStoreBackend`: same arguments, methods awaited.

    Each running event loop gets its own filesystem, built with ``asynchronous=True`` inside it
    (s3fs, gcsfs and adlfs sessions belong to one loop); a filesystem given in sync mode is
    rebuilt from its options in async mode, one given in async mode is used as is (in the loop
    it belongs to). Local files are read and written inline.

    Example::

        backend = AsyncObjectStoreBackend("gs://my-bucket/llm-cache")

        @llm_cached(backend=backend)
        async def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        url_or_fs: Any,
        root: str | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            url_or_fs,
            root,
            storage_options=storage_options,
            timeout=timeout,
            breaker=breaker,
            clock=clock,
        )
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncIO] = (
            weakref.WeakKeyDictionary()
        )

    def _io(self) -> _AsyncIO:
        loop = asyncio.get_running_loop()
        io = self._loops.get(loop)
        if io is None:
            io = self._loops[loop] = self._target.async_io(loop, self.timeout)
        return io

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`: one GET, nothing else."""
        path = self._path(key)
        with self._guard("get"):
            data = await self._io().read(path)
        return MISSING if data is None else _unframe(data, self._clock(), key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write ``entry`` as one whole object, readable for ``ttl`` seconds."""
        path, data = self._path(key), _frame(key, entry, ttl, self._clock())
        with self._guard("set"):
            if data is None:
                await self._io().remove(path, report=False)
            else:
                await self._io().write(path, data)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        path = self._path(key)
        with self._guard("delete"):
            return await self._io().remove(path, report=True)

    async def _entries(self, io: _AsyncIO, prefix: str, top: str) -> dict[str, str]:
        """The async twin of :meth:`ObjectStoreBackend._entries`."""
        found, unnamed = _entries_in(self.root, prefix, await io.find(top))
        if unnamed:
            heads = await io.read_heads(unnamed, _HEAD_READ)
            named, longer = _named(self.root, prefix, unnamed, heads)
            found.update(named)
            found.update(_named(self.root, prefix, longer, [await io.read(p) for p in longer])[0])
        return found

    async def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix``; return how many."""
        with self._guard("clear"):
            io = self._io()
            doomed = list(await self._entries(io, prefix, _scan_top(self.root, prefix)))
            await io.remove_many(doomed)
        return len(doomed)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Iterate the stored keys starting with ``prefix``."""
        with self._guard("keys"):
            found = await self._entries(self._io(), prefix, _scan_top(self.root, prefix))
        for key in found.values():
            yield key

    async def purge_expired(self) -> int:
        """Delete every entry past its ttl; return how many."""
        with self._guard("purge_expired"):
            io = self._io()
            paths = list(await self._entries(io, "", self.root))
            doomed = _expired(paths, await io.read_heads(paths, _FRAME.size), self._clock())
            await io.remove_many(doomed)
        return len(doomed)

    async def close(self) -> None:
        """Close the sessions this backend opened in the running loop; forget the others."""
        loop = asyncio.get_running_loop()
        opened = list(self._loops.items())
        self._loops.clear()
        for owner, io in opened:
            if owner is loop:
                await io.close()
