"""Redis 7 semantic search: the partition scored on the server (the shipped Lua script) against
the path of earlier releases (the whole partition transferred with ``HVALS`` and scored with
numpy on the client), at 1k / 2k / 10k 384-d vectors in one partition.

For each size it reports, over the same queries on the same real ``redis-server`` (7.x):

* the search as a caller sees it (median and p90, ms): earlier releases' ``HVALS`` + parse +
  numpy, against ``RedisSemanticBackend.search``'s scoring step (``EVALSHA`` of
  ``SEARCH_HASH``), neither fetching the entry (that ``GET`` is the same for both);
* the bytes each reply carries;
* how long the script runs *inside* Redis per call (``INFO commandstats`` ``usec_per_call``):
  while it runs the server answers no other client, so this is the figure the partition cap
  (``DEFAULT_MAX_PARTITION_HASH``) is chosen from;
* whether both paths rank the same best record.

Run:  nice python -m benchmarks.semantic_redis7 [--sizes 1000,2000,10000] [--queries 50]
(from the repository root; needs ``redis-server`` on PATH; prints a table, exits 0).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import redis

from llm_memo.backends.semantic import DEFAULT_THRESHOLD
from llm_memo.backends.semantic.redis import _index
from tests.servers import start_redis_server

DIM = 384
# Earlier releases' record: deadline, time added, the float16 vector, the key (length-prefixed).
_OLD_HEAD = struct.Struct("<dd")


def old_record(vector: np.ndarray, key: str, now: float) -> bytes:
    raw = key.encode()
    return b"".join((
        _OLD_HEAD.pack(float("inf"), now), vector.astype("<f2").tobytes(),
        _index.KEY_LEN.pack(len(raw)), raw,
    ))  # fmt: skip


def old_search(
    client: redis.Redis, index: str, query: np.ndarray, now: float
) -> tuple[bytes | None, int]:
    """Earlier releases' hash search: every record over the wire, scored with numpy; the best
    key at or above the threshold."""
    values: Any = client.hvals(index)
    width = _OLD_HEAD.size + 2 * DIM
    heads = np.frombuffer(b"".join(v[: _OLD_HEAD.size] for v in values), dtype="<f8")
    matrix = np.frombuffer(b"".join(v[_OLD_HEAD.size : width] for v in values), dtype="<f2")
    scores = matrix.reshape(len(values), DIM).astype(np.float32) @ query
    scores[heads[0::2] <= now] = -2.0
    size = sum(len(v) for v in values)
    if float(scores.max()) < DEFAULT_THRESHOLD:
        return None, size
    best = values[int(np.argmax(scores))]
    (length,) = _index.KEY_LEN.unpack_from(best, width)
    return bytes(best[width + 2 : width + 2 + length]), size


def new_search(
    client: redis.Redis, index: str, query: np.ndarray, now: float, slice_: int
) -> tuple[bytes | None, int]:
    """The shipped path's scoring step: the script's best key at or above the threshold."""
    args = _index.search_args(query, DEFAULT_THRESHOLD, now, 16)
    cursor, ranked, size = b"0", [], 0
    while True:
        reply: Any = client.evalsha(_index.SEARCH_HASH.sha, 1, index, *args, cursor, slice_)
        size += sum(len(x) if isinstance(x, bytes) else 8 for x in reply)
        cursor, found = _index.ranked_hash(reply)
        ranked += found
        if cursor == b"0":
            best = _index.best_of(ranked, 1)
            return (best[0][0] if best else None), size


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 90))


def usec_per_call(client: redis.Redis, command: str) -> float:
    stats: Any = client.info("commandstats")
    return float(stats.get(f"cmdstat_{command}", {}).get("usec_per_call", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,10000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument(
        "--slice", type=int, default=_index.SEARCH_SLICE, help="records per script run"
    )
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not on PATH: nothing to measure")
        return
    server = start_redis_server(binary, Path(tempfile.mkdtemp()) / "r7")
    client = redis.Redis(host=server.host, port=server.port)
    print(f"# Redis {server.version} hash index: scored on the server vs transferred")
    print(f"\n{DIM}-d random unit vectors in one partition; threshold {DEFAULT_THRESHOLD}; half")
    print("the queries near-duplicates of a stored vector (hits), half unrelated (misses)\n")
    print(f"script runs read {args.slice} records each\n")
    print(f"{'':>8} | {'earlier: HVALS + numpy':^35} | {'now: EVALSHA SEARCH_HASH':^44} |")
    print(f"{'entries':>8} | {'ms':>16} {'reply KB':>8} {'Redis ms':>8} | {'ms':>16}"
          f" {'reply KB':>8} {'Redis ms':>8} {'per run':>8} | {'same best':>9}")  # fmt: skip
    print(f"{'':>8} | {'median / p90':>16} {'':>8} {'':>8} | {'median / p90':>16}")
    print("-" * 105)
    rng = np.random.default_rng(7)
    client.script_load(_index.SEARCH_HASH.text)
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            client.flushall()
            vectors = rng.standard_normal((n, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            now = time.time()
            pipe = client.pipeline(transaction=False)
            for i in range(n):
                key = f"llm_memo:2:ns:f:{i:032x}"
                pipe.hset("old:h", key, old_record(vectors[i], key, now))
                pipe.hset("new:hq", key, _index.hash_record(float("inf"), now, vectors[i], key, ""))
            pipe.execute()
            # Half near-duplicates of stored vectors (cosine ~0.95: hits), half unrelated
            # (misses, the common case of a cache that is still filling).
            queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            near = rng.integers(0, n, args.queries // 2)
            queries[: len(near)] = vectors[near] + 0.33 * queries[: len(near)]
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            old_t: list[float] = []
            new_t: list[float] = []
            same = 0
            old_bytes: list[int] = []
            new_bytes: list[int] = []
            client.config_resetstat()
            for q in queries:
                started = time.perf_counter()
                old_best, size = old_search(client, "old:h", q, now)
                old_bytes.append(size)
                old_t.append(time.perf_counter() - started)
                started = time.perf_counter()
                new_best, size = new_search(client, "new:hq", q, now, args.slice)
                new_bytes.append(size)
                new_t.append(time.perf_counter() - started)
                same += old_best == new_best
            inside = usec_per_call(client, "evalsha") / 1000
            runs = int(cast("Any", client.info("commandstats"))["cmdstat_evalsha"]["calls"])
            per_search = inside * runs / len(queries)
            hvals = usec_per_call(client, "hvals") / 1000
            (o50, o90), (n50, n90) = percentiles(old_t), percentiles(new_t)
            old_kb, new_kb = np.mean(old_bytes) / 1024, np.mean(new_bytes) / 1024
            print(f"{n:>8,} | {o50:>7.2f} / {o90:>6.2f} {old_kb:>8.0f} {hvals:>8.2f} |"
                  f" {n50:>6.2f} / {n90:>6.2f} {new_kb:>8.2f} {per_search:>8.2f} {inside:>8.2f} |"
                  f" {same:>4}/{len(queries)}")  # fmt: skip
    finally:
        client.close()
        server.stop()
    print("\n(Redis ms: the commands' own run time per search inside the server (INFO")
    print(" commandstats); per run: one script run, the longest the server answers no other")
    print(" client; reply KB: mean per search;")
    print(" same best: both paths answer with the same record, or both with none)")


if __name__ == "__main__":
    main()
