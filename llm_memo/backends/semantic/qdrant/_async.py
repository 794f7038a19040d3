"""``qdrant://host:port/collection`` and ``qdrant+local:///path``: semantic caching on Qdrant.

This is the source of both backends: :class:`AsyncQdrantSemanticBackend` is written here, once,
and ``_sync.py`` (``QdrantSemanticBackend``) is generated from it by ``scripts/unasync``. Point
ids, payloads and filters are plain code in ``_points.py``, URL parsing in ``_url.py``, which
exceptions are failures in ``_failures.py``, and shared local clients in ``_clients.py``.

One collection holds every entry, one point per key (the point id is a uuid5 of the key), with
the whole :meth:`Entry.to_bytes` in the payload, so an exact hit is one ``retrieve`` and a
similar hit one ``query_points``. Points written by :meth:`set` (a request without text) have no
vector and are found by key only. Qdrant has no TTL: a query filters on ``deadline``, ``get``
treats a passed deadline as a miss, and :meth:`purge_expired` deletes what has expired (run it
from a periodic job).

The collection is created on first use with the embedder's dimension, cosine distance, one named
vector ``text`` and (on a server) keyword indexes on ``partition`` and ``prefixes``. A collection
of another dimension is an error: give each embedder its own collection.

Local mode (``qdrant+local://``) is qdrant-client's in-process engine: exact brute-force search,
one process per folder (it takes a file lock). Backends built from the same ``qdrant+local`` path
in one process share one client, so sync and async functions can use the same folder.

A client the backend builds (from a factory) belongs to its owner: the event loop for the async
backend, which builds one per loop and *closes* the previous loop's client when it moves on; the
process for the sync backend, whose forked child drops the parent's client (:mod:`llm_memo._fork`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from .... import _fork
from ....entry import Entry
from ....errors import BackendError
from ....keys import KEY_ROOT
from ... import MISSING, Missing
from ..._breaker import CircuitBreaker
from .._search import (
    DEFAULT_CANDIDATES,
    DEFAULT_THRESHOLD,
    SearchSettings,
    partition_name,
    resolve_threshold,
)
from ..guard import Guard, LexicalGuard
from ..vectors import configured_embedder, embed_async
from . import _points
from ._clients import (
    call_async,
    close_async,
    is_local,
    is_sync,
    local_client,
    owner_async,
    release_local,
    retire_async,
)
from ._failures import FAILURES, unreachable
from ._url import parse_url

__all__ = ["DEFAULT_COLLECTION", "AsyncQdrantSemanticBackend"]

#: Collection used when the URL or constructor names none.
DEFAULT_COLLECTION = "llm_memo"

_GUARD = LexicalGuard()


class AsyncQdrantSemanticBackend(SearchSettings):
    """Semantic cache in Qdrant (server or local mode), with exact get/set by key.

    Args:
        client: a qdrant-client (server, or ``":memory:"`` / ``path=``), which stays the
            caller's; or a zero-argument factory, called on first use (and again for each event
            loop, or in a forked child), whose clients the backend closes. The async backend
            also takes a sync client, called in a worker thread (that is how a ``qdrant+local``
            folder is shared with sync functions).
        embedder: an :class:`~llm_memo.backends.semantic.Embedder` (the async backend also takes
            an :class:`~llm_memo.backends.semantic.AsyncEmbedder`, and runs a sync one in a
            worker thread).
        collection: the collection (created on first use).
        threshold: default minimum cosine similarity of a hit (a call's ``threshold`` wins).
        guard: checks a candidate beyond similarity (default :class:`LexicalGuard`); ``None``
            turns it off.
        candidates: nearest neighbours examined per search.
        clock: seconds clock for deadlines (tests pass a fake one).
        breaker: the circuit breaker guarding calls.

    Raises:
        ConfigurationError: no usable embedder (or, for the sync backend, an async one).

    Example::

        backend = AsyncQdrantSemanticBackend(
            AsyncQdrantClient(url="http://qdrant:6333"), embedder=LocalEmbedder()
        )

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: AsyncQdrantClient | QdrantClient | Callable[[], AsyncQdrantClient],
        *,
        embedder: Any,
        collection: str = DEFAULT_COLLECTION,
        threshold: float = DEFAULT_THRESHOLD,
        guard: Guard | None = _GUARD,
        candidates: int = DEFAULT_CANDIDATES,
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(
            embedder, threshold=threshold, guard=guard, candidates=candidates, asynchronous=True
        )
        self._collection = collection
        self._clock = clock
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._owned = False  # a shared local client from a URL: released, closed by its last user
        self._owner: object = None
        self._retired: list[tuple[Any, object]] = []  # clients of loops the backend moved off
        self._build_lock = threading.Lock()
        if callable(client) and not hasattr(client, "query_points"):
            self._factory: Callable[[], Any] | None = client
            self._client: Any = None
            local = False
        else:
            self._factory = None
            self._client = client
            local = is_local(client)
        # Local mode is not thread-safe: one call at a time per client.
        self._lock = threading.Lock() if local else None
        self._indexes = not local  # payload indexes: a server's, local mode has none
        self._sync_client = is_sync(self._client)
        self._dimension: int | None = None  # the collection's vector size, once checked...
        self._checked: object = None  # ...through this client
        _fork.register(self)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncQdrantSemanticBackend:
        """Build from ``qdrant://host:port/collection`` or ``qdrant+local:///path``.

        ``qdrant+local://`` (or ``qdrant+local://:memory:``) is an in-memory store. Query
        parameters: ``collection``, ``threshold``, ``candidates``; on a server also ``https``,
        ``prefer_grpc``, ``grpc_port``, ``timeout`` (seconds, default 2), ``prefix``. A server
        URL gets a client per event loop (async) or per process (sync), a local one the folder's
        shared client.

        Args:
            url: the URL.
            **options: ``embedder`` (default: ``configure(embedder=...)``), ``api_key``
                (default: ``QDRANT_API_KEY``), ``client_kwargs`` (more qdrant-client options),
                and the constructor's ``threshold``, ``guard``, ``candidates``, ``clock``,
                ``breaker``.

        Raises:
            ConfigurationError: a malformed URL (a boolean parameter that is not one among
                them), or no embedder configured (the message says how).

        Example::

            configure(embedder=LocalEmbedder())
            backend = AsyncQdrantSemanticBackend.from_url("qdrant+local:///var/cache/llm-memo")
        """
        parsed = parse_url(url)
        kwargs = {**parsed.backend, **{k: v for k, v in options.items() if k != "client_kwargs"}}
        kwargs.pop("api_key", None)
        if kwargs.get("embedder") is None:
            kwargs["embedder"] = configured_embedder(url.partition("://")[0])
        if parsed.local is not None:
            backend = cls(local_client(parsed.local), **kwargs)
            backend._owned = True
            return backend
        api_key = options.get("api_key") or os.environ.get("QDRANT_API_KEY")
        settings = {
            **parsed.client,
            **({"api_key": api_key} if api_key else {}),
            **dict(options.get("client_kwargs") or {}),
        }

        def factory() -> AsyncQdrantClient:
            return AsyncQdrantClient(**settings)

        return cls(factory, **kwargs)

    @property
    def collection(self) -> str:
        """The Qdrant collection."""
        return self._collection

    @property
    def client(self) -> Any:
        """The qdrant-client in use (built now, for the running loop or this process, if the
        backend builds its own)."""
        return self._qdrant()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(collection={self.collection!r}, "
            f"embedder={self.embedder.name!r}, threshold={self.threshold})"
        )

    # -- the protocol ----------------------------------------------------------------------

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The live entry under ``key`` (one ``retrieve``), or :data:`MISSING`.

        Raises:
            BackendError: Qdrant failed or the breaker is open.
        """
        with self._operation("get"):
            await self._ensure()
            pid = _points.point_id(key)
            records = await self._call("retrieve", ids=[pid], with_payload=True, with_vectors=False)
            if not records:
                return MISSING
            stored = records[0].payload or {}
            if stored.get("key") != key:
                return MISSING
            if _points.deadline_of(stored) <= self._clock():
                # Qdrant never expires anything: drop it now that it was seen.
                await self._call("delete", points_selector=models.PointIdsList(points=[pid]))
                return MISSING
            entry = _points.entry_of(stored)
            return MISSING if entry is None else entry

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` without a vector (found by key only)."""
        with self._operation("set"):
            if ttl is not None and ttl <= 0:
                await self._delete(key)
                return
            await self._ensure()
            point = models.PointStruct(
                id=_points.point_id(key), vector={}, payload=self._payload(key, entry, ttl)
            )
            await self._call("upsert", points=[point], wait=True)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether a live entry was there."""
        with self._operation("delete"):
            return await self._delete(key)

    async def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix`` (all of llm_memo's for "")."""
        with self._operation("clear"):
            return await self._clear(prefix)

    async def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry added in ``context`` (by this embedder) whose cosine
        similarity is at least ``threshold`` (the backend's when ``None``) and that the guard
        accepts, as ``(key, entry, similarity)``; one embedding and one ``query_points``.

        Raises:
            BackendError: Qdrant or the embedder failed.
        """
        with self._operation("search"):
            return await self._search(context, text, threshold)

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` under ``key`` with the vector of ``text`` in ``context``'s partition
        (the vector of a search just made for ``text`` is reused)."""
        with self._operation("add"):
            await self._add(key, entry, ttl, context, text)

    async def purge_expired(self) -> int:
        """Delete every point whose deadline has passed; return how many.

        Qdrant keeps points until deleted: run this periodically (searches already skip them).
        """
        with self._operation("purge_expired"):
            await self._ensure()
            expired = _points.expired(self._clock())
            counted = await self._call("count", count_filter=expired, exact=True)
            if counted.count:
                selector = models.FilterSelector(filter=expired)
                await self._call("delete", points_selector=selector, wait=True)
            return int(counted.count)

    async def close(self) -> None:
        """Close the client if the backend built it (a shared local one when its last user
        closes); a client passed in stays open."""
        await self._close_retired()
        client = self._client
        if client is None or not (self._owned or self._factory is not None):
            return
        self._client = None
        if self._owned and not release_local(client):
            return
        await close_async(client)

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _operation(self, what: str) -> Iterator[None]:
        # One breaker guard per operation: it resolves the breaker however the operation ends
        # (a refusal, a failing embedder, a cancelled task); only an unreachable server counts
        # against it.
        with self._breaker.guard(f"qdrant {self.collection}", outage=unreachable):
            try:
                yield
            except FAILURES as exc:
                self._dimension = None  # the collection may be gone: check again next time
                raise BackendError(
                    f"qdrant {self.collection}: {what} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def _qdrant(self) -> Any:
        """The client to call: the one given, else the owner's (built now if needed)."""
        if self._factory is None:
            return self._client
        owner = owner_async()
        client = self._client
        if client is None or self._owner is not owner:
            with self._build_lock:
                if self._client is None or self._owner is not owner:
                    if self._client is not None:
                        self._retired.append((self._client, self._owner))
                    self._client, self._owner = self._factory(), owner
                client = self._client
        return client

    async def _close_retired(self) -> None:
        if self._retired:
            with self._build_lock:
                retired, self._retired = self._retired, []
            for client, owner in retired:
                await retire_async(client, owner)

    def _after_fork(self) -> None:
        # In a forked child: the parent's clients are dropped, never touched (their sockets are
        # the parent's), and locks another thread may have held are made anew.
        self._build_lock = threading.Lock()
        if self._lock is not None:
            self._lock = threading.Lock()
        if self._factory is not None:
            self._client, self._owner, self._retired = None, None, []

    async def _call(self, method: str, **kwargs: Any) -> Any:
        """``client.<method>(collection_name=..., **kwargs)``."""
        bound = getattr(self._qdrant(), method)
        await self._close_retired()
        arguments = {"collection_name": self.collection, **kwargs}
        return await call_async(bound, arguments, self._lock, self._sync_client)

    async def _embed(self, text: str) -> Any:
        """``text``'s unit vector: from the cache (a search just made for it), else embedded."""
        return await embed_async(self.embedder, text, self._async_embedder, self._vectors)

    def _payload(self, key: str, entry: Entry, ttl: float | None) -> dict[str, Any]:
        deadline = _points.NEVER if ttl is None else self._clock() + ttl
        return _points.payload(key, entry, deadline)

    async def _ensure(self) -> None:
        """Create the collection on first use, or check the existing one's vector size."""
        client = self._qdrant()
        if self._dimension is not None and self._checked is client:
            return  # (a client built for a new event loop checks once more)
        if not await self._call("collection_exists"):
            size = self.embedder.dimension
            if size is None:  # learn it from a vector (kept in the cache for reuse)
                size = len(await self._embed("dimension probe"))
            try:
                await self._call("create_collection", vectors_config=_points.vectors_config(size))
            except FAILURES:
                if not await self._call("collection_exists"):
                    raise  # not a lost race with another creator: a real failure
            else:
                if self._indexes:
                    for name, schema in _points.INDEXES:
                        await self._call(
                            "create_payload_index", field_name=name, field_schema=schema
                        )
        info = await self._call("get_collection")
        self._dimension = _points.dimension_of(info, self.collection)
        self._checked = client

    # -- exact -----------------------------------------------------------------------------

    async def _delete(self, key: str) -> bool:
        await self._ensure()
        pid = _points.point_id(key)
        records = await self._call("retrieve", ids=[pid], with_payload=["deadline"])
        if not records:
            return False
        await self._call("delete", points_selector=models.PointIdsList(points=[pid]), wait=True)
        return _points.deadline_of(records[0].payload) > self._clock()

    async def _clear(self, prefix: str) -> int:
        await self._ensure()
        root = prefix or KEY_ROOT  # "everything" means llm_memo's keys, nothing else
        if root.endswith(":"):
            selector = models.Filter(must=[_points.match("prefixes", root)])
            counted = await self._call("count", count_filter=selector, exact=True)
            if counted.count:
                await self._call(
                    "delete", points_selector=models.FilterSelector(filter=selector), wait=True
                )
            return int(counted.count)
        boundary = root[: root.rfind(":") + 1]
        narrowed = models.Filter(must=[_points.match("prefixes", boundary)]) if boundary else None
        doomed: list[Any] = []
        offset: Any = None
        while True:
            points, offset = await self._call(
                "scroll", scroll_filter=narrowed, limit=_points.SCROLL, offset=offset,
                with_payload=["key"], with_vectors=False,
            )  # fmt: skip
            doomed += [
                p.id for p in points if str((p.payload or {}).get("key", "")).startswith(root)
            ]
            if offset is None:
                break
        if doomed:
            await self._call(
                "delete", points_selector=models.PointIdsList(points=doomed), wait=True
            )
        return len(doomed)

    # -- semantic --------------------------------------------------------------------------

    async def _add(
        self, key: str, entry: Entry, ttl: float | None, context: str, text: str
    ) -> None:
        if ttl is not None and ttl <= 0:
            await self._delete(key)
            return
        vector = await self._embed(text)
        await self._ensure()
        if len(vector) != self._dimension:
            raise BackendError(
                f"{self.embedder.name} makes {len(vector)}-dimensional vectors but Qdrant "
                f"collection {self.collection!r} holds {self._dimension}: use another collection "
                "for this embedder"
            )
        stored = self._payload(key, entry, ttl)
        stored["partition"] = partition_name(context, self.embedder.name)
        if self._guard is not None:
            stored["guard"] = self._guard.features(text)
        point = models.PointStruct(
            id=_points.point_id(key), vector={_points.VECTOR: vector.tolist()}, payload=stored
        )
        await self._call("upsert", points=[point], wait=True)

    async def _search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        limit = resolve_threshold(threshold, self._threshold)
        vector = await self._embed(text)
        await self._ensure()
        if len(vector) != self._dimension:
            return None  # another embedder's collection: nothing here can match
        where = _points.live(partition_name(context, self.embedder.name), self._clock())
        response = await self._call(
            "query_points", query=vector.tolist(), using=_points.VECTOR, query_filter=where,
            limit=self._candidates, score_threshold=limit, with_payload=True, with_vectors=False,
        )  # fmt: skip
        guard = self._guard
        wanted = None if guard is None else guard.features(text)
        for point in response.points:  # best first
            stored = point.payload or {}
            features = str(stored.get("guard", ""))
            if wanted is not None and guard is not None and not guard.allows(wanted, features):
                continue
            key = stored.get("key")
            entry = _points.entry_of(stored)
            if entry is None or not isinstance(key, str):
                continue
            return key, entry, max(-1.0, min(1.0, float(point.score)))
        return None
