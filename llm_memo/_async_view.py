"""The async face of a sync backend, so an async runner always awaits.

A coroutine function may be served by a sync backend (memory, disk, a sync semantic backend,
the test fixture's): :class:`~llm_memo._memo.Memo` adapts it once, when it resolves the backend,
with :func:`async_view`. The view's methods are coroutines that call the backend *inline*:
memory and disk answer in microseconds, so there is no thread hop, exactly as before the view
existed. The view has the backend's optional abilities and no others (a ``lock`` only over a
:class:`~llm_memo.backends.Locking` backend, ``search``/``add`` only over a semantic one,
``describe`` only over a describing one, ``get_many`` only over a
:class:`~llm_memo.backends.BulkReading` one), so the protocol checks the runners make answer as
they would for the backend itself.

The other direction exists once, for one case: a coroutine function that *returns a sync
stream* while served by an async backend. The stream is consumed synchronously, so its write is
scheduled on the running loop (:func:`sync_face`).

Pure adapters: no decisions, no settings. Not here: choosing the backend (``_memo.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _fork
from ._lru import LRU
from .backends import BulkReading, Locking, is_describing_backend, is_semantic_backend
from .errors import BackendError

if TYPE_CHECKING:
    from .entry import Entry

__all__ = ["AsyncView", "async_view", "sync_face", "unwrap"]


class AsyncView:
    """An async backend over a sync one: every method awaits nothing and calls it inline."""

    __slots__ = ("backend",)

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return repr(self.backend)

    @property
    def max_entry_size(self) -> Any:
        """The backend's entry size (what bounds recording and decompression)."""
        return getattr(self.backend, "max_entry_size", None)

    async def get(self, key: str) -> Any:
        return self.backend.get(key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self.backend.set(key, entry, ttl)

    async def delete(self, key: str) -> bool:
        return bool(self.backend.delete(key))

    async def clear(self, prefix: str = "") -> int:
        return int(self.backend.clear(prefix))

    async def close(self) -> None:
        self.backend.close()


class _Lock:
    """A sync lock's context manager, entered and left inline from async code."""

    __slots__ = ("_lock",)

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    async def __aenter__(self) -> bool:
        return bool(self._lock.__enter__())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.__exit__(exc_type, exc, tb)


class _Locks:
    __slots__ = ()
    backend: Any

    def lock(self, key: str, *, ttl: float, wait: float) -> _Lock:
        return _Lock(self.backend.lock(key, ttl=ttl, wait=wait))


class _Similar:
    __slots__ = ()
    backend: Any

    async def search(self, context: str, text: str, threshold: float | None) -> Any:
        return self.backend.search(context, text, threshold)

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        self.backend.add(key, entry, ttl, context, text)


class _Bulk:
    __slots__ = ()
    backend: Any

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        return list(self.backend.get_many(keys))


class _Describes:
    __slots__ = ()
    backend: Any

    def describe(self, key: str, request: Callable[[], Any]) -> None:
        self.backend.describe(key, request)


# One view class per combination of abilities, built on first use.
_classes: dict[tuple[bool, bool, bool, bool], type[AsyncView]] = {}
# Views already made, by backend identity (the backend itself is kept to check identity).
_views: LRU[int, tuple[Any, AsyncView]] = LRU(64)
# LRU has no __weakref__ slot (so not _fork.register): a module-level one resets by callback.
_fork.register(_views)


def _view_class(locks: bool, similar: bool, describes: bool, bulk: bool) -> type[AsyncView]:
    abilities = (locks, similar, describes, bulk)
    cls = _classes.get(abilities)
    if cls is None:
        kinds = (_Locks, _Similar, _Describes, _Bulk)
        mixins = [m for m, has in zip(kinds, abilities, strict=True) if has]
        cls = type("AsyncView", (*mixins, AsyncView), {"__slots__": ()})
        _classes[abilities] = cls
    return cls


def async_view(backend: Any, *, remember: bool = True) -> AsyncView:
    """The async view of sync ``backend`` (the same view object for the same backend).

    ``remember=False``: make a view that is not kept (a stand-in that will be replaced).
    """
    if remember:
        known = _views.get(id(backend))
        if known is not None and known[0] is backend:
            return known[1]
    cls = _view_class(
        isinstance(backend, Locking),
        is_semantic_backend(backend),
        is_describing_backend(backend),
        isinstance(backend, BulkReading),
    )
    view = cls(backend)
    if remember:
        _views.put(id(backend), (backend, view))
    return view


def unwrap(backend: Any) -> Any:
    """The backend behind a view (for log lines and their rate limits), else ``backend``."""
    return backend.backend if isinstance(backend, AsyncView) else backend


# -- a sync stream written through an async backend -----------------------------------------


class _BackgroundWrites:
    """``set`` on an async backend from sync code: the write runs as a task on the loop."""

    __slots__ = ("_backend", "_on_error")

    def __init__(self, backend: Any, on_error: Callable[[Any, BackendError], None]) -> None:
        self._backend = backend
        self._on_error = on_error

    def __repr__(self) -> str:
        return repr(self._backend)

    @property
    def max_entry_size(self) -> Any:
        return getattr(self._backend, "max_entry_size", None)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        coro = self._backend.set(key, entry, ttl)

        async def run() -> None:
            try:
                await coro
            except BackendError as exc:
                self._on_error(self._backend, exc)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the stream outlived its loop: nothing can write it
            coro.close()
            return
        task = loop.create_task(run())
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)


_PENDING: set[asyncio.Task[None]] = set()


def sync_face(backend: Any, on_error: Callable[[Any, BackendError], None]) -> Any:
    """What a sync stream returned to async code writes through: the sync backend behind a
    view, or, for a real async backend, one that writes in the background (``on_error``
    receives the backend and a failure of that later write)."""
    if isinstance(backend, AsyncView):
        return backend.backend
    return _BackgroundWrites(backend, on_error)
