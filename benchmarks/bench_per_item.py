"""Per-item embedding cache (BENCHMARKS.md): a batch of 1,000 items, 90% seen before, makes one
call carrying only the 100 new items; the overhead per cached item, beside its floor.

Run:  python -m benchmarks.bench_per_item     (from the repository root; prints tables, exits 0)

Two shapes:

- your own function, ``@llm_cached(per_item="texts")`` returning a list of vectors (384 floats,
  the offline MiniLM size), on the memory backend: the all-hit batch per item, against the
  floor of what any per-item cache must do per item (serialise and hash its request, look it
  up in a dict, ``orjson.loads`` its stored vector);
- the real ``openai`` client's ``embeddings.create`` against a loopback stub: the 90%-seen batch
  (the stub's request log says what was sent) and the all-hit batch per item, which also
  rebuilds each ``Embedding`` and the one ``CreateEmbeddingResponse``, against the typed floor
  (serialise and hash each item's request, ``CreateEmbeddingResponse.model_validate_json`` of
  its stored one-item response).
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
import orjson
import xxhash
from openai.types import CreateEmbeddingResponse

from benchmarks._timing import Timing, header, measure
from llm_memo import llm_cached
from llm_memo.backends.memory import MemoryBackend

BATCH = 1000
SEEN = 900
DIMS = 384
MODEL = "text-embedding-3-small"


def _vector(text: str, dims: int = DIMS) -> list[float]:
    rng = random.Random(text)
    return [rng.uniform(-1, 1) for _ in range(dims)]


def _per_item(t: Timing, per: float) -> None:
    t.median_us *= per
    t.p90_us *= per


def _texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} chunk {i}: " + "lorem ipsum dolor sit amet " * 8 for i in range(n)]


def own_function() -> None:
    header(f"your function, per_item='texts': {BATCH} items, all cached (per item)")
    calls: list[int] = []

    @llm_cached(backend=MemoryBackend(max_entries=100_000), per_item="texts")
    def embed(texts: list[str], model: str = "local-minilm") -> list[list[float]]:
        calls.append(len(texts))
        return [_vector(t) for t in texts]

    texts = _texts("own", BATCH)
    embed(texts[:SEEN])
    calls.clear()
    embed(texts)
    print(
        f"90% seen: {len(calls)} call(s) carrying {calls} items (target: 1 call of {BATCH - SEEN})"
    )

    store = {
        xxhash.xxh3_128_hexdigest(
            orjson.dumps({"model": "local-minilm", "texts": [t]}, option=orjson.OPT_SORT_KEYS)
        ): orjson.dumps([_vector(t)])
        for t in texts
    }

    def floor() -> None:
        for t in texts:
            raw = orjson.dumps({"model": "local-minilm", "texts": [t]}, option=orjson.OPT_SORT_KEYS)
            orjson.loads(store[xxhash.xxh3_128_hexdigest(raw)])

    per = 1 / BATCH
    floor_t = measure(
        "floor: key + dict lookup + orjson.loads, per item", floor, number=60, batch=1
    )
    hit_t = measure("@llm_cached per-item hit, per item", lambda: embed(texts), number=60, batch=1)
    for t in (floor_t, hit_t):
        _per_item(t, per)
    print(floor_t.row())
    print(hit_t.row(floor_t))
    overhead = hit_t.median_us - floor_t.median_us
    print(f"overhead per cached item beyond the floor: {overhead:.2f} us (target <= 10 us)")


class _Stub(BaseHTTPRequestHandler):
    sent: list[int]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        items = body["input"]
        self.sent.append(len(items))
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text, 1536)}
            for i, text in enumerate(items)
        ]
        tokens = sum(len(t.split()) for t in items)
        answer = orjson.dumps({
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _stub() -> Iterator[tuple[str, list[int]]]:
    sent: list[int] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Stub,), {"sent": sent}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", sent
    finally:
        server.shutdown()
        server.server_close()


def openai_client() -> None:
    header(f"openai embeddings.create (1536 dims): {BATCH} items, all cached (per item)")
    with _stub() as (url, sent):
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        create = llm_cached(backend=MemoryBackend(max_entries=100_000))(client.embeddings.create)
        texts = _texts("openai", BATCH)
        create(model=MODEL, input=texts[:SEEN])
        sent.clear()
        merged = create(model=MODEL, input=texts)
        print(
            f"90% seen: {len(sent)} request(s) carrying {sent} items "
            f"(target: 1 of {BATCH - SEEN}); answer: {type(merged).__name__} of "
            f"{len(merged.data)}, indexes in order: "
            f"{[d.index for d in merged.data] == list(range(BATCH))}"
        )
        one = merged.model_copy(update={"data": merged.data[:1]})
        stored = {t: one.model_dump_json().encode() for t in texts}

        def floor() -> None:
            for t in texts:
                raw = orjson.dumps({"model": MODEL, "input": [t]}, option=orjson.OPT_SORT_KEYS)
                xxhash.xxh3_128_hexdigest(raw)
                CreateEmbeddingResponse.model_validate_json(stored[t])

        per = 1 / BATCH
        floor_t = measure(
            "typed floor: key + model_validate_json, per item", floor, number=30, batch=1
        )
        hit_t = measure(
            "@llm_cached embeddings.create hit, per item",
            lambda: create(model=MODEL, input=texts),
            number=30,
            batch=1,
        )
        for t in (floor_t, hit_t):
            _per_item(t, per)
        print(floor_t.row())
        print(hit_t.row(floor_t))
        print(
            f"overhead per cached item beyond the floor: {hit_t.median_us - floor_t.median_us:.2f}"
            " us"
        )
        client.close()


if __name__ == "__main__":
    own_function()
    openai_client()
