"""Realistic uses of the public API, checked by mypy (scripts/check), never run by pytest.

If a change breaks the types users see (a cached function losing its signature or return
type, a handle method changing shape), mypy fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from typing_extensions import assert_type

from llm_memo import (
    CacheHandle,
    CacheScope,
    CacheStats,
    Explanation,
    cache_controls,
    call,
    configure,
    llm_cached,
)


@llm_cached(ttl=60)
def ask(model: str, messages: list[dict[str, str]], temperature: float = 0.0) -> str:
    return model


@llm_cached(key_params=("token",), key_headers=("anthropic-beta",))
def with_key_options(token: str, extra_headers: dict[str, str] | None = None) -> str:
    return token


@llm_cached
def bare(prompt: str) -> int:
    return len(prompt)


@llm_cached(namespace="n")
async def aask(prompt: str) -> dict[str, Any]:
    return {"p": prompt}


@llm_cached
def stream(prompt: str) -> Iterator[str]:
    yield prompt


@llm_cached
async def astream(prompt: str) -> AsyncIterator[str]:
    yield prompt


async def use_async() -> None:
    assert_type(await aask("x"), dict[str, Any])
    async for chunk in astream("x"):
        assert_type(chunk, str)
    assert_type(await aask.cache.aget("x"), Any)


def use() -> None:
    assert_type(ask("m", [{"role": "user", "content": "hi"}]), str)
    assert_type(bare("x"), int)
    assert_type(with_key_options("t", extra_headers={"anthropic-beta": "b"}), str)
    for chunk in stream("x"):
        assert_type(chunk, str)
    handle = ask.cache
    assert_type(handle, CacheHandle)
    assert_type(handle.key("m", []), str)
    assert_type(handle.contains("m", []), bool)
    assert_type(handle.stats(), CacheStats)
    assert_type(handle.explain(call("m", []), call("n", [])), Explanation)
    with cache_controls(no_cache=True, ttl=30) as scope:
        assert_type(scope, CacheScope)
        assert_type(scope.hits, int)
    configure(backend="memory://", ttl=60, strict=True)
    wrapped = llm_cached(ttl=5)(len)
    assert_type(wrapped("abc"), int)
