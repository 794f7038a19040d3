"""EmbeddedSemanticBackend (``semantic+local://``): the conformance suite for the exact part,
similarity within a partition only, threshold, guard, TTL, clearing, index files that are
derived from the store (missing, damaged, stale: rebuilt; deleted entries never served), several
real processes on one folder (a write seen at the other's next search; ``kill -9`` mid-write
leaves a store that reopens), the decorator's isolation matrix with the real offline model,
URLs."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_memo import BackendError, ConfigurationError, configure, llm_cached
from llm_memo.backends import MISSING, Listing, Semantic, from_url
from llm_memo.backends._registry import check_url
from llm_memo.backends.semantic import DEFAULT_THRESHOLD, LexicalGuard, partition_name
from llm_memo.backends.semantic.embedded import EmbeddedSemanticBackend, _layout
from llm_memo.backends.semantic.embedded._store import Store
from llm_memo.errors import MissingDependencyError
from llm_memo.testing import FakeClock

from .conformance import BackendConformance, make_entry, make_key
from .test_embedders import (
    PARAPHRASE,
    AsyncToyEmbedder,
    Q,
    ToyEmbedder,
    async_isolation,
    isolation_matrix,
    local_embedder,
)

CTX = make_key("ns", "mod.ask", "c" * 32)  # a context string has a key's shape
KEY_A = make_key("ns", "mod.ask", "a" * 32)
KEY_B = make_key("ns", "mod.ask", "b" * 32)
RESET = "how do i reset my account password"
RESET2 = "how do i reset my password for my account"
OTHER = "what is the boiling point of water"
ROOT = Path(__file__).resolve().parents[2]


def _planter(backend: EmbeddedSemanticBackend) -> Callable[[str, bytes], None]:
    """Raw bytes as an entry, bypassing the backend's checks."""

    def plant(key: str, data: bytes) -> None:
        with backend._operation("plant") as db:
            db.plant(key, data)

    return plant


class TestEmbeddedConformance(BackendConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedSemanticBackend]:
        backend = EmbeddedSemanticBackend(tmp_path / "sem", embedder=ToyEmbedder(), clock=clock)
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def plant(self, backend: EmbeddedSemanticBackend) -> Callable[[str, bytes], None]:
        return _planter(backend)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def toy() -> ToyEmbedder:
    return ToyEmbedder()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "sem"


@pytest.fixture
def backend(folder: Path, toy: ToyEmbedder, clock: FakeClock) -> Iterator[EmbeddedSemanticBackend]:
    backend = EmbeddedSemanticBackend(folder, embedder=toy, clock=clock, threshold=0.8, guard=None)
    yield backend
    backend.close()


def reopened(folder: Path, clock: FakeClock | None = None, **options: Any) -> Any:
    """Another backend on ``folder`` (as another process would open it)."""
    if clock is not None:
        options["clock"] = clock
    return EmbeddedSemanticBackend(
        folder, embedder=ToyEmbedder(), threshold=0.8, guard=None, **options
    )


class TestSearch:
    def test_protocol(self, backend: EmbeddedSemanticBackend) -> None:
        """The decorator sees a semantic backend."""
        assert isinstance(backend, Semantic)

    def test_similar_text_hits_with_its_similarity(self, backend: EmbeddedSemanticBackend) -> None:
        """A similar text in the same context finds the entry, its key and the cosine score."""
        entry = make_entry(b'"reset answer"')
        backend.add(KEY_A, entry, 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"water"'), 60, CTX, OTHER)
        found = backend.search(CTX, RESET2, None)
        assert found is not None
        key, got, similarity = found
        assert (key, got) == (KEY_A, entry)
        assert 0.8 <= similarity <= 1.0
        assert backend.search(CTX, "completely unrelated words here", None) is None

    def test_threshold_per_backend_and_per_call(self, folder: Path, toy: ToyEmbedder) -> None:
        """The call's threshold wins; None means the backend's default."""
        strict = EmbeddedSemanticBackend(folder, embedder=toy, threshold=0.99)
        strict.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert strict.search(CTX, RESET2, None) is None
        assert strict.search(CTX, RESET2, 0.5) is not None
        assert strict.threshold == 0.99
        assert EmbeddedSemanticBackend(folder, embedder=toy).threshold == DEFAULT_THRESHOLD
        strict.close()

    def test_never_crosses_contexts(self, backend: EmbeddedSemanticBackend) -> None:
        """Identical text in another context (model, parameters, namespace...) is no match."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        other = make_key("other-ns", "mod.ask", "c" * 32)
        assert backend.search(other, RESET, None) is None
        assert backend.search(CTX[:-1] + "d", RESET, None) is None
        assert backend.search(CTX, RESET, None) is not None

    def test_never_crosses_embedders(self, folder: Path, clock: FakeClock) -> None:
        """Entries embedded by another model (same dimension, same folder) never match."""
        first = EmbeddedSemanticBackend(folder, embedder=ToyEmbedder("toy-v1"), clock=clock)
        first.add(KEY_A, make_entry(), 60, CTX, RESET)
        other = EmbeddedSemanticBackend(folder, embedder=ToyEmbedder("toy-v2"), clock=clock)
        assert other.search(CTX, RESET, -1.0) is None
        assert other.get(KEY_A) is not MISSING  # the exact part is shared
        first.close()
        other.close()

    def test_another_dimension_is_no_match(self, folder: Path) -> None:
        """Vectors of another length under the same embedder name are never compared."""
        narrow = EmbeddedSemanticBackend(folder, embedder=ToyEmbedder(dimension=8), guard=None)
        narrow.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert narrow.search(CTX, RESET, 0.5) is not None
        wide = EmbeddedSemanticBackend(folder, embedder=ToyEmbedder(dimension=16), guard=None)
        assert wide.search(CTX, RESET, -1.0) is None
        narrow.close()
        wide.close()

    def test_a_miss_embeds_once(self, backend: EmbeddedSemanticBackend, toy: ToyEmbedder) -> None:
        """search then add for the same text make one embedding call."""
        before = toy.calls
        assert backend.search(CTX, RESET, None) is None
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert toy.calls == before + 1

    def test_set_is_exact_only(self, backend: EmbeddedSemanticBackend) -> None:
        """An entry stored with set() (no text) is found by key, never by similarity; a set()
        over an added entry takes its vector away."""
        backend.set(KEY_A, make_entry(), 60)
        assert backend.get(KEY_A) is not MISSING
        assert backend.search(CTX, RESET, -1.0) is None
        backend.add(KEY_B, make_entry(), 60, CTX, OTHER)
        assert backend.search(CTX, OTHER, None) is not None
        backend.set(KEY_B, make_entry(b'"exact"'), 60)
        assert backend.search(CTX, OTHER, None) is None
        assert backend.get(KEY_B) == make_entry(b'"exact"')

    def test_rewriting_a_key_replaces_its_vector(self, backend: EmbeddedSemanticBackend) -> None:
        """add() again under a key indexes the new text; the old text no longer finds it."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        backend.add(KEY_A, make_entry(b'"water"'), 60, CTX, OTHER)
        assert backend.search(CTX, RESET, None) is None
        found = backend.search(CTX, OTHER, None)
        assert found is not None
        assert found[1] == make_entry(b'"water"')

    def test_best_candidate_the_guard_accepts(self, folder: Path, clock: FakeClock) -> None:
        """With the guard on, a refused best candidate gives way to the next one."""
        backend = EmbeddedSemanticBackend(
            folder, embedder=ToyEmbedder(), clock=clock, threshold=0.5
        )
        assert isinstance(backend.guard, LexicalGuard)
        backend.add(KEY_A, make_entry(b'"5"'), 60, CTX, "pace for running 5 miles")
        backend.add(KEY_B, make_entry(b'"50"'), 60, CTX, "pace for running 50 miles")
        found = backend.search(CTX, "good pace for running 50 miles", None)
        assert found is not None
        assert found[0] == KEY_B
        assert backend.search(CTX, "good pace for running 7 miles", None) is None
        backend.close()

    def test_ttl_zero_stores_nothing(self, backend: EmbeddedSemanticBackend) -> None:
        """ttl <= 0 removes any previous entry and indexes nothing."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(KEY_A, make_entry(), 0, CTX, RESET)
        assert backend.get(KEY_A) is MISSING
        assert backend.search(CTX, RESET, None) is None

    def test_a_corrupt_entry_is_skipped(self, backend: EmbeddedSemanticBackend) -> None:
        """A candidate whose bytes do not decode gives way to the next one, never crashes."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"second"'), 60, CTX, RESET2)
        with backend._operation("damage") as db:
            db._con.execute("UPDATE entries SET entry = x'00ff' WHERE key = ?", (KEY_A,))
        found = backend.search(CTX, RESET, 0.5)
        assert found is not None
        assert found[0] == KEY_B

    def test_deleted_entries_are_never_served(self, backend: EmbeddedSemanticBackend) -> None:
        """delete() after the vector is indexed: the search checks the store, drops the vector
        and finds the next live one."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"b"'), 60, CTX, RESET2)
        assert backend.search(CTX, RESET, 0.5) is not None  # both indexed now
        assert backend.delete(KEY_A)
        found = backend.search(CTX, RESET, 0.5)
        assert found is not None
        assert found[0] == KEY_B
        part = backend._parts[partition_name(CTX, "toy-v1")]
        assert len(part.index) == 1

    def test_many_dead_neighbours_do_not_hide_a_live_one(
        self, backend: EmbeddedSemanticBackend
    ) -> None:
        """More deleted vectors than one search asks for, nearer than the live one: the
        search goes on past them."""
        for i in range(12):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"kept"'), 60, CTX, RESET2)
        assert backend.search(CTX, RESET, 0.5) is not None
        for i in range(12):
            backend.delete(make_key("ns", "mod.ask", f"{i:032x}"))
        found = backend.search(CTX, RESET, 0.5)
        assert found is not None
        assert found[0] == KEY_B


class _Spy:
    """Records the calls of one method of the backend's open store."""

    def __init__(self, backend: EmbeddedSemanticBackend, method: str) -> None:
        with backend._operation("spy") as db:
            self._real = getattr(db, method)
            setattr(db, method, self)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self._real(*args)


def _cosine(toy: ToyEmbedder, a: str, b: str) -> float:
    import numpy as np

    x, y = (np.asarray(v, dtype=np.float32) for v in toy([a, b]))
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


class TestReads:
    """What a search reads from the store: only the candidates the index puts near the
    threshold, and no catch-up query while nothing was written."""

    def test_a_clear_miss_reads_no_row(self, backend: EmbeddedSemanticBackend) -> None:
        """Candidates the index scores well below the threshold are never read; a hit reads
        the rows near the threshold only (here: one)."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"water"'), 60, CTX, OTHER)
        assert backend.search(CTX, RESET, None) is not None  # indexes both
        spy = _Spy(backend, "candidates")
        assert backend.search(CTX, "completely unrelated words here", None) is None
        assert spy.calls == []
        found = backend.search(CTX, RESET2, None)
        assert found is not None
        assert found[0] == KEY_A
        assert [len(vids) for (vids,) in spy.calls] == [1]

    @pytest.mark.parametrize("dtype", ["f16", "i8", "f32"])
    def test_the_threshold_is_decided_on_the_exact_similarity(
        self, folder: Path, toy: ToyEmbedder, dtype: str
    ) -> None:
        """Whatever the index's vector type, a candidate a hair above the threshold is served
        with its exact float32 similarity, and one a hair below is not (the index's own,
        quantised score only decides what is read)."""
        backend = EmbeddedSemanticBackend(folder, embedder=toy, guard=None, dtype=dtype)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        exact = _cosine(toy, RESET, RESET2)
        found = backend.search(CTX, RESET2, exact - 1e-5)
        assert found is not None
        assert found[2] == pytest.approx(exact, abs=1e-6)
        assert backend.search(CTX, RESET2, exact + 1e-5) is None
        backend.close()

    @pytest.mark.parametrize("dtype", ["f16", "i8", "f32"])
    def test_the_read_margin_covers_the_index_error(self, dtype: str) -> None:
        """The margin below the threshold within which a candidate is read is at least twice
        the largest error of the index's similarity, on 384-d unit vectors (an embedding's
        shape) near their neighbours, where a cache decides."""
        import numpy as np

        from llm_memo.backends.semantic.embedded import _backend
        from llm_memo.backends.semantic.embedded._indexes import _usearch

        rng = np.random.default_rng(3)
        stored = rng.standard_normal((2000, 384)).astype(np.float32)
        stored /= np.linalg.norm(stored, axis=1, keepdims=True)
        queries = stored[:100] + 0.05 * rng.standard_normal((100, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        index = _usearch().Index(ndim=384, metric="cos", dtype=dtype)
        index.add(np.arange(2000, dtype=np.uint64), stored)
        worst = 0.0
        for query in queries:
            found = index.search(query, 8)
            exact = stored[found.keys.astype(np.int64)] @ query
            worst = max(worst, float(np.max(np.abs(1.0 - found.distances - exact))))
        assert worst * 2 <= _backend._MARGIN[dtype]

    def test_no_catch_up_query_while_nothing_was_written(
        self, backend: EmbeddedSemanticBackend, folder: Path, clock: FakeClock
    ) -> None:
        """Searches with no write in between skip the catch-up query; a write through another
        connection (another process's, here another backend's) is read at the next search."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        spy = _Spy(backend, "vectors_after")
        assert backend.search(CTX, RESET2, None) is not None
        assert backend.search(CTX, OTHER, None) is None
        assert spy.calls == []
        other = reopened(folder, clock)
        other.add(KEY_B, make_entry(b'"water"'), 60, CTX, OTHER)
        found = backend.search(CTX, OTHER, None)
        assert found is not None
        assert found[0] == KEY_B
        assert len(spy.calls) == 1
        backend.delete(KEY_B)  # this connection's own write
        assert backend.search(CTX, OTHER, None) is None
        assert len(spy.calls) == 2
        other.close()


class _Beams:
    """A usearch index that records the beam (expansion_search) of each search."""

    def __init__(self, index: Any) -> None:
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "beams", [])

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.beams.append(self._index.expansion_search)
        return self._index.search(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._index, name, value)


class TestWidening:
    def test_by_default_a_miss_searches_once(self, folder: Path) -> None:
        """widen defaults to 1: a miss in a partition larger than the beam is one search."""
        backend = reopened(folder, expansion_search=2)
        assert backend.widen == 1
        for i, word in enumerate(["alpha", "bravo", "charlie", "delta", "echo"]):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, word)
        assert backend.search(CTX, "alpha", None) is not None
        part = backend._parts[partition_name(CTX, "toy-v1")]
        beams = _Beams(part.index)
        part.index = beams
        assert backend.search(CTX, "zulu yankee xray", None) is None
        assert beams.beams == [2]
        backend.close()

    def test_a_miss_looks_again_with_a_wider_beam(self, folder: Path) -> None:
        """widen=8: nothing accepted in a partition larger than the beam: one more search, with
        a beam eight times as wide, then the beam is back; a hit (or a small partition) searches
        once."""
        backend = reopened(folder, expansion_search=2, widen=8)
        for i, word in enumerate(["alpha", "bravo", "charlie", "delta", "echo"]):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, word)
        assert backend.search(CTX, "alpha", None) is not None
        part = backend._parts[partition_name(CTX, "toy-v1")]
        beams = _Beams(part.index)
        part.index = beams
        assert backend.search(CTX, "zulu yankee xray", None) is None
        assert beams.beams == [2, 16]
        assert part.index.expansion_search == 2
        beams.beams.clear()
        assert backend.search(CTX, "bravo", None) is not None
        assert beams.beams == [2]
        backend.close()
        small = reopened(folder, widen=8)  # beam 64 > 5 vectors: nothing wider to try
        assert small.search(CTX, "alpha", None) is not None
        part = small._parts[partition_name(CTX, "toy-v1")]
        beams = _Beams(part.index)
        part.index = beams
        assert small.search(CTX, "zulu yankee xray", None) is None
        assert beams.beams == [64]
        small.close()


class TestExpiry:
    def test_expired_entries_are_not_found(
        self, backend: EmbeddedSemanticBackend, clock: FakeClock
    ) -> None:
        """Past its ttl an entry is invisible to search and to get."""
        backend.add(KEY_A, make_entry(), 10, CTX, RESET)
        clock.advance(9)
        assert backend.search(CTX, RESET2, None) is not None
        clock.advance(2)
        assert backend.search(CTX, RESET2, None) is None
        assert backend.get(KEY_A) is MISSING

    def test_purge_expired(self, backend: EmbeddedSemanticBackend, clock: FakeClock) -> None:
        """purge_expired deletes what has expired and counts it."""
        backend.add(KEY_A, make_entry(), 10, CTX, RESET)
        backend.add(KEY_B, make_entry(), None, CTX, OTHER)
        backend.set(make_key(digest="e" * 32), make_entry(), 5)
        clock.advance(11)
        assert backend.purge_expired() == 2
        assert backend.purge_expired() == 0
        assert backend.get(KEY_B) is not MISSING


class TestListing:
    def test_keys_lists_live_keys_by_prefix(
        self, backend: EmbeddedSemanticBackend, clock: FakeClock
    ) -> None:
        """keys(prefix) is the Listing protocol: live keys under the prefix, in order."""
        other = make_key("other", "mod.ask", "d" * 32)
        backend.add(KEY_B, make_entry(), 60, CTX, RESET)
        backend.set(KEY_A, make_entry(), None)
        backend.set(other, make_entry(), 5)
        assert isinstance(backend, Listing)
        assert list(backend.keys("llm_memo:2:ns:")) == [KEY_A, KEY_B]
        assert list(backend.keys()) == sorted([KEY_A, KEY_B, other])
        clock.advance(6)
        assert other not in list(backend.keys())


class TestClear:
    def test_clear_removes_vectors_by_prefix(self, backend: EmbeddedSemanticBackend) -> None:
        """Clearing a namespace removes its entries and their vectors, and nothing else."""
        other_ctx = make_key("keep", "mod.ask", "c" * 32)
        kept = make_key("keep", "mod.ask", "f" * 32)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(kept, make_entry(), 60, other_ctx, RESET)
        assert backend.search(CTX, RESET, None) is not None
        assert backend.clear("llm_memo:2:ns:") == 1
        assert backend.search(CTX, RESET, None) is None
        assert backend.search(other_ctx, RESET, None) is not None

    def test_a_clear_in_another_backend_drops_this_ones_index(
        self, backend: EmbeddedSemanticBackend, folder: Path
    ) -> None:
        """Another process's clear is seen at the next search: the partition is rebuilt from
        the rows left, so new entries are found even behind many cleared ones."""
        for i in range(20):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        other = reopened(folder)
        assert other.clear("llm_memo:2:ns:") == 20
        other.add(KEY_B, make_entry(b'"new"'), 60, CTX, RESET2)
        found = backend.search(CTX, RESET, 0.5)
        assert found is not None
        assert found[0] == KEY_B
        assert len(backend._parts[partition_name(CTX, "toy-v1")].index) == 1
        other.close()

    def test_a_clear_here_also_applies_the_clears_made_elsewhere(
        self, backend: EmbeddedSemanticBackend, folder: Path
    ) -> None:
        """This backend clears one prefix after another backend cleared a different one: the
        other clear is not skipped (its partitions are dropped here too)."""
        for i in range(20):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        other = reopened(folder)
        other.clear("llm_memo:2:ns:")
        backend.clear("llm_memo:2:elsewhere:")
        other.add(KEY_B, make_entry(b'"new"'), 60, CTX, RESET2)
        found = backend.search(CTX, RESET, 0.5)
        assert found is not None
        assert found[0] == KEY_B
        assert len(backend._parts[partition_name(CTX, "toy-v1")].index) == 1
        other.close()

    def test_clear_everything_removes_index_files(
        self, backend: EmbeddedSemanticBackend, folder: Path
    ) -> None:
        """clear() empties the store and deletes the index files."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.search(CTX, RESET, None)
        backend.save()
        assert list((folder / "index").glob("*.usearch"))
        assert backend.clear() == 1
        assert not list((folder / "index").glob("*.usearch"))
        assert backend.search(CTX, RESET, None) is None


class TestIndexFiles:
    def _saved(self, folder: Path, clock: FakeClock) -> Path:
        first = reopened(folder, clock)
        first.add(KEY_A, make_entry(b'"a"'), 60, CTX, RESET)
        first.add(KEY_B, make_entry(b'"b"'), 60, CTX, OTHER)
        assert first.search(CTX, RESET, None) is not None  # builds the index in memory
        first.close()  # saves it
        (path,) = (folder / "index").glob("*.usearch")
        assert path == Path(_layout.index_path(str(folder), partition_name(CTX, "toy-v1")))
        return path

    def test_a_restart_loads_the_file(self, folder: Path, clock: FakeClock) -> None:
        """close() writes the index; the next backend loads it instead of rebuilding."""
        self._saved(folder, clock)
        second = reopened(folder, clock)
        assert second.search(CTX, RESET2, None) is not None
        part = second._parts[partition_name(CTX, "toy-v1")]
        assert (part.saved, len(part.index)) == (2, 2)  # loaded: nothing added since
        second.close()

    @pytest.mark.parametrize(
        "damage",
        ["delete", "truncate", "garbage", "flip"],
    )
    def test_a_missing_or_damaged_file_is_rebuilt(
        self, folder: Path, clock: FakeClock, damage: str
    ) -> None:
        """No file, half a file, another format, one flipped byte: rebuilt from the store."""
        path = self._saved(folder, clock)
        data = path.read_bytes()
        if damage == "delete":
            path.unlink()
        elif damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            path.write_bytes(b"not an index" * 10)
        else:
            path.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
        second = reopened(folder, clock)
        found = second.search(CTX, RESET2, None)
        assert found is not None
        assert found[0] == KEY_A
        assert second._parts[partition_name(CTX, "toy-v1")].saved == 0  # rebuilt
        second.close()

    def test_a_stale_file_never_serves_a_deleted_entry(
        self, folder: Path, clock: FakeClock
    ) -> None:
        """A file saved before a delete still holds the vector: the store says no."""
        self._saved(folder, clock)
        other = reopened(folder, clock)
        assert other.delete(KEY_A)
        other.close()
        third = reopened(folder, clock)
        assert third.search(CTX, RESET, 0.5) is None
        third.close()

    def test_a_file_of_another_store_is_ignored(self, folder: Path, clock: FakeClock) -> None:
        """The store recreated under the files (deleted and written anew): its vids mean other
        entries, so the old file is not loaded."""
        path = self._saved(folder, clock)
        kept = path.read_bytes()
        for name in os.listdir(folder):
            if name.startswith("entries.sqlite3"):
                os.unlink(folder / name)
        fresh = reopened(folder, clock)
        fresh.add(KEY_B, make_entry(b'"fresh"'), 60, CTX, OTHER)
        fresh.close()
        path.write_bytes(kept)  # the old store's file back in place
        third = reopened(folder, clock)
        assert third.search(CTX, RESET, 0.5) is None
        found = third.search(CTX, OTHER, None)
        assert found is not None
        assert found[1] == make_entry(b'"fresh"')
        third.close()

    def test_a_rebuild_reads_the_store_in_batches(
        self, folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Catching up with more rows than one batch indexes all of them, in vid order."""
        from llm_memo.backends.semantic.embedded import _indexes

        monkeypatch.setattr(_indexes, "_CATCH_UP", 3)
        backend = reopened(folder, clock)
        texts = [
            f"question {word}"
            for word in ["alpha", "bravo", "charlie", "delta", "echo", "fox", "golf"]
        ]
        for i, text in enumerate(texts):
            backend.add(make_key("ns", "mod.ask", f"{i:032x}"), make_entry(), 60, CTX, text)
        assert backend.search(CTX, texts[-1], 0.99) is not None
        part = backend._parts[partition_name(CTX, "toy-v1")]
        assert (len(part.index), part.seen) == (7, 7)
        backend.close()

    def test_other_engine_settings_rebuild(self, folder: Path, clock: FakeClock) -> None:
        """A file made with another dtype or connectivity is not loaded."""
        self._saved(folder, clock)
        other = reopened(folder, clock, dtype="f16", connectivity=8)
        assert other.search(CTX, RESET2, None) is not None
        assert other._parts[partition_name(CTX, "toy-v1")].saved == 0
        other.close()

    def test_an_unwritable_index_folder_still_answers(
        self, folder: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The index file is a cache: failing to write it is logged once, searches go on."""
        backend = reopened(folder, clock)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        (folder / "index").write_text("a file where the folder should be")
        assert backend.search(CTX, RESET, None) is not None
        backend.save()
        backend.close()
        assert sum("cannot save the index" in r.getMessage() for r in caplog.records) == 1


class TestFailures:
    def test_an_unopenable_folder_fails_open(self, tmp_path: Path) -> None:
        """A folder under a regular file: every operation is a BackendError, so a decorated
        function still runs."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        backend = EmbeddedSemanticBackend(blocker / "sem", embedder=ToyEmbedder())
        with pytest.raises(BackendError, match="cannot open"):
            backend.get(KEY_A)
        calls = []

        @llm_cached(backend=backend)
        def ask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(1)
            return "x"

        assert ask("m", [{"role": "user", "content": RESET}]) == "x"
        assert ask("m", [{"role": "user", "content": RESET}]) == "x"
        assert calls == [1, 1]

    def test_a_store_of_another_format_is_refused(self, folder: Path) -> None:
        """A SQLite file written by another format version is not read."""
        backend = reopened(folder)
        backend.set(KEY_A, make_entry(), None)
        backend.close()
        con = sqlite3.connect(folder / "entries.sqlite3")
        con.execute("UPDATE meta SET value = '99' WHERE name = 'format'")
        con.commit()
        con.close()
        with pytest.raises(BackendError, match="format"):
            reopened(folder).get(KEY_A)


# -- several processes -----------------------------------------------------------------------------

_CHILD_HEAD = """
import sys
sys.path.insert(0, {root!r})
from llm_memo.backends.semantic.embedded import EmbeddedSemanticBackend
from llm_memo.testing.conformance import make_entry, make_key
from tests.backends.test_embedders import ToyEmbedder
# (a long lock wait: a loaded machine must not turn the other writer's lock into a failure)
backend = EmbeddedSemanticBackend(
    {folder!r}, embedder=ToyEmbedder(), threshold=0.8, guard=None, timeout=30
)
CTX = {ctx!r}
"""


def run_child(folder: Path, body: str, args_: str = "") -> subprocess.Popen[str]:
    """A real Python process using the folder (the code after the shared head; ``args_`` is
    its ``sys.argv[1]``)."""
    code = _CHILD_HEAD.format(root=str(ROOT), folder=str(folder), ctx=CTX) + textwrap.dedent(body)
    argv = [sys.executable, "-c", code] + ([args_] if args_ else [])
    return subprocess.Popen(argv, text=True, stdout=subprocess.PIPE)


class TestProcesses:
    def test_a_write_in_one_process_is_seen_at_the_others_next_search(self, folder: Path) -> None:
        """A parent with its index in memory; a child adds an entry and deletes the parent's:
        the parent's next search finds the child's entry and never the deleted one."""
        parent = reopened(folder)
        parent.add(KEY_A, make_entry(b'"parent"'), 600, CTX, RESET)
        assert parent.search(CTX, RESET, None) is not None  # indexed in this process
        child = run_child(folder, f"""
            backend.add({KEY_B!r}, make_entry(b'"child"'), 600, CTX, {OTHER!r})
            assert backend.delete({KEY_A!r})
            backend.close()
            print("done")
        """)  # fmt: skip
        out, _ = child.communicate(timeout=120)
        assert (child.returncode, out.strip()) == (0, "done")
        found = parent.search(CTX, OTHER, None)
        assert found is not None
        assert found[1] == make_entry(b'"child"')
        assert parent.search(CTX, RESET, 0.5) is None
        assert parent.get(KEY_A) is MISSING
        parent.close()

    def test_opening_waits_for_another_connections_lock(self, tmp_path: Path) -> None:
        """A store opened (and switched to WAL) while another connection holds the file's lock
        waits for it, then opens; held past the timeout, opening fails with the error, which
        the backend turns into fail-open."""
        path = str(tmp_path / "store.sqlite3")
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.3, other.execute, ("COMMIT",))
        release.start()
        try:
            store = Store(path, 30.0)
            assert store._con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            store.close()
        finally:
            release.join()
        blocker = sqlite3.connect(str(tmp_path / "b.sqlite3"), isolation_level=None)
        blocker.execute("CREATE TABLE t (x)")
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            Store(str(tmp_path / "b.sqlite3"), 0.2)
        blocker.execute("COMMIT")
        other.close()
        blocker.close()

    def test_two_processes_writing_at_once(self, folder: Path) -> None:
        """Two children add and search in one partition at the same time: every write of both
        is stored, and each child's index ends up with the other's vectors too."""
        body = """
            import sys
            name = sys.argv[1]
            for i in range(30):
                key = make_key("ns", "mod.ask", f"{name}{i:031x}")
                backend.add(key, make_entry(), None, CTX, f"{name} question number {i}")
                backend.search(CTX, f"{name} question number {i}", None)
            backend.close()
            print("done")
        """
        children = [run_child(folder, body, args_=name) for name in ("a", "b")]
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert (child.returncode, out.strip()) == (0, "done")
        after = reopened(folder)
        for name in ("a", "b"):
            for i in range(30):
                assert after.get(make_key("ns", "mod.ask", f"{name}{i:031x}")) is not MISSING
        found = after.search(CTX, "b question number 7", 0.99)
        assert found is not None
        assert after.get(found[0]) is not MISSING
        assert len(after._parts[partition_name(CTX, "toy-v1")].index) == 60
        after.close()

    def test_a_forked_child_opens_its_own_connection(self, folder: Path) -> None:
        """After fork (simulated through _fork's hook) the parent's SQLite connection is
        dropped, never used; the child opens its own and keeps the indexes it inherited."""
        backend = reopened(folder)
        backend.add(KEY_A, make_entry(), 600, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        inherited = backend._db
        backend._after_fork()
        assert backend._db is None
        assert backend.search(CTX, RESET2, None) is not None
        assert backend._db is not inherited
        assert inherited is not None
        inherited.close()
        backend.close()

    def test_kill_9_while_writing_leaves_a_store_that_reopens(self, folder: Path) -> None:
        """A child writing entries and saving its index in a loop is killed with SIGKILL:
        the SQLite file passes its integrity check, every entry the child reported is there,
        and the folder serves searches and writes again."""
        child = run_child(folder, """
            import itertools
            for i in itertools.count():
                key = make_key("ns", "mod.ask", f"{i:032x}")
                backend.add(key, make_entry(), None, CTX, f"question {i} about resetting passwords")
                backend.search(CTX, f"question {i} about resetting passwords", None)
                backend.save()
                print(i, flush=True)
        """)  # fmt: skip
        assert child.stdout is not None
        reported = -1
        for line in child.stdout:
            reported = int(line)
            if reported >= 40:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        con = sqlite3.connect(folder / "entries.sqlite3")
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()
        after = reopened(folder)
        for i in range(reported + 1):
            assert after.get(make_key("ns", "mod.ask", f"{i:032x}")) is not MISSING
        found = after.search(CTX, "question 7 about resetting passwords", 0.99)
        assert found is not None  # (the toy embedder may hash "7" like another number)
        assert after.get(found[0]) is not MISSING
        after.add(KEY_A, make_entry(b'"after"'), None, CTX, RESET)
        assert after.search(CTX, RESET, None) is not None
        after.close()
        leftovers = [n for n in os.listdir(folder / "index") if n.startswith(".tmp-")]
        assert len(leftovers) <= 1  # at most the file being written when it died; ignored


# -- through the decorator, with the real offline model --------------------------------------------


class TestDecorator:
    def test_isolation_matrix_with_the_offline_model(self, folder: Path) -> None:
        """Paraphrase hit with its similarity; no hit across model, parameter, system prompt,
        namespace or tenant, even for identical text."""
        backend = EmbeddedSemanticBackend(folder, embedder=local_embedder())
        isolation_matrix(backend)
        backend.close()

    def test_async_functions(self, folder: Path) -> None:
        """Async functions use the backend inline (the decorator's async view)."""
        backend = EmbeddedSemanticBackend(folder, embedder=local_embedder())
        asyncio.run(async_isolation(backend))
        backend.close()

    def test_guard_refuses_a_negation_the_model_scores_high(self, folder: Path) -> None:
        """The model scores these above the threshold; the guard (default on) refuses."""
        backend = EmbeddedSemanticBackend(folder, embedder=local_embedder())
        yes = "Which programming languages are statically typed?"
        no = "Which programming languages are not statically typed?"
        backend.add(KEY_A, make_entry(), 60, CTX, yes)
        assert backend.search(CTX, no, None) is None
        unguarded = EmbeddedSemanticBackend(folder, embedder=local_embedder(), guard=None)
        found = unguarded.search(CTX, no, None)
        assert found is not None
        assert found[2] > DEFAULT_THRESHOLD
        backend.close()
        unguarded.close()

    def test_configured_embedder_and_url(self, tmp_path: Path) -> None:
        """backend= a semantic+local URL uses configure(embedder=...); sync and async
        functions share one folder."""
        configure(embedder=local_embedder())
        url = f"semantic+local://{tmp_path}/cache"
        calls = []

        @llm_cached(backend=url)
        def ask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(1)
            return "sync answer"

        @llm_cached(backend=url, name="tests.shared")
        async def aask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(2)
            return "async answer"

        ask("m", [{"role": "user", "content": Q}])
        assert ask("m", [{"role": "user", "content": PARAPHRASE}]) == "sync answer"
        asyncio.run(aask("m", [{"role": "user", "content": Q}]))
        assert asyncio.run(aask("m", [{"role": "user", "content": PARAPHRASE}])) == "async answer"
        assert calls == [1, 2]


# -- URLs ------------------------------------------------------------------------------------------


class TestUrls:
    def test_query_parameters(self, tmp_path: Path) -> None:
        """Every query parameter reaches the backend; nothing is opened."""
        url = (
            f"semantic+local://{tmp_path}/s?threshold=0.9&candidates=2&dtype=i8&connectivity=8"
            "&expansion_add=64&expansion_search=32&widen=4&timeout=1&async_timeout=0.05"
        )
        check_url(url)
        backend = EmbeddedSemanticBackend.from_url(url, embedder=ToyEmbedder())
        assert (backend.threshold, backend._candidates, backend.dtype) == (0.9, 2, "i8")
        assert (backend.connectivity, backend.expansion_add, backend.expansion_search) == (
            8, 64, 32,
        )  # fmt: skip
        assert (backend.timeout, backend.async_timeout, backend.widen) == (1.0, 0.05, 4)
        assert backend.directory == f"{tmp_path}/s"
        assert not (tmp_path / "s").exists()

    def test_default_directory(self) -> None:
        """semantic+local:// alone is the user cache directory's llm_memo/semantic."""
        backend = EmbeddedSemanticBackend.from_url("semantic+local://", embedder=ToyEmbedder())
        assert backend.directory.endswith(os.path.join("llm_memo", "semantic"))

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("semantic+local:///x?nope=1", "unknown semantic\\+local:// parameter 'nope'"),
            ("semantic+local:///x?dtype=f64", "dtype must be one of"),
            ("semantic+local:///x?connectivity=1", "connectivity must be"),
            ("semantic+local:///x?expansion_search=0", "expansion_search must be"),
            ("semantic+local:///x?widen=0", "widen must be"),
            ("semantic+local:///x?timeout=-1", "timeout must be"),
            ("semantic+local:///x?candidates=many", "not valid"),
            ("semantic+local:///x#frag", "no fragment"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        """Malformed URLs are ConfigurationErrors that say what is wrong, at check time too."""
        with pytest.raises(ConfigurationError, match=message):
            check_url(url)
        with pytest.raises(ConfigurationError, match=message):
            EmbeddedSemanticBackend.from_url(url, embedder=ToyEmbedder())

    def test_unknown_option(self) -> None:
        """A keyword option from_url does not know is refused with the known ones listed."""
        with pytest.raises(ConfigurationError, match="unknown semantic\\+local:// option"):
            EmbeddedSemanticBackend.from_url("semantic+local:///x", collection="c")

    def test_registry_and_configured_embedder(self, tmp_path: Path) -> None:
        """llm_memo.backends.from_url finds the class for sync and async callers; without an
        embedder configured the error names configure(embedder=...)."""
        url = f"semantic+local://{tmp_path}/r"
        with pytest.raises(ConfigurationError, match=r"configure\(embedder="):
            from_url(url)
        configure(embedder=ToyEmbedder())
        assert isinstance(from_url(url), EmbeddedSemanticBackend)
        assert isinstance(from_url(url, asynchronous=True), EmbeddedSemanticBackend)

    def test_missing_usearch_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without usearch the URL check says which extra to install."""
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a: None if name == "usearch" else real(name)
        )
        with pytest.raises(MissingDependencyError, match=r"llm-memo\[ann"):
            check_url("semantic+local:///a/folder/checked/without/usearch")

    def test_an_async_embedder_is_refused(self, tmp_path: Path) -> None:
        """The backend is sync (async callers use it inline): an async embedder cannot serve."""
        with pytest.raises(ConfigurationError, match="is async"):
            EmbeddedSemanticBackend(tmp_path, embedder=AsyncToyEmbedder())

    def test_repr(self, backend: EmbeddedSemanticBackend, folder: Path) -> None:
        """The repr names folder, embedder and threshold."""
        assert repr(backend) == (
            f"EmbeddedSemanticBackend({str(folder)!r}, embedder='toy-v1', threshold=0.8)"
        )


class TestEngineLoading:
    def test_the_engine_loaded_first_does_not_crash_the_offline_model(self) -> None:
        """usearch imported before onnxruntime crashes onnxruntime's session (SIGSEGV); the
        backend loads onnxruntime first. A fresh process: search (usearch loads), then embed."""
        code = textwrap.dedent(f"""
            import sys, tempfile
            sys.path.insert(0, {str(ROOT)!r})
            from llm_memo.backends.semantic.embedded import EmbeddedSemanticBackend
            from llm_memo.backends.semantic.embedders import LocalEmbedder
            from tests.backends.test_embedders import ToyEmbedder
            backend = EmbeddedSemanticBackend(tempfile.mkdtemp(), embedder=ToyEmbedder())
            backend.search({CTX!r}, "anything", None)
            assert "usearch" in sys.modules
            LocalEmbedder()(["still alive"])
            print("ok")
        """)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
