"""``redis+semantic://``: semantic caching on plain Redis 7, or on Redis 8 vector sets.

This is the source of both backends: :class:`AsyncRedisSemanticBackend` is written here, once, and
``_sync.py`` (``RedisSemanticBackend``) is generated from it by ``scripts/unasync``. The index
formats, scripts and reply parsing are plain code in ``_index.py``; URL parsing in ``_url.py``.

Entries are stored exactly as the ``redis://`` backend stores them (one key each, ``SET ... PX``
with Redis's native expiry; a hit by key is one ``GET``); that part *is* a
:class:`~llm_memo.backends.redis.AsyncRedisBackend`, wrapped. Next to the entries, each partition
(exact context + embedder, see :func:`~llm_memo.backends.semantic.partition_name`) has one index
key named after it, so a search reads exactly one partition and a match never crosses model,
parameters, namespace, tenant or embedder. The index has one of two shapes:

* **hash** (any Redis >= 7.0, no module): a hash of entry key -> record (deadline, time added,
  the unit vector as int8, the key, the guard's features). A search is one cached Lua script
  (``EVALSHA``) that scores the partition on the server and returns only the best few keys,
  scores and features; its run time grows with the partition, and Redis serves no other client
  while it runs, so each partition keeps at most ``max_partition`` vectors (default
  :data:`DEFAULT_MAX_PARTITION_HASH`).
* **vectorset** (Redis >= 8, ``VADD`` / ``VSIM``): a vector set per partition (HNSW, float32,
  no quantisation by default), the deadline, time added and guard features as its JSON
  attributes; a search is one ``VSIM ... FILTER`` (expired members filtered out on the server).
  Cap: :data:`DEFAULT_MAX_PARTITION_VECTORSET`.

``mode="auto"`` (the default) picks vector sets when the server has ``VADD`` (asked once, with a
tiny Lua script), else the hash. Both shapes give the same results contract.

**Beyond the cap.** Adding to a full partition evicts one member per add, chosen the way Redis
evicts keys: among 16 random members, an expired one, else the one added longest ago. The newest
entry is never evicted. An evicted vector only stops *similar* requests from finding the entry;
the entry itself stays until its own TTL (an identical request still hits).

**Expiry.** Entries expire natively. Index members whose entry has expired or was deleted are
skipped by searches and removed when a search meets them (hash: the script drops every expired
record it reads; both: the candidates whose entry is gone) or when eviction samples them. The
index key itself gets the longest TTL of what it holds (``PEXPIRE ... GT``), so an idle
partition disappears.

**Writes** are one round trip: the entry's ``SET`` and a Lua script that updates the index,
sets its TTL and evicts, pipelined. **Searches** are two: score the index (hash: the script;
vector set: ``VSIM``), then ``GET`` the best candidates (plus a third, rarely, to prune members
whose entry is gone, and on the first hash search after the server lost its script cache, one
``EVAL`` after the refused ``EVALSHA``).

There is no ``FT.SEARCH`` (RediSearch / Redis Stack) path: it cannot be tested here, so it is
not shipped.

The public methods are the :class:`~llm_memo.backends.AsyncSemantic` protocol, as in the Qdrant
backend: their signatures and one-line bodies (``with self._operation(...)``) look alike there
and here on purpose; what each does lives in its private ``_clear`` / ``_search`` / ``_add``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from ....entry import Entry
from ....errors import BackendError
from ....keys import KEY_ROOT
from ... import Missing
from ..._breaker import CircuitBreaker
from ...redis import AsyncRedisBackend
from ...redis._commands import _unreachable
from .._search import DEFAULT_CANDIDATES, DEFAULT_THRESHOLD, SearchSettings, resolve_threshold
from ..guard import Guard, LexicalGuard
from ..vectors import embed_async
from . import _index
from ._index import Layout, Mode, Quantization
from ._url import backend_options

__all__ = ["AsyncRedisSemanticBackend"]

_ERRORS = (RedisError, RedisClusterException, OSError)
_GUARD = LexicalGuard()


class AsyncRedisSemanticBackend(SearchSettings):
    """Semantic cache on Redis: exact entries as ``redis://`` stores them, plus a per-partition
    vector index (a hash scored client-side on Redis 7, a vector set on Redis 8).

    Args:
        client: a ``redis.asyncio.Redis`` (or cluster / sentinel client), a zero-argument factory
            of one, or a ready :class:`~llm_memo.backends.redis.AsyncRedisBackend` (whose client
            and prefix are used). Clients must keep ``decode_responses=False``.
        embedder: an :class:`~llm_memo.backends.semantic.Embedder` (the async backend also takes
            an :class:`~llm_memo.backends.semantic.AsyncEmbedder`, and runs a sync one in a
            worker thread).
        threshold: default minimum cosine similarity of a hit (a call's ``threshold`` wins).
        guard: checks a candidate beyond similarity (default :class:`LexicalGuard`); ``None``
            turns it off.
        candidates: candidates examined per search, best first.
        mode: ``"auto"`` (vector sets when the server has them), ``"hash"`` or ``"vectorset"``.
        max_partition: vectors kept per partition (default :data:`DEFAULT_MAX_PARTITION_HASH` or
            :data:`DEFAULT_MAX_PARTITION_VECTORSET`); beyond it each add evicts one.
        quantization: vector-set storage: ``"noquant"`` (float32, exact scores), ``"q8"``,
            ``"bin"``.
        prefix: prepended to every key (entries and indexes).
        clock: seconds clock for index deadlines.
        breaker: the circuit breaker guarding calls.

    Raises:
        ConfigurationError: no usable embedder (or, for the sync backend, an async one), or a
            bad option.

    Example::

        backend = AsyncRedisSemanticBackend(redis.asyncio.Redis(), embedder=LocalEmbedder())

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: Any,
        *,
        embedder: Any,
        threshold: float = DEFAULT_THRESHOLD,
        guard: Guard | None = _GUARD,
        candidates: int = DEFAULT_CANDIDATES,
        mode: Mode = "auto",
        max_partition: int | None = None,
        quantization: Quantization = "noquant",
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        breaker = breaker if breaker is not None else CircuitBreaker()
        if isinstance(client, AsyncRedisBackend):
            self.exact = client
        else:
            self.exact = AsyncRedisBackend(client, prefix=prefix, breaker=breaker)
        super().__init__(
            embedder, threshold=threshold, guard=guard, candidates=candidates, asynchronous=True
        )
        _index.check_mode(mode)
        self._layout = Layout(self.exact.prefix, embedder.name, quantization, max_partition)
        self._mode: Mode = mode
        self._clock = clock
        self._breaker = breaker

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisSemanticBackend:
        """Build from ``redis+semantic://[user:password@]host:6379/0`` (``rediss+semantic`` for
        TLS). Query parameters: ``threshold``, ``candidates``, ``mode``, ``max_partition``,
        ``quantization``, and every parameter ``redis://`` takes (``prefix``, ``db``, timeouts).

        Args:
            url: the URL.
            **options: ``embedder`` (default: ``configure(embedder=...)``), ``client_kwargs``
                (more redis-py options), and the constructor's other arguments.

        Raises:
            ConfigurationError: a malformed URL, an unknown parameter, or no embedder
                configured (the message says how).

        Example::

            configure(embedder=LocalEmbedder())
            backend = AsyncRedisSemanticBackend.from_url("redis+semantic://localhost:6379/0")
        """
        redis_url, kwargs, breaker = backend_options(url, options)
        exact = AsyncRedisBackend.from_url(
            redis_url,
            prefix=kwargs.pop("prefix", None),
            client_kwargs=kwargs.pop("client_kwargs", None),
            breaker=breaker,
        )
        return cls(exact, breaker=breaker, **kwargs)

    @property
    def mode(self) -> Mode:
        """``hash`` (Redis 7, client-side scoring), ``vectorset`` (Redis 8), or ``auto`` until
        the first search or add asks the server."""
        return self._mode

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(embedder={self.embedder.name!r}, mode={self.mode!r}, "
            f"threshold={self.threshold})"
        )

    # -- the protocol ----------------------------------------------------------------------

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The entry under ``key`` (one ``GET``), or :data:`MISSING`."""
        return await self.exact.get(key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` (``SET ... PX``), without a vector."""
        await self.exact.set(key, entry, ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; its vector is dropped by the next search that meets it."""
        return await self.exact.delete(key)

    async def clear(self, prefix: str = "") -> int:
        """Remove entries and indexes under ``prefix``; return how many *entries* went."""
        with self._operation("clear"):
            return await self._clear(prefix)

    async def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry added in ``context`` (by this embedder) with cosine
        similarity >= ``threshold`` (the backend's when ``None``) that the guard accepts, as
        ``(key, entry, similarity)``.

        Raises:
            BackendError: Redis or the embedder failed.
        """
        with self._operation("search"):
            return await self._search(context, text, threshold)

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` and index the vector of ``text`` in ``context``'s partition, in one
        round trip (the vector of a search just made for ``text`` is reused)."""
        with self._operation("add"):
            await self._add(key, entry, ttl, context, text)

    async def close(self) -> None:
        """Close the client if the backend built it."""
        await self.exact.close()

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _operation(self, what: str) -> Iterator[None]:
        # One breaker guard per operation: it resolves the breaker however the operation ends
        # (an error reply, a failing embedder, a cancelled task), and only an unreachable server
        # counts against it.
        with self._breaker.guard("redis semantic", outage=_unreachable):
            try:
                yield
            except _ERRORS as exc:
                raise BackendError(
                    f"redis semantic: {what} failed: {type(exc).__name__}: {exc}"
                ) from exc

    async def _pipe(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Run ``commands`` in one non-transactional pipeline; error replies come back as their
        exception objects."""
        pipe = self.exact.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _script(self, script: _index.Script, *args: Any) -> Any:
        """Run a cached script (``EVALSHA``; ``EVAL``, which caches it, when the server does not
        have it): its reply, or the error reply as an exception object."""
        (reply,) = await self._pipe(("EVALSHA", script.sha, *args))
        if isinstance(reply, NoScriptError):
            (reply,) = await self._pipe(("EVAL", script.text, *args))
        return reply

    async def _scan(self, pattern: str) -> list[bytes]:
        """Every key name matching ``pattern`` (``SCAN``, every master of a cluster)."""
        client = self.exact.client
        names = [name async for name in client.scan_iter(match=pattern, count=_index.SCAN_COUNT)]
        return list(dict.fromkeys(names))

    async def _embed(self, text: str) -> Any:
        """``text``'s unit vector: from the cache (a search just made for it), else embedded."""
        return await embed_async(self.embedder, text, self._async_embedder, self._vectors)

    async def _detect(self) -> Mode:
        """``hash`` or ``vectorset``: what ``auto`` means on this server (asked once)."""
        if self._mode == "auto":
            (has,) = await self._pipe(("EVAL", _index.HAS_VADD, 0))
            self._mode = "vectorset" if has == 1 else "hash"
        return self._mode

    # -- writes ----------------------------------------------------------------------------

    async def _add(
        self, key: str, entry: Entry, ttl: float | None, context: str, text: str
    ) -> None:
        name = self.exact.prefix + key
        if ttl is not None and ttl <= 0:
            await self._pipe(("UNLINK", name))
            return
        vector = await self._embed(text)
        mode = await self._detect()
        now = self._clock()
        store: tuple[Any, ...] = ("SET", name, entry.to_bytes())
        if ttl is not None:
            store += ("PX", _index.millis(ttl))
        features = self._guard.features(text) if self._guard is not None else ""
        ttl_ms = -1 if ttl is None else _index.millis(ttl)
        common = (ttl_ms, self._layout.cap(mode), repr(now), _index.SAMPLE, key)
        index = self._layout.index(context, mode)
        if mode == "hash":
            deadline = float("inf") if ttl is None else now + ttl
            record = _index.hash_record(deadline, now, vector, key, features)
            script: tuple[Any, ...] = ("EVAL", _index.ADD_HASH, 1, index, *common, record)
        else:
            attributes = _index.vset_attributes(0 if ttl is None else now + ttl, now, features)
            blob = vector.astype("<f4").tobytes()
            flag = self._layout.flag
            script = ("EVAL", _index.ADD_VSET, 1, index, *common, blob, attributes, flag)
        _index.checked(await self._pipe(store, script))

    # -- searches --------------------------------------------------------------------------

    async def _search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        limit = resolve_threshold(threshold, self._threshold)
        vector = await self._embed(text)
        mode = await self._detect()
        index = self._layout.index(context, mode)
        prune: list[bytes] = []
        if mode == "hash":
            count = self._candidates * 4 if self._guard is not None else self._candidates
            ranked = await self._rank_hash(index, vector, limit, count)
            remove = "HDEL"
        else:
            ranked = await self._rank_vset(index, vector, limit)
            remove = "VREM"
        guard = self._guard
        wanted = guard.features(text) if guard is not None else None
        allows = guard.allows if guard is not None else None
        chosen = _index.accepted(ranked, allows, wanted, self._candidates)
        found: tuple[str, Entry, float] | None = None
        if chosen:
            prefix = self.exact.prefix
            commands: list[tuple[Any, ...]] = [
                ("GET", prefix + f.decode("utf-8", "surrogateescape")) for f, _ in chosen
            ]
            replies = await self._pipe(*commands)
            for (field, score), data in zip(chosen, replies, strict=True):
                entry = _index.entry_of(data)
                if entry is None:
                    if data is None:  # expired or deleted: forget its vector too
                        prune.append(field)
                    continue
                found = (field.decode("utf-8", "surrogateescape"), entry, score)
                break
        if prune:
            await self._pipe((remove, index, *prune))
        return found

    async def _rank_hash(
        self, index: str, vector: Any, limit: float, count: int
    ) -> list[_index.Candidate]:
        """Score the hash index on the server, one slice per script run, until its cursor
        comes back to 0: the ``count`` best (key, similarity, features), best first."""
        args = _index.search_args(vector, limit, self._clock(), count)
        cursor, ranked = b"0", []
        while True:
            reply = await self._script(
                _index.SEARCH_HASH, 1, index, *args, cursor, _index.SEARCH_SLICE
            )
            cursor, found = _index.ranked_hash(_index.unless_error(reply))
            ranked += found
            if cursor == b"0":
                return _index.best_of(ranked, count)

    async def _rank_vset(self, index: str, vector: Any, limit: float) -> list[_index.Candidate]:
        """Ask the vector set for the nearest live members: (element, similarity, features)
        best first (nothing to prune: the filter skips expired members)."""
        count = self._candidates * 2 if self._guard is not None else self._candidates
        (reply,) = await self._pipe(_index.vsim_query(index, vector, count, self._clock()))
        scored = _index.similar(reply, limit)
        if not scored or self._guard is None:
            return [(element, score, "") for element, score in scored]
        attributes = await self._pipe(*(("VGETATTR", index, e) for e, _ in scored))
        return [
            (element, score, _index.stored_features(raw))
            for (element, score), raw in zip(scored, attributes, strict=True)
        ]

    # -- clearing --------------------------------------------------------------------------

    async def _clear(self, prefix: str) -> int:
        """Unlink every key under ``prefix`` (indexes included); count the entries."""
        names = await self._scan(self._layout.pattern(prefix, KEY_ROOT))
        removed = 0
        for start in range(0, len(names), _index.UNLINK_BATCH):
            batch = names[start : start + _index.UNLINK_BATCH]
            replies = _index.checked(await self._pipe(*(("UNLINK", n) for n in batch)))
            removed += sum(
                1
                for name, gone in zip(batch, replies, strict=True)
                if gone and not _index.INDEX_KEY.search(name)
            )
        return removed
