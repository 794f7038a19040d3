"""The backend seam: two small protocols, the miss sentinel, and URL resolution.

A backend stores :class:`~llm_memo.entry.Entry` records under string keys. It sees bytes and
metadata only: encoding values, signing and every caching decision happen above it. Five
methods make a backend; :class:`AsyncBackend` has the same names as coroutines, so an async
implementation and its generated sync twin differ only by ``async``/``await``.

Extra abilities (listing keys, cross-process locks, similarity search, persistent counters) are
their own small runtime-checkable protocols in the modules that need them, checked once when a
backend is set up, never ``NotImplementedError`` stubs.

Every backend raises :class:`~llm_memo.errors.BackendError` (wrapping its driver's exception)
when the store fails, and nothing else; the decorator's fail-open path relies on that.

Not here: the concrete backends (``memory.py``, ``disk.py``, ...) and the scheme table
(``_registry.py``), which imports them only when a URL asks for one.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

from ._registry import from_url, register_backend

if TYPE_CHECKING:
    from ..entry import Entry

__all__ = [
    "MISSING",
    "AsyncBackend",
    "AsyncBulkReading",
    "AsyncCounting",
    "AsyncListing",
    "AsyncLocking",
    "Backend",
    "BulkReading",
    "Counting",
    "Listing",
    "Locking",
    "Missing",
    "AsyncSemantic",
    "Describing",
    "Semantic",
    "from_url",
    "register_backend",
    "AsyncObjectStoreBackend",
    "AsyncRedisBackend",
    "AsyncTieredBackend",
    "DiskBackend",
    "MemoryBackend",
    "ObjectStoreBackend",
    "RedisBackend",
    "TieredBackend",
]

# The concrete backends, importable from here without importing their drivers up front.
_LAZY = {
    "MemoryBackend": "llm_memo.backends.memory",
    "DiskBackend": "llm_memo.backends.disk",
    "ObjectStoreBackend": "llm_memo.backends.objectstore",
    "AsyncObjectStoreBackend": "llm_memo.backends.objectstore",
    "RedisBackend": "llm_memo.backends.redis",
    "AsyncRedisBackend": "llm_memo.backends.redis",
    "TieredBackend": "llm_memo.backends.tiered",
    "AsyncTieredBackend": "llm_memo.backends.tiered",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


class Missing(enum.Enum):
    """Type of the :data:`MISSING` sentinel, so ``None`` stays a valid cached value."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`Backend.get` returns when there is no live entry under the key.
MISSING: Final = Missing.MISSING


@runtime_checkable
class Backend(Protocol):
    """A synchronous store of entries.

    ``ttl`` on :meth:`set` is how long the store should keep the entry (seconds, ``None`` for no
    limit). It already includes any ``stale_if_error`` window; freshness itself is judged above
    the backend from the entry's own timestamps, so a backend may return an entry whose
    ``expires_at`` has passed but must not return one older than the ``ttl`` it was given.

    .. versionadded:: 0.1.0
    """

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the entry stored under ``key``, or :data:`MISSING`."""
        ...

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` (replacing any), to be kept ``ttl`` seconds."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        ...

    def clear(self, prefix: str = "") -> int:
        """Remove every key that starts with ``prefix``; return how many were removed.

        Keys are built so that a namespace, or one function in a namespace, is a prefix.
        """
        ...

    def close(self) -> None:
        """Release connections and files. The backend is not used afterwards."""
        ...


@runtime_checkable
class AsyncBackend(Protocol):
    """The asynchronous twin of :class:`Backend`: same method names and meanings, awaited.

    .. versionadded:: 0.1.0
    """

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the entry stored under ``key``, or :data:`MISSING`."""
        ...

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` (replacing any), to be kept ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        ...

    async def clear(self, prefix: str = "") -> int:
        """Remove every key that starts with ``prefix``; return how many were removed."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


# -- optional abilities, each its own protocol ---------------------------------------------------


@runtime_checkable
class BulkReading(Protocol):
    """A backend that reads many keys in fewer round trips than one ``get`` each (Redis
    ``MGET``); the per-item runner reads a batch's items with it.

    ``get_many(keys)`` returns one result per key, in order, each what :meth:`Backend.get`
    would return for it (a bad or foreign entry reads as :data:`MISSING`); a store failure
    raises :class:`~llm_memo.errors.BackendError` for the whole read.

    .. versionadded:: 0.1.0
    """

    def get_many(self, keys: Sequence[str]) -> list[Entry | Literal[Missing.MISSING]]:
        """The entries under ``keys``, in order (:data:`MISSING` where there is none)."""
        ...


@runtime_checkable
class AsyncBulkReading(Protocol):
    """The async twin of :class:`BulkReading`.

    .. versionadded:: 0.1.0
    """

    async def get_many(self, keys: Sequence[str]) -> list[Entry | Literal[Missing.MISSING]]:
        """The entries under ``keys``, in order (:data:`MISSING` where there is none)."""
        ...


@runtime_checkable
class Describing(Protocol):
    """A backend that keeps the human-readable request with each entry (test recordings).

    Before looking a call up, the decorator passes ``describe(key, request)``, where
    ``request()`` returns the canonical request view the key hashes; the backend calls it only
    if it needs it. Sync and async backends use the same (sync) method.

    .. versionadded:: 0.1.0
    """

    def describe(self, key: str, request: Callable[[], Any]) -> None:
        """Note the request behind ``key`` (called before ``get`` and ``set`` of that key)."""
        ...


@runtime_checkable
class Listing(Protocol):
    """A backend that can list its keys (for ``llm-memo`` CLI listings, purges and copies).

    .. versionadded:: 0.1.0
    """

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Iterate the stored keys that start with ``prefix`` (order unspecified)."""
        ...


@runtime_checkable
class AsyncListing(Protocol):
    """The async twin of :class:`Listing`.

    .. versionadded:: 0.1.0
    """

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Iterate the stored keys that start with ``prefix``."""
        ...


@runtime_checkable
class Locking(Protocol):
    """A backend that can hold a lock shared by every process using it (``lock=True``).

    ``lock(key, ttl=..., wait=...)`` returns a context manager. Entering it waits up to
    ``wait`` seconds for the lock and yields whether it was acquired; the lock expires by
    itself ``ttl`` seconds after it was taken, so a crashed holder blocks others at most that
    long. Failures raise :class:`~llm_memo.errors.BackendError` (the decorator then proceeds
    without the lock).

    .. versionadded:: 0.1.0
    """

    def lock(self, key: str, *, ttl: float, wait: float) -> AbstractContextManager[bool]:
        """A cross-process lock named after ``key``."""
        ...


@runtime_checkable
class AsyncLocking(Protocol):
    """The async twin of :class:`Locking` (an async context manager).

    .. versionadded:: 0.1.0
    """

    def lock(self, key: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[bool]:
        """A cross-process lock named after ``key``."""
        ...


@runtime_checkable
class Counting(Protocol):
    """A backend that keeps cheap per-function counters (``configure(persist_stats=True)``).

    ``add_counters`` adds a batch, ``{(day, function): {field: amount}}`` with days
    ``YYYY-MM-DD`` (UTC) and the integer fields of
    :data:`~llm_memo.backends._counters.COUNTER_FIELDS`, in as few round trips as the store
    allows; it is called from a background flush, never on a call's path. ``read_counters``
    returns every process's sums in the same shape, for days from ``since`` on (``""``: all).
    Failures raise :class:`~llm_memo.errors.BackendError` (that batch is dropped, logged).

    .. versionadded:: 0.1.0
    """

    def add_counters(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        """Add ``batch`` to the stored counters."""
        ...

    def read_counters(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """The stored counters of days ``since`` and later."""
        ...


@runtime_checkable
class AsyncCounting(Protocol):
    """The async twin of :class:`Counting`.

    .. versionadded:: 0.1.0
    """

    async def add_counters(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        """Add ``batch`` to the stored counters."""
        ...

    async def read_counters(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """The stored counters of days ``since`` and later."""
        ...


@runtime_checkable
class Semantic(Protocol):
    """A backend that also answers *similar* requests (embedding similarity).

    It is a :class:`Backend` too: exact ``get``/``set`` by key come first, so an identical
    request is answered without embedding anything. On an exact miss the decorator calls
    :meth:`search` with the request's *context* (a string identifying everything but the
    embedded text: function, namespace, model, parameters, system prompt...) and the text; a
    match must never cross contexts. Results are stored with :meth:`add`.

    .. versionadded:: 0.1.0
    """

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry in ``context`` with cosine similarity >= ``threshold``
        (the backend's default when ``None``), as ``(key, entry, similarity)``."""
        ...

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` under ``key`` (as ``set`` does) and index ``text`` in ``context``."""
        ...


@runtime_checkable
class AsyncSemantic(Protocol):
    """The async twin of :class:`Semantic`.

    .. versionadded:: 0.1.0
    """

    async def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """As :meth:`Semantic.search`."""
        ...

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """As :meth:`Semantic.add`."""
        ...


_async_backend_types: dict[type, bool] = {}
_semantic_backend_types: dict[type, bool] = {}
_describing_backend_types: dict[type, bool] = {}


def is_semantic_backend(backend: Any) -> bool:
    """Whether ``backend`` can answer similar requests (decided once per backend type)."""
    cls = type(backend)
    known = _semantic_backend_types.get(cls)
    if known is None:
        known = isinstance(backend, (Semantic, AsyncSemantic))
        _semantic_backend_types[cls] = known
    return known


def is_describing_backend(backend: Any) -> bool:
    """Whether ``backend`` wants each call's request (decided once per backend type)."""
    cls = type(backend)
    known = _describing_backend_types.get(cls)
    if known is None:
        known = isinstance(backend, Describing)
        _describing_backend_types[cls] = known
    return known


def is_async_backend(backend: Any) -> bool:
    """Whether ``backend``'s methods are coroutines (decided once per backend type)."""
    cls = type(backend)
    known = _async_backend_types.get(cls)
    if known is None:
        known = inspect.iscoroutinefunction(getattr(cls, "get", None))
        _async_backend_types[cls] = known
    return known
