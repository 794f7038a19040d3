"""``semantic+local:///path``: the embedded semantic cache, on usearch HNSW indexes.

The recommended local semantic backend (``qdrant+local://`` is brute force in Python and meant
for development). Entries live in one SQLite file, the truth; each partition (exact context +
embedder, :func:`~llm_memo.backends.semantic.partition_name`) has an ANN index derived from it,
kept in memory and saved as a file, rebuilt from the store whenever the file is missing, damaged
or stale. Every candidate the index proposes is checked against the store, so a deleted,
expired or cleared entry is never served, whatever the index still holds.

==================  ================================================================================
``_backend.py``     :class:`EmbeddedSemanticBackend`: the protocol, the search, failing open
``_indexes.py``     the in-memory HNSW index per partition: loaded, rebuilt, caught up, saved
``_store.py``       the SQLite entry store: schema, ids, clears (why SQLite: its docstring)
``_layout.py``      the folder and the index file format (header + usearch bytes, atomic writes)
``_url.py``         ``semantic+local://`` URLs, parsed without importing the engine
==================  ================================================================================

**Why usearch.** Measured on this project's 2-core machine (``python -m
benchmarks.semantic_latency --only engines``: 20,000 random 384-d unit vectors, HNSW M=16,
ef_construction=128, ef_search=64, top-8, one query at a time): usearch f16 answers in 0.47 ms
p50 (f32 0.64 ms, i8 0.27 ms), hnswlib 0.38 ms, faiss ``IndexHNSWFlat`` 0.35 ms, all at recall@8
0.59-0.62: the engines are equally fast where it matters. usearch is chosen for what the others
lack here: removal of single vectors and growth without a fixed capacity (faiss HNSW cannot
remove; hnswlib only marks deleted within a ``max_elements`` fixed at creation), half-float and
int8 storage (half floats by default: recall@8 0.988 on embedded questions at 100,000 against
int8's 0.947, at the same lookup cost; the served score is always the exact float32 one; faiss
has them only in other index types),
serialisation to bytes (``save()`` / ``restore()``, so our file carries its own header and
digest), and it is maintained (monthly releases; hnswlib's last release is from 2023).

**Partitions: one index per partition.** usearch's Python API has no filtered search, and a
shared index filtered after the fact would let a large partition crowd a small one out of the
top ``k``. One index per exact context makes crossing contexts impossible by construction, and
a small partition costs a small search.

**Several processes** (gunicorn, celery workers) share one folder safely: writes are SQLite
transactions; each process keeps its own in-memory indexes and reads the rows added since its
last search (one indexed query) at the start of every search, so a write in one worker is seen
by the others at their next search. ``kill -9`` in the middle of a write leaves the SQLite file
consistent (the transaction rolls back) and the previous index file (written to a temporary
name, then renamed). What each process pays: the memory of the indexes it searches, and a
rebuild of a partition it opens without a current file (100,000 vectors at the defaults: 170 s
of embedded questions to 7 minutes on a busy 2-core machine; built once, the file is reused).

**Sync only**, like ``disk://``: the store answers in microseconds and the index in a
millisecond, so async callers use it inline (the decorator's async view), with a short SQLite
busy timeout (``async_timeout``) so another process's write lock never stalls the event loop.
"""

from __future__ import annotations

from ._backend import (
    DEFAULT_ASYNC_TIMEOUT,
    DEFAULT_CONNECTIVITY,
    DEFAULT_DTYPE,
    DEFAULT_EXPANSION_ADD,
    DEFAULT_EXPANSION_SEARCH,
    DEFAULT_TIMEOUT,
    DEFAULT_WIDEN,
    EmbeddedSemanticBackend,
)

# The public path, not the module the class lives in: reprs, docs and pickles name it.
EmbeddedSemanticBackend.__module__ = __name__

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
