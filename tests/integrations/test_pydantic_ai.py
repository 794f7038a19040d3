"""llm_memo.integrations.pydantic_ai: agents through CachedModel, with pydantic-ai's own
FunctionModel and TestModel counting the calls that reach them (no network)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from llm_memo import CacheMiss, Event, cache_controls, configure
from llm_memo.backends.memory import MemoryBackend
from llm_memo.codec import seal
from llm_memo.integrations.pydantic_ai import CachedModel, dump_response, load_response
from llm_memo.recording import use_recordings

NO_EXPIRY: dict[str, Any] = {"expires_at": None, "stale_window": 0.0, "tokens": 0}


class Counting:
    """A FunctionModel's functions (plain and streaming) that count their calls: a tool call
    to ``add`` first, then the answer."""

    def __init__(self) -> None:
        self.calls = 0
        self.streams = 0

    def answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        if len(messages) == 1 and info.function_tools:
            return ModelResponse(
                parts=[ToolCallPart("add", {"a": 1, "b": 2}, tool_call_id="call-1")],
                usage=RequestUsage(input_tokens=10, output_tokens=5),
            )
        return ModelResponse(
            parts=[TextPart("the answer is 3")],
            usage=RequestUsage(input_tokens=20, output_tokens=4),
        )

    async def stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        self.streams += 1
        if len(messages) == 1 and info.function_tools:
            yield {0: DeltaToolCall(name="add", json_args='{"a": 1, ', tool_call_id="call-1")}
            yield {0: DeltaToolCall(json_args='"b": 2}')}
            return
        for word in ("the ", "answer ", "is 3"):
            yield word

    def model(self) -> FunctionModel:
        return FunctionModel(self.answer, stream_function=self.stream, model_name="calc")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def add3(a: int, b: int, c: int = 0) -> int:
    """Add up to three numbers."""
    return a + b + c


def make_agent(model: CachedModel, tool: Any = add, **kwargs: Any) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(model, **kwargs)
    agent.tool_plain(name="add")(tool)
    return agent


@pytest.mark.asyncio
class TestRequest:
    async def test_agent_run_twice_calls_the_model_once(self) -> None:
        """The second identical run is answered from the cache, tool call and answer alike."""
        fake = Counting()
        model = CachedModel(fake.model(), backend="memory://")
        agent = make_agent(model)
        first = await agent.run("what is 1+2?")
        second = await agent.run("what is 1+2?")
        assert first.output == second.output == "the answer is 3"
        assert fake.calls == 2  # the tool call and the answer, once each
        stats = model.cache.stats()
        assert (stats.misses, stats.hits) == (2, 2)
        assert stats.tokens_saved == 39

    async def test_the_response_round_trips_typed(self) -> None:
        """A hit is a ModelResponse with the same parts (tool calls typed) and usage."""
        fake = Counting()
        agent = make_agent(CachedModel(fake.model(), backend="memory://"))
        live = (await agent.run("what is 1+2?")).all_messages()
        cached = (await agent.run("what is 1+2?")).all_messages()
        live_call, cached_call = live[1], cached[1]
        assert isinstance(cached_call, ModelResponse)
        assert isinstance(live_call, ModelResponse)
        assert cached_call.parts == live_call.parts
        assert isinstance(cached_call.parts[0], ToolCallPart)
        assert cached_call.parts[0].args == {"a": 1, "b": 2}
        assert cached_call.usage == RequestUsage(input_tokens=10, output_tokens=5)

    async def test_a_changed_tool_schema_misses(self) -> None:
        """The tools' JSON schemas are part of the key: a new parameter is a new request."""
        fake = Counting()
        backend = MemoryBackend()
        await make_agent(CachedModel(fake.model(), backend=backend)).run("what is 1+2?")
        await make_agent(CachedModel(fake.model(), backend=backend), tool=add3).run("what is 1+2?")
        assert fake.calls == 4

    async def test_a_changed_output_schema_misses(self) -> None:
        """The output tools are part of the key."""

        class Sum(BaseModel):
            value: int

        class Total(BaseModel):
            total: int

        calls: list[str] = []

        def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            tool = info.output_tools[0]
            calls.append(tool.name)
            field = next(iter(tool.parameters_json_schema["properties"]))
            return ModelResponse(parts=[ToolCallPart(tool.name, {field: 3})])

        backend = MemoryBackend()
        for output_type in (Sum, Sum, Total):
            agent = Agent(
                CachedModel(FunctionModel(answer), backend=backend), output_type=output_type
            )
            result = await agent.run("1+2")
            assert isinstance(result.output, output_type)
        assert len(calls) == 2

    async def test_changed_settings_miss_and_credentials_do_not(self) -> None:
        """A model setting such as temperature changes the key; transport settings don't."""
        fake = Counting()
        agent = make_agent(CachedModel(fake.model(), backend="memory://"))
        settings: list[ModelSettings] = [
            {"temperature": 0.0},
            {"temperature": 0.0, "timeout": 5, "extra_headers": {"authorization": "Bearer x"}},
            {"temperature": 1.0},
        ]
        for s in settings:
            await agent.run("what is 1+2?", model_settings=s)
        assert fake.calls == 4

    async def test_native_tool_credentials_are_not_keyed(self) -> None:
        """An MCP server tool's token and headers stay out of the view; its URL is keyed."""
        import json

        from pydantic_ai.native_tools import MCPServerTool

        model = CachedModel(Counting().model(), backend="memory://")

        def view(token: str, url: str = "https://mcp.example/sse") -> dict[str, Any]:
            tool = MCPServerTool(
                id="docs", url=url, authorization_token=token, headers={"X-Api-Key": token}
            )
            params = ModelRequestParameters(native_tools=[tool])
            settings: Any = {"temperature": 0.0, "openai_api_key": token, "vendor_secret": token}
            return model.request_view([], settings, params)

        assert view("secret-a") == view("secret-b")
        assert "secret-a" not in json.dumps(view("secret-a"))
        assert view("secret-a") != view("secret-a", url="https://other.example/sse")
        assert view("x")["settings"] == {"temperature": 0.0}

    async def test_deps_are_not_part_of_the_key(self) -> None:
        """Two runs with different deps ask the model the same thing: one call."""
        fake = Counting()
        agent: Agent[int, str] = Agent(
            CachedModel(fake.model(), backend="memory://"), deps_type=int
        )
        await agent.run("hello", deps=1)
        await agent.run("hello", deps=2)
        assert fake.calls == 1

    async def test_test_model_agent(self) -> None:
        """With pydantic-ai's TestModel (which calls every tool), a second run is all hits."""
        seen: list[int] = []

        class Spy(WrapperModel):
            async def request(
                self,
                messages: list[ModelMessage],
                model_settings: ModelSettings | None,
                model_request_parameters: ModelRequestParameters,
            ) -> ModelResponse:
                seen.append(len(messages))
                return await super().request(messages, model_settings, model_request_parameters)

        agent = make_agent(CachedModel(Spy(TestModel()), backend="memory://"))
        first = await agent.run("go")
        second = await agent.run("go")
        assert first.output == second.output
        assert seen == [1, 3]

    async def test_the_model_answers_as_the_wrapped_one(self) -> None:
        """Name, system and model id are the wrapped model's."""
        inner = Counting().model()
        model = CachedModel(inner, backend="memory://")
        assert (model.model_name, model.system, model.model_id) == (
            inner.model_name,
            inner.system,
            inner.model_id,
        )


@pytest.mark.asyncio
class TestDirectivesAndBackends:
    async def test_no_cache_calls_the_model_and_refreshes(self) -> None:
        """cache_controls around an agent run applies to its model requests."""
        fake = Counting()
        agent = make_agent(CachedModel(fake.model(), backend="memory://"))
        await agent.run("what is 1+2?")
        with cache_controls(no_cache=True):
            await agent.run("what is 1+2?")
        assert fake.calls == 4

    async def test_only_if_cached_raises_cache_miss(self) -> None:
        """Nothing stored and only_if_cached: the run fails with CacheMiss, the model uncalled."""
        fake = Counting()
        agent = make_agent(CachedModel(fake.model(), backend="memory://"))
        with cache_controls(only_if_cached=True), pytest.raises(CacheMiss):
            await agent.run("what is 1+2?")
        assert fake.calls == 0

    async def test_disabled_computes_no_key(self) -> None:
        """enabled=False: the request passes through, nothing is keyed or stored."""
        views: list[int] = []

        class Keyed(CachedModel):
            def request_view(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
                views.append(1)
                return super().request_view(*args, **kwargs)

        fake = Counting()
        backend = MemoryBackend()
        model = Keyed(fake.model(), backend=backend, enabled=False)
        agent = make_agent(model)
        await agent.run("what is 1+2?")
        await agent.run("what is 1+2?")
        assert fake.calls == 4
        assert views == []
        assert list(backend.keys()) == []
        assert model.cache.stats().bypasses == 4

    async def test_a_disk_url_backend_serves_a_new_model_object(self, tmp_path: Path) -> None:
        """Entries written through a disk:// URL are found by another CachedModel (a restart)."""
        fake = Counting()
        url = f"disk://{tmp_path / 'cache'}"
        await make_agent(CachedModel(fake.model(), backend=url, ttl=3600)).run("what is 1+2?")
        again = await make_agent(CachedModel(fake.model(), backend=url)).run("what is 1+2?")
        assert again.output == "the answer is 3"
        assert fake.calls == 2

    async def test_namespaces_partition_entries(self) -> None:
        """The same request in another namespace is a miss."""
        fake = Counting()
        backend = MemoryBackend()
        await make_agent(CachedModel(fake.model(), backend=backend, namespace="a")).run("hi")
        await make_agent(CachedModel(fake.model(), backend=backend, namespace="b")).run("hi")
        assert fake.calls == 4

    async def test_events_name_the_model_requests(self) -> None:
        """Each request emits an llm_memo Event under the CachedModel's function names."""
        events: list[Event] = []
        configure(on_event=events.append)
        fake = Counting()
        agent = make_agent(CachedModel(fake.model(), backend="memory://"))
        await agent.run("what is 1+2?")
        await agent.run("what is 1+2?")
        assert [(e.function, e.outcome.value) for e in events] == [
            ("pydantic_ai.request", "miss"),
            ("pydantic_ai.request", "miss"),
            ("pydantic_ai.request", "hit"),
            ("pydantic_ai.request", "hit"),
        ]


@pytest.mark.asyncio
class TestStreaming:
    async def test_run_stream_twice_streams_the_model_once(self) -> None:
        """agent.run_stream replays the recorded events: same deltas, same usage."""
        fake = Counting()
        model = CachedModel(fake.model(), backend="memory://")
        agent = make_agent(model)
        results = []
        for _ in range(2):
            async with agent.run_stream("what is 1+2?") as run:
                deltas = [d async for d in run.stream_text(delta=True)]
            results.append((deltas, run.usage, run.all_messages()[-1]))
        assert fake.streams == 2
        assert results[0][0] == results[1][0]
        assert "".join(results[1][0]) == "the answer is 3"
        assert results[0][1] == results[1][1]
        last = results[1][2]
        assert isinstance(last, ModelResponse)
        assert last.parts == [TextPart("the answer is 3")]
        stats = model.stream_cache.stats()
        assert (stats.misses, stats.hits) == (2, 2)
        assert stats.tokens_saved == results[0][1].input_tokens + results[0][1].output_tokens

    async def test_a_stream_abandoned_midway_is_not_stored(self) -> None:
        """Only a stream consumed to its end is stored."""
        fake = Counting()
        backend = MemoryBackend()
        model = CachedModel(fake.model(), backend=backend)
        params = ModelRequestParameters()
        async with model.request_stream([], None, params) as stream:
            async for _ in stream:
                break
        assert list(backend.keys()) == []
        async with model.request_stream([], None, params) as stream:
            events = [e async for e in stream]
        assert events
        assert len(list(backend.keys())) == 1
        assert stream.get().parts == [TextPart("the answer is 3")]
        assert stream.get().state == "complete"


class TestCodec:
    def test_dump_and_load_round_trip(self) -> None:
        """The stored form is JSON, restored by pydantic-ai's adapter as equal objects."""
        response = ModelResponse(
            parts=[TextPart("hi"), ToolCallPart("t", {"x": [1, 2]}, tool_call_id="c")],
            usage=RequestUsage(input_tokens=3, output_tokens=1),
            model_name="m",
        )
        data = dump_response(response)
        assert isinstance(data, dict)
        assert load_response(data) == response

    @pytest.mark.asyncio
    async def test_an_unreadable_stored_response_is_a_miss(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An entry pydantic-ai cannot validate (another version's) is replaced by a new call."""
        fake = Counting()
        backend = MemoryBackend()
        model = CachedModel(fake.model(), backend=backend)
        agent = make_agent(model)
        await agent.run("hi")  # two requests: the tool call, then the answer
        keys = list(backend.keys())
        assert len(keys) == 2
        for key in keys:  # valid JSON, but not a response pydantic-ai can validate
            damaged = b'{"kind": "response", "parts": 7}'
            backend.set(key, seal(key, "json", damaged, created_at=time.time(), **NO_EXPIRY), None)
        calls = fake.calls
        result = await agent.run("hi")
        assert result.output == "the answer is 3"
        assert fake.calls == calls + 2
        assert "unreadable pydantic-ai response" in caplog.text
        assert (await agent.run("hi")).output == "the answer is 3"
        assert fake.calls == calls + 2  # the replaced entries are read again

    @pytest.mark.asyncio
    async def test_an_unreadable_stored_stream_is_a_miss(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A stored stream with an event pydantic-ai cannot validate streams live instead, and
        the live stream replaces it."""
        fake = Counting()
        backend = MemoryBackend()
        model = CachedModel(fake.model(), backend=backend)
        params = ModelRequestParameters()
        async with model.request_stream([], None, params) as stream:
            live = [e async for e in stream]
        (key,) = backend.keys()
        damaged = (
            b'[["json", {"head": {"model_name": "calc", "timestamp": "2026-01-01T00:00:00Z"}}],'
            b' ["json", {"event": {"event_kind": "part_start", "index": "x"}}]]'
        )
        backend.set(key, seal(key, "astream", damaged, created_at=time.time(), **NO_EXPIRY), None)
        async with model.request_stream([], None, params) as stream:
            again = [e async for e in stream]
        assert fake.streams == 2
        assert again == live
        assert "unreadable pydantic-ai stream" in caplog.text
        async with model.request_stream([], None, params) as stream:
            assert [e async for e in stream] == live
        assert fake.streams == 2

    def test_a_stored_request_is_refused(self) -> None:
        """Data that is a request, not a response, is not returned as one."""
        data = {"kind": "request", "parts": []}
        with pytest.raises(TypeError):
            load_response(data)


@pytest.mark.asyncio
class TestRecordReplay:
    async def test_a_tool_calling_run_replays_without_the_model(self, tmp_path: Path) -> None:
        """Recorded once, the run replays from the recordings folder: the model is not called."""
        fake = Counting()
        with use_recordings(tmp_path, "record"):
            recorded = await make_agent(CachedModel(fake.model())).run("what is 1+2?")
        assert fake.calls == 2
        assert len(list(tmp_path.rglob("*.json"))) == 2

        def refuse(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            raise AssertionError("replay must not call the model")

        with use_recordings(tmp_path, "replay") as rec:
            replayed = await make_agent(CachedModel(FunctionModel(refuse, model_name="calc"))).run(
                "what is 1+2?"
            )
        assert rec.hits == 2
        assert replayed.output == recorded.output == "the answer is 3"
        tool_call = replayed.all_messages()[1]
        assert isinstance(tool_call, ModelResponse)
        assert isinstance(tool_call.parts[0], ToolCallPart)

    async def test_a_streamed_run_replays_as_a_stream(self, tmp_path: Path) -> None:
        """agent.run_stream in replay mode streams the recorded deltas, model untouched."""
        fake = Counting()
        with use_recordings(tmp_path, "record"):
            async with make_agent(CachedModel(fake.model())).run_stream("1+2?") as run:
                recorded = [d async for d in run.stream_text(delta=True)]
        assert fake.streams == 2

        async def refuse(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
            raise AssertionError("replay must not call the model")
            yield ""  # pragma: no cover

        def refuse_plain(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            raise AssertionError("replay must not call the model")

        model = FunctionModel(refuse_plain, stream_function=refuse, model_name="calc")
        with use_recordings(tmp_path, "replay") as rec:
            async with make_agent(CachedModel(model)).run_stream("1+2?") as run:
                replayed = [d async for d in run.stream_text(delta=True)]
        assert replayed == recorded
        assert rec.hits == 2

    async def test_replay_of_an_unrecorded_run_fails(self, tmp_path: Path) -> None:
        """In replay mode a request with no recording is a CacheMiss, not a model call."""
        fake = Counting()
        with use_recordings(tmp_path, "replay"), pytest.raises(CacheMiss):
            await make_agent(CachedModel(fake.model())).run("what is 1+2?")
        assert fake.calls == 0
