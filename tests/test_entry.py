"""The entry record (SPEC §5, issue 9 §3): format 2 carries a digest of its own key, and every
field survives the byte layout; an entry found under another key is a miss, signing or not."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llm_memo import CodecError, cache_controls, configure, llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.tiered import TieredBackend
from llm_memo.codec import check_key, seal, unseal
from llm_memo.entry import FLAG_COMPRESSED, FORMAT_VERSION, Entry, key_digest


def _entry(**fields: Any) -> Entry:
    base: dict[str, Any] = {"value": b"v", "type_tag": "json", "created_at": 1.5}
    base.update(fields)
    return Entry(**base)


class TestLayout:
    def test_format_is_2(self) -> None:
        """This round's one format bump: entries and keys say format 2."""
        assert FORMAT_VERSION == 2
        assert _entry().to_bytes()[3] == 2

    def test_every_field_roundtrips(self) -> None:
        """Value, tag, timestamps, window, tokens, flags, signature and key digest survive."""
        e = Entry(
            b"v\x00\xff",
            "model:pkg.mod:Answer",
            1.5,
            2.5,
            3.0,
            7,
            FLAG_COMPRESSED,
            b"s" * 32,
            key_digest=key_digest("llm_memo:2:ns:f:" + "0" * 32),
        )
        assert Entry.from_bytes(e.to_bytes()) == e

    def test_entry_without_digest_roundtrips(self) -> None:
        """An entry built without a key digest reads back without one (not as zero bytes)."""
        e = _entry()
        assert e.key_digest == b""
        assert Entry.from_bytes(e.to_bytes()) == e

    def test_digest_is_8_bytes_of_the_key(self) -> None:
        """The digest is cheap and fixed-size, and differs between keys."""
        a, b = key_digest("llm_memo:2:ns:f:a"), key_digest("llm_memo:2:ns:f:b")
        assert len(a) == len(b) == 8
        assert a != b
        assert key_digest("llm_memo:2:ns:f:a") == a

    def test_digest_must_be_8_bytes(self) -> None:
        """A digest of another size cannot be written (the header has room for exactly 8)."""
        with pytest.raises(ValueError, match="8 bytes"):
            _entry(key_digest=b"abc").to_bytes()

    def test_format_1_entry_is_refused(self) -> None:
        """An entry of the previous format is never misread: a CodecError (a miss)."""
        old = struct.pack("<3sBddfIBH", b"LMM", 1, 1.0, float("nan"), 0.0, 0, 0, 4) + b"json\x00v"
        with pytest.raises(CodecError, match="format 1"):
            Entry.from_bytes(old)

    def test_unknown_flag_bits_are_refused(self) -> None:
        """Flags this version does not know (another compression, say) are never ignored."""
        raw = bytearray(_entry().to_bytes())
        raw[3 + 1 + 8 + 8 + 4 + 4] = 0x80  # the flags byte
        with pytest.raises(CodecError, match="flags"):
            Entry.from_bytes(bytes(raw))

    @pytest.mark.parametrize(
        "fields",
        [
            {"created_at": float("inf")},
            {"created_at": float("nan")},
            {"expires_at": float("inf")},
            {"stale_window": float("inf")},
            {"stale_window": -1.0},
        ],
    )
    def test_non_finite_metadata_is_refused(self, fields: dict[str, Any]) -> None:
        """Timestamps and windows that are not finite numbers make the entry unreadable."""
        with pytest.raises(CodecError, match="metadata"):
            Entry.from_bytes(_entry(**fields).to_bytes())


class TestSeal:
    def test_seal_binds_the_key(self) -> None:
        """seal() writes the key's digest; check_key() refuses the entry under any other key."""
        entry = seal("k1", "json", b"1", created_at=1.0, expires_at=None, stale_window=0, tokens=0)
        assert entry.key_digest == key_digest("k1")
        check_key("k1", entry)
        assert unseal("k1", entry) == b"1"
        with pytest.raises(CodecError, match="another key"):
            check_key("k2", entry)

    def test_entry_without_digest_is_refused(self) -> None:
        """An entry that does not name its key cannot be shown to be this key's."""
        with pytest.raises(CodecError, match="another key"):
            check_key("k1", _entry())

    def test_signed_entry_under_another_key_is_refused(self) -> None:
        """With signing on, a copied entry fails the key check and the signature alike."""
        keys = [b"s" * 32]
        entry = seal(
            "k1",
            "json",
            b"1",
            created_at=1.0,
            expires_at=None,
            stale_window=0,
            tokens=0,
            signing_keys=keys,
        )
        assert unseal("k1", entry, keys) == b"1"
        with pytest.raises(CodecError, match="another key"):
            check_key("k2", entry)
        with pytest.raises(CodecError, match="signature"):
            unseal("k2", entry, keys)


KINDS = ["sync", "async", "gen", "agen"]


def _make(kind: str, backend: Any, calls: list[str], tag: str) -> Any:
    """A cached function of ``kind`` answering ``{"q": q, "by": tag}`` (one chunk for streams)."""
    if kind == "sync":

        @llm_cached(backend=backend, name="shared")
        def fn(q: str) -> Any:
            calls.append(q)
            return {"q": q, "by": tag}

        return fn
    if kind == "async":

        @llm_cached(backend=backend, name="shared")
        async def afn(q: str) -> Any:
            calls.append(q)
            return {"q": q, "by": tag}

        return afn
    if kind == "gen":

        @llm_cached(backend=backend, name="shared")
        def gen(q: str) -> Iterator[Any]:
            calls.append(q)
            yield {"q": q, "by": tag}

        return gen

    @llm_cached(backend=backend, name="shared")
    async def agen(q: str) -> AsyncIterator[Any]:
        calls.append(q)
        yield {"q": q, "by": tag}

    return agen


def _call(kind: str, fn: Any, q: str) -> Any:
    if kind == "sync":
        return fn(q)
    if kind == "async":
        return asyncio.run(fn(q))
    if kind == "gen":
        return list(fn(q))

    async def collect() -> list[Any]:
        return [c async for c in fn(q)]

    return asyncio.run(collect())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
class TestSwappedEntries:
    """An entry moved to another key is a miss on every driver; the fresh result replaces it."""

    def test_swapped_entries_are_misses_and_overwritten(self, kind: str, signed: bool) -> None:
        if signed:
            configure(signing_keys=["k" * 32])
        backend = MemoryBackend()
        calls: list[str] = []
        fn = _make(kind, backend, calls, "t")
        a, b = _call(kind, fn, "a"), _call(kind, fn, "b")
        ka, kb = fn.cache.key("a"), fn.cache.key("b")
        ea, eb = backend.get(ka), backend.get(kb)
        assert ea is not MISSING
        assert eb is not MISSING
        backend.set(ka, eb, None)
        backend.set(kb, ea, None)
        with cache_controls() as scope:
            assert _call(kind, fn, "a") == a, "key a was answered with key b's entry"
            assert _call(kind, fn, "b") == b, "key b was answered with key a's entry"
        assert scope.hits == 0
        assert calls == ["a", "b", "a", "b"]
        # The fresh results overwrote the foreign entries: now both hit.
        with cache_controls() as scope:
            assert _call(kind, fn, "a") == a
            assert _call(kind, fn, "b") == b
        assert scope.hits == 2

    def test_tiered_l1_copy_is_a_miss(self, kind: str, signed: bool) -> None:
        """Entries kept as objects in a tiered L1 are checked too."""
        if signed:
            configure(signing_keys=["k" * 32])
        l1, l2 = MemoryBackend(), MemoryBackend()
        backend = TieredBackend(l1, l2)
        calls: list[str] = []
        fn = _make(kind, backend, calls, "t")
        _call(kind, fn, "a")
        ka, kb = fn.cache.key("a"), fn.cache.key("b")
        ea = l1.get(ka)
        assert ea is not MISSING
        l1.set(kb, ea, None)
        assert _call(kind, fn, "b") != _call(kind, fn, "a")
        assert calls == ["a", "b"]


def test_entry_is_frozen() -> None:
    """An Entry cannot be edited in place (so a kept object cannot drift from its key)."""
    e = _entry()
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.key_digest = b"x" * 8  # type: ignore[misc]


class _LyingSemantic(MemoryBackend):
    """A semantic backend whose search answers with an entry stored under another key."""

    def __init__(self) -> None:
        super().__init__()
        self.found: tuple[str, Entry, float] | None = None

    def search(self, context: str, text: str, threshold: float | None) -> Any:
        return self.found

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        self.set(key, entry, ttl)


class TestSemanticMatches:
    def test_match_whose_entry_belongs_to_another_key_is_a_miss(self) -> None:
        """The digest is checked against the key the search *found*: an entry planted under a
        found key but written for another is never served."""
        backend = _LyingSemantic()
        calls: list[str] = []

        @llm_cached(backend=backend)
        def ask(messages: list[dict[str, str]]) -> Any:
            calls.append(messages[0]["content"])
            return {"answer": messages[0]["content"]}

        other = [{"role": "user", "content": "what is the capital of France?"}]
        mine = [{"role": "user", "content": "capital of France?"}]
        ask(other)
        entry = backend.get(ask.cache.key(other))
        assert entry is not MISSING
        # Found under a third key, with an entry written for `other`: a miss.
        backend.found = ("llm_memo:2:default:elsewhere:" + "0" * 32, entry, 0.99)
        with cache_controls() as scope:
            assert ask(mine) == {"answer": "capital of France?"}
        assert scope.hits == 0
        # Found under its own key, the same entry is a semantic hit.
        backend.found = (ask.cache.key(other), entry, 0.99)
        backend.delete(ask.cache.key(mine))
        with cache_controls() as scope:
            assert ask(mine) == {"answer": "what is the capital of France?"}
        assert scope.hits == 1
        assert calls == ["what is the capital of France?", "capital of France?"]
