"""What the sync and async object-store backends share, apart from their I/O: construction
(target, timeout, breaker, clock), ``from_url``, object paths and the failure guard.

The backend bodies (``_async.py`` and the generated ``_sync.py``) subclass :class:`_ObjectStore`
and name the I/O owner they use (``_io.AsyncStoreIO`` / ``_io.StoreIO``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from ...errors import ConfigurationError
from .._breaker import CircuitBreaker
from ._counters import CounterFiles
from ._io import AsyncStoreIO, StoreIO
from .errors import _guarded
from .layout import _join, _object_name
from .target import _OPTIONS, DEFAULT_TIMEOUT, _Target

_B = TypeVar("_B", bound="_ObjectStore")


class _ObjectStore:
    """Configuration and failure handling shared by the sync and async backends."""

    # The I/O owner class each backend body names: built with the target and the timeout.
    _io_type: ClassVar[type[StoreIO] | type[AsyncStoreIO]]

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
        self._ios = self._io_type(self._target, timeout)
        self._counter_files = CounterFiles(self.root)  # persist_stats (``_counters.py``)

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

    @property
    def fs(self) -> Any:
        """The fsspec filesystem in use (``None`` for local files, which use ``os`` directly;
        for the async backend, the running event loop's, once it has one)."""
        return self._ios.fs

    def _path(self, key: str) -> str:
        return _join(self.root, _object_name(key))

    def _guard(self, op: str) -> AbstractContextManager[None]:
        return _guarded(self.breaker, self.url, op)
