"""The I/O seam between the backend body and the stores: one interface in two flavours.

``SyncIO`` and ``AsyncIO`` have the same method names (read, read_heads, write, remove,
remove_many, find, close), so the backend is written once, in async (``_async.py``), and its
sync twin is generated (``_sync.py``). What differs structurally between the two lives here,
not in the backend: which I/O class serves a target (:func:`sync_io`, :func:`async_io`), and
who owns it. :class:`AsyncStoreIO` keeps one I/O per running event loop (s3fs, gcsfs and adlfs
sessions belong to one loop); :class:`StoreIO` keeps one per process, rebuilt in a forked child
(``_fork.register``), where fsspec's async filesystems refuse to run. :func:`aiter_listed` and
:func:`iter_listed` are the one place where a listing's timing differs: the sync ``keys()``
lists when called, the async one when first iterated.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

from ... import _fork
from ._fsspec import _AsyncFsspecIO, _FsspecIO, _LoopIO
from ._local import _InlineIO, _LocalIO
from .target import _clone, _Target


class SyncIO(Protocol):
    def read(self, path: str) -> bytes | None: ...
    def read_many(self, paths: Sequence[str]) -> list[bytes | None]: ...
    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]: ...
    def write(self, path: str, data: bytes) -> None: ...
    def remove(self, path: str, *, report: bool) -> bool: ...
    def remove_many(self, paths: Sequence[str]) -> None: ...
    def find(self, top: str) -> list[str]: ...
    def close(self) -> None: ...


class AsyncIO(Protocol):
    async def read(self, path: str) -> bytes | None: ...
    async def read_many(self, paths: Sequence[str]) -> list[bytes | None]: ...
    async def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]: ...
    async def write(self, path: str, data: bytes) -> None: ...
    async def remove(self, path: str, *, report: bool) -> bool: ...
    async def remove_many(self, paths: Sequence[str]) -> None: ...
    async def find(self, top: str) -> list[str]: ...
    async def close(self) -> None: ...


def sync_io(target: _Target, timeout: float | None, *, forked: bool = False) -> SyncIO:
    """I/O for the sync backend; ``forked``: in a child process, where fsspec's async
    filesystems (and their loop thread) from the parent cannot be used."""
    if target.local:
        return _LocalIO()
    fs = target.fs
    if fs is None:
        fs = target._build(asynchronous=False)
    elif getattr(fs, "async_impl", False) and (forked or getattr(fs, "asynchronous", False)):
        fs = _clone(fs, asynchronous=False)
    return _LoopIO(fs, timeout) if getattr(fs, "async_impl", False) else _FsspecIO(fs)


def async_io(target: _Target, loop: asyncio.AbstractEventLoop, timeout: float | None) -> AsyncIO:
    """I/O for the async backend in ``loop``."""
    if target.local:
        return _InlineIO(_LocalIO())
    fs, owned = target.fs, False
    if fs is None:
        fs, owned = target._build(asynchronous=True, loop=loop), True
    elif not getattr(fs, "async_impl", False):
        # A filesystem with only a sync API (sftp, hdfs, ...): fsspec's wrapper runs each
        # call in a worker thread (asyncio.to_thread).
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

        fs = AsyncFileSystemWrapper(fs, asynchronous=True)
    elif not fs.asynchronous:
        fs, owned = _clone(fs, asynchronous=True, loop=loop), True
    return _AsyncFsspecIO(fs, timeout, owned=owned)


async def aiter_listed(
    fetch: Callable[[str], Awaitable[list[str]]], prefix: str
) -> AsyncIterator[str]:
    """``keys()`` for async callers: list on the first iteration, then yield each key."""
    for key in await fetch(prefix):
        yield key


def iter_listed(fetch: Callable[[str], list[str]], prefix: str) -> Iterator[str]:
    """``keys()`` for sync callers: list now (a failure raises from the call), then iterate."""
    return iter(fetch(prefix))


class StoreIO:
    """The sync backend's I/O: built with the backend, one per process."""

    def __init__(self, target: _Target, timeout: float | None) -> None:
        self._target = target
        self._timeout = timeout
        self._io = sync_io(target, timeout)
        self._forked = False
        _fork.register(self)

    def _after_fork(self) -> None:
        # fsspec's async filesystems refuse to run in a forked child ("not fork-safe"): a
        # worker forked after the backend was built gets a filesystem of its own on first use.
        self._forked = True

    def current(self) -> SyncIO:
        if self._forked:
            self._forked = False
            self._io = sync_io(self._target, self._timeout, forked=True)
        return self._io

    @property
    def fs(self) -> Any:
        return getattr(self.current(), "fs", None)

    def close(self) -> None:
        self._io.close()


class AsyncStoreIO:
    """The async backend's I/O: one per running event loop, built inside it on first use."""

    def __init__(self, target: _Target, timeout: float | None) -> None:
        self._target = target
        self._timeout = timeout
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIO] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> AsyncIO:
        loop = asyncio.get_running_loop()
        io = self._loops.get(loop)
        if io is None:
            io = self._loops[loop] = async_io(self._target, loop, self._timeout)
        return io

    @property
    def fs(self) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return getattr(self._loops.get(loop), "fs", None)

    async def aclose(self) -> None:
        """Close the sessions opened in the running loop; forget the other loops' I/O."""
        loop = asyncio.get_running_loop()
        opened = list(self._loops.items())
        self._loops.clear()
        for owner, io in opened:
            if owner is loop:
                await io.close()
