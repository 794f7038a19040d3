"""A decoded value must not contradict the function's return annotation (SPEC §5, issue 9 §3).

Two functions sharing ``name=`` share entries; one declared ``-> Answer`` must never return the
other's list. Concrete classes are checked (a class, a union / Optional of classes, the origin of
a generic such as ``list[str]``); stream entries and annotations that do not resolve never are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional, TypeVar, Union, cast

import pytest
from pydantic import BaseModel

from llm_memo import cache_controls, llm_cached
from llm_memo.codec import allow_list as codec_module
from llm_memo.testing import CacheRecorder

from .samples import chat_chunks, chat_completion


class Answer(BaseModel):
    text: str


class Other(BaseModel):
    n: int


T = TypeVar("T")


def _writer(result: Any) -> Any:
    """An unannotated function sharing the name ``shared`` that stores ``result``."""

    @llm_cached(name="shared")
    def write(q: str):  # type: ignore[no-untyped-def]
        return result

    return write


class TestContradictions:
    @pytest.mark.parametrize(
        "stored",
        [["a", "list"], {"text": "a dict, not an Answer"}, "text", 3, None],
        ids=["list", "dict", "str", "int", "none"],
    )
    def test_model_annotation_refuses_other_values(
        self, llm_cache: CacheRecorder, stored: Any
    ) -> None:
        """-> Answer never returns a value of another type; the miss stores a real Answer,
        which then hits."""
        _writer(stored)("q")
        calls = []

        @llm_cached(name="shared")
        def ask(q: str) -> Answer:
            calls.append(q)
            return Answer(text=q)

        with cache_controls() as scope:
            got = ask("q")
        assert got == Answer(text="q"), f"-> Answer returned {got!r}"
        assert scope.hits == 0
        with cache_controls() as scope:
            assert ask("q") == Answer(text="q")
        assert scope.hits == 1, "the fresh result did not overwrite the contradicting entry"
        assert calls == ["q"]

    @pytest.mark.parametrize(
        ("annotation", "stored", "hit"),
        [
            (Optional[Answer], None, True),  # noqa: UP045 - the typing spelling is tested on purpose
            (Optional[Answer], ["x"], False),  # noqa: UP045
            (Answer | None, None, True),
            (Answer | None, {"text": "x"}, False),
            (Union[Answer, Other], ["x"], False),  # noqa: UP007
            (Union[Answer, list[str]], ["x"], True),  # noqa: UP007
            (list[str], {"a": 1}, False),
            (list[str], ["x"], True),
            (dict[str, Any], ["x"], False),
            (dict[str, Any], {"a": 1}, True),
            (str, ["x"], False),
            (str, "x", True),
            (float, 3, True),  # int is acceptable where float is declared (PEP 484)
            (float, "3", False),
            (int, True, True),  # bool is an int
        ],
    )
    def test_unions_generics_and_builtins(
        self, llm_cache: CacheRecorder, annotation: Any, stored: Any, hit: bool
    ) -> None:
        """Unions and Optionals of classes, generic origins and builtins are checked."""
        _writer(stored)("q")
        calls = []

        def ask(q: str) -> Any:
            calls.append(q)
            return stored if hit else _fresh(annotation)

        ask.__annotations__["return"] = annotation
        cached = llm_cached(name="shared")(ask)
        with cache_controls() as scope:
            cached("q")
        assert scope.hits == int(hit), f"{annotation} with stored {stored!r}: hit={scope.hits}"

    def test_generator_refuses_a_non_stream_entry(self, llm_cache: CacheRecorder) -> None:
        """A generator function never iterates a plain value (a string's characters, a dict's
        keys) stored under its name by another function."""
        _writer("abc")("q")

        @llm_cached(name="shared")
        def stream(q: str) -> Iterator[str]:
            yield from ["x", "y"]

        assert list(stream("q")) == ["x", "y"]
        assert list(stream("q")) == ["x", "y"]
        assert llm_cache.hits == 1

    def test_async_generator_refuses_a_non_stream_entry(self, llm_cache: CacheRecorder) -> None:
        _writer({"a": 1, "b": 2})("q")

        @llm_cached(name="shared")
        async def stream(q: str) -> AsyncIterator[str]:
            for c in ["x", "y"]:
                yield c

        async def collect() -> list[str]:
            return [c async for c in stream("q")]

        assert asyncio.run(collect()) == ["x", "y"]
        assert asyncio.run(collect()) == ["x", "y"]
        assert llm_cache.hits == 1

    def test_coroutine_function_is_checked(self, llm_cache: CacheRecorder) -> None:
        _writer([1, 2])("q")

        @llm_cached(name="shared")
        async def ask(q: str) -> Answer:
            return Answer(text=q)

        assert asyncio.run(ask("q")) == Answer(text="q")

    def test_handle_get_is_checked(self, llm_cache: CacheRecorder) -> None:
        """fn.cache.get() never returns a contradicting value either."""
        _writer([1, 2])("q")

        @llm_cached(name="shared")
        def ask(q: str) -> Answer:
            return Answer(text=q)

        assert ask.cache.get("q") is None
        assert not ask.cache.contains("q")


class TestNotChecked:
    def test_stream_entries_of_a_model_annotated_function_hit(
        self, llm_cache: CacheRecorder
    ) -> None:
        """-> ChatCompletion called with stream=True still hits its stream."""
        from openai.types.chat import ChatCompletion

        calls = []

        @llm_cached
        def create(q: str, stream: bool = False) -> ChatCompletion:
            calls.append(stream)
            if stream:
                return cast("ChatCompletion", iter(chat_chunks()))  # as the SDK's overloads do
            return cast("ChatCompletion", chat_completion())

        assert list(cast("Any", create("q", stream=True))) == chat_chunks()
        assert list(cast("Any", create("q", stream=True))) == chat_chunks()
        assert create("q") == chat_completion()
        assert create("q") == chat_completion()
        assert calls == [True, False]

    def test_unresolvable_forward_reference_is_not_checked(self, llm_cache: CacheRecorder) -> None:
        """A string annotation that does not resolve is not checked: the stored value hits."""
        _writer(["a", "list"])("q")

        def ask(q: str) -> Any:
            return "fresh"

        ask.__annotations__["return"] = "NoSuchClass"
        cached = llm_cached(name="shared")(ask)
        assert cached("q") == ["a", "list"]

    @pytest.mark.parametrize(
        "annotation",
        [Any, object, T, "NoSuchClass | None"],
        ids=["any", "object", "typevar", "str"],
    )
    def test_open_annotations_are_not_checked(
        self, llm_cache: CacheRecorder, annotation: Any
    ) -> None:
        _writer(["a", "list"])("q")

        def ask(q: str) -> Any:
            return "fresh"

        ask.__annotations__["return"] = annotation
        assert llm_cached(name="shared")(ask)("q") == ["a", "list"]

    def test_annotation_resolved_once_per_function(
        self, llm_cache: CacheRecorder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The hit path does not re-read the annotation: it is resolved once per function."""
        seen = []
        real = codec_module._return_annotation

        def counting(fn: Any) -> Any:
            seen.append(fn)
            return real(fn)

        monkeypatch.setattr(codec_module, "_return_annotation", counting)

        @llm_cached
        def ask(q: str) -> Answer:
            return Answer(text=q)

        for _ in range(5):
            assert ask("q") == Answer(text="q")
        assert len(seen) == 1, f"the annotation was resolved {len(seen)} times"


class TestWriteSide:
    def test_result_contradicting_its_own_annotation_is_not_stored(
        self, llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A result that its own annotation contradicts is returned but not stored (every read
        of it would be a miss), with one log line naming the function."""

        @llm_cached
        def ask(q: str) -> Answer:
            return [q]  # type: ignore[return-value]

        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            assert cast("Any", ask("q")) == ["q"]
            assert cast("Any", ask("q")) == ["q"]
        assert llm_cache.entries() == []
        lines = [r.getMessage() for r in caplog.records if "annotation" in r.getMessage()]
        assert len(lines) == 1, lines
        assert "ask" in lines[0]


def _fresh(annotation: Any) -> Any:
    """A value matching ``annotation`` (for the function's own miss)."""
    samples: list[Any] = [Answer(text="fresh"), ["fresh"], {"fresh": 1}, "fresh", 1.5, 1]
    expected = codec_module.expected_types(annotation)
    assert expected is not None
    for sample in samples:
        if isinstance(sample, expected):
            return sample
    raise AssertionError(f"no sample for {annotation}")
