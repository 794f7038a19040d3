"""The keys of a per-item batch, computed in one canonical pass, are the keys of the one-item calls.

A batch of strings is keyed from one canonical view of the call with each item substituted
(``KeyBuilder.item_keys``) instead of one whole key derivation per item. The contract it must
keep: each item's entry is stored under exactly the key ``fn.cache.key(...)`` gives for the same
call with the list replaced by ``[item]``, whatever the other arguments, however the list is
passed (by keyword, by position, on a method), and for items that are not strings (which take
the per-item path).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_memo import llm_cached
from llm_memo.backends.memory import MemoryBackend

texts = st.lists(st.text(max_size=12), min_size=1, max_size=8)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
)
options = st.dictionaries(st.text(min_size=1, max_size=5), scalars, max_size=3)


def _stored(backend: MemoryBackend) -> set[str]:
    return set(backend.keys())


@settings(max_examples=80, deadline=None)
@given(items=texts, model=st.text(max_size=8), temperature=scalars, extra=options)
def test_each_string_item_is_stored_under_its_one_item_call_key(
    items: list[str], model: str, temperature: Any, extra: dict[str, Any]
) -> None:
    backend = MemoryBackend()

    @llm_cached(backend=backend, per_item="texts")
    def embed(
        texts: list[str], model: str, temperature: Any = None, extra: Any = None
    ) -> list[int]:
        return [len(t) for t in texts]

    assert embed(items, model, temperature=temperature, extra=extra) == [len(t) for t in items]
    wanted = {embed.cache.key([t], model, temperature=temperature, extra=extra) for t in items}
    assert _stored(backend) == wanted, f"stored {sorted(_stored(backend))}, wanted {sorted(wanted)}"
    assert embed.cache.stats().misses == len(set(items))  # a repeated item is sent once
    # and every item is answered by its own entry
    assert embed(list(reversed(items)), model, temperature=temperature, extra=extra) == [
        len(t) for t in reversed(items)
    ]
    assert embed.cache.stats().misses == len(set(items))


def test_a_list_passed_by_position_or_keyword_keys_alike() -> None:
    backend = MemoryBackend()

    @llm_cached(backend=backend, per_item="texts")
    def embed(model: str, texts: list[str]) -> list[str]:
        return [t.upper() for t in texts]

    embed("m", ["a", "b"])
    assert _stored(backend) == {embed.cache.key("m", ["a"]), embed.cache.key("m", ["b"])}
    embed(model="m", texts=["b", "c"])
    assert len(_stored(backend)) == 3
    assert embed.cache.key(model="m", texts=["c"]) in _stored(backend)


def test_a_method_keys_its_instance_with_each_item() -> None:
    backend = MemoryBackend()

    class Embedder:
        def __init__(self, name: str) -> None:
            self.name = name

        def __llm_memo_key__(self) -> str:
            return self.name

        @llm_cached(backend=backend, per_item="texts")
        def embed(self, texts: list[str]) -> list[str]:
            return [f"{self.name}:{t}" for t in texts]

    one, two = Embedder("one"), Embedder("two")
    assert one.embed(["x", "y"]) == ["one:x", "one:y"]
    assert two.embed(["x"]) == ["two:x"]
    assert _stored(backend) == {
        one.embed.cache.key(["x"]),
        one.embed.cache.key(["y"]),
        two.embed.cache.key(["x"]),
    }
    assert len(_stored(backend)) == 3


def test_items_that_are_not_strings_take_the_per_item_path_with_the_same_keys() -> None:
    backend = MemoryBackend()

    @llm_cached(backend=backend, per_item="tokens")
    def embed(tokens: list[Any]) -> list[int]:
        return [len(t) if isinstance(t, list) else 0 for t in tokens]

    batch: list[Any] = [[1, 2, 3], "text", [4]]
    assert embed(batch) == [3, 0, 1]
    assert _stored(backend) == {embed.cache.key([item]) for item in batch}
