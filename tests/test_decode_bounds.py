"""Bounded decoding (issue 9 §3, STYLE 6.3b): every decompression has a size bound, and no
hostile entry (a compressed bomb, absurd nesting, a payload that fails validation) is anything
but a miss.

The bound is the backend's ``max_entry_size`` attribute when it has one, else
:data:`~llm_memo.entry.DEFAULT_MAX_ENTRY_SIZE`; a result larger than it is not stored either.
"""

from __future__ import annotations

import logging
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from llm_memo import CodecError, cache_controls, llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends.memory import MemoryBackend
from llm_memo.codec import inflate, seal
from llm_memo.entry import DEFAULT_MAX_ENTRY_SIZE, FLAG_COMPRESSED

MB = 1024 * 1024


def _bomb(size: int, piece: bytes = b"a") -> bytes:
    """zlib data of a JSON string of ``size`` bytes, built without holding it in memory."""
    packer = zlib.compressobj(9)
    out = [packer.compress(b'"')]
    block = piece * MB
    out.extend(packer.compress(block) for _ in range(size // MB))
    out.append(packer.compress(b'"'))
    out.append(packer.flush())
    return b"".join(out)


class Answer(BaseModel):
    text: str


class TestInflate:
    def test_bomb_is_refused_within_the_bound(self) -> None:
        """A ~300 KB entry that would inflate to 300 MB costs at most the bound in memory."""
        bomb = _bomb(300 * MB)
        assert len(bomb) < 1 * MB
        tracemalloc.start()
        try:
            with pytest.raises(CodecError, match="size limit"):
                inflate(bomb, 8 * MB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 32 * MB, f"inflating the bomb peaked at {peak / MB:.0f} MiB"

    def test_exactly_the_bound_inflates(self) -> None:
        data = b"x" * 1000
        assert inflate(zlib.compress(data), 1000) == data
        with pytest.raises(CodecError, match="size limit"):
            inflate(zlib.compress(data), 999)

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"not zlib",
            zlib.compress(b"x" * 100)[:-5],  # truncated
            zlib.compress(b"x" * 100) + b"junk",  # trailing data
        ],
        ids=["empty", "garbage", "truncated", "trailing"],
    )
    def test_damaged_data_is_a_codec_error(self, raw: bytes) -> None:
        with pytest.raises(CodecError):
            inflate(raw)


def _ask(backend: Any, calls: list[str]) -> Any:
    @llm_cached(backend=backend)
    def ask(q: str) -> Any:
        calls.append(q)
        return {"answer": q}

    return ask


def _plant(backend: Any, key: str, tag: str, payload: bytes, *, compressed: bool = False) -> None:
    """An entry that names ``key`` (so only its content can make it a miss)."""
    entry = seal(key, tag, payload, created_at=0.0, expires_at=None, stale_window=0, tokens=0)
    if compressed:
        from dataclasses import replace

        entry = replace(entry, flags=FLAG_COMPRESSED)
    backend.set(key, entry, None)


class TestThroughTheDecorator:
    def test_bomb_entry_is_a_miss_and_overwritten(self) -> None:
        """A compressed entry inflating past the backend's bound is a miss, without inflating it
        whole, and the fresh result replaces it."""
        backend = MemoryBackend()
        calls: list[str] = []
        ask = _ask(backend, calls)
        key = ask.cache.key("q")
        _plant(backend, key, "json", _bomb(300 * MB), compressed=True)
        tracemalloc.start()
        try:
            got = ask("q")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got == {"answer": "q"}
        assert peak < DEFAULT_MAX_ENTRY_SIZE + 32 * MB, f"peak {peak / MB:.0f} MiB"
        assert calls == ["q"]
        with cache_controls() as scope:
            assert ask("q") == {"answer": "q"}
        assert scope.hits == 1

    def test_backend_max_entry_size_is_the_bound(self) -> None:
        """A backend that names its entry size bounds decompression by it."""
        backend = MemoryBackend()
        backend.max_entry_size = 1000  # type: ignore[attr-defined]
        calls: list[str] = []
        ask = _ask(backend, calls)
        key = ask.cache.key("q")
        _plant(backend, key, "json", zlib.compress(orjson.dumps("x" * 2000)), compressed=True)
        assert ask("q") == {"answer": "q"}
        assert calls == ["q"]
        small = zlib.compress(orjson.dumps("x" * 500))
        _plant(backend, key, "json", small, compressed=True)
        assert ask("q") == "x" * 500
        assert calls == ["q"]

    def test_result_larger_than_the_bound_is_returned_not_stored(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A result whose encoded value is over the backend's entry size is returned, not
        stored, with one log line."""
        backend = MemoryBackend()
        backend.max_entry_size = 1000  # type: ignore[attr-defined]

        @llm_cached(backend=backend)
        def big(q: str) -> str:
            return q * 2000

        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            assert big("x") == "x" * 2000
            assert big("y") == "y" * 2000
        assert list(backend._data) == []
        lines = [r.getMessage() for r in caplog.records if "size limit" in r.getMessage()]
        assert len(lines) == 1, lines

    def test_async_result_larger_than_the_bound_is_not_stored(self) -> None:
        import asyncio

        backend = MemoryBackend()
        backend.max_entry_size = 1000  # type: ignore[attr-defined]

        @llm_cached(backend=backend)
        async def big(q: str) -> str:
            return q * 2000

        assert asyncio.run(big("x")) == "x" * 2000
        assert list(backend._data) == []

    @pytest.mark.parametrize(
        ("tag", "payload"),
        [
            ("json", b"[" * 100_000 + b"]" * 100_000),  # deeper than orjson parses
            ("json", b'{"a":' * 5000 + b"1" + b"}" * 5000),
            ("stream", b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]"),
            ("stream", b'[["json",' + b"[" * 5000 + b"]" * 5000 + b"]]"),  # a deep chunk
            ("stream", b'[["model:x:Y", {}]]'),
            ("stream", b"[1, 2, 3]"),
            ("stream", b'[["json"]]'),
            ("stream", b'[["json", 1, 2]]'),
            ("stream", b"[[1, 2]]"),
            ("stream", b'{"not": "a list"}'),
            ("pickle", b"\x80\x04garbage"),
            ("adapter:0000", b"[]"),
            ("json", b"\xff\xfe"),
            ("json", b"1e999999"),
            ("json", b'{"a": 1} trailing'),
        ],
    )
    def test_hostile_payloads_are_misses(self, tag: str, payload: bytes) -> None:
        """Absurd nesting, malformed chunk lists and undecodable payloads are misses, never a
        crash (RecursionError, TypeError, ValueError...), and are overwritten."""
        backend = MemoryBackend()
        calls: list[str] = []
        ask = _ask(backend, calls)
        key = ask.cache.key("q")
        _plant(backend, key, tag, payload)
        assert ask("q") == {"answer": "q"}
        assert calls == ["q"]
        assert backend.get(key) is not MISSING
        assert ask("q") == {"answer": "q"}
        assert calls == ["q"]

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"text": 5}',
            b'{"text": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b"[]",
            b"null",
            b"{not json",
        ],
    )
    def test_model_payloads_that_do_not_validate_are_misses(self, payload: bytes) -> None:
        """A model entry that pydantic rejects is a miss (ValidationError never escapes)."""
        backend = MemoryBackend()
        calls: list[str] = []

        @llm_cached(backend=backend)
        def ask(q: str) -> Answer:
            calls.append(q)
            return Answer(text=q)

        key = ask.cache.key("q")
        _plant(backend, key, "model:" + f"{Answer.__module__}:{Answer.__qualname__}", payload)
        assert ask("q") == Answer(text="q")
        assert calls == ["q"]

    def test_hostile_stream_chunks_are_misses_for_generators(self) -> None:
        backend = MemoryBackend()
        calls: list[str] = []

        @llm_cached(backend=backend)
        def stream(q: str) -> Iterator[Answer]:
            calls.append(q)
            yield Answer(text=q)

        key = stream.cache.key("q")
        tag = f"model:{Answer.__module__}:{Answer.__qualname__}"
        bad = orjson.dumps([[tag, {"text": 1}], [tag, "x"], ["json", [1] * 3]])
        _plant(backend, key, "stream", bad)
        assert list(stream("q")) == [Answer(text="q")]
        assert calls == ["q"]
