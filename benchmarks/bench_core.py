"""Core benchmarks: the hit path side by side with a baseline commit, typed in-memory hit and
disk hit vs their floors, key derivation by size, miss overhead, memory per entry, and
single-flight call counts (BENCHMARKS.md).

Run:  python -m benchmarks.bench_core     (from the repository root; prints tables, exits 0)

The hit-path table runs ``benchmarks/_hitpath.py`` in child processes, alternating between a
checkout of the baseline commit (``LLM_MEMO_BASELINE``, default ``/tmp/base``; make it with
``git worktree add /tmp/base 0b6e374``) and this tree, and keeps each row's best median of the
rounds (a shared machine only ever adds time). Without the checkout it shows this tree alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import diskcache
import orjson
import xxhash
from openai.types.chat import ChatCompletion

from benchmarks._timing import header, measure, paired, show
from llm_memo import llm_cached
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend
from llm_memo.keys import KeyBuilder
from tests.samples import chat_completion, chat_request

#: The commit the reliability issue landed on: the baseline of the hit-path targets.
BASELINE_COMMIT = "0b6e374"
_ROOT = Path(__file__).resolve().parents[1]
_ROWS = (
    ("key floor", "key floor: orjson sorted + xxh3_128"),
    ("key floor + orjson.loads", "dict floor: key floor + orjson.loads"),
    ("memory hit, dict", "@llm_cached memory hit, dict"),
    ("fixed overhead, dict hit", "  fixed overhead beyond the dict floor (target <= 3 us)"),
    ("memory hit, typed", "@llm_cached memory hit, typed (target <= 1.5x)"),
    ("disk hit, typed", "@llm_cached disk hit, typed (target <= 1.5x)"),
    ("cachetools hit", "cachetools.cached hit (no canonical key)"),
    ("functools.lru_cache hit", "functools.lru_cache hit (no canonical key)"),
)


def _hitpath(tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(_ROOT / "benchmarks" / "_hitpath.py")],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    if Path(result["llm_memo"]).resolve() != tree.resolve():
        raise RuntimeError(f"measured {result['llm_memo']}, not {tree}: PYTHONPATH lost")
    return result


def _best(runs: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    rows = [r[name] for r in runs if r.get(name) is not None]
    return min(rows, key=lambda row: row["us"]) if rows else None


def hit_path(rounds: int = 3) -> None:
    """The hit path now and at :data:`BASELINE_COMMIT`, side by side (medians in us, and each
    hit's ratio to its floor, measured in alternating batches in the same process)."""
    base_tree = Path(os.environ.get("LLM_MEMO_BASELINE", "/tmp/base"))
    trees = {"now": _ROOT}
    if (base_tree / "llm_memo").is_dir():
        trees = {BASELINE_COMMIT: base_tree, "now": _ROOT}
    print(f"\n## hit path: {' vs '.join(trees)} (best median of {rounds} alternating rounds)\n")
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    for _ in range(rounds):
        for label, tree in trees.items():
            runs[label].append(_hitpath(tree))
    cols = list(trees)
    print(
        f"{'measurement (median us, ratio to its floor)':<58}" + "".join(f"{c:>18}" for c in cols)
    )
    print("-" * (58 + 18 * len(cols)))
    for name, title in _ROWS:
        cells = []
        for label in cols:
            row = _best(runs[label], name)
            if row is None:
                cells.append(f"{'(not installed)':>18}")
            elif "ratio" in row:
                cells.append(f"{row['us']:9.2f} {row['ratio']:6.2f}x ")
            else:
                cells.append(f"{row['us']:9.2f}         ")
        print(f"{title:<58}" + "".join(cells))


def typed_hits() -> None:
    header("typed hit: ChatCompletion (~3 KB) for the typical chat request (~2.4 KB)")
    request = chat_request()
    response = chat_completion()
    payload = response.model_dump_json(exclude_unset=True).encode()

    def key_floor() -> str:
        return xxhash.xxh3_128_hexdigest(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))

    def decode_floor() -> ChatCompletion:
        return ChatCompletion.model_validate_json(payload)

    def floor() -> Any:
        key_floor()
        return decode_floor()

    @llm_cached(backend=MemoryBackend(), ttl=3600)
    def ask(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> ChatCompletion:
        return response

    ask(**request)
    hit = lambda: ask(**request)  # noqa: E731
    assert type(hit()) is ChatCompletion
    assert ask.cache.stats().hits >= 1

    tmp = tempfile.mkdtemp()
    disk_backend = DiskBackend(tmp)

    @llm_cached(backend=disk_backend, ttl=3600)
    def ask_disk(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> ChatCompletion:
        return response

    ask_disk(**request)
    raw_disk = diskcache.Cache(tmp + "/raw")
    raw_disk.set("k", payload)

    def disk_floor() -> Any:
        raw_disk.get("k")
        return decode_floor()

    t_key = measure("key floor: orjson sorted + xxh3_128", key_floor, number=20000)
    t_dec = measure("decode floor: ChatCompletion.model_validate_json", decode_floor)
    print(t_key.row())
    print(t_dec.row())
    t_floor, t_hit, ratio = paired(
        "floor: key floor + decode floor", floor, "@llm_cached memory hit (typed)", hit
    )
    show(t_floor, t_hit, ratio, "(target <= 2.00x)")
    t_dfloor, t_disk, dratio = paired(
        "disk floor: diskcache.get + decode floor",
        disk_floor,
        "@llm_cached disk hit (typed)",
        lambda: ask_disk(**request),
    )
    show(t_dfloor, t_disk, dratio, "(target <= 1.50x)")

    # The stdlib way peers key requests, for comparison.
    import hashlib
    import json

    t_std = measure(
        "stdlib key: json.dumps(sort_keys) + sha256",
        lambda: hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest(),
    )
    kb = KeyBuilder(ask.__wrapped__, "bench.ask")
    t_ours = measure(
        "llm_memo key: bind + canonicalise + hash",
        lambda: kb.key((), request, "default"),
        number=20000,
    )
    print(t_std.row(t_key))
    print(t_ours.row(t_key))


def key_scaling() -> None:
    header("key derivation by message size (throughput vs floor)")

    def fn(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> None: ...

    kb = KeyBuilder(fn, "bench.fn")
    for size in (1_000, 10_000, 100_000, 1_000_000):
        request = chat_request(size)
        number = max(50, 200_000_000 // (size * 100))
        floor = measure(
            f"floor {size:>9,} B",
            lambda r=request: xxhash.xxh3_128_hexdigest(
                orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
            ),
            number=number,
        )
        ours = measure(
            f"llm_memo key {size:>9,} B", lambda r=request: kb.key((), r, "default"), number=number
        )
        share = floor.median_us / ours.median_us * 100
        print(floor.row())
        print(ours.row(floor) + f"   ({share:.0f}% of floor throughput; target >= 50%)")


def miss_overhead() -> None:
    header("miss overhead: call + encode + store vs raw encode + set (memory)")
    response = chat_completion()
    request = chat_request()
    backend = MemoryBackend(max_entries=10**7, max_bytes=2**40)
    counter = iter(range(10**9))

    @llm_cached(backend=backend)
    def ask(
        model: str,
        messages: list[dict[str, str]],
        temperature: float = 0.0,
        n: int = 0,
        **params: Any,
    ) -> ChatCompletion:
        return response

    raw: dict[str, bytes] = {}

    def raw_set() -> None:
        raw[str(next(counter))] = response.model_dump_json(exclude_unset=True).encode()

    t_raw, t_miss, ratio = paired(
        "raw: model_dump_json + dict set",
        raw_set,
        "@llm_cached miss (new key each call)",
        lambda: ask(**request, n=next(counter)),
        number=4000,
    )
    show(t_raw, t_miss, ratio, "(target <= 1.50x)")
    per_entry = backend.total_bytes / len(backend)
    payload = len(response.model_dump_json(exclude_unset=True))
    print(
        f"\nmemory backend: {per_entry:.0f} bytes accounted per entry for a {payload} B payload "
        f"(overhead {per_entry - payload:.0f} B: key, header, tag)"
    )


def single_flight() -> None:
    header("single-flight: 64 concurrent identical misses")
    calls = 0

    @llm_cached(backend=MemoryBackend())
    def slow(q: str) -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.1)
        return q

    gate = threading.Barrier(64)

    def run() -> None:
        gate.wait()
        slow("same")

    threads = [threading.Thread(target=run) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"threads: 64 callers -> {calls} underlying call(s)   (target: 1)")

    acalls = 0

    @llm_cached(backend=MemoryBackend())
    async def aslow(q: str) -> str:
        nonlocal acalls
        acalls += 1
        await asyncio.sleep(0.1)
        return q

    async def main() -> None:
        await asyncio.gather(*(aslow("same") for _ in range(64)))

    asyncio.run(main())
    print(f"asyncio tasks: 64 callers -> {acalls} underlying call(s)   (target: 1)")


if __name__ == "__main__":
    hit_path()
    typed_hits()
    key_scaling()
    miss_overhead()
    single_flight()
