"""Redis benchmarks: a hit through @llm_cached vs a raw redis-py GET of the same bytes, the miss
overhead vs a raw SET + encode, a memory-L1 + Redis-L2 tiered hit, a per-item batch of 1,000
texts read with MGET, and the commands each operation sends (BENCHMARKS.md: Redis hit <= 1.2x
a raw GET, exactly one round trip).

Starts its own redis-server on a random loopback port (tests/servers/) and stops it at the end.

Run:  python -m benchmarks.bench_redis     (from the repository root; prints tables, exits 0)
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import redis
import redis.asyncio
import xxhash
from openai.types.chat import ChatCompletion

from benchmarks._timing import apaired, header, measure, paired, show
from llm_memo import llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.redis import AsyncRedisBackend, RedisBackend
from llm_memo.backends.tiered import TieredBackend
from tests.samples import chat_completion, chat_request, completion_dict
from tests.servers import RedisServer, start_redis_server

N = 4000  # calls per measurement (benchmarks._timing.paired's default)
BATCH = 1000  # items in the per-item batch


def _commandstats(server: RedisServer) -> Counter[str]:
    text = server.command("INFO", "commandstats").decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_") :].partition(":")
            counts[name] = int(fields.split(",")[0].split("=")[1])
    return counts


def _commands(server: RedisServer, fn: Callable[[], Any]) -> str:
    before = _commandstats(server)
    fn()
    delta = _commandstats(server) - before
    delta["info"] -= 1  # the first INFO itself
    return " + ".join(f"{n} {name.upper()}" for name, n in sorted((+delta).items())) or "none"


def hits(server: RedisServer) -> None:
    header("Redis hit: ~3 KB ChatCompletion for the typical chat request (~2.4 KB)")
    request = chat_request()
    response_dict = completion_dict()
    response: ChatCompletion = chat_completion()
    backend = RedisBackend.from_url(server.url)
    raw = redis.Redis(host=server.host, port=server.port)

    @llm_cached(backend=backend, ttl=3600, name="bench.ask_dict")
    def ask_dict(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response_dict

    @llm_cached(backend=MemoryBackend(), ttl=3600, name="bench.ask_memory")
    def ask_memory(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response_dict

    @llm_cached(backend=backend, ttl=3600, name="bench.ask_typed")
    def ask_typed(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> ChatCompletion:
        return response

    ask_dict(**request)
    ask_typed(**request)
    ask_memory(**request)
    dict_key = ask_dict.cache.key(**request)
    typed_key = ask_typed.cache.key(**request)
    stored = raw.get(dict_key)
    assert stored is not None
    print(f"stored entry: {len(stored)} bytes (dict), {len(raw.get(typed_key) or b'')} (typed)")
    payload = response.model_dump_json(exclude_unset=True).encode()

    json_bytes = orjson.dumps(response_dict)
    get = lambda: raw.get(dict_key)  # noqa: E731
    hit = lambda: ask_dict(**request)  # noqa: E731

    def key_floor() -> str:
        return xxhash.xxh3_128_hexdigest(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))

    show(
        *paired("raw redis-py GET of the same bytes", get, "@llm_cached Redis hit (dict)", hit),
        "(target <= 1.20x)",
    )
    show(
        *paired(
            "raw redis-py GET of the same bytes",
            get,
            "RedisBackend.get alone (no decorator)",
            lambda: backend.get(dict_key),
        ),
        "(the backend's own share)",
    )
    show(
        *paired(
            "raw GET + key floor + orjson.loads",
            lambda: (raw.get(dict_key), key_floor(), orjson.loads(json_bytes)),
            "@llm_cached Redis hit (dict)",
            hit,
        ),
        "(vs the least a hit can do)",
    )
    show(
        *paired(
            "raw GET + @llm_cached memory hit",
            lambda: (raw.get(dict_key), ask_memory(**request)),
            "@llm_cached Redis hit (dict)",
            hit,
        ),
        "(decorator work is the same)",
    )
    show(
        *paired(
            "raw GET + ChatCompletion.model_validate_json",
            lambda: (raw.get(typed_key), ChatCompletion.model_validate_json(payload)),
            "@llm_cached Redis hit (typed ChatCompletion)",
            lambda: ask_typed(**request),
        )
    )
    memory_hit = measure("@llm_cached memory hit (dict), hot loop", lambda: ask_memory(**request))
    print(memory_hit.row())

    # Async: the same hit through AsyncRedisBackend vs a raw redis.asyncio GET.
    loop = asyncio.new_event_loop()
    abackend = AsyncRedisBackend.from_url(server.url)
    araw = redis.asyncio.Redis(host=server.host, port=server.port)

    @llm_cached(backend=abackend, ttl=3600, name="bench.ask_dict")
    async def aask_dict(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response_dict

    show(
        *loop.run_until_complete(
            apaired(
                "raw redis.asyncio GET",
                lambda: araw.get(dict_key),
                "@llm_cached async Redis hit (dict)",
                lambda: aask_dict(**request),
            )
        ),
        "(target <= 1.20x)",
    )
    show(
        *loop.run_until_complete(
            apaired(
                "raw redis.asyncio GET",
                lambda: araw.get(dict_key),
                "AsyncRedisBackend.get (no decorator)",
                lambda: abackend.get(dict_key),
            )
        )
    )
    loop.run_until_complete(abackend.close())
    loop.run_until_complete(araw.aclose())
    loop.close()

    print("\ncommands per operation (INFO commandstats):")
    print(f"  hit through @llm_cached:  {_commands(server, lambda: ask_dict(**request))}")
    counter = itertools.count()
    print(
        "  miss through @llm_cached: "
        + _commands(server, lambda: ask_dict(**request, n=next(counter)))
    )
    entry = backend.get(dict_key)
    assert entry is not MISSING
    print(
        "  backend.set(ttl=60):      " + _commands(server, lambda: backend.set(dict_key, entry, 60))
    )
    backend.close()
    raw.close()


def misses(server: RedisServer) -> None:
    header("miss overhead: call + encode + SET vs raw encode + SET")
    request = chat_request()
    response_dict = completion_dict()
    backend = RedisBackend.from_url(server.url)
    raw = redis.Redis(host=server.host, port=server.port)
    counter = itertools.count()

    @llm_cached(backend=backend, ttl=3600, name="bench.miss")
    def ask(
        model: str,
        messages: list[dict[str, str]],
        temperature: float = 0.0,
        n: int = 0,
        **params: Any,
    ) -> dict[str, Any]:
        return response_dict

    def raw_set() -> None:
        raw.set(f"raw:{next(counter)}", orjson.dumps(response_dict), px=3_600_000)

    def raw_get_set() -> None:
        key = f"raw:{next(counter)}"
        raw.get(key)
        raw.set(key, orjson.dumps(response_dict), px=3_600_000)

    miss = lambda: ask(**request, n=next(counter))  # noqa: E731
    show(
        *paired(
            "raw: orjson.dumps + SET PX", raw_set, "@llm_cached miss (new key each call)", miss
        ),
        "(target <= 1.50x; but a miss also GETs first)",
    )
    show(
        *paired(
            "raw: GET (miss) + orjson.dumps + SET PX",
            raw_get_set,
            "@llm_cached miss (new key each call)",
            miss,
        )
    )
    backend.close()
    raw.close()


def tiered(server: RedisServer) -> None:
    header("tiered: memory L1 + Redis L2")
    request = chat_request()
    response_dict = completion_dict()
    raw = redis.Redis(host=server.host, port=server.port)
    l2 = RedisBackend.from_url(server.url)
    both = TieredBackend(MemoryBackend(), l2)

    @llm_cached(backend=both, ttl=3600, name="bench.tiered")
    def ask(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response_dict

    @llm_cached(backend=MemoryBackend(), ttl=3600, name="bench.memory")
    def ask_memory(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response_dict

    ask(**request)
    ask_memory(**request)
    key = ask.cache.key(**request)
    hit = lambda: ask(**request)  # noqa: E731

    def l2_hit() -> Any:
        both.l1.clear()
        return ask(**request)

    get = lambda: raw.get(key)  # noqa: E731
    show(*paired("raw redis-py GET of the same bytes", get, "@llm_cached tiered hit (L1)", hit))
    show(
        *paired(
            "@llm_cached memory-only hit (dict)",
            lambda: ask_memory(**request),
            "@llm_cached tiered hit (L1)",
            hit,
        )
    )
    show(
        *paired("raw redis-py GET of the same bytes", get, "tiered L1 miss, L2 hit + fill", l2_hit)
    )
    print(f"\ncommands per tiered L1 hit: {_commands(server, lambda: ask(**request))}")
    both.close()
    raw.close()


def per_item(server: RedisServer) -> None:
    header(f"per-item batch of {BATCH} texts, all cached (one bulk read)")
    backend = RedisBackend.from_url(server.url)
    raw = redis.Redis(host=server.host, port=server.port)
    texts = [f"chunk {i}: " + "lorem ipsum dolor sit amet " * 4 for i in range(BATCH)]
    vector = [0.125] * 384

    @llm_cached(backend=backend, per_item="texts", name="bench.per_item")
    def embed(texts: list[str], model: str = "local-minilm") -> list[list[float]]:
        return [vector for _ in texts]

    embed(texts)
    keys = [embed.cache.key([t]) for t in texts]
    one_by_one = lambda: [raw.get(k) for k in keys]  # noqa: E731
    bulk = lambda: [raw.mget(keys[i : i + 200]) for i in range(0, BATCH, 200)]  # noqa: E731
    hit = lambda: embed(texts)  # noqa: E731
    for name, fn in (
        (f"raw redis-py: {BATCH} GETs, one per item", one_by_one),
        (f"raw redis-py: {BATCH // 200} MGETs of 200", bulk),
        (f"@llm_cached per-item batch hit ({BATCH} items)", hit),
    ):
        t = measure(name, fn, number=20, batch=1)
        print(t.row())
    print(f"\ncommands per batch hit: {_commands(server, hit)}")
    backend.close()
    raw.close()


def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed: apt-get install -y redis-server")
        return
    workdir = Path(tempfile.mkdtemp(prefix="llm-memo-bench-redis-"))
    server = start_redis_server(binary, workdir, name="bench-redis")
    try:
        print(
            f"redis-server {server.version} on {server.host}:{server.port}; redis-py "
            f"{redis.__version__}; medians and p90 of {N} calls in batches"
        )
        hits(server)
        misses(server)
        tiered(server)
        per_item(server)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
