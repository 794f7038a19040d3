"""Values (SPEC §5): data not pickle, same types back from an allow-list, signing, compression."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llm_memo import CodecError, cache_controls, configure, llm_cached, register_type
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.tiered import TieredBackend
from llm_memo.codec import (
    AllowList,
    Codec,
    StreamUsage,
    UnencodableValueError,
    join_chunks,
    seal,
    unseal,
    usage_tokens,
)
from llm_memo.entry import FLAG_COMPRESSED, Entry
from llm_memo.events import Outcome

from .samples import chat_chunks, chat_completion, completion_dict
from .third_party.dict_backend import DictBackend


class Answer(BaseModel):
    text: str
    score: float = 0.0


@dataclasses.dataclass
class Inner:
    n: int


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner


def returns_answer() -> Answer: ...
def returns_outer() -> Outer: ...
def returns_list() -> list[Answer]: ...
def returns_tuple() -> tuple[str, int]: ...
def streams_answers() -> Iterator[Answer]: ...
def unannotated():  # type: ignore[no-untyped-def]
    ...


def roundtrip(fn: Any, value: Any, **kw: Any) -> Any:
    codec = Codec(AllowList(fn))
    tag, payload = codec.encode(value, **kw)
    return codec.decode(tag, payload, **kw)


class TestJson:
    @pytest.mark.parametrize(
        "value",
        [None, True, 0, -5, 2**63, 1.5, "txt", [], {}, {"a": [1, {"b": None}], "c": "ü"}],
    )
    def test_json_values_roundtrip_exactly(self, value: Any) -> None:
        """JSON-native values come back equal and of the same type."""
        got = roundtrip(unannotated, value)
        assert got == value
        assert type(got) is type(value)

    def test_each_decode_is_a_fresh_object(self) -> None:
        """Two decodes of one entry are distinct objects (mutating one changes nothing)."""
        codec = Codec(AllowList(unannotated))
        tag, payload = codec.encode({"a": [1]})
        first = codec.decode(tag, payload)
        first["a"].append(2)
        assert codec.decode(tag, payload) == {"a": [1]}

    def test_non_json_values_are_refused_without_annotation(self) -> None:
        """A tuple, a set or an arbitrary object is not stored unless annotated/registered."""
        codec = Codec(AllowList(unannotated))
        for value in [(1, 2), {1, 2}, object(), float("nan"), {1: "a"}]:
            with pytest.raises(UnencodableValueError, match=r"register_type|annotate"):
                codec.encode(value)


class TestTypedValues:
    def test_annotated_pydantic_model(self) -> None:
        """A pydantic model named in the return annotation comes back as the same type."""
        got = roundtrip(returns_answer, Answer(text="hi", score=0.5))
        assert type(got) is Answer
        assert got == Answer(text="hi", score=0.5)

    def test_unset_fields_stay_unset(self) -> None:
        """Fields left at their default stay unset, so exclude_unset dumps match."""
        got = roundtrip(returns_answer, Answer(text="hi"))
        assert got.model_fields_set == {"text"}

    def test_nested_dataclass(self) -> None:
        """A dataclass with a nested dataclass comes back with the nested type."""
        got = roundtrip(returns_outer, Outer("x", Inner(3)))
        assert got == Outer("x", Inner(3))
        assert type(got.inner) is Inner

    def test_generic_annotations_use_a_type_adapter(self) -> None:
        """list[Model] and tuple[str, int] annotations restore their exact shapes."""
        assert roundtrip(returns_list, [Answer(text="a")]) == [Answer(text="a")]
        assert roundtrip(returns_tuple, ("a", 1)) == ("a", 1)

    def test_registered_type_without_annotation(self) -> None:
        """register_type() allow-lists a type for every function."""

        @register_type
        class Verdict(BaseModel):
            label: str

        assert roundtrip(unannotated, Verdict(label="ok")) == Verdict(label="ok")

    def test_unlisted_model_is_not_stored(self) -> None:
        """A model type that is neither annotated, registered nor an SDK type is refused."""

        class Secret(BaseModel):
            x: int

        with pytest.raises(UnencodableValueError):
            Codec(AllowList(unannotated)).encode(Secret(x=1))

    def test_reader_refuses_types_outside_its_allow_list(self) -> None:
        """A stored tag naming a type the reader has not allowed is an error, never imported."""
        writer = Codec(AllowList(returns_answer))
        tag, payload = writer.encode(Answer(text="x"))
        with pytest.raises(CodecError, match="not allow-listed"):
            Codec(AllowList(unannotated)).decode(tag, payload)
        with pytest.raises(CodecError):
            Codec(AllowList(unannotated)).decode("model:os:system", b"{}")

    def test_openai_chat_completion(self) -> None:
        """An openai ChatCompletion comes back as a ChatCompletion that compares equal."""
        original = chat_completion()
        got = roundtrip(unannotated, original)
        assert type(got) is type(original)
        assert got == original
        assert got.model_dump() == original.model_dump()
        assert got.to_dict() == completion_dict()

    def test_openai_lenient_fallback(self) -> None:
        """A response the strict validator rejects (new enum value) still comes back."""
        from openai.types.chat import ChatCompletion

        data = completion_dict()
        data["choices"][0]["finish_reason"] = "brand_new_reason"
        odd = ChatCompletion.construct(**data)
        got = roundtrip(unannotated, odd)
        assert type(got) is ChatCompletion
        assert got.choices[0].finish_reason == "brand_new_reason"

    def test_stream_chunks(self) -> None:
        """Stream chunks (openai ChatCompletionChunk) come back in order, same types."""
        chunks = chat_chunks()
        codec = Codec(AllowList(unannotated))
        payload = codec.encode_chunks(chunks)
        got = codec.decode("stream", payload)
        assert got == chunks
        assert [type(c) for c in got] == [type(c) for c in chunks]

    def test_annotated_stream_chunks(self) -> None:
        """Iterator[Model] allow-lists the chunk type."""
        codec = Codec(AllowList(streams_answers))
        payload = codec.encode_chunks([Answer(text="a"), {"raw": 1}])
        assert codec.decode("stream", payload) == [Answer(text="a"), {"raw": 1}]


class TestPickle:
    def test_pickle_only_by_opt_in(self) -> None:
        """allow_pickle stores arbitrary objects; without it a pickle entry is refused."""
        codec = Codec(AllowList(unannotated))
        tag, payload = codec.encode({1, 2}, allow_pickle=True)
        assert tag == "pickle"
        assert codec.decode(tag, payload, allow_pickle=True) == {1, 2}
        with pytest.raises(CodecError):
            codec.decode(tag, payload)
        with pytest.raises(CodecError):
            codec.decode("pickle", pickle.dumps(print))


class TestSealing:
    def test_large_payloads_compress(self) -> None:
        """Payloads above the threshold are compressed and come back intact."""
        payload = b'{"text": "' + b"abc" * 10_000 + b'"}'
        entry = seal(
            "k",
            "json",
            payload,
            created_at=1.0,
            expires_at=None,
            stale_window=0,
            tokens=0,
            compress_threshold=1024,
        )
        assert entry.flags & FLAG_COMPRESSED
        assert len(entry.value) < len(payload) // 10
        assert unseal("k", entry) == payload

    def test_signed_entries_verify_and_rotate(self) -> None:
        """The first key signs; every listed key verifies; other keys and edits fail."""
        old, new = b"o" * 32, b"n" * 32
        entry = seal(
            "k",
            "json",
            b"1",
            created_at=1.0,
            expires_at=None,
            stale_window=0,
            tokens=0,
            signing_keys=[old],
        )
        assert unseal("k", entry, [new, old]) == b"1"
        with pytest.raises(CodecError, match="signature"):
            unseal("k", entry, [new])
        with pytest.raises(CodecError):
            unseal("other-key", entry, [old])
        tampered = dataclasses.replace(entry, value=b"2")
        with pytest.raises(CodecError):
            unseal("k", tampered, [old])
        longer = dataclasses.replace(entry, expires_at=9e9)
        with pytest.raises(CodecError):
            unseal("k", longer, [old])

    def test_unsigned_entry_is_refused_when_signing(self) -> None:
        """With keys configured, an unsigned entry is not trusted."""
        entry = seal("k", "json", b"1", created_at=1.0, expires_at=None, stale_window=0, tokens=0)
        with pytest.raises(CodecError, match="not signed"):
            unseal("k", entry, [b"k" * 32])


class TestEntryBytes:
    def test_roundtrip(self) -> None:
        """The binary layout keeps every field."""
        e = Entry(b"v", "json", 1.5, 2.5, 3.0, 7, FLAG_COMPRESSED, b"sig")
        assert Entry.from_bytes(e.to_bytes()) == e

    @pytest.mark.parametrize("raw", [b"", b"LMM", b"XYZ" + bytes(40), b"LMM\x09" + bytes(40)])
    def test_garbage_is_a_codec_error(self, raw: bytes) -> None:
        """Truncated, foreign or future-format bytes raise CodecError, nothing else."""
        with pytest.raises(CodecError):
            Entry.from_bytes(raw)

    def test_every_truncation_is_a_codec_error(self) -> None:
        """No prefix of a valid entry parses as a different entry or crashes."""
        data = Entry(b"value", "json", 1.0, None, 0.0, 0, 0, b"s" * 32).to_bytes()
        for n in range(len(data) - len(b"value")):
            with pytest.raises(CodecError):
                Entry.from_bytes(data[:n])


def test_usage_tokens_shapes() -> None:
    """Token usage is read from OpenAI, Anthropic and dict shapes, and from stream chunks."""
    assert usage_tokens(chat_completion()) == 692
    assert usage_tokens({"usage": {"input_tokens": 3, "output_tokens": 4}}) == 7
    assert usage_tokens(chat_chunks(3)) == 13
    anthropic_stream = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"text": "hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 13}},
    ]
    assert usage_tokens(anthropic_stream) == 23
    assert usage_tokens("text") == 0


def _reference_usage_tokens(value: list[Any]) -> int:
    """usage_tokens() for chunk lists as it was before streams were counted incrementally."""

    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    total = 0
    final_usage = None
    for chunk in reversed(value):
        final_usage = field(chunk, "usage")
        if total := usage_tokens(chunk):
            break
    start = field(value[0], "message") if value else None
    if start is not None and field(final_usage or {}, "input_tokens") is None:
        usage = field(start, "usage") or {}
        tokens = field(usage, "input_tokens")
        total += tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
    return total


_usage = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": st.integers(0, 50),
        "output_tokens": st.integers(0, 50),
        "total_tokens": st.integers(0, 50),
    },
)
_chunk = st.fixed_dictionaries(
    {},
    optional={
        "usage": st.none() | _usage,
        "message": st.fixed_dictionaries({}, optional={"usage": _usage}),
        "type": st.sampled_from(["message_start", "content_block_delta", "message_delta"]),
    },
)


class TestStreamUsage:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_chunk, max_size=6))
    def test_incremental_count_matches_the_list_count(self, chunks: list[Any]) -> None:
        """Counting chunk by chunk as they pass gives what counting the whole list gave."""
        counter = StreamUsage()
        for chunk in chunks:
            counter.add(chunk)
        assert counter.total == _reference_usage_tokens(chunks)
        assert usage_tokens(chunks) == _reference_usage_tokens(chunks)

    def test_sdk_chunks(self) -> None:
        counter = StreamUsage()
        for chunk in chat_chunks():
            counter.add(chunk)
        assert counter.total == usage_tokens(chat_chunks()) == 15


class TestChunkEncoding:
    def test_items_joined_equal_the_whole_list(self) -> None:
        """Chunks encoded one at a time and joined decode as the list encoded at once."""
        codec = Codec(AllowList(streams_answers))
        chunks = [Answer(text="a"), {"b": 1}, Answer(text="c", score=1.5)]
        one_by_one = join_chunks([codec.encode_chunk(c) for c in chunks])
        assert one_by_one == codec.encode_chunks(chunks)
        assert codec.decode_chunks(one_by_one) == chunks
        assert join_chunks([]) == b"[]"
        assert codec.decode_chunks(b"[]") == []

    def test_pickled_chunks_roundtrip_only_when_allowed(self) -> None:
        codec = Codec(AllowList(unannotated))
        payload = codec.encode_chunks([{1, 2}], allow_pickle=True)
        assert codec.decode_chunks(payload, allow_pickle=True) == [{1, 2}]
        with pytest.raises(CodecError):
            codec.decode_chunks(payload)

    @pytest.mark.parametrize(
        "payload", [b'[["json"]]', b"[[1, 2]]", b"[5]", b'[["pickle", "%%%"]]', b"{}", b"nope"]
    )
    def test_malformed_chunk_lists_are_codec_errors(self, payload: bytes) -> None:
        codec = Codec(AllowList(unannotated))
        with pytest.raises(CodecError):
            codec.decode_chunks(payload, allow_pickle=True)


class TestCompressionByBackend:
    """The memory backend keeps values uncompressed (inflating on every hit costs more than the
    memory saved); other stores compress past the threshold; a tiered backend decides per tier
    (a memory L1 keeps them uncompressed, its L2 compressed). Plain calls, streams and
    per-item batches, sync and async, and the framework caches all write through the same
    rule."""

    BIG = "x" * 40_000

    def _entries(self, backend: Any) -> dict[str, Entry]:
        if isinstance(backend, TieredBackend):
            raise AssertionError("ask each tier")
        if isinstance(backend, MemoryBackend):
            return {key: entry for key, (entry, _, _) in backend._data.items()}
        return {key: Entry.from_bytes(raw) for key, (raw, _) in backend.data.items()}

    def _backend(self, kind: str) -> Any:
        if kind == "tiered":
            return TieredBackend(MemoryBackend(), DictBackend())
        return MemoryBackend() if kind == "memory" else DictBackend()

    def _write_every_path(self, backend: Any) -> None:
        @llm_cached(backend=backend)
        def plain(q: str) -> str:
            return self.BIG + q

        @llm_cached(backend=backend)
        def stream(q: str) -> Iterator[str]:
            yield self.BIG
            yield q

        @llm_cached(backend=backend, per_item="texts")
        def batch(texts: list[str]) -> list[str]:
            return [self.BIG + t for t in texts]

        @llm_cached(backend=backend)
        async def aplain(q: str) -> str:
            return self.BIG + q

        @llm_cached(backend=backend)
        async def astream(q: str) -> AsyncIterator[str]:
            yield self.BIG
            yield q

        async def collect(q: str) -> list[str]:
            return [chunk async for chunk in astream(q)]

        assert plain("a") == plain("a") == self.BIG + "a"
        assert list(stream("b")) == list(stream("b")) == [self.BIG, "b"]
        assert batch(["c", "d"]) == batch(["d", "c"])[::-1]
        assert asyncio.run(aplain("e")) == asyncio.run(aplain("e")) == self.BIG + "e"
        assert asyncio.run(collect("f")) == asyncio.run(collect("f")) == [self.BIG, "f"]

    @pytest.mark.parametrize("kind", ["memory", "dict"])
    def test_each_write_path_follows_its_backend(self, kind: str) -> None:
        backend = self._backend(kind)
        self._write_every_path(backend)
        entries = self._entries(backend)
        assert len(entries) == 6
        compressed = [bool(e.flags & FLAG_COMPRESSED) for e in entries.values()]
        assert compressed == [kind == "dict"] * 6, compressed
        assert all(type(e) is Entry for e in entries.values())  # never a PackedEntry

    def test_each_write_path_follows_each_tier(self) -> None:
        """Through a tiered backend, every write path stores the uncompressed entry in the
        memory L1 and the compressed one in L2: the same key, metadata and signature scheme,
        only the value's form differs."""
        backend = self._backend("tiered")
        self._write_every_path(backend)
        l1, l2 = self._entries(backend.l1), self._entries(backend.l2)
        assert len(l1) == 6
        assert l1.keys() == l2.keys()
        for key in l1:
            assert type(l1[key]) is Entry, "L1 keeps the twin, never the pair"
            assert not l1[key].flags & FLAG_COMPRESSED, key
            assert l2[key].flags & FLAG_COMPRESSED, key
            assert unseal(key, l1[key]) == unseal(key, l2[key])
            same = ("type_tag", "created_at", "expires_at", "tokens", "key_digest", "model")
            assert [getattr(l1[key], f) for f in same] == [getattr(l2[key], f) for f in same]

    def test_signed_entries_verify_in_each_tier(self) -> None:
        """With signing on, each tier's form carries its own valid signature: a hit from L1
        (uncompressed) and, with L1 emptied, a hit from L2 (compressed) are both served."""
        configure(signing_keys=[b"k" * 32])
        backend = self._backend("tiered")
        calls: list[str] = []

        @llm_cached(backend=backend)
        def ask(q: str) -> str:
            calls.append(q)
            return self.BIG + q

        assert ask("a") == self.BIG + "a"
        with cache_controls() as scope:
            assert ask("a") == self.BIG + "a"  # from L1
            backend.l1.clear()
            assert ask("a") == self.BIG + "a"  # from L2
        assert [e.outcome for e in scope.events] == [Outcome.HIT, Outcome.HIT]
        assert calls == ["a"]
        (key,) = self._entries(backend.l1)  # filled again from L2
        assert self._entries(backend.l2)[key].signature

    def test_a_small_value_is_one_entry_for_both_tiers(self) -> None:
        """Below the threshold both tiers get the same uncompressed entry."""
        backend = self._backend("tiered")

        @llm_cached(backend=backend)
        def ask(q: str) -> str:
            return q

        ask("small")
        ((key, entry),) = self._entries(backend.l1).items()
        assert not entry.flags & FLAG_COMPRESSED
        assert self._entries(backend.l2)[key] == entry

    def test_a_framework_cache_writes_through_the_same_rule(self) -> None:
        """LangChain's cache (the integrations' shared write path) follows each tier too."""
        outputs = pytest.importorskip("langchain_core.outputs")
        langchain = pytest.importorskip("llm_memo.integrations.langchain")
        for kind in ("memory", "dict", "tiered"):
            backend = self._backend(kind)
            cache = langchain.LlmMemoCache(backend)
            cache.update("prompt", "[('_type', 'fake')]", [outputs.Generation(text=self.BIG)])
            assert cache.lookup("prompt", "[('_type', 'fake')]")[0].text == self.BIG
            if kind == "tiered":
                (l1,) = self._entries(backend.l1).values()
                (l2,) = self._entries(backend.l2).values()
                assert (bool(l1.flags & FLAG_COMPRESSED), bool(l2.flags)) == (False, True)
            else:
                (entry,) = self._entries(backend).values()
                assert bool(entry.flags & FLAG_COMPRESSED) is (kind == "dict"), kind
