"""``semantic+local:///path``: :class:`EmbeddedSemanticBackend`, the store and its ANN indexes.

Every operation takes the backend's lock, opens the store on first use (failing open with a
back-off, like ``disk://``) and turns a store failure into
:class:`~llm_memo.errors.BackendError`. A search, in order:

1. embeds the text (outside the lock; the vector is kept for the ``add`` of a miss);
2. brings the partition's in-memory index up to date: loaded from its file on first use (or
   rebuilt from the store when the file is missing, damaged, of another store or cleared since),
   then every row with ``vid > seen`` is added (one indexed query; usually it returns nothing),
   unless nothing was written since the last search (SQLite's ``data_version``, one pragma).
   This is how a write in another process is seen: at the next search, no delay beyond it;
3. asks the index for the ``k`` nearest vids (``k`` = ``candidates``, twice that with a guard)
   and their similarities as the index computes them (on its f16 / i8 / f32 copy);
4. reads from the store, in one query, only the rows the index scores at least the threshold
   minus a margin above its quantisation error (``_MARGIN``; none on most misses), drops from
   the index every vid whose row is gone, expired or elsewhere, scores the rest exactly
   (float32 dot product of the stored vectors, so the index's quantisation can cost recall,
   never change a score or serve below the threshold) and answers with the best one at or
   above the threshold that the guard accepts (the question's guard features are computed
   then, once) and whose entry decodes;
5. if some vids were dead and nothing was accepted, searches again (dead vids are gone now);
6. with ``widen`` > 1 (off by default), if still nothing was accepted and the partition is
   larger than the search beam, searches once more with a beam ``widen`` times as wide. On
   uniformly random vectors the greedy walk misses isolated near-duplicates (14 % of them at
   100,000, 80 % at 1,000,000) and an 8x wider pass finds most; on embedded questions it found
   1 more of 600 reworded questions at 100,000 and tripled the cost of every miss
   (benchmarks/semantic_latency.py), so it is opt-in, for vectors without structure.

``add`` writes one row (entry, deadline, vector, features) in one transaction and leaves the
indexing to the next search, in whichever process it runs. Index files are written when a
partition has ``max(1000, 10%)`` vectors more than its file, by :meth:`save` and by
:meth:`close`.

Not here: the SQL (:mod:`._store`), keeping the indexes in memory up to date and their files
(:mod:`._indexes`), the folder and index file format (:mod:`._layout`), URLs (:mod:`._url`).
"""

from __future__ import annotations

import os
import threading
import time
from asyncio.events import _get_running_loop
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from .... import _fork
from ....entry import Entry
from ....errors import BackendError, CodecError
from ... import MISSING, Missing
from ..._registry import Reopen
from .._search import (
    DEFAULT_CANDIDATES,
    DEFAULT_THRESHOLD,
    SearchSettings,
    partition_name,
    resolve_threshold,
)
from ..guard import Guard, LexicalGuard
from ..vectors import configured_embedder, embed_sync, numpy
from . import _layout
from ._indexes import Indexes, Partition
from ._store import Candidate, Store, StoreError, alive, deadline_of
from ._url import SCHEME, check_settings, parse_url

__all__ = [
    "DEFAULT_ASYNC_TIMEOUT",
    "DEFAULT_CONNECTIVITY",
    "DEFAULT_DTYPE",
    "DEFAULT_EXPANSION_ADD",
    "DEFAULT_EXPANSION_SEARCH",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WIDEN",
    "EmbeddedSemanticBackend",
]

#: Vector storage inside the index. "f16" (half of f32's memory). Measured on embedded questions
#: (benchmarks/semantic_latency.py, 100,000 entries, same run): recall@8 against exact search
#: 0.988 (f16) against 0.947 (i8), whose ~0.015 similarity error reorders the many near-equal
#: neighbours of templated questions at the top-8 boundary (10,000: 0.998 against 0.969); a
#: whole lookup costs the same (f16's ANN search is ~20 % slower, but its smaller error margin
#: reads fewer rows). "i8" stays an option: a quarter of f32's memory, a 2.5x faster build.
DEFAULT_DTYPE = "f16"
#: HNSW graph degree: more is better recall, more memory, slower adds. 32 (usearch's default is
#: 16): on embedded questions at 100,000 (f16) recall@8 against exact search at expansion_search
#: 64 is 0.990 / 0.998 (reworded / held-out questions) in the built folder and 0.997 / 1.000 in
#: a second build, where 16 gives 0.988 / 0.995; it costs 22 % more index memory (1.85 against
#: 1.52 KB / entry), a 1.6x slower build and ~10 % more search time.
DEFAULT_CONNECTIVITY = 32
#: Candidate list while inserting (usearch's default).
DEFAULT_EXPANSION_ADD = 128
#: Candidate list while searching (usearch's default): the latency / recall dial, no rebuild to
#: change it. At 100,000 embedded questions (connectivity 32, interleaved in one process): 64
#: looks up in 1.92 ms at recall@8 0.990; 32 in 1.61 ms at 0.983 (on a loaded machine).
DEFAULT_EXPANSION_SEARCH = 64
#: A miss looks again with a beam this many times as wide (1: never; see the module docstring).
DEFAULT_WIDEN = 1
#: Seconds a write waits for another process's lock before it counts as a backend failure.
DEFAULT_TIMEOUT = 2.0
#: The same on an event loop (async callers use the backend inline): short, never a stall.
DEFAULT_ASYNC_TIMEOUT = 0.1

# Searches again at most this many times when the nearest vids were dead.
_ROUNDS = 4
# How far below the threshold the index's own similarity (computed on its f32 / f16 / i8 copy)
# may be for a candidate to be read from the store and scored exactly: a few times the largest
# error of that copy measured on 384-d embeddings (f32 2e-7, f16 1e-4, i8 0.017; the tests check
# it). A candidate clearly below is never read; the decision to serve is always taken on the
# exact float32 score, so quantisation can cost a hit (a candidate the index under-scores by
# more than the margin), never serve one below the threshold.
_MARGIN = {"f32": 1e-4, "f16": 2e-3, "i8": 0.05}

_GUARD = LexicalGuard()


class EmbeddedSemanticBackend(SearchSettings):
    """Semantic cache in a local folder: entries in SQLite, vectors in usearch HNSW indexes.

    Args:
        directory: the folder (created on first use).
        embedder: an :class:`~llm_memo.backends.semantic.Embedder` (sync; async callers use
            the backend inline, as they use ``disk://``).
        threshold: default minimum cosine similarity of a hit (a call's ``threshold`` wins).
        guard: checks a candidate beyond similarity (default :class:`LexicalGuard`); ``None``
            turns it off.
        candidates: nearest neighbours examined per search (twice as many asked with a guard).
        dtype: vector storage in the index: ``"f16"`` (default), ``"i8"`` or ``"f32"``
            (part of the files: another value rebuilds them).
        connectivity, expansion_add, expansion_search: the HNSW parameters (usearch's names;
            ``expansion_search`` may change between runs, the others are part of the files).
        widen: on a miss, search once more with ``expansion_search`` times this (``1``, the
            default: never; ``8`` for vectors without structure, see the module docstring).
        timeout: seconds a write waits for another process's lock.
        async_timeout: the same on an event loop.
        clock: seconds clock for deadlines (tests pass a fake one).

    Raises:
        ConfigurationError: no usable embedder (or an async one), or a bad setting.

    Example::

        backend = EmbeddedSemanticBackend("/var/cache/llm-semantic", embedder=LocalEmbedder())

    .. versionadded:: 0.4.0
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        embedder: Any,
        threshold: float = DEFAULT_THRESHOLD,
        guard: Guard | None = _GUARD,
        candidates: int = DEFAULT_CANDIDATES,
        dtype: str = DEFAULT_DTYPE,
        connectivity: int = DEFAULT_CONNECTIVITY,
        expansion_add: int = DEFAULT_EXPANSION_ADD,
        expansion_search: int = DEFAULT_EXPANSION_SEARCH,
        widen: int = DEFAULT_WIDEN,
        timeout: float = DEFAULT_TIMEOUT,
        async_timeout: float = DEFAULT_ASYNC_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            embedder, threshold=threshold, guard=guard, candidates=candidates, asynchronous=False
        )
        waits = [("timeout", timeout), ("async_timeout", async_timeout)]
        check_settings(dtype, connectivity, expansion_add, expansion_search, waits, widen)
        self.directory = os.fspath(directory)
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.widen = widen
        self.timeout = float(timeout)
        self.async_timeout = float(async_timeout)
        self._clock = clock
        self._db: Store | None = None
        self._indexes = Indexes(
            self.directory, dtype=dtype, connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search,
        )  # fmt: skip
        self._lock = threading.RLock()
        self._reopen = Reopen()
        _fork.register(self)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> EmbeddedSemanticBackend:
        """Build from ``semantic+local:///path`` (``semantic+local://`` alone: the user cache
        directory). Query parameters: ``threshold``, ``candidates``, ``dtype``,
        ``connectivity``, ``expansion_add``, ``expansion_search``, ``widen``, ``timeout``,
        ``async_timeout``. Opens nothing.

        Args:
            url: the URL.
            **options: ``embedder`` (default: ``configure(embedder=...)``), ``guard``,
                ``clock``, and the query parameters as keyword arguments.

        Raises:
            ConfigurationError: a malformed URL, an unknown parameter, or no embedder
                configured (the message says how).

        Example::

            configure(embedder=LocalEmbedder())
            backend = EmbeddedSemanticBackend.from_url("semantic+local:///var/cache/llm")
        """
        folder, kwargs = parse_url(url, options)
        if kwargs.get("embedder") is None:
            kwargs["embedder"] = configured_embedder(SCHEME)
        return cls(folder, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.directory!r}, embedder={self.embedder.name!r}, "
            f"threshold={self.threshold})"
        )

    @property
    def _parts(self) -> dict[str, Partition]:
        """The in-memory indexes by partition name (for tests and the benchmark)."""
        return self._indexes.parts

    def _after_fork(self) -> None:
        # A SQLite connection must not cross fork(): the child opens its own. The indexes are
        # plain memory (copied on write) and stay; the lock another thread held is made anew.
        self._lock = threading.RLock()
        self._db = None

    # -- the protocol ----------------------------------------------------------------------

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The live entry under ``key`` (one indexed read), or :data:`MISSING`.

        Raises:
            BackendError: the store cannot be opened or read.
        """
        with self._operation("get") as db:
            data = db.get(key, self._clock())
        return MISSING if data is None else _decoded(data, MISSING)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` without a vector (found by key only)."""
        with self._operation("set") as db:
            if ttl is not None and ttl <= 0:
                db.delete(key, self._clock())
                return
            db.put(key, entry.to_bytes(), deadline_of(ttl, self._clock()))

    def delete(self, key: str) -> bool:
        """Remove ``key`` (its vector is dropped by the next search that meets it); return
        whether a live entry was there."""
        with self._operation("delete") as db:
            return db.delete(key, self._clock())

    def clear(self, prefix: str = "") -> int:
        """Remove the entries whose key starts with ``prefix`` (all for ``""``) and the indexes
        of their partitions; return how many live entries went."""
        with self._operation("clear") as db:
            removed = db.clear(prefix, self._clock())
            self._indexes.refresh(db)  # forgets the partitions under prefix (and other clears)
            if not prefix:
                self._indexes.remove_files()
            return removed

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry added in ``context`` (by this embedder) with cosine
        similarity >= ``threshold`` (the backend's when ``None``) that the guard accepts, as
        ``(key, entry, similarity)``.

        Raises:
            BackendError: the store, the index or the embedder failed.
        """
        limit = resolve_threshold(threshold, self._threshold)
        vector = embed_sync(self.embedder, text, False, self._vectors)
        query = _Query(text, vector, limit, self._guard)
        name = partition_name(context, self.embedder.name)
        with self._operation("search") as db:
            now = self._clock()
            part = self._indexes.current(db, name, len(vector), now)
            if part is None:
                return None
            count = self._candidates * 2 if self._guard is not None else self._candidates
            found = self._rounds(db, part, name, query, count, now)
            if found is None and self.widen > 1 and len(part.index) > self.expansion_search:
                # Opt-in: look once more with a beam widen times as wide before giving up (on
                # random vectors HNSW's greedy walk misses isolated near-duplicates with the
                # default beam; benchmarks/semantic_latency.py measures both).
                part.index.expansion_search = self.expansion_search * self.widen
                try:
                    found = self._rounds(db, part, name, query, count, now)
                finally:
                    part.index.expansion_search = self.expansion_search
            return found

    def _rounds(
        self, db: Store, part: Partition, name: str, query: _Query, count: int, now: float
    ) -> tuple[str, Entry, float] | None:
        """Ask the index for ``count`` vids; read from the store those the index scores at
        least ``threshold - margin`` (none on most misses: no read at all), dropping dead ones
        from the index; answer with the best acceptable one; again while dead vids were met."""
        floor = query.limit - _MARGIN[self.dtype]
        for _ in range(_ROUNDS):
            size = len(part.index)
            if size == 0:
                return None
            matches = part.index.search(query.vector, min(count, size), threads=1)
            # usearch's cosine distance is 1 - similarity, computed on the index's copy.
            vids = [
                int(vid)
                for vid, distance in zip(matches.keys, matches.distances, strict=True)
                if 1.0 - float(distance) >= floor
            ]
            if not vids:
                return None
            rows = db.candidates(vids)
            live: list[Candidate] = []
            for vid in vids:
                row = rows.get(vid)
                if row is None or row.partition != name or not alive(row.deadline, now):
                    part.index.remove(vid)
                else:
                    live.append(row)
            found = self._best(live, query)
            if found is not None or len(live) == len(vids):
                return found
        return None

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` under ``key`` with the vector of ``text`` in ``context``'s partition
        (the vector of a search just made for ``text`` is reused); indexed by the next search."""
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        vector = embed_sync(self.embedder, text, False, self._vectors)
        features = self._guard.features(text) if self._guard is not None else ""
        name = partition_name(context, self.embedder.name)
        blob = vector.astype("<f4").tobytes()
        with self._operation("add") as db:
            now = self._clock()
            db.put(key, entry.to_bytes(), deadline_of(ttl, now), (name, blob, features))

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The live keys starting with ``prefix``, in key order (the
        :class:`~llm_memo.backends.Listing` protocol: ``llm-memo ls`` / ``purge`` use it)."""
        with self._operation("keys") as db:
            return iter(db.keys(prefix, self._clock()))

    def purge_expired(self) -> int:
        """Delete every entry whose deadline has passed; return how many (searches and gets
        already skip them; run this from a periodic job to reclaim the space)."""
        with self._operation("purge_expired") as db:
            return db.purge_expired(self._clock())

    def save(self) -> None:
        """Write the index file of every partition that has vectors its file lacks (a file
        that cannot be written is logged once: the store still answers, slower to reopen).

        Raises:
            BackendError: the store cannot be opened.
        """
        with self._operation("save") as db:
            self._indexes.save(db)

    def close(self) -> None:
        """Save the indexes that changed and close the store (it opens again if used)."""
        with self._lock:
            try:
                if self._db is not None:
                    self.save()
            finally:
                db, self._db = self._db, None
                self._indexes.reset()
                if db is not None:
                    db.close()

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _operation(self, what: str) -> Iterator[Store]:
        with self._lock:
            try:
                db = self._open()
                db.busy_timeout(
                    self.async_timeout if _get_running_loop() is not None else self.timeout
                )
                yield db
            except StoreError as exc:
                raise BackendError(
                    f"{SCHEME} {self.directory}: {what} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def _open(self) -> Store:
        db = self._db
        if db is not None:
            return db
        reopen = self._reopen
        if not reopen.due():
            raise reopen.error() from reopen.cause
        try:
            db = Store(_layout.store_path(self.directory), self.timeout)
        except StoreError as exc:
            error = BackendError(f"cannot open {SCHEME} cache at {self.directory}: {exc}")
            raise reopen.failed(error) from exc
        reopen.succeeded()
        self._db = db
        return db

    def _best(self, live: list[Candidate], query: _Query) -> tuple[str, Entry, float] | None:
        """The best-scoring live candidate at or above the threshold that the guard accepts
        (scored exactly, float32 dot product of the stored vectors)."""
        if not live:
            return None
        np = numpy()
        stored = np.frombuffer(b"".join(row.vector for row in live), dtype="<f4")
        scores = stored.reshape(len(live), -1) @ query.vector
        for position in np.argsort(-scores, kind="stable")[: self._candidates * 2]:
            score = float(scores[position])
            if score < query.limit:
                break
            row = live[int(position)]
            if not query.allows(row.features):
                continue
            entry = _decoded(row.entry, None)
            if entry is not None:
                return row.key, entry, max(-1.0, min(1.0, score))
        return None


class _Query:
    """One search's question: its vector, its threshold, and its guard features, computed on
    first use (a miss with nothing near the threshold never needs them)."""

    __slots__ = ("_features", "_guard", "limit", "text", "vector")

    def __init__(self, text: str, vector: Any, limit: float, guard: Guard | None) -> None:
        self.text = text
        self.vector = vector
        self.limit = limit
        self._guard = guard
        self._features: str | None = None

    def allows(self, features: str) -> bool:
        """Whether the guard (if any) accepts a candidate with these stored features."""
        guard = self._guard
        if guard is None:
            return True
        if self._features is None:
            self._features = guard.features(self.text)
        return guard.allows(self._features, features)


def _decoded(data: bytes, default: Any) -> Any:
    try:
        return Entry.from_bytes(data)
    except CodecError:
        return default
