"""Anthropic's ``client.messages.stream(...)`` helper returns a context manager over a live
connection, not a value: wrapped, it is returned uncached and works as without llm_memo, with
one log line per function naming what to wrap instead (SPEC §5: a result that cannot be stored
is returned, never an error). What it names, ``messages.create(stream=True)``, is cached: its
events replay as the same classes and its tokens are counted.

Real ``anthropic`` clients against a loopback SSE stub.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import (
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from llm_memo import llm_cached, sdks
from tests.stubs import StubHandler, serve

EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3},
    },
    {"type": "message_stop"},
]
CLASSES = [
    RawMessageStartEvent,
    RawContentBlockStartEvent,
    RawContentBlockDeltaEvent,
    RawContentBlockDeltaEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStopEvent,
]
REQUEST: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


class _Messages(StubHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.read_body())
        body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in EVENTS)
        self.reply(body, "text/event-stream")


@pytest.fixture
def stub() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    with serve(_Messages, bodies=bodies) as url:
        yield url, bodies


def _hints(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("llm_memo") and "messages.create(..., stream=True)" in r.getMessage()
    ]


class TestStreamHelper:
    def test_returned_uncached_with_one_log_line(
        self, stub: tuple[str, list[bytes]], caplog: pytest.LogCaptureFixture
    ) -> None:
        """messages.stream works as without llm_memo (text_stream, get_final_message), every
        call goes to the server, and one warning for the function names what to wrap."""
        base_url, bodies = stub
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant", max_retries=0)
        stream = llm_cached(backend="memory://")(client.messages.stream)
        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            for _ in range(3):
                with stream(**REQUEST) as live:
                    assert type(live) is anthropic.lib.streaming.MessageStream
                    assert "".join(live.text_stream) == "Hello"
                    final = live.get_final_message()
                assert final.content[0].text == "Hello"  # type: ignore[union-attr]
        assert len(bodies) == 3
        hints = _hints(caplog)
        assert len(hints) == 1, caplog.records
        assert "MessageStreamManager" in hints[0]
        assert stream.cache.stats().errors == 0

    @pytest.mark.asyncio
    async def test_async_helper_too(
        self, stub: tuple[str, list[bytes]], caplog: pytest.LogCaptureFixture
    ) -> None:
        """AsyncAnthropic's messages.stream (an async context manager) is returned the same way."""
        base_url, bodies = stub
        client = anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-ant", max_retries=0)
        stream = llm_cached(backend="memory://")(client.messages.stream)
        with caplog.at_level(logging.WARNING, logger="llm_memo"):
            for _ in range(2):
                async with stream(**REQUEST) as live:
                    assert "".join([t async for t in live.text_stream]) == "Hello"
                    final = await live.get_final_message()
                assert final.usage.output_tokens == 3
        assert len(bodies) == 2
        assert len(_hints(caplog)) == 1

    def test_every_listed_helper_class_exists(self) -> None:
        """Each class the anthropic profile lists is a real class of the installed SDK (sync,
        async, beta), so no listed name is a typo."""
        import importlib

        from llm_memo.sdks import anthropic as profile

        for name in profile.UNSTORABLE:
            module, _, qualname = name.partition(":")
            cls = getattr(importlib.import_module(module), qualname)
            assert sdks.unstorable_hint(cls) is not None


class TestWhatToWrapInstead:
    def test_create_stream_true_is_cached(self, stub: tuple[str, list[bytes]]) -> None:
        """messages.create(stream=True): the hit replays the same event classes in order, and
        counts input tokens from message_start plus output tokens from message_delta."""
        base_url, bodies = stub
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant", max_retries=0)
        create = llm_cached(backend="memory://")(client.messages.create)
        first = list(create(**REQUEST, stream=True))
        second = list(create(**REQUEST, stream=True))
        assert [type(e) for e in second] == CLASSES
        assert second == first
        assert len(bodies) == 1
        assert create.cache.stats().tokens_saved == 12

    def test_the_replay_gives_the_text_as_the_recipe_reads_it(
        self, stub: tuple[str, list[bytes]]
    ) -> None:
        """The recipe's loop over replayed events (text deltas, then the final usage) reads the
        same text and usage as get_final_message() does on the live helper."""
        base_url, _ = stub
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant", max_retries=0)
        create = llm_cached(backend="memory://")(client.messages.create)
        list(create(**REQUEST, stream=True))
        text, output_tokens = "", 0
        for event in create(**REQUEST, stream=True):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
            elif event.type == "message_delta":
                output_tokens = event.usage.output_tokens
        assert (text, output_tokens) == ("Hello", 3)
