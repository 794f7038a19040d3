"""Peers, side by side in one process: litellm's in-memory cache and cashews vs llm_memo.

Needs the peers: pip install litellm fastapi soundfile mcp cashews
(optional; a peer that is not installed is reported and skipped). Prints a table; exits 0.

Run:  python -m benchmarks.bench_peers
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

from benchmarks._timing import Timing, header, measure
from llm_memo import llm_cached
from llm_memo.backends.memory import MemoryBackend
from tests.samples import chat_request


def bench_litellm() -> tuple[Timing, Timing] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import litellm
            from litellm.caching.caching import Cache
    except ImportError as exc:
        print(f"litellm: not installed ({exc}); pip install litellm fastapi soundfile mcp")
        return None
    litellm.suppress_debug_info = True
    request = chat_request()
    litellm.cache = Cache(type="local")
    litellm.completion(**request, mock_response="hello", caching=True)
    time.sleep(0.5)  # litellm writes its cache from a background task
    peer = measure(
        "litellm completion(caching=True), local cache hit",
        lambda: litellm.completion(**request, mock_response="hello", caching=True),
        number=200,
        batch=5,
    )
    litellm.cache = None
    cached = llm_cached(backend=MemoryBackend())(litellm.completion)
    cached(**request, mock_response="hello")
    ours = measure(
        "llm_cached(litellm.completion) memory hit",
        lambda: cached(**request, mock_response="hello"),
        number=2000,
    )
    return peer, ours


def bench_cashews() -> tuple[Timing, Timing] | None:
    try:
        from cashews import cache
    except ImportError:
        print("cashews: not installed; pip install cashews")
        return None
    cache.setup("mem://")
    request = chat_request()
    response = {"choices": [{"message": {"content": "hello " * 400}}]}

    @cache(ttl="1h")
    async def peer_fn(model: str, messages: Any, temperature: float, max_tokens: int) -> Any:
        return response

    @llm_cached(backend=MemoryBackend(), ttl=3600)
    async def our_fn(model: str, messages: Any, temperature: float, max_tokens: int) -> Any:
        return response

    async def time_it(fn: Any, n: int = 3000) -> list[float]:
        await fn(**request)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await fn(**request)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        return sorted(samples)

    async def main() -> tuple[list[float], list[float]]:
        return await time_it(peer_fn), await time_it(our_fn)

    p, o = asyncio.run(main())
    peer = Timing("cashews @cache mem:// hit (async)", statistics.median(p), p[int(len(p) * 0.9)])
    ours = Timing("@llm_cached memory hit (async)", statistics.median(o), o[int(len(o) * 0.9)])
    return peer, ours


if __name__ == "__main__":
    header("peers: cache hit of the typical chat request")
    for result in (bench_litellm(), bench_cashews()):
        if result is None:
            continue
        peer, ours = result
        print(peer.row())
        print(ours.row(peer) + f"   ({peer.median_us / ours.median_us:.0f}x faster)")
