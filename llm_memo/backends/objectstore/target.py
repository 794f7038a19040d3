"""Where the entries live and how to reach them: URLs and filesystems resolved into a
:class:`_Target` (protocol, root path, driver options), each driver's default timeouts, and
building a filesystem in the sync or async mode a backend needs.

Nothing here performs I/O or imports a driver at import time: ``fsspec`` and the protocol's
driver are imported when a target is resolved or a filesystem built. Not here: the I/O itself
(``_io.py``, ``_local.py``, ``_fsspec.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ...errors import ConfigurationError, MissingDependencyError

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


def _clone(fs: Any, **mode: Any) -> Any:
    """The same filesystem (same constructor options) in another sync/async mode."""
    options = {k: v for k, v in fs.storage_options.items() if k not in _MODE_KEYS}
    return type(fs)(**options, skip_instance_cache=True, **mode)
