"""``qdrant://host:port/collection`` and ``qdrant+local:///path``: semantic caching on Qdrant.

One collection holds every entry, one point per key (the point id is a uuid5 of the key), with
the whole :meth:`Entry.to_bytes` in the payload, so an exact hit is one ``retrieve`` and a
similar hit one ``query_points``. Payload fields:

==============  ==================================================================================
``key``         the entry's key
``prefixes``    every ``:``-terminated prefix of the key: ``clear(prefix)`` deletes by an exact
                match on it (namespace and function prefixes are among them)
``partition``   context + embedder identity (:func:`~.partition_name`); similarity search filters
                on it, so a match never crosses model, parameters, namespace, tenant or embedder
``deadline``    when the store may drop the entry (set time + ``ttl``; far future for none)
``expires_at``  the entry's own expiry (informational; freshness is judged above the backend)
``entry``       base64 of the entry bytes
``guard``       the guard's features of the embedded text (not the text itself)
==============  ==================================================================================

Points written by :meth:`set` (a request without text) have no vector and are found by key only.
Qdrant has no TTL: a query filters on ``deadline``, ``get`` treats a passed deadline as a miss,
and :meth:`purge_expired` deletes what has expired (run it from a periodic job).

The collection is created on first use with the embedder's dimension, cosine distance, one named
vector ``text`` and (on a server) keyword indexes on ``partition`` and ``prefixes``. A collection
of another dimension is an error: give each embedder its own collection.

Local mode (``qdrant+local://``) is qdrant-client's in-process engine: exact brute-force search,
one process per folder (it takes a file lock). Backends built from the same ``qdrant+local`` path
in one process share one client, so sync and async functions can use the same folder.

Both classes run the same flows (see :mod:`llm_memo.backends.semantic`); only the client calls
differ (``QdrantClient`` vs ``AsyncQdrantClient``).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import inspect
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import (
    ApiException,
    ResponseHandlingException,
    UnexpectedResponse,
)

from ...entry import Entry
from ...errors import BackendError, CodecError, ConfigurationError
from ...keys import _KEY_PREFIX
from .. import MISSING, Missing
from .._breaker import BreakerGuard, CircuitBreaker
from . import (
    DEFAULT_CANDIDATES,
    DEFAULT_THRESHOLD,
    Guard,
    LexicalGuard,
    VectorCache,
    check_embedder,
    configured_embedder,
    is_async_embedder,
    key_prefixes,
    partition_name,
    resolve_threshold,
)
from ._flows import Embed, Flow, adrive, drive, embed_flow
from .vectors import embed_async, embed_sync

__all__ = [
    "DEFAULT_COLLECTION",
    "AsyncQdrantSemanticBackend",
    "QdrantSemanticBackend",
]

#: Collection used when the URL or constructor names none.
DEFAULT_COLLECTION = "llm_memo"
#: Seconds a server request may take before the store counts as down.
DEFAULT_TIMEOUT = 2

_VECTOR = "text"
_NEVER = 1.0e300  # the deadline of an entry kept until deleted (JSON has no infinity)
_ROOT = _KEY_PREFIX + ":"
_POINTS = uuid.UUID("5f0c4f0e-1c55-4a62-9a5e-8f3a7c1d2b61")  # uuid5 namespace of point ids
_SCROLL = 1024
# What a failed client call raises: API and transport errors, a rate limit (429 with a retry
# delay), and local mode's ValueError ("collection not found") / RuntimeError ("instance is
# closed"). Only exceptions raised *by a client call* are treated as store failures (see
# ``drive``), never our own code's.
_FAILURES: tuple[type[BaseException], ...] = (
    ApiException, QdrantException, ValueError, RuntimeError, OSError,
)  # fmt: skip
# HTTP statuses that say "nobody is there to answer" (a proxy or load balancer in front), and
# the gRPC codes that do.
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})
_UNAVAILABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_RPC_ERROR: type[BaseException] | None = None
try:  # gRPC transport errors, when grpc is installed
    from grpc import RpcError  # type: ignore[import-untyped, import-not-found, unused-ignore]

    _FAILURES = (*_FAILURES, RpcError)
    _RPC_ERROR = RpcError
except ImportError:  # pragma: no cover - grpcio is a qdrant-client dependency
    pass


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the Qdrant server cannot be reached, the only thing the breaker
    counts: a transport failure (refused, reset, timed out), a 502/503/504 from whatever stands
    in front of it, gRPC ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED``. An answer that refuses this
    request (any other status, a rate limit, local mode's "collection not found", a reply that
    does not parse) is not. A ``BackendError`` is judged by its cause."""
    if isinstance(exc, BackendError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ResponseHandlingException):
        # Transport errors arrive wrapped; a response that does not validate is wrapped too.
        return not isinstance(exc.source, ValueError)  # pydantic's ValidationError is one
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _UNAVAILABLE_STATUS
    if _RPC_ERROR is not None and isinstance(exc, _RPC_ERROR):
        code = getattr(exc, "code", None)  # grpc.Call errors carry a status code
        return callable(code) and getattr(code(), "name", "") in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)


_GUARD = LexicalGuard()


def point_id(key: str) -> str:
    """The point id of ``key`` (uuid5, so every process derives the same one)."""
    return str(uuid.uuid5(_POINTS, key))


@dataclass(frozen=True, slots=True)
class _Call:
    """Operation: call ``client.<method>(**kwargs)``; the result is sent back."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _entry_of(payload: dict[str, Any]) -> Entry | None:
    data = payload.get("entry")
    if not isinstance(data, str):
        return None
    try:
        return Entry.from_bytes(base64.b64decode(data, validate=True))
    except (CodecError, binascii.Error, ValueError):
        return None


def _match(name: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=name, match=models.MatchValue(value=value))


class _Flows:
    """Everything the Qdrant backends do, as flows of :class:`_Call` / ``Embed`` operations."""

    def __init__(
        self,
        *,
        collection: str,
        embedder: Any,
        threshold: float,
        candidates: int,
        guard: Guard | None,
        clock: Callable[[], float],
        indexes: bool,
    ) -> None:
        if candidates < 1:
            raise ConfigurationError("candidates must be at least 1")
        resolve_threshold(threshold, threshold)
        self.collection = collection
        self.embedder = embedder
        self.threshold = threshold
        self.candidates = candidates
        self.guard = guard
        self.clock = clock
        self.indexes = indexes
        self.vectors = VectorCache()
        self.dimension: int | None = None

    def _call(self, method: str, **kwargs: Any) -> _Call:
        return _Call(method, {"collection_name": self.collection, **kwargs})

    def ensure(self) -> Flow[None]:
        """Create the collection on first use, or check the existing one's vector size."""
        if self.dimension is not None:
            return
        exists = yield self._call("collection_exists")
        if not exists:
            size = self.embedder.dimension
            if size is None:  # learn it from a vector (kept in the cache for reuse)
                size = len((yield from embed_flow("dimension probe", self.vectors)))
            try:
                yield self._call(
                    "create_collection",
                    vectors_config={
                        _VECTOR: models.VectorParams(size=size, distance=models.Distance.COSINE)
                    },
                )
            except _FAILURES:
                if not (yield self._call("collection_exists")):
                    raise  # not a lost race with another creator: a real failure
            else:
                if self.indexes:
                    for name in ("partition", "prefixes"):
                        yield self._call(
                            "create_payload_index",
                            field_name=name,
                            field_schema=models.PayloadSchemaType.KEYWORD,
                        )
                    yield self._call(
                        "create_payload_index",
                        field_name="deadline",
                        field_schema=models.PayloadSchemaType.FLOAT,
                    )
        info = yield self._call("get_collection")
        vectors = info.config.params.vectors
        params = vectors.get(_VECTOR) if isinstance(vectors, dict) else None
        if params is None:
            raise BackendError(
                f"Qdrant collection {self.collection!r} was not created by llm_memo (it has no "
                f"{_VECTOR!r} vector); use another collection"
            )
        self.dimension = int(params.size)

    def _payload(self, key: str, entry: Entry, ttl: float | None) -> dict[str, Any]:
        return {
            "key": key,
            "prefixes": key_prefixes(key),
            "deadline": _NEVER if ttl is None else self.clock() + ttl,
            "expires_at": entry.expires_at,
            "entry": base64.b64encode(entry.to_bytes()).decode("ascii"),
        }

    # -- exact -----------------------------------------------------------------------------

    def get(self, key: str) -> Flow[Entry | Literal[Missing.MISSING]]:
        yield from self.ensure()
        pid = point_id(key)
        records = yield self._call("retrieve", ids=[pid], with_payload=True, with_vectors=False)
        if not records:
            return MISSING
        payload = records[0].payload or {}
        if payload.get("key") != key:
            return MISSING
        if float(payload.get("deadline", _NEVER)) <= self.clock():
            # Qdrant never expires anything: drop it now that it was seen.
            yield self._call("delete", points_selector=models.PointIdsList(points=[pid]))
            return MISSING
        entry = _entry_of(payload)
        return MISSING if entry is None else entry

    def set(self, key: str, entry: Entry, ttl: float | None) -> Flow[None]:
        if ttl is not None and ttl <= 0:
            yield from self.delete(key)
            return
        yield from self.ensure()
        point = models.PointStruct(
            id=point_id(key), vector={}, payload=self._payload(key, entry, ttl)
        )
        yield self._call("upsert", points=[point], wait=True)

    def delete(self, key: str) -> Flow[bool]:
        yield from self.ensure()
        pid = point_id(key)
        records = yield self._call("retrieve", ids=[pid], with_payload=["deadline"])
        if not records:
            return False
        yield self._call("delete", points_selector=models.PointIdsList(points=[pid]), wait=True)
        payload = records[0].payload or {}
        return float(payload.get("deadline", _NEVER)) > self.clock()

    def clear(self, prefix: str) -> Flow[int]:
        yield from self.ensure()
        root = prefix or _ROOT  # "everything" means llm_memo's keys, nothing else
        if root.endswith(":"):
            selector = models.Filter(must=[_match("prefixes", root)])
            counted = yield self._call("count", count_filter=selector, exact=True)
            if counted.count:
                yield self._call(
                    "delete", points_selector=models.FilterSelector(filter=selector), wait=True
                )
            return int(counted.count)
        boundary = root[: root.rfind(":") + 1]
        narrowed = models.Filter(must=[_match("prefixes", boundary)]) if boundary else None
        doomed: list[Any] = []
        offset: Any = None
        while True:
            points, offset = yield self._call(
                "scroll", scroll_filter=narrowed, limit=_SCROLL, offset=offset,
                with_payload=["key"], with_vectors=False,
            )  # fmt: skip
            doomed += [
                p.id for p in points if str((p.payload or {}).get("key", "")).startswith(root)
            ]
            if offset is None:
                break
        if doomed:
            yield self._call(
                "delete", points_selector=models.PointIdsList(points=doomed), wait=True
            )
        return len(doomed)

    def purge_expired(self) -> Flow[int]:
        yield from self.ensure()
        expired = models.Filter(
            must=[models.FieldCondition(key="deadline", range=models.Range(lte=self.clock()))]
        )
        counted = yield self._call("count", count_filter=expired, exact=True)
        if counted.count:
            yield self._call(
                "delete", points_selector=models.FilterSelector(filter=expired), wait=True
            )
        return int(counted.count)

    # -- semantic --------------------------------------------------------------------------

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> Flow[None]:
        if ttl is not None and ttl <= 0:
            yield from self.delete(key)
            return
        vector = yield from embed_flow(text, self.vectors)
        yield from self.ensure()
        if len(vector) != self.dimension:
            raise BackendError(
                f"{self.embedder.name} makes {len(vector)}-dimensional vectors but Qdrant "
                f"collection {self.collection!r} holds {self.dimension}: use another collection "
                "for this embedder"
            )
        payload = self._payload(key, entry, ttl)
        payload["partition"] = partition_name(context, self.embedder.name)
        if self.guard is not None:
            payload["guard"] = self.guard.features(text)
        point = models.PointStruct(
            id=point_id(key), vector={_VECTOR: vector.tolist()}, payload=payload
        )
        yield self._call("upsert", points=[point], wait=True)

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> Flow[tuple[str, Entry, float] | None]:
        limit = resolve_threshold(threshold, self.threshold)
        vector = yield from embed_flow(text, self.vectors)
        yield from self.ensure()
        if len(vector) != self.dimension:
            return None  # another embedder's collection: nothing here can match
        live = models.FieldCondition(key="deadline", range=models.Range(gt=self.clock()))
        where = models.Filter(
            must=[_match("partition", partition_name(context, self.embedder.name)), live]
        )
        response = yield self._call(
            "query_points", query=vector.tolist(), using=_VECTOR, query_filter=where,
            limit=self.candidates, score_threshold=limit, with_payload=True, with_vectors=False,
        )  # fmt: skip
        wanted = None if self.guard is None else self.guard.features(text)
        for point in response.points:  # best first
            payload = point.payload or {}
            if (
                wanted is not None
                and self.guard is not None
                and not self.guard.allows(wanted, str(payload.get("guard", "")))
            ):
                continue
            key = payload.get("key")
            entry = _entry_of(payload)
            if entry is None or not isinstance(key, str):
                continue
            return key, entry, max(-1.0, min(1.0, float(point.score)))
        return None


# -- URLs and clients ------------------------------------------------------------------------------


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


_QUERY: dict[str, Callable[[str], Any]] = {
    "collection": str,
    "https": _flag,
    "prefer_grpc": _flag,
    "grpc_port": int,
    "timeout": int,
    "prefix": str,
    "threshold": float,
    "candidates": int,
}
_LOCAL_QUERY = ("collection", "threshold", "candidates")


@dataclass(frozen=True)
class _Parsed:
    local: str | None  # ":memory:" or a folder, for qdrant+local
    client: dict[str, Any]
    backend: dict[str, Any]


def _parse_url(url: str) -> _Parsed:
    """Split a ``qdrant://`` / ``qdrant+local://`` URL into client and backend settings.

    Raises:
        ConfigurationError: another scheme, an unknown query parameter, a bad value.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("qdrant", "qdrant+local"):
        raise ConfigurationError(
            f"{url!r} is not a Qdrant URL; use qdrant://host:6333/collection or "
            "qdrant+local:///path/to/folder (qdrant+local:// for in-memory)"
        )
    rest, _, query = rest.partition("?")
    settings: dict[str, Any] = {}
    allowed = _LOCAL_QUERY if scheme == "qdrant+local" else tuple(_QUERY)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            raise ConfigurationError(
                f"unknown query parameter {name!r} in a {scheme}:// URL; known: "
                + ", ".join(allowed)
                + ". Pass other qdrant-client options as from_url(url, client_kwargs={...})"
            )
        try:
            settings[name] = _QUERY[name](value)
        except ValueError:
            raise ConfigurationError(f"query parameter {name}={value!r} is not valid") from None
    backend: dict[str, Any] = {
        k: settings.pop(k) for k in ("collection", "threshold", "candidates") if k in settings
    }
    if scheme == "qdrant+local":
        location = unquote(rest) or ":memory:"
        if location != ":memory:":
            location = os.path.abspath(os.path.expanduser(location))
        return _Parsed(location, {}, backend)
    parts = urlsplit(f"//{rest}")
    if parts.username or parts.password:
        raise ConfigurationError(
            "put the Qdrant API key in from_url(url, api_key=...) or the QDRANT_API_KEY "
            "environment variable, not in the URL"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"bad port in {url!r}") from None
    if not parts.hostname:
        raise ConfigurationError(f"{url!r} names no host; e.g. qdrant://localhost:6333/llm_memo")
    collection = unquote(parts.path.strip("/"))
    if "/" in collection:
        raise ConfigurationError(f"{url!r}: the path is one collection name")
    if collection:
        backend.setdefault("collection", collection)
    # No version check at construction: it is a request (and a warning) while Qdrant is down,
    # and the cache must start anyway.
    client = {"host": parts.hostname, "port": port or 6333, "timeout": DEFAULT_TIMEOUT,
              "check_compatibility": False, **settings}  # fmt: skip
    return _Parsed(None, client, backend)


# Local-mode clients built from URLs, shared per folder: qdrant-client locks the folder, so a
# sync and an async backend of one path in one process must use one client.
_local_clients: dict[str, tuple[QdrantClient, int]] = {}
_local_lock = threading.Lock()


def _local_client(location: str) -> QdrantClient:
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    with _local_lock:
        client, users = _local_clients.get(location, (None, 0))
        if client is None:
            os.makedirs(location, exist_ok=True)
            try:
                client = QdrantClient(path=location)
            except RuntimeError as exc:  # the folder is locked by another process
                raise ConfigurationError(f"qdrant+local://{location}: {exc}") from exc
        _local_clients[location] = (client, users + 1)
        return client


@atexit.register
def _close_local_clients() -> None:
    # An async backend's close() may never be awaited (URL-built backends are closed without
    # an event loop): release the folders' locks before the interpreter tears modules down.
    with _local_lock:
        clients = [client for client, _ in _local_clients.values()]
        _local_clients.clear()
    for client in clients:
        client.close()


def _release_local(client: Any) -> bool:
    """Drop one user of a shared local client; whether it was the last one (close it then)."""
    with _local_lock:
        for location, (shared, users) in list(_local_clients.items()):
            if shared is client:
                if users > 1:
                    _local_clients[location] = (shared, users - 1)
                    return False
                del _local_clients[location]
        return True


def _is_local(client: Any) -> bool:
    return type(getattr(client, "_client", None)).__name__ in ("QdrantLocal", "AsyncQdrantLocal")


class _Base:
    """What the sync and async backends share: settings, repr, the breaker."""

    _flows: _Flows

    def __init__(
        self,
        client: Any,
        *,
        embedder: Any,
        collection: str,
        threshold: float,
        guard: Guard | None,
        candidates: int,
        clock: Callable[[], float],
        breaker: CircuitBreaker | None,
        asynchronous: bool,
    ) -> None:
        check_embedder(embedder, asynchronous=asynchronous)
        self.embedder = embedder
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._owned = False
        self._owner: object = None
        self._build_lock = threading.Lock()
        if callable(client) and not hasattr(client, "query_points"):
            self._factory: Callable[[], Any] | None = client
            self._client: Any = None
            local = False
        else:
            self._factory = None
            self._client = client
            local = _is_local(client)
        # Local mode is not thread-safe: one call at a time per client.
        self._lock = threading.Lock() if local else None
        self._flows = _Flows(
            collection=collection, embedder=embedder, threshold=threshold,
            candidates=candidates, guard=guard, clock=clock, indexes=not local,
        )  # fmt: skip

    @property
    def collection(self) -> str:
        """The Qdrant collection."""
        return self._flows.collection

    @property
    def threshold(self) -> float:
        """The default minimum cosine similarity of a hit."""
        return self._flows.threshold

    @property
    def guard(self) -> Guard | None:
        """The guard applied to candidate hits, if any."""
        return self._flows.guard

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(collection={self.collection!r}, "
            f"embedder={self.embedder.name!r}, threshold={self.threshold})"
        )

    def _guard(self) -> BreakerGuard:
        # One guard per flow: it resolves the breaker however the flow ends (a refusal, a
        # failing embedder, a cancelled task); only an unreachable server counts against it.
        return self._breaker.guard(f"qdrant {self.collection}", outage=_unreachable)

    def _failed(self, what: str, exc: BaseException) -> BackendError:
        self._flows.dimension = None  # the collection may be gone: check again next time
        return BackendError(f"qdrant {self.collection}: {what} failed: {type(exc).__name__}: {exc}")

    @classmethod
    def _settings_from_url(
        cls, url: str, options: dict[str, Any], asynchronous: bool
    ) -> tuple[Any, dict[str, Any], bool]:
        parsed = _parse_url(url)
        kwargs = {**parsed.backend, **{k: v for k, v in options.items() if k != "client_kwargs"}}
        kwargs.pop("api_key", None)
        if kwargs.get("embedder") is None:
            kwargs["embedder"] = configured_embedder(url.partition("://")[0])
        client_kwargs = dict(options.get("client_kwargs") or {})
        if parsed.local is not None:
            return _local_client(parsed.local), kwargs, True
        api_key = options.get("api_key") or os.environ.get("QDRANT_API_KEY")
        settings = {**parsed.client, **({"api_key": api_key} if api_key else {}), **client_kwargs}
        kind = AsyncQdrantClient if asynchronous else QdrantClient

        def factory() -> Any:
            return kind(**settings)

        return factory, kwargs, False


class QdrantSemanticBackend(_Base):
    """Semantic cache in Qdrant (server or local mode), with exact get/set by key.

    Args:
        client: a ``QdrantClient`` (server, or ``QdrantClient(":memory:")`` / ``path=``), which
            stays the caller's; or a zero-argument factory, called on first use (and again in
            a forked child), whose clients the backend closes.
        embedder: an :class:`~llm_memo.backends.semantic.Embedder` (sync).
        collection: the collection (created on first use).
        threshold: default minimum cosine similarity of a hit (a call's ``threshold`` wins).
        guard: checks a candidate beyond similarity (default :class:`LexicalGuard`); ``None``
            turns it off.
        candidates: nearest neighbours examined per search.
        clock: seconds clock for deadlines (tests pass a fake one).
        breaker: the circuit breaker guarding calls.

    Raises:
        ConfigurationError: no usable embedder, or an async one.

    Example::

        backend = QdrantSemanticBackend(QdrantClient(":memory:"), embedder=LocalEmbedder())

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: QdrantClient | Callable[[], QdrantClient],
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
            client, embedder=embedder, collection=collection, threshold=threshold, guard=guard,
            candidates=candidates, clock=clock, breaker=breaker, asynchronous=False,
        )  # fmt: skip

    @classmethod
    def from_url(cls, url: str, **options: Any) -> QdrantSemanticBackend:
        """Build from ``qdrant://host:port/collection`` or ``qdrant+local:///path``.

        ``qdrant+local://`` (or ``qdrant+local://:memory:``) is an in-memory store. Query
        parameters: ``collection``, ``threshold``, ``candidates``; on a server also ``https``,
        ``prefer_grpc``, ``grpc_port``, ``timeout`` (seconds, default 2), ``prefix``.

        Args:
            url: the URL.
            **options: ``embedder`` (default: ``configure(embedder=...)``), ``api_key``
                (default: ``QDRANT_API_KEY``), ``client_kwargs`` (more qdrant-client options),
                and the constructor's ``threshold``, ``guard``, ``candidates``, ``clock``,
                ``breaker``.

        Raises:
            ConfigurationError: a malformed URL, or no embedder configured (the message says how).

        Example::

            configure(embedder=LocalEmbedder())
            backend = QdrantSemanticBackend.from_url("qdrant+local:///var/cache/llm-memo")
        """
        client, kwargs, owned = cls._settings_from_url(url, options, False)
        backend = cls(client, **kwargs)
        backend._owned = owned
        return backend

    @property
    def client(self) -> QdrantClient:
        """The qdrant-client in use (built now if the backend builds its own)."""
        client: QdrantClient = self._qdrant()
        return client

    def _qdrant(self) -> Any:
        if self._factory is not None and (self._client is None or self._owner != os.getpid()):
            with self._build_lock:
                if self._client is None or self._owner != os.getpid():
                    # A forked child builds its own client; the parent's is dropped, not closed.
                    self._client, self._owner = self._factory(), os.getpid()
        return self._client

    def _perform(self, op: Any) -> Any:
        if isinstance(op, Embed):
            return embed_sync(self.embedder, op.text)
        method = getattr(self._qdrant(), op.method)
        if self._lock is None:
            return method(**op.kwargs)
        with self._lock:
            return method(**op.kwargs)

    def _run(self, flow: Flow[Any], what: str) -> Any:
        with self._guard():
            try:
                return drive(flow, self._perform, _FAILURES)
            except _FAILURES as exc:
                raise self._failed(what, exc) from exc

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The live entry under ``key`` (one ``retrieve``), or :data:`MISSING`.

        Raises:
            BackendError: Qdrant failed or the breaker is open.
        """
        result: Entry | Literal[Missing.MISSING] = self._run(self._flows.get(key), "get")
        return result

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` without a vector (found by key only)."""
        self._run(self._flows.set(key, entry, ttl), "set")

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether a live entry was there."""
        return bool(self._run(self._flows.delete(key), "delete"))

    def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix`` (all of llm_memo's for "")."""
        return int(self._run(self._flows.clear(prefix), "clear"))

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry added in ``context`` (by this embedder) whose cosine
        similarity is at least ``threshold`` (the backend's when ``None``) and that the guard
        accepts, as ``(key, entry, similarity)``; one embedding and one ``query_points``.

        Raises:
            BackendError: Qdrant or the embedder failed.
        """
        result: tuple[str, Entry, float] | None = self._run(
            self._flows.search(context, text, threshold), "search"
        )
        return result

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` under ``key`` with the vector of ``text`` in ``context``'s partition
        (the vector of a search just made for ``text`` is reused)."""
        self._run(self._flows.add(key, entry, ttl, context, text), "add")

    def purge_expired(self) -> int:
        """Delete every point whose deadline has passed; return how many.

        Qdrant keeps points until deleted: run this periodically (searches already skip them).
        """
        return int(self._run(self._flows.purge_expired(), "purge_expired"))

    def close(self) -> None:
        """Close the client if the backend built it (a shared local one when its last user
        closes); a client passed in stays open."""
        client = self._client
        if client is None or not (self._owned or self._factory is not None):
            return
        self._client = None
        if self._owned and not _release_local(client):
            return
        client.close()


class AsyncQdrantSemanticBackend(_Base):
    """The async twin of :class:`QdrantSemanticBackend`.

    ``client`` is an ``AsyncQdrantClient`` (or a factory of them, called again for each event
    loop); a sync ``QdrantClient`` is accepted too and called in a worker thread (that is how
    a ``qdrant+local`` folder is shared with sync functions). ``embedder`` may be an
    :class:`~llm_memo.backends.semantic.AsyncEmbedder` or a sync one (run in a worker thread).
    Other arguments as :class:`QdrantSemanticBackend`.

    Example::

        backend = AsyncQdrantSemanticBackend(
            AsyncQdrantClient(url="http://qdrant:6333"), embedder=AsyncOpenAIEmbedder(client)
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
            client, embedder=embedder, collection=collection, threshold=threshold, guard=guard,
            candidates=candidates, clock=clock, breaker=breaker, asynchronous=True,
        )  # fmt: skip
        self._async_embedder = is_async_embedder(embedder)
        self._sync_client = self._client is not None and not inspect.iscoroutinefunction(
            getattr(type(self._client), "query_points", None)
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncQdrantSemanticBackend:
        """As :meth:`QdrantSemanticBackend.from_url`; a server URL gets an ``AsyncQdrantClient``
        per event loop, a local one the folder's shared client."""
        client, kwargs, owned = cls._settings_from_url(url, options, True)
        backend = cls(client, **kwargs)
        backend._owned = owned
        return backend

    @property
    def client(self) -> Any:
        """The qdrant-client in use (built now, for the running loop, if the backend builds it)."""
        return self._qdrant()

    def _qdrant(self) -> Any:
        if self._factory is not None:
            loop = asyncio.get_running_loop()
            if self._client is None or self._owner is not loop:
                # A client of another event loop cannot be used (or closed) here: dropped.
                self._client, self._owner = self._factory(), loop
        return self._client

    async def _perform(self, op: Any) -> Any:
        if isinstance(op, Embed):
            return await embed_async(self.embedder, op.text, self._async_embedder)
        method = getattr(self._qdrant(), op.method)
        if self._sync_client:
            return await asyncio.to_thread(self._locked_call, method, op.kwargs)
        return await method(**op.kwargs)

    def _locked_call(self, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if self._lock is None:
            return method(**kwargs)
        with self._lock:
            return method(**kwargs)

    async def _run(self, flow: Flow[Any], what: str) -> Any:
        with self._guard():
            try:
                return await adrive(flow, self._perform, _FAILURES)
            except _FAILURES as exc:
                raise self._failed(what, exc) from exc

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """As :meth:`QdrantSemanticBackend.get`."""
        result: Entry | Literal[Missing.MISSING] = await self._run(self._flows.get(key), "get")
        return result

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """As :meth:`QdrantSemanticBackend.set`."""
        await self._run(self._flows.set(key, entry, ttl), "set")

    async def delete(self, key: str) -> bool:
        """As :meth:`QdrantSemanticBackend.delete`."""
        return bool(await self._run(self._flows.delete(key), "delete"))

    async def clear(self, prefix: str = "") -> int:
        """As :meth:`QdrantSemanticBackend.clear`."""
        return int(await self._run(self._flows.clear(prefix), "clear"))

    async def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """As :meth:`QdrantSemanticBackend.search`."""
        result: tuple[str, Entry, float] | None = await self._run(
            self._flows.search(context, text, threshold), "search"
        )
        return result

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """As :meth:`QdrantSemanticBackend.add`."""
        await self._run(self._flows.add(key, entry, ttl, context, text), "add")

    async def purge_expired(self) -> int:
        """As :meth:`QdrantSemanticBackend.purge_expired`."""
        return int(await self._run(self._flows.purge_expired(), "purge_expired"))

    async def close(self) -> None:
        """As :meth:`QdrantSemanticBackend.close`."""
        client = self._client
        if client is None or not (self._owned or self._factory is not None):
            return
        self._client = None
        if self._owned and not _release_local(client):
            return
        result = client.close()
        if inspect.isawaitable(result):
            await result
