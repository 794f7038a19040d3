"""The object-store backend, written once, in async: ``scripts/unasync`` generates ``_sync.py``.

Each method is a few lines: a path from :mod:`.layout`, a frame from :mod:`.framing`, one call on
the I/O owner of ``_io.py`` (the async and sync owners have the same method names), inside the
failure guard of :mod:`.errors`. Edit the async source, then run ``scripts/unasync`` (CI runs
``scripts/unasync --check``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal

from ...entry import Entry
from .. import MISSING, Missing
from ._base import _ObjectStore
from ._counters import counter_paths, counter_top, read_counter_files
from ._io import AsyncIO, AsyncStoreIO, aiter_listed
from .framing import _FRAME, _HEAD_READ, _expired, _frame, _unframe
from .layout import _entries_in, _named, _scan_top


class AsyncObjectStoreBackend(_ObjectStore):
    """Entries as objects in any fsspec filesystem: local files, S3, GCS, Azure Blob, ...

    Local files are read and written inline (microseconds, no thread hop). Network stores go
    through fsspec's async implementations: for async callers on a filesystem built with
    ``asynchronous=True`` inside each running event loop (s3fs, gcsfs and adlfs sessions
    belong to one loop); for sync callers the same coroutines run on fsspec's own I/O loop
    thread. A filesystem given in the other mode is rebuilt from its options; one with only a
    sync API (sftp, hdfs...) is used through that API.

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

        backend = AsyncObjectStoreBackend(
            "s3://my-bucket/llm-cache", storage_options={"profile": "prod"}
        )

        @llm_cached(backend=backend, ttl=86400)
        async def ask(prompt: str) -> str: ...

    .. versionadded:: 0.1.0
    """

    _io_type = AsyncStoreIO
    _ios: AsyncStoreIO

    def _io(self) -> AsyncIO:
        return self._ios.current()

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the live entry under ``key`` or :data:`MISSING`: one GET, nothing else.

        A missing, expired or unparsable object, or one that holds another key, is a miss.

        Raises:
            BackendError: the store failed (or the breaker is open).
        """
        path = self._path(key)
        with self._guard("get"):
            data = await self._io().read(path)
        return MISSING if data is None else _unframe(data, self._clock(), key)

    async def get_many(self, keys: Sequence[str]) -> list[Entry | Literal[Missing.MISSING]]:
        """The live entries under ``keys``, in order: one GET each, 16 in flight at a time on a
        remote store. What :meth:`get` reads as a miss reads as one here.

        Raises:
            BackendError: the store failed for any of them (or the breaker is open).
        """
        paths = [self._path(key) for key in keys]
        with self._guard("get"):
            found = await self._io().read_many(paths)
        now = self._clock()
        return [
            MISSING if data is None else _unframe(data, now, key)
            for key, data in zip(keys, found, strict=True)
        ]

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write ``entry`` as one whole object, readable for ``ttl`` seconds (``None``: forever).

        Raises:
            BackendError: the store failed.
        """
        path, data = self._path(key), _frame(key, entry, ttl, self._clock())
        with self._guard("set"):
            if data is None:
                await self._io().remove(path, report=False)
            else:
                await self._io().write(path, data)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there.

        Raises:
            BackendError: the store failed.
        """
        path = self._path(key)
        with self._guard("delete"):
            return await self._io().remove(path, report=True)

    async def _entries(self, io: AsyncIO, prefix: str, top: str) -> dict[str, str]:
        """``{path: key}`` of the entries below ``top`` whose key starts with ``prefix``; keys
        that are not in their path are read from the objects' headers."""
        found, unnamed = _entries_in(self.root, prefix, await io.find(top))
        if unnamed:
            heads = await io.read_heads(unnamed, _HEAD_READ)
            named, longer = _named(self.root, prefix, unnamed, heads)
            found.update(named)
            found.update(_named(self.root, prefix, longer, [await io.read(p) for p in longer])[0])
        return found

    async def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix``; return how many.

        A namespace or function prefix lists and deletes only its subtree; ``""`` removes every
        entry under the root (objects that are not entries are left alone).

        Raises:
            BackendError: the store failed.
        """
        with self._guard("clear"):
            io = self._io()
            doomed = list(await self._entries(io, prefix, _scan_top(self.root, prefix)))
            await io.remove_many(doomed)
        return len(doomed)

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Iterate the stored keys starting with ``prefix``, in full however long (expired ones
        included until :meth:`purge_expired` or a lifecycle rule removes them). The sync
        backend lists when called; the async one when first iterated.

        Raises:
            BackendError: the listing failed.
        """
        return aiter_listed(self._keys, prefix)

    async def _keys(self, prefix: str) -> list[str]:
        with self._guard("keys"):
            found = await self._entries(self._io(), prefix, _scan_top(self.root, prefix))
        return list(found.values())

    async def purge_expired(self) -> int:
        """Delete every entry past its ttl; return how many. Lists the whole tree and reads
        each object's 12-byte header (ranged GETs).

        Raises:
            BackendError: the store failed.
        """
        with self._guard("purge_expired"):
            io = self._io()
            paths = list(await self._entries(io, "", self.root))
            doomed = _expired(paths, await io.read_heads(paths, _FRAME.size), self._clock())
            await io.remove_many(doomed)
        return len(doomed)

    async def add_counters(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        """Add a batch of per-function counters: this process rewrites its own counter file of
        each day touched (one PUT per day; see ``_counters.py``).

        Raises:
            BackendError: the store failed.
        """
        files = self._counter_files.add(batch)
        with self._guard("add_counters"):
            for path, data in files.items():
                await self._io().write(path, data)

    async def read_counters(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """Every process's counters for days ``since`` and later (a listing, then one GET per
        writer and day).

        Raises:
            BackendError: the store failed.
        """
        with self._guard("read_counters"):
            io = self._io()
            paths = counter_paths(self.root, await io.find(counter_top(self.root)), since)
            contents = [await io.read(path) for path in paths]
        return read_counter_files(contents)

    async def close(self) -> None:
        """Release the filesystem: close the sessions this backend opened (for the async
        backend, those of the running event loop; the other loops' are forgotten)."""
        await self._ios.aclose()
