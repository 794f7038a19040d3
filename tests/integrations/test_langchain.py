"""LlmMemoCache: LangChain's BaseCache answered by llm_memo, with langchain-core's own fake models.

Every model here counts its calls (``FakeMessagesListChatModel.i`` / a call list), so "served
from the cache" means "the model was not called". Nothing talks to the network; Redis is the
real server of ``tests.servers``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from llm_memo import CacheMiss, cache_controls, configure
from llm_memo.backends.memory import MemoryBackend
from llm_memo.entry import Entry
from llm_memo.errors import BackendError, BackendUnavailableError, ConfigurationError
from llm_memo.integrations.langchain import LlmMemoCache, request_view
from llm_memo.testing import FakeClock

pytest_plugins = ["pytester"]

SECRET = "sk-proj-abcdefghijklmnopqrstuvwx0123"


def answer(text: str = "hello there") -> AIMessage:
    return AIMessage(
        text,
        tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
    )


def model(cache: Any, *texts: str) -> FakeMessagesListChatModel:
    """A chat model answering ``texts`` in turn; ``.i`` counts its calls (until it wraps)."""
    responses: list[BaseMessage] = [
        answer(t) for t in texts or ("first", "second", "third", "fourth")
    ]
    return FakeMessagesListChatModel(responses=responses, cache=cache)


class KeyedChatModel(FakeMessagesListChatModel):
    """A chat model with identifying params, one of them a credential, in its llm_string."""

    model_name: str = "fake-1"
    api_key: str = SECRET

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "api_key": self.api_key}


class SerializableChatModel(FakeMessagesListChatModel):
    """A chat model LangChain serializes into llm_string, as it does ChatOpenAI."""

    temperature: float = 0.0

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True


def entries(backend: MemoryBackend) -> list[Entry]:
    return [e for e in (backend.get(k) for k in list(backend.keys())) if isinstance(e, Entry)]


class TestRoundTrip:
    def test_second_identical_invoke_is_served_from_the_cache(self) -> None:
        """The model runs once; the hit is the same AIMessage, tool calls and usage included."""
        backend = MemoryBackend()
        cache = LlmMemoCache(backend)
        chat = model(cache)
        first = chat.invoke([SystemMessage("be brief"), HumanMessage("hi")])
        second = chat.invoke([SystemMessage("be brief"), HumanMessage("hi")])
        assert chat.i == 1
        assert type(second) is AIMessage
        assert second.content == first.content == "first"
        assert second.tool_calls == first.tool_calls
        assert second.usage_metadata is not None
        assert first.usage_metadata is not None
        assert second.usage_metadata["total_tokens"] == first.usage_metadata["total_tokens"] == 18
        assert second.response_metadata["finish_reason"] == "tool_calls"
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.tokens_saved) == (1, 1, 18)

    def test_lookup_returns_the_generation_types_that_were_stored(self) -> None:
        """ChatGeneration / Generation come back as themselves, stored as JSON, not pickle."""
        backend = MemoryBackend()
        cache = LlmMemoCache(backend)
        chat_gen = ChatGeneration(message=answer("x"), generation_info={"finish_reason": "stop"})
        cache.update("p", "chat", [chat_gen])
        cache.update("p", "llm", [Generation(text="plain", generation_info={"n": 1})])
        got = cache.lookup("p", "chat")
        assert got is not None
        revived = got[0]
        assert type(revived) is ChatGeneration
        assert type(revived.message) is AIMessage
        assert revived.message.tool_calls == answer("x").tool_calls
        assert got[0].generation_info == {"finish_reason": "stop"}
        plain = cache.lookup("p", "llm")
        assert plain is not None
        assert type(plain[0]) is Generation
        assert plain[0].text == "plain"
        assert {e.type_tag for e in entries(backend)} == {"json"}
        assert all(b"pickle" not in e.value for e in entries(backend))

    def test_run_ids_are_not_stored_and_provider_ids_are(self) -> None:
        """LangChain's per-run message id is left out (so recordings are stable bytes)."""
        backend = MemoryBackend()
        chat = FakeMessagesListChatModel(
            responses=[AIMessage("a"), AIMessage("b", id="chatcmpl-42")],
            cache=LlmMemoCache(backend),
        )
        assert str(chat.invoke("one").id).startswith("lc_run-")
        chat.invoke("two")
        stored = b"".join(e.value for e in entries(backend))
        assert b"lc_run-" not in stored
        assert b"chatcmpl-42" in stored
        assert chat.invoke("two").id == "chatcmpl-42"

    def test_each_hit_is_a_fresh_object(self) -> None:
        """Mutating a returned generation never changes what is cached."""
        cache = LlmMemoCache(MemoryBackend())
        cache.update("p", "l", [ChatGeneration(message=AIMessage("a"))])
        got = cache.lookup("p", "l")
        assert got is not None
        assert isinstance(got[0], ChatGeneration)
        got[0].message.content = "changed"
        again = cache.lookup("p", "l")
        assert again is not None
        assert isinstance(again[0], ChatGeneration)
        assert again[0].message.content == "a"

    def test_completion_models_are_cached_too(self) -> None:
        """A completion model (BaseLLM) is answered from the cache on its second call."""
        llm = FakeListLLM(responses=["one", "two"], cache=LlmMemoCache(MemoryBackend()))
        assert llm.invoke("hello") == "one"
        assert llm.invoke("hello") == "one"
        assert llm.i == 1

    def test_a_value_naming_another_class_is_a_miss(self) -> None:
        """A stored value reviving anything but generations and AI messages is never built."""
        backend = MemoryBackend()
        cache = LlmMemoCache(backend)
        cache.update("p", "l", [ChatGeneration(message=AIMessage("a"))])
        (key,) = list(backend.keys())
        stored = backend.get(key)
        assert isinstance(stored, Entry)
        hostile = stored.value.replace(b'"AIMessage"', b'"SystemMessage"')
        backend.set(key, dataclasses.replace(stored, value=hostile), None)
        assert cache.lookup("p", "l") is None


class TestKeys:
    def test_equivalent_requests_share_a_key(self) -> None:
        """Message ids, default fields spelled out and param order do not change the key."""
        cache = LlmMemoCache(MemoryBackend())
        a = json.dumps(
            [
                {
                    "lc": 1,
                    "type": "constructor",
                    "id": ["langchain", "schema", "messages", "HumanMessage"],
                    "kwargs": {"content": "hi", "type": "human"},
                }
            ]
        )
        b = json.dumps(
            [
                {
                    "lc": 1,
                    "type": "constructor",
                    "id": ["langchain", "schema", "messages", "HumanMessage"],
                    "kwargs": {
                        "content": "hi",
                        "type": "human",
                        "id": "run-1",
                        "additional_kwargs": {},
                        "response_metadata": {},
                    },
                }
            ]
        )
        assert cache.key(a, "[('_type', 'x'), ('stop', None)]") == cache.key(
            b, "[('stop', None), ('_type', 'x')]"
        )

    def test_stop_and_per_call_options_change_the_key(self) -> None:
        """stop and options passed to invoke miss; the same call again hits."""
        chat = model(LlmMemoCache(MemoryBackend()))
        chat.invoke("hi")
        chat.invoke("hi", stop=["\n"])
        chat.invoke("hi", temperature=0.7)
        assert chat.i == 3
        chat.invoke("hi", temperature=0.7)
        assert chat.i == 3

    def test_identifying_params_change_the_key_and_credentials_do_not(self) -> None:
        """Another model name misses; another api_key hits the same entry."""
        cache = LlmMemoCache(MemoryBackend())
        base = KeyedChatModel(responses=[answer("a"), answer("b"), answer("c")], cache=cache)
        base.invoke("hi")
        other_model = base.model_copy(update={"model_name": "fake-2"})
        other_key = base.model_copy(update={"api_key": "sk-another-key-0123456789abcd"})
        assert other_model.invoke("hi").content == "b"
        assert other_key.invoke("hi").content == "a"

    def test_serialized_models_key_their_fields_without_secrets(self) -> None:
        """A serializable model's llm_string: fields key, secret refs and secret names do not."""
        head = {
            "lc": 1,
            "type": "constructor",
            "id": ["langchain", "chat_models", "openai", "ChatOpenAI"],
            "kwargs": {
                "model_name": "gpt-4o-mini",
                "temperature": 0.0,
                "openai_api_key": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]},
                "max_retries": 2,
            },
        }

        def llm_string(**changes: Any) -> str:
            kwargs = {**head["kwargs"], **changes}  # type: ignore[dict-item]
            return json.dumps({**head, "kwargs": kwargs}, sort_keys=True) + "---[('stop', None)]"

        cache = LlmMemoCache(MemoryBackend())
        key = cache.key("hi", llm_string())
        assert cache.key("hi", llm_string(max_retries=9, openai_api_key=SECRET)) == key
        assert cache.key("hi", llm_string(temperature=0.5)) != key
        assert cache.key("hi", llm_string(model_name="gpt-4o")) != key
        view = request_view("hi", llm_string(openai_api_key=SECRET))
        assert SECRET not in repr(view)
        assert view["model"]["kwargs"] == {"model_name": "gpt-4o-mini", "temperature": 0.0}

    def test_nested_names_are_content_but_nested_credentials_are_not(self) -> None:
        """A tool schema's ``token`` property keys; a string under ``api_key`` deeper does not."""
        cache = LlmMemoCache(MemoryBackend())

        def tools(prop: str, **extra: Any) -> str:
            schema = {"type": "object", "properties": {prop: {"type": "string"}}, **extra}
            return str(sorted({"tools": [schema], "stop": None}.items()))

        assert cache.key("hi", tools("token")) != cache.key("hi", tools("city"))
        assert cache.key("hi", tools("city", api_key=SECRET)) == cache.key("hi", tools("city"))
        chat = model(cache)

        def tool(prop: str) -> dict[str, Any]:
            parameters = {"type": "object", "properties": {prop: {"type": "string"}}}
            return {"type": "function", "function": {"name": "f", "parameters": parameters}}

        chat.bind(tools=[tool("token")]).invoke("hi")
        chat.bind(tools=[tool("tag")]).invoke("hi")
        chat.bind(tools=[tool("token")]).invoke("hi")
        assert chat.i == 2

    def test_unparseable_params_are_kept_as_text(self) -> None:
        """A param string holding a non-literal keys as text, secret-shaped items left out."""
        text = f"[('api_key', '{SECRET}'), ('schema', <Answer object>), ('stop', None)]"
        view = request_view("hi", text)
        assert "params" not in view
        assert view["params_text"] == "[, ('schema', <Answer object>), ('stop', None)]"
        cache = LlmMemoCache(MemoryBackend())
        assert cache.key("hi", text) != cache.key("hi", text.replace("Answer", "Other"))

    def test_credentials_never_reach_stored_bytes(self, tmp_path: Path) -> None:
        """Neither the model's api_key nor one passed to invoke is in any file the cache wrote."""
        cache = LlmMemoCache(f"disk://{tmp_path / 'cache'}")
        chat = KeyedChatModel(responses=[answer("a")], cache=cache)
        chat.invoke("hi", api_key=SECRET)
        chat.invoke("hi", api_key=SECRET)
        assert chat.i == 0  # answered once, then from the cache (the list wrapped to 0)
        assert cache.stats().hits == 1
        written = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
        assert written
        assert SECRET.encode() not in written
        assert SECRET not in cache.key("x", f"[('api_key', '{SECRET}')]")


class TestAsync:
    def test_ainvoke_is_served_from_the_cache(self) -> None:
        """alookup / aupdate: the second ainvoke does not call the model."""
        chat = model(LlmMemoCache(MemoryBackend()))

        async def run() -> tuple[Any, Any]:
            return await chat.ainvoke("hi"), await chat.ainvoke("hi")

        first, second = asyncio.run(run())
        assert chat.i == 1
        assert second.content == first.content == "first"

    def test_sync_and_async_share_entries_on_one_backend(self) -> None:
        """An entry written by invoke answers ainvoke, and the other way round."""
        chat = model(LlmMemoCache(MemoryBackend()))
        chat.invoke("sync first")
        assert asyncio.run(chat.ainvoke("sync first")).content == "first"
        asyncio.run(chat.ainvoke("async first"))
        assert chat.invoke("async first").content == "second"
        assert chat.i == 2

    def test_aclear_and_clear_remove_this_caches_entries(self) -> None:
        """clear() removes the cache's own entries in the current namespace only."""
        backend = MemoryBackend()
        cache, other = LlmMemoCache(backend), LlmMemoCache(backend, name="other")
        cache.update("p", "l", [Generation(text="a")])
        other.update("p", "l", [Generation(text="b")])
        with cache_controls(namespace="v2"):
            cache.update("p", "l", [Generation(text="c")])
        cache.clear()
        assert cache.lookup("p", "l") is None
        assert other.lookup("p", "l") is not None
        with cache_controls(namespace="v2"):
            assert cache.lookup("p", "l") is not None
            asyncio.run(cache.aclear())
            assert cache.lookup("p", "l") is None


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        self.tokens.append(str(token))


class TestStreaming:
    def test_a_streamed_invoke_is_stored_and_answers_without_streaming(self) -> None:
        """invoke(stream=True) streams on a miss and is stored; the hit returns the message."""
        calls: list[int] = []

        def responses() -> Iterator[AIMessage]:
            while True:
                calls.append(1)
                yield AIMessage("streamed words here")

        chat = GenericFakeChatModel(messages=responses(), cache=LlmMemoCache(MemoryBackend()))
        first, second = _Tokens(), _Tokens()
        a = chat.invoke("hi", stream=True, config={"callbacks": [first]})
        b = chat.invoke("hi", stream=True, config={"callbacks": [second]})
        assert len(calls) == 1
        assert a.content == b.content == "streamed words here"
        assert first.tokens
        assert not second.tokens

    def test_stream_of_a_model_without_native_streaming_goes_through_the_cache(self) -> None:
        """stream() falls back to invoke for such a model, and so to the cache."""
        chat = model(LlmMemoCache(MemoryBackend()))
        assert [c.content for c in chat.stream("hi")] == ["first"]
        assert [c.content for c in chat.stream("hi")] == ["first"]
        assert chat.i == 1

    def test_stream_of_a_natively_streaming_model_bypasses_the_cache(self) -> None:
        """LangChain's stream() never asks the cache when the model streams natively."""
        cache = LlmMemoCache(MemoryBackend())
        chat = GenericFakeChatModel(
            messages=iter([AIMessage("a b"), AIMessage("c d")]), cache=cache
        )
        assert "".join(str(c.content) for c in chat.stream("hi")) == "a b"
        assert "".join(str(c.content) for c in chat.stream("hi")) == "c d"
        assert cache.stats().calls == 0


class TestDirectives:
    def test_no_cache_refreshes_and_stores(self) -> None:
        """no_cache calls the model and its answer replaces the entry."""
        cache = LlmMemoCache(MemoryBackend())
        chat = model(cache)
        chat.invoke("hi")
        with cache_controls(no_cache=True) as scope:
            assert chat.invoke("hi").content == "second"
        assert [e.outcome.value for e in scope.events] == ["refresh"]
        assert chat.invoke("hi").content == "second"
        assert chat.i == 2

    def test_no_store_reads_but_never_writes(self) -> None:
        """Under no_store a miss is not stored; an existing entry still answers."""
        backend = MemoryBackend()
        chat = model(LlmMemoCache(backend))
        with cache_controls(no_store=True):
            chat.invoke("new")
        assert list(backend.keys()) == []
        chat.invoke("kept")
        with cache_controls(no_store=True):
            assert chat.invoke("kept").content == "second"
        assert chat.i == 2

    def test_only_if_cached_raises_cache_miss_and_serves_hits(self) -> None:
        """only_if_cached never calls the model: CacheMiss when nothing is stored."""
        chat = model(LlmMemoCache(MemoryBackend()))
        chat.invoke("known")
        with cache_controls(only_if_cached=True):
            assert chat.invoke("known").content == "first"
            with pytest.raises(CacheMiss):
                chat.invoke("unknown")
            with pytest.raises(CacheMiss):
                asyncio.run(chat.ainvoke("unknown"))
        assert chat.i == 1

    def test_ttl_and_max_age(self) -> None:
        """Entries expire after ttl; max_age refuses an entry older than it asks."""
        clock = FakeClock(1000.0)
        configure(clock=clock)
        chat = model(LlmMemoCache(MemoryBackend(), ttl=60))
        chat.invoke("hi")
        clock.advance(30)
        with cache_controls(max_age=10):
            assert chat.invoke("hi").content == "second"  # 30 s old: too old for max_age=10
        clock.advance(5)
        assert chat.invoke("hi").content == "second"  # fresh under ttl
        clock.advance(61)
        assert chat.invoke("hi").content == "third"
        assert chat.i == 3

    def test_enabled_false_bypasses(self) -> None:
        """enabled=False: no lookup, no store, a bypass counted."""
        backend = MemoryBackend()
        cache = LlmMemoCache(backend)
        chat = model(cache)
        with cache_controls(enabled=False):
            chat.invoke("hi")
            chat.invoke("hi")
        assert chat.i == 2
        assert list(backend.keys()) == []
        assert cache.stats().bypasses == 2

    def test_namespaces_partition_entries(self) -> None:
        """A block's namespace, or the cache's own, sees only its entries."""
        backend = MemoryBackend()
        chat = model(LlmMemoCache(backend))
        chat.invoke("hi")
        with cache_controls(namespace="tenant:b"):
            assert chat.invoke("hi").content == "second"
        assert model(LlmMemoCache(backend, namespace="tenant:b")).invoke("hi").content == "second"
        assert chat.invoke("hi").content == "first"

    def test_a_scope_sees_hits_and_misses(self) -> None:
        """cache_controls scopes record the cache's events, with keys and ages."""
        chat = model(LlmMemoCache(MemoryBackend()))
        with cache_controls() as scope:
            chat.invoke("hi")
            chat.invoke("hi")
        assert (scope.misses, scope.hits) == (1, 1)
        assert scope.events[-1].key.startswith("llm_memo:")
        assert ":langchain:" in scope.events[-1].key


class TestPerCallOptionGap:
    def test_completion_models_leave_per_call_options_out_and_a_namespace_works_around_it(
        self,
    ) -> None:
        """LangChain's BaseLLM does not hand invoke's kwargs to the cache (documented gap)."""
        llm = FakeListLLM(responses=["one", "two"], cache=LlmMemoCache(MemoryBackend()))
        assert llm.invoke("hello", temperature=0.0) == "one"
        assert llm.invoke("hello", temperature=1.0) == "one"  # the gap: same key
        with cache_controls(namespace="temperature=1.0"):  # the workaround
            assert llm.invoke("hello", temperature=1.0) == "two"

    def test_serializable_chat_models_fix_their_description_at_the_first_call(self) -> None:
        """A field changed after the first call is not seen (documented); a new model is."""
        cache = LlmMemoCache(MemoryBackend())
        chat = SerializableChatModel(responses=[answer("a"), answer("b"), answer("c")], cache=cache)
        chat.invoke("hi")
        chat.temperature = 1.0
        assert chat.invoke("hi").content == "a"  # the gap: LangChain's cached description
        assert chat.bind(temperature=1.0).invoke("hi").content == "b"  # per call: keyed
        fresh = SerializableChatModel(responses=[answer("z")], temperature=1.0, cache=cache)
        assert fresh.invoke("hi").content == "z"  # a model built with the option: keyed


class TestBackends:
    def test_a_disk_url_persists_across_cache_objects(self, tmp_path: Path) -> None:
        """Two caches on the same disk URL (two processes, say) share entries."""
        url = f"disk://{tmp_path / 'lc'}"
        model(LlmMemoCache(url)).invoke("hi")
        again = model(LlmMemoCache(url), "other")
        assert again.invoke("hi").content == "first"
        assert again.i == 0

    def test_set_llm_cache_makes_it_every_models_cache(self) -> None:
        """The global cache answers models that have no cache of their own."""
        set_llm_cache(LlmMemoCache(MemoryBackend()))
        try:
            chat = FakeMessagesListChatModel(responses=[answer("a"), answer("b")])
            chat.invoke("hi")
            assert chat.invoke("hi").content == "a"
        finally:
            set_llm_cache(None)

    def test_the_llm_cache_fixture_replaces_the_backend(self, llm_cache: Any) -> None:
        """Under llm_memo's pytest fixture the cache's entries go to the fixture's backend."""
        chat = model(LlmMemoCache("memory://"))
        chat.invoke("hi")
        chat.invoke("hi")
        assert (llm_cache.misses, llm_cache.hits) == (1, 1)
        assert len(llm_cache.entries()) == 1

    @pytest.mark.redis
    def test_a_real_redis_server_sync_and_async(self, redis_server: Any) -> None:
        """A redis:// URL: sync and async calls (its async twin) share the server's entries."""
        cache = LlmMemoCache(redis_server.url, namespace="lc-redis-test")
        cache.clear()
        chat = model(cache)
        chat.invoke("hi")
        assert asyncio.run(chat.ainvoke("hi")).content == "first"
        assert chat.invoke("hi").content == "first"
        assert chat.i == 1
        assert cache.stats().hits == 2
        asyncio.run(cache.aclear())
        assert chat.invoke("hi").content == "second"


class _Down:
    """A backend whose store is unreachable."""

    def get(self, key: str) -> Any:
        raise BackendError("down")

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        raise BackendError("down")

    def delete(self, key: str) -> bool:
        raise BackendError("down")

    def clear(self, prefix: str = "") -> int:
        raise BackendError("down")


class TestFailures:
    def test_a_failing_backend_fails_open_and_is_counted(self) -> None:
        """The model answers when the store is down; the failed read and write are counted."""
        cache = LlmMemoCache(_Down())
        chat = model(cache)
        assert chat.invoke("hi").content == "first"
        assert chat.invoke("hi").content == "second"
        assert cache.stats().errors == 4  # two failed reads (events), two failed writes

    def test_strict_raises_instead(self) -> None:
        """strict=True: a failed read raises BackendUnavailableError out of invoke."""
        chat = model(LlmMemoCache(_Down(), strict=True))
        with pytest.raises(BackendUnavailableError):
            chat.invoke("hi")
        assert chat.i == 0

    def test_bad_configuration_is_raised_at_construction(self) -> None:
        """An unknown directive or scheme is a ConfigurationError where the cache is built."""
        with pytest.raises(ConfigurationError):
            LlmMemoCache("nosuchscheme://x")
        with pytest.raises(ConfigurationError):
            LlmMemoCache(MemoryBackend(), no_such_directive=True)


class TestRecordReplay:
    def test_a_langchain_apps_tests_record_then_replay(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """@pytest.mark.llm_memo records a LangChain call once, then replays it offline."""
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        pytester.makepyfile(
            test_app=textwrap.dedent(
                f"""
                import pytest
                from langchain_core.language_models.fake_chat_models import (
                    FakeMessagesListChatModel,
                )
                from langchain_core.messages import AIMessage
                from llm_memo.integrations.langchain import LlmMemoCache

                class Model(FakeMessagesListChatModel):
                    api_key: str = {SECRET!r}

                    @property
                    def _identifying_params(self):
                        return {{"api_key": self.api_key}}

                    def _generate(self, *args, **kwargs):
                        import os
                        if os.environ.get("FORBID_MODEL"):
                            raise AssertionError("the model was called in replay")
                        return super()._generate(*args, **kwargs)

                @pytest.mark.llm_memo
                def test_summary():
                    chat = Model(responses=[AIMessage("short")], cache=LlmMemoCache())
                    assert chat.invoke("summarise", stop=["."]).content == "short"
                """
            )
        )
        recorded = pytester.runpytest("-p", "no:cacheprovider", "--llm-memo-mode=record")
        recorded.assert_outcomes(passed=1)
        files = list((pytester.path / "recordings").rglob("*.json"))
        assert len(files) == 1
        assert SECRET not in files[0].read_text()
        monkeypatch.setenv("FORBID_MODEL", "1")
        replayed = pytester.runpytest("-p", "no:cacheprovider", "--llm-memo-mode=replay")
        replayed.assert_outcomes(passed=1)
