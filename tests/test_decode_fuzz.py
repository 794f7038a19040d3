"""Fuzzing the read path (issue 9, "Also build"): random and mutated entry bytes fed to
``Entry.from_bytes``, to the codec and through the decorator. Never a crash (only CodecError,
which is a miss), never a value of another key, never a value of the wrong type.

The strategies here are shared with the conformance suite's fuzz test
(``tests/backends/conformance.py``), which runs them through every backend's own read path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llm_memo import CodecError, configure, llm_cached
from llm_memo.backends.memory import MemoryBackend
from llm_memo.codec import AllowList, Codec, inflate, seal
from llm_memo.entry import FLAG_COMPRESSED, Entry, key_digest

from .backends.conformance import entry_bytes_strategy, hostile_entries

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Through the decorator: fewer examples, each is a whole cached call.
FUZZ_CALLS = settings(FUZZ, max_examples=120)


class Answer(BaseModel):
    text: str
    score: float = 0.0


def _answers() -> Answer:  # the annotation the codec below restores
    raise NotImplementedError


TAGS = [
    "json",
    "stream",
    "astream",
    "pickle",
    f"model:{Answer.__module__}:{Answer.__qualname__}",
    "model:os:system",
    "dataclass:builtins:object",
    "adapter:0123",
    "",
    "\x00",
    "model:",
]


class TestEntryFromBytes:
    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bytes(self, raw: bytes) -> None:
        """Random bytes are a CodecError or a well-formed entry, nothing else."""
        _parse_checked(raw)

    @FUZZ
    @given(entry_bytes_strategy("llm_memo:2:ns:f:" + "0" * 32))
    def test_mutated_entries(self, raw: bytes) -> None:
        """Truncated, flipped, extended entries and absurd length fields parse or are refused."""
        _parse_checked(raw)

    @FUZZ
    @given(st.binary(min_size=0, max_size=80), st.binary(max_size=40))
    def test_valid_header_garbage_tail(self, head_noise: bytes, tail: bytes) -> None:
        """A real header followed by anything: the value is whatever follows the signature."""
        good = Entry(b"v", "json", 1.0, key_digest=key_digest("k")).to_bytes()
        _parse_checked(good[:30] + head_noise + tail)


def _parse_checked(raw: bytes) -> None:
    try:
        entry = Entry.from_bytes(raw)
    except CodecError:
        return
    assert math.isfinite(entry.created_at)
    assert entry.expires_at is None or math.isfinite(entry.expires_at)
    assert math.isfinite(entry.stale_window)
    assert entry.stale_window >= 0
    assert entry.flags & ~FLAG_COMPRESSED == 0
    assert len(entry.key_digest) in (0, 8)
    assert Entry.from_bytes(entry.to_bytes()) == entry


class TestCodec:
    @FUZZ
    @given(st.sampled_from(TAGS) | st.text(max_size=30), st.binary(max_size=300))
    @example("stream", b'[["json"]]')
    @example("stream", b"[" * 2000 + b"]" * 2000)
    @example(f"model:{Answer.__module__}:{Answer.__qualname__}", b'{"text": ' + b"[" * 600)
    def test_decode_random_payloads(self, tag: str, payload: bytes) -> None:
        """Any tag with any payload decodes or is a CodecError; with pickle refused."""
        codec = Codec(AllowList(_answers))
        with contextlib.suppress(CodecError):
            codec.decode(tag, payload)

    @FUZZ
    @given(st.sampled_from(TAGS), st.binary(max_size=200))
    def test_decode_random_payloads_with_pickle_allowed(self, tag: str, payload: bytes) -> None:
        """With pickle opted in, damaged pickles are CodecErrors too."""
        codec = Codec(AllowList(_answers))
        with contextlib.suppress(CodecError):
            codec.decode(tag, payload, allow_pickle=True)

    @FUZZ
    @given(st.binary(max_size=400), st.integers(min_value=0, max_value=5000))
    def test_inflate_random_and_mutated(self, raw: bytes, limit: int) -> None:
        """inflate() never returns more than its limit, and fails only with CodecError."""
        for data in (raw, zlib.compress(raw)[: len(raw) // 2 + 3], zlib.compress(raw)):
            try:
                out = inflate(data, limit)
            except CodecError:
                continue
            assert len(out) <= limit


ANSWER_TAG = f"model:{Answer.__module__}:{Answer.__qualname__}"
GOOD = ((ANSWER_TAG, b'{"text": "planted"}'), ("json", b'{"text": "a dict"}'))


def _ask(backend: MemoryBackend, calls: list[str]) -> Any:
    @llm_cached(backend=backend)
    def ask(q: str) -> Answer:
        calls.append(q)
        return Answer(text=q)

    return ask


class TestThroughTheDecorator:
    @FUZZ_CALLS
    @given(data=st.data())
    def test_planted_entries_never_cross_keys_or_types(self, data: st.DataObject) -> None:
        """Whatever entry is found under a key (another key's, damaged, of another type, a
        bomb), the call returns an Answer, and another key's entry is never served."""
        backend = MemoryBackend()
        calls: list[str] = []
        ask = _ask(backend, calls)
        key = ask.cache.key("q")
        other = ask.cache.key("other")
        entry = data.draw(hostile_entries(key, [other], GOOD))
        backend.set(key, entry, None)
        got = ask("q")
        replayed = entry.belongs_to(key) and isinstance(got, Iterator)  # its own stream entry
        assert isinstance(got, Answer) or replayed, f"returned {got!r}"
        if not entry.belongs_to(key):
            assert got == Answer(text="q"), f"another key's entry was served: {got!r}"
            assert calls == ["q"]

    @FUZZ_CALLS
    @given(data=st.data(), signed=st.booleans())
    def test_async_and_signed(self, data: st.DataObject, signed: bool) -> None:
        """The same through a coroutine function, with and without signing."""
        configure(signing_keys=["s" * 32] if signed else [])
        backend = MemoryBackend()

        @llm_cached(backend=backend)
        async def ask(q: str) -> Answer:
            return Answer(text=q)

        key = ask.cache.key("q")
        entry = data.draw(hostile_entries(key, [ask.cache.key("x")], GOOD))
        backend.set(key, entry, None)
        got = asyncio.run(ask("q"))
        replayed = entry.belongs_to(key) and isinstance(got, AsyncIterator | Iterator)
        assert isinstance(got, Answer) or replayed, f"returned {got!r}"
        if not entry.belongs_to(key) or (signed and not entry.signature):
            assert got == Answer(text="q")


@pytest.mark.parametrize("flip", range(0, 60, 3))
def test_every_flipped_header_byte_of_a_real_entry(flip: int) -> None:
    """Flipping any one header byte of a real sealed entry never serves a wrong-key or
    wrong-type value (the digest bytes included)."""
    backend = MemoryBackend()
    calls: list[str] = []
    ask = _ask(backend, calls)
    ask("q")
    key = ask.cache.key("q")
    good = backend.get(key)
    assert isinstance(good, Entry)
    raw = bytearray(good.to_bytes())
    if flip >= len(raw):
        return
    raw[flip] ^= 0xFF
    try:
        damaged = Entry.from_bytes(bytes(raw))
    except CodecError:
        return
    backend.set(key, dataclasses.replace(damaged), None)
    got = ask("q")
    assert isinstance(got, Answer)
    assert got == Answer(text="q")


def test_seal_of_a_bomb_is_refused() -> None:
    """A sealed, correctly keyed entry whose value is a bomb is a miss."""
    backend = MemoryBackend()
    calls: list[str] = []
    ask = _ask(backend, calls)
    key = ask.cache.key("q")
    packer = zlib.compressobj(9)
    bomb = b"".join(
        [packer.compress(b'{"text":"'), *(packer.compress(b"a" * 2**20) for _ in range(70))]
    )
    bomb += packer.compress(b'"}') + packer.flush()
    entry = dataclasses.replace(
        seal(key, "model:x", bomb, created_at=0, expires_at=None, stale_window=0, tokens=0),
        type_tag=f"model:{Answer.__module__}:{Answer.__qualname__}",
        flags=FLAG_COMPRESSED,
    )
    backend.set(key, entry, None)
    assert ask("q") == Answer(text="q")
    assert calls == ["q"]
