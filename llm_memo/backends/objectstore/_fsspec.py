"""fsspec filesystems (S3, GCS, Azure, and any other) for both backends.

Three I/O classes with the method names of ``_io.SyncIO`` / ``_io.AsyncIO``, so the backend
body is one text: :class:`_AsyncFsspecIO` (an async filesystem on the running loop, one
deadline per operation, the driver's retries included), :class:`_LoopIO` (the same coroutines
run on fsspec's own loop thread for sync callers, so sync calls get the same deadlines) and
:class:`_FsspecIO` (a filesystem with only a sync API: sftp, hdfs...). ``_FsspecIO`` and
``_AsyncFsspecIO`` make the same calls in the two dialects of fsspec (``fs.cat_file`` versus
``fs._cat_file``), and only the async one bounds them: they are not generated from one source
because the sync-only filesystems they serve have no async API to generate from.
Closing drivers' sessions (fsspec has no ``close()``) is here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from .target import _DELETE_REPORTS_MISSING, _FLAT, LISTING_TIMEOUT, _protocols

_BATCH: Final = 1000  # paths per bulk delete (S3's DeleteObjects limit)
_READS: Final = 16  # requests in flight in a bulk read (aiohttp's pools allow 100 per host)


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

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return [self.read(path) for path in paths]

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

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return self._run(self._aio.read_many, paths)

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

    async def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        """Whole objects, :data:`_READS` requests in flight at a time, each under the read
        deadline; ``None`` where there is none. The first other failure fails the whole read
        at once: the requests still running are cancelled and none is started after it, so a
        failing store costs one deadline, not one per wave of requests."""
        await self._connect()
        gate = asyncio.Semaphore(_READS)
        failed = False

        async def one(path: str) -> bytes | None:
            nonlocal failed
            async with gate:
                if failed:  # a slot freed by the failure: ask nothing more (never returned)
                    return None
                try:
                    return await _bounded(self._get(path), self._timeout)
                except BaseException:
                    failed = True
                    raise

        tasks = [asyncio.ensure_future(one(path)) for path in paths]
        if not tasks:
            return []
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a failure, or cancelled from outside: nothing is left running
            for task in tasks:
                if not task.done():
                    task.cancel()
                task.add_done_callback(_consume)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]

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
