"""How the decorator drives a semantic backend: exact first, then similarity inside the exact
context (model, parameters, system prompt, function, namespace); events carry similarity.

Uses a toy in-process semantic backend (bag-of-words cosine) to test our own sequencing; the
tests that need only the Semantic protocol also run on the embedded backend (semantic+local://,
with the toy embedder). The real backends' own tests are in tests/backends/."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_memo import cache_controls, llm_cached
from llm_memo.backends import MISSING, Semantic
from llm_memo.backends.memory import MemoryBackend
from llm_memo.entry import Entry
from llm_memo.keys import split_for_similarity


def cosine(a: str, b: str) -> float:
    va, vb = Counter(a.lower().split()), Counter(b.lower().split())
    dot = sum(va[w] * vb[w] for w in va)
    return dot / (
        math.sqrt(sum(v * v for v in va.values())) * math.sqrt(sum(v * v for v in vb.values()))
    )


class ToySemantic(MemoryBackend):
    def __init__(self, threshold: float = 0.7) -> None:
        super().__init__()
        self.threshold = threshold
        self.index: list[tuple[str, str, str]] = []  # (context, text, key)
        self.searches = 0

    def search(self, context: str, text: str, threshold: float | None) -> Any:
        self.searches += 1
        limit = self.threshold if threshold is None else threshold
        best = None
        for ctx, stored, key in self.index:
            if ctx != context:
                continue
            entry = self.get(key)
            score = cosine(text, stored)
            if entry is not MISSING and score >= limit and (best is None or score > best[2]):
                best = (key, entry, score)
        return best

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        self.set(key, entry, ttl)
        self.index.append((context, text, key))


@pytest.fixture(params=["toy", "embedded"])
def semantic(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """A factory of semantic backends: ``new(threshold)``, the toy one or the embedded one."""
    made: list[Any] = []

    def new(threshold: float = 0.7) -> Any:
        if request.param == "toy":
            return ToySemantic(threshold)
        from llm_memo.backends.semantic.embedded import EmbeddedSemanticBackend
        from tests.backends.test_embedders import ToyEmbedder

        backend = EmbeddedSemanticBackend(
            tmp_path / f"sem{len(made)}", embedder=ToyEmbedder(), threshold=threshold, guard=None
        )
        made.append(backend)
        return backend

    yield new
    for backend in made:
        backend.close()


def make(backend: Any) -> tuple[Any, list[str]]:
    calls: list[str] = []

    @llm_cached(backend=backend)
    def ask(model: str, messages: list[dict[str, str]], temperature: float = 0.0) -> dict[str, str]:
        calls.append(messages[-1]["content"])
        return {"answer": messages[-1]["content"]}

    return ask, calls


def msgs(text: str, system: str = "be brief") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


Q1 = "how do I reset my account password"
Q2 = "how do I reset my password for my account"


def test_toy_backend_is_semantic() -> None:
    assert isinstance(ToySemantic(), Semantic)


def test_similar_question_hits_with_similarity(semantic: Callable[..., Any]) -> None:
    backend = semantic()
    ask, calls = make(backend)
    ask("m", msgs(Q1))
    with cache_controls() as scope:
        assert ask("m", msgs(Q2)) == {"answer": Q1}
    assert calls == [Q1]
    (event,) = scope.events
    assert event.outcome.value == "hit"
    assert event.similarity is not None
    assert event.similarity >= 0.7
    assert event.key == ask.cache.key("m", msgs(Q1))


def test_identical_request_is_answered_without_a_search() -> None:
    backend = ToySemantic()
    ask, _ = make(backend)
    ask("m", msgs(Q1))
    before = backend.searches
    ask("m", msgs(Q1))
    assert backend.searches == before


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other-model"},
        {"temperature": 0.7},
        {"messages": msgs(Q2, system="be verbose")},
    ],
)
def test_similarity_never_crosses_the_exact_context(
    change: dict[str, Any], semantic: Callable[..., Any]
) -> None:
    """Different model, parameters or system prompt: no semantic hit even for similar text."""
    backend = semantic()
    ask, calls = make(backend)
    ask("m", msgs(Q1))
    ask(**{"model": "m", "messages": msgs(Q2), **change})
    assert len(calls) == 2


def test_similarity_never_crosses_namespaces_or_functions(semantic: Callable[..., Any]) -> None:
    backend = semantic()
    ask, calls = make(backend)
    other, other_calls = make(backend)
    with cache_controls(namespace="tenant:a"):
        ask("m", msgs(Q1))
    with cache_controls(namespace="tenant:b"):
        ask("m", msgs(Q1))
    assert len(calls) == 2
    other("m", msgs(Q1))
    assert len(other_calls) == 1


def test_threshold_directive(semantic: Callable[..., Any]) -> None:
    backend = semantic(threshold=0.5)
    ask, calls = make(backend)
    ask("m", msgs(Q1))
    with cache_controls(threshold=0.99):
        ask("m", msgs(Q2))
    assert len(calls) == 2


def test_only_if_cached_accepts_a_similar_entry(semantic: Callable[..., Any]) -> None:
    backend = semantic()
    ask, _calls = make(backend)
    ask("m", msgs(Q1))
    with cache_controls(only_if_cached=True):
        assert ask("m", msgs(Q2)) == {"answer": Q1}


def test_no_store_does_not_index() -> None:
    backend = ToySemantic()
    ask, _ = make(backend)
    with cache_controls(no_store=True):
        ask("m", msgs(Q1))
    assert backend.index == []


def test_async_function_on_semantic_backend(semantic: Callable[..., Any]) -> None:
    backend = semantic()
    calls = []

    @llm_cached(backend=backend)
    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        calls.append(1)
        return "answer"

    async def run() -> None:
        await ask("m", msgs(Q1))
        assert await ask("m", msgs(Q2)) == "answer"

    asyncio.run(run())
    assert calls == [1]


def test_custom_semantic_text(semantic: Callable[..., Any]) -> None:
    backend = semantic()
    calls = []

    @llm_cached(backend=backend, semantic_text=lambda model, messages: messages[-1]["content"][:20])
    def ask(model: str, messages: list[dict[str, str]]) -> str:
        calls.append(1)
        return "x"

    ask("m", msgs("how do I reset my account password"))
    ask("m", msgs("how do I reset my account in a totally different way"))
    assert calls == [1]


class TestSplit:
    def test_user_turns_are_the_text_and_the_rest_the_context(self) -> None:
        view = {
            "model": "m",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"}]},
            ],
        }
        split = split_for_similarity(view)
        assert split is not None
        context, text = split
        assert text == "a\nc"
        assert context["messages"][0] == {"role": "system", "content": "s"}
        assert context["messages"][1] == {"role": "user", "content": None}
        assert context["messages"][2] == {"role": "assistant", "content": "b"}

    def test_prompt_parameter(self) -> None:
        assert split_for_similarity({"prompt": "hello", "n": 1}) == (
            {"prompt": None, "n": 1},
            "hello",
        )

    def test_no_text(self) -> None:
        assert split_for_similarity({"n": 1}) is None
