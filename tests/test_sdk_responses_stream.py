"""The OpenAI Responses API streamed (``client.responses.create(stream=True)``): the typed event
stream (the ``ResponseStreamEvent`` union) is recorded and replays as the same event classes in
order, sync and async, and its usage is read from the final ``response.completed`` event.

Real ``openai`` clients against a loopback SSE stub.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)

from llm_memo import configure, llm_cached, sdks
from tests.stubs import StubHandler, serve

_RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "in_progress",
    "model": "gpt-4o",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}
_PART = {"type": "output_text", "text": "", "annotations": []}
_MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress"}
_USAGE = {
    "input_tokens": 5,
    "output_tokens": 2,
    "total_tokens": 7,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}
_DONE_MESSAGE = {**_MESSAGE, "status": "completed", "content": [{**_PART, "text": "Hi there"}]}
_AT = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
EVENTS: list[dict[str, Any]] = [
    {"type": "response.created", "response": _RESPONSE},
    {"type": "response.output_item.added", "output_index": 0, "item": {**_MESSAGE, "content": []}},
    {"type": "response.content_part.added", **_AT, "part": _PART},
    {"type": "response.output_text.delta", **_AT, "delta": "Hi", "logprobs": []},
    {"type": "response.output_text.delta", **_AT, "delta": " there", "logprobs": []},
    {"type": "response.output_text.done", **_AT, "text": "Hi there", "logprobs": []},
    {"type": "response.content_part.done", **_AT, "part": {**_PART, "text": "Hi there"}},
    {"type": "response.output_item.done", "output_index": 0, "item": _DONE_MESSAGE},
    {
        "type": "response.completed",
        "response": {
            **_RESPONSE,
            "status": "completed",
            "output": [_DONE_MESSAGE],
            "usage": _USAGE,
        },
    },
]
CLASSES = [
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseContentPartAddedEvent,
    ResponseTextDeltaEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseContentPartDoneEvent,
    ResponseOutputItemDoneEvent,
    ResponseCompletedEvent,
]
REQUEST: dict[str, Any] = {"model": "gpt-4o", "input": "hi", "stream": True}


class _Responses(StubHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.read_body())
        body = b"".join(
            f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
            for n, e in enumerate(EVENTS)
        )
        self.reply(body, "text/event-stream")


@pytest.fixture
def stub() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    with serve(_Responses, bodies=bodies) as url:
        yield f"{url}/v1", bodies


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))


class TestSync:
    def test_the_event_stream_replays_as_the_same_types_in_order(
        self, stub: tuple[str, list[bytes]]
    ) -> None:
        """The second call is a hit: the same event classes, equal, in order; one request."""
        base_url, bodies = stub
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        create = llm_cached(backend="memory://")(client.responses.create)
        first = list(create(**REQUEST))
        replay = create(**REQUEST)
        second = list(replay)
        assert [type(e) for e in first] == CLASSES
        assert [type(e) for e in second] == CLASSES
        assert second == first
        assert [e.sequence_number for e in second] == list(range(len(EVENTS)))
        assert text_of(second) == "Hi there"
        assert second[-1].response.output_text == "Hi there"
        assert len(bodies) == 1

    def test_usage_comes_from_the_completed_event(self, stub: tuple[str, list[bytes]]) -> None:
        """tokens_saved counts the final response.completed event's usage (7), per hit."""
        base_url, _ = stub
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        create = llm_cached(backend="memory://")(client.responses.create)
        list(create(**REQUEST))
        list(create(**REQUEST))
        list(create(**REQUEST))
        stats = create.cache.stats()
        assert (stats.hits, stats.misses, stats.tokens_saved) == (2, 1, 14)

    def test_a_replayed_stream_saves_its_token_split(self, stub: tuple[str, list[bytes]]) -> None:
        """The completed event's usage is split into input and output tokens, stored with the
        stream, and priced by the model on each replay."""
        base_url, _ = stub
        configure(prices={"gpt-4o": {"input": 1.0, "output": 10.0}})
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        create = llm_cached(backend="memory://")(client.responses.create)
        list(create(**REQUEST))
        list(create(**REQUEST))
        stats = create.cache.stats()
        split = (_USAGE["input_tokens"], _USAGE["output_tokens"])
        assert (stats.input_tokens_saved, stats.output_tokens_saved) == split
        assert stats.cost_saved == pytest.approx((split[0] * 1.0 + split[1] * 10.0) / 1e6)

    def test_a_stream_left_early_stores_nothing(self, stub: tuple[str, list[bytes]]) -> None:
        """Closing the stream after two events stores nothing: the next call asks again."""
        base_url, bodies = stub
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        create = llm_cached(backend="memory://")(client.responses.create)
        with create(**REQUEST) as stream:
            next(stream)
            next(stream)
        assert [type(e) for e in create(**REQUEST)] == CLASSES
        assert len(bodies) == 2

    def test_a_generator_of_yours_annotated_with_the_union(
        self, stub: tuple[str, list[bytes]]
    ) -> None:
        """A generator of yours annotated -> Iterator[ResponseStreamEvent] (the discriminated
        union) replays each event as its own class."""
        base_url, bodies = stub
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)

        @llm_cached(backend="memory://")
        def events(q: str) -> Iterator[ResponseStreamEvent]:
            yield from client.responses.create(model="gpt-4o", input=q, stream=True)

        first = list(events("hi"))
        second = list(events("hi"))
        assert [type(e) for e in second] == CLASSES
        assert second == first
        assert len(bodies) == 1


class TestAsync:
    @pytest.mark.asyncio
    async def test_the_async_event_stream_replays_as_the_same_types(
        self, stub: tuple[str, list[bytes]]
    ) -> None:
        """AsyncOpenAI: awaited create(stream=True) is an async stream; the hit replays the
        same event classes in order, and counts the completed event's usage."""
        base_url, bodies = stub
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        create = llm_cached(backend="memory://")(client.responses.create)
        first = [e async for e in await create(**REQUEST)]
        second = [e async for e in await create(**REQUEST)]
        assert [type(e) for e in second] == CLASSES
        assert second == first
        assert len(bodies) == 1
        assert create.cache.stats().tokens_saved == 7

    @pytest.mark.asyncio
    async def test_an_async_generator_of_yours(self, stub: tuple[str, list[bytes]]) -> None:
        """An async generator of yours annotated -> AsyncIterator[ResponseStreamEvent]."""
        base_url, bodies = stub
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)

        @llm_cached(backend="memory://")
        async def events(q: str) -> AsyncIterator[ResponseStreamEvent]:
            async for event in await client.responses.create(model="gpt-4o", input=q, stream=True):
                yield event

        first = [e async for e in events("hi")]
        second = [e async for e in events("hi")]
        assert [type(e) for e in second] == CLASSES
        assert second == first
        assert len(bodies) == 1


class TestStreamHelper:
    def test_responses_stream_is_returned_uncached_with_one_log_line(
        self, stub: tuple[str, list[bytes]], caplog: pytest.LogCaptureFixture
    ) -> None:
        """client.responses.stream(...) (a context manager over a live connection) works as
        without llm_memo; one warning for the function says to wrap responses.create(stream=True).
        """
        base_url, bodies = stub
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        stream = llm_cached(backend="memory://")(client.responses.stream)
        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            for _ in range(2):
                with stream(model="gpt-4o", input="hi") as live:
                    assert text_of(list(live)) == "Hi there"
                    assert live.get_final_response().output_text == "Hi there"
        assert len(bodies) == 2
        hints = [r.getMessage() for r in caplog.records if "responses.create(" in r.getMessage()]
        assert len(hints) == 1, caplog.records
        assert "ResponseStreamManager" in hints[0]

    def test_every_stream_helper_names_what_to_wrap(self) -> None:
        """The chat and Responses helpers each have a hint naming the create call to wrap
        (building a sync helper sends nothing); every listed class (sync and async) exists."""
        import importlib

        from llm_memo.sdks import openai as profile

        sync = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k")
        chat = sdks.unstorable_hint(type(sync.chat.completions.stream(model="m", messages=[])))
        assert chat is not None
        assert "chat.completions.create(" in chat
        responses = sdks.unstorable_hint(type(sync.responses.stream(model="m", input="x")))
        assert responses is not None
        assert "responses.create(" in responses
        for name in profile.UNSTORABLE:
            module, _, qualname = name.partition(":")
            cls = getattr(importlib.import_module(module), qualname)
            assert sdks.unstorable_hint(cls) is not None
        assert sdks.unstorable_hint(ResponseCompletedEvent) is None


class TestUsage:
    def test_only_the_completed_event_reports_tokens(self) -> None:
        """Events before response.completed report none; the list of events counts 7."""
        from openai.types.responses import ResponseCompletedEvent, ResponseCreatedEvent

        created = ResponseCreatedEvent.model_validate({**EVENTS[0], "sequence_number": 0})
        completed = ResponseCompletedEvent.model_validate({**EVENTS[-1], "sequence_number": 8})
        assert sdks.usage_tokens(created) == 0
        assert sdks.usage_tokens(completed) == 7
        assert sdks.usage_tokens([created, completed]) == 7
