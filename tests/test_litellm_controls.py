"""litellm's own per-call cache controls on a wrapped litellm function, litellm's hit marker, and
the per-call form of directives every cached function has (``fn.cache.controls``).

The real litellm package answers through its own offline mock (``mock_response=``); a thin
``functools.wraps`` shim around each litellm function counts the calls that reach litellm and
what they were passed (the shim keeps litellm's identity, so it gets litellm's profile).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import litellm
import pytest

from llm_memo import ConfigurationError, cache_controls, configure, llm_cached
from llm_memo.backends.memory import MemoryBackend
from llm_memo.sdks import profile_for
from llm_memo.sdks.litellm import SDK as LITELLM
from llm_memo.sdks.litellm import per_call
from llm_memo.testing import FakeClock
from tests.stubs import StubHandler, serve

# litellm's first call imports modules that warn (pydantic on its TypedDicts), as in
# tests/test_key_ignore.py::TestLitellmProfile.
litellm_warnings = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

MSGS = [{"role": "user", "content": "hi"}]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSGS, "mock_response": "Hello"}
EMBED: dict[str, Any] = {
    "model": "text-embedding-3-small",
    "input": ["a"],
    "mock_response": [0.1, 0.2],
}


def counted(fn: Callable[..., Any], calls: list[dict[str, Any]]) -> Callable[..., Any]:
    """``fn`` (a litellm function), recording the keyword arguments of each call reaching it."""

    @functools.wraps(fn)
    def shim(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return fn(*args, **kwargs)

    return shim


def acounted(fn: Callable[..., Any], calls: list[dict[str, Any]]) -> Callable[..., Any]:
    """Async :func:`counted`."""

    @functools.wraps(fn)
    async def shim(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return await fn(*args, **kwargs)

    return shim


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock(1_000_000.0)
    configure(clock=clock)
    return clock


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def completion(clock: FakeClock, calls: list[dict[str, Any]]) -> Any:
    return llm_cached(backend=MemoryBackend(clock=clock))(counted(litellm.completion, calls))


class _Transcriptions(StubHandler):
    """A loopback stand-in for OpenAI's ``POST /v1/audio/transcriptions``, logging each path."""

    log: list[str]

    def do_POST(self) -> None:
        self.read_body()
        self.log.append(self.path)
        self.reply_json({"text": "hello"})


@pytest.fixture
def transcriptions() -> Iterator[tuple[str, list[str]]]:
    """The stub's base URL and its request log."""
    log: list[str] = []
    with serve(_Transcriptions, log=log) as url:
        yield f"{url}/v1", log


@litellm_warnings
class TestTranslation:
    def test_each_litellm_control_names_its_directive(self) -> None:
        """cache={...} keys and caching=False become the matching directives; others none."""
        assert per_call({"cache": {"no-cache": True}}) == {"no_cache": True}
        assert per_call({"cache": {"no-store": True}}) == {"no_store": True}
        assert per_call({"cache": {"ttl": 60}}) == {"ttl": 60}
        assert per_call({"cache": {"s-maxage": 300}}) == {"max_age": 300}
        assert per_call({"cache": {"namespace": "n"}}) == {"namespace": "n"}
        assert per_call({"caching": False}) == {"enabled": False}
        assert per_call({"caching": True}) is None
        assert per_call({"cache": {"use-cache": True}}) is None
        assert per_call({"model": "m"}) is None

    def test_every_litellm_function_has_the_profile(self) -> None:
        """completion, acompletion, embedding, aembedding and transcription are litellm's."""
        for fn in (
            litellm.completion,
            litellm.acompletion,
            litellm.embedding,
            litellm.aembedding,
            litellm.transcription,
        ):
            assert profile_for(fn) is LITELLM

    def test_controls_and_metadata_are_never_keyed(self, completion: Any) -> None:
        """cache=, caching= and metadata= leave the key as it is."""
        key = completion.cache.key(**CHAT)
        for extra in (
            {"cache": {"no-cache": True, "ttl": 60}},
            {"caching": False},
            {"metadata": {"trace": "1"}},
        ):
            assert completion.cache.key(**CHAT, **extra) == key

    def test_metadata_can_be_keyed_after_all(self, clock: FakeClock) -> None:
        """key_params=("metadata",) keys metadata for a caller whose metadata changes answers."""
        completion = llm_cached(backend=MemoryBackend(clock=clock), key_params=("metadata",))(
            litellm.completion
        )
        assert completion.cache.key(**CHAT, metadata={"route": "a"}) != completion.cache.key(
            **CHAT, metadata={"route": "b"}
        )


@litellm_warnings
class TestPerCallControls:
    def test_no_cache_calls_again_and_stores_the_fresh_answer(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """cache={"no-cache": True} skips the lookup, calls litellm and overwrites the entry."""
        completion(**CHAT)
        completion(**CHAT, cache={"no-cache": True})
        assert len(calls) == 2
        assert calls[1]["cache"] == {"no-cache": True}  # passed on to litellm unchanged
        completion(**CHAT)
        assert len(calls) == 2
        assert completion.cache.stats().hits == 1

    def test_no_store_calls_and_stores_nothing(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """cache={"no-store": True}: the answer is returned, not stored."""
        first = completion(**CHAT, cache={"no-store": True})
        assert first.choices[0].message.content == "Hello"
        assert not completion.cache.contains(**CHAT)
        completion(**CHAT)
        assert len(calls) == 2

    def test_ttl_sets_that_entry_s_lifetime(
        self, completion: Any, calls: list[dict[str, Any]], clock: FakeClock
    ) -> None:
        """cache={"ttl": 60}: the entry stored by that call is fresh for 60 seconds."""
        completion(**CHAT, cache={"ttl": 60})
        clock.advance(59)
        completion(**CHAT)
        assert len(calls) == 1
        clock.advance(2)
        completion(**CHAT)
        assert len(calls) == 2

    def test_s_maxage_refuses_older_entries(
        self, completion: Any, calls: list[dict[str, Any]], clock: FakeClock
    ) -> None:
        """cache={"s-maxage": 300}: an entry older than 300 seconds is not served."""
        completion(**CHAT)
        clock.advance(200)
        completion(**CHAT, cache={"s-maxage": 300})
        assert len(calls) == 1
        clock.advance(200)
        completion(**CHAT, cache={"s-maxage": 300})
        assert len(calls) == 2

    def test_namespace_partitions_that_call(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """cache={"namespace": "t1"}: stored and looked up in namespace t1 only."""
        completion(**CHAT, cache={"namespace": "t1"})
        assert not completion.cache.contains(**CHAT)
        with cache_controls(namespace="t1"):
            assert completion.cache.contains(**CHAT)
        completion(**CHAT, cache={"namespace": "t1"})
        assert len(calls) == 1

    def test_caching_false_bypasses_the_cache(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """caching=False: litellm is called, nothing is read or stored, a bypass is counted."""
        completion(**CHAT)
        completion(**CHAT, caching=False)
        assert len(calls) == 2
        assert calls[1]["caching"] is False
        stats = completion.cache.stats()
        assert (stats.hits, stats.misses, stats.bypasses) == (0, 1, 1)

    def test_the_call_s_control_wins_over_an_enclosing_block(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """The per-call control is the innermost block: it wins; the block's others apply."""
        with cache_controls(namespace="outer", no_store=True) as scope:
            completion(**CHAT, cache={"no-store": False})
        assert scope.misses == 1
        with cache_controls(namespace="outer"):
            assert completion.cache.contains(**CHAT)

    def test_a_bad_value_is_a_configuration_error_before_litellm_is_called(
        self, completion: Any, calls: list[dict[str, Any]]
    ) -> None:
        """cache={"ttl": "soon"} raises ConfigurationError and calls nothing."""
        with pytest.raises(ConfigurationError, match="ttl"):
            completion(**CHAT, cache={"ttl": "soon"})
        assert calls == []

    @pytest.mark.asyncio
    async def test_acompletion(self, clock: FakeClock, calls: list[dict[str, Any]]) -> None:
        """The async function honours the same controls."""
        acompletion = llm_cached(backend=MemoryBackend(clock=clock))(
            acounted(litellm.acompletion, calls)
        )
        await acompletion(**CHAT, cache={"no-store": True})
        assert not await acompletion.cache.acontains(**CHAT)
        await acompletion(**CHAT)
        await acompletion(**CHAT, cache={"no-cache": True})
        assert len(calls) == 3
        hit = await acompletion(**CHAT)
        assert len(calls) == 3
        assert hit._hidden_params["cache_hit"] is True

    def test_embedding(self, clock: FakeClock, calls: list[dict[str, Any]]) -> None:
        """embedding honours caching=False and no-cache, and its hits are marked."""
        embedding = llm_cached(backend=MemoryBackend(clock=clock))(
            counted(litellm.embedding, calls)
        )
        embedding(**EMBED, caching=False)
        assert not embedding.cache.contains(**EMBED)
        embedding(**EMBED)
        embedding(**EMBED, cache={"no-cache": True})
        assert len(calls) == 3
        hit = embedding(**EMBED)
        assert len(calls) == 3
        assert hit.data[0]["embedding"] == [0.1, 0.2]
        assert hit._hidden_params["cache_hit"] is True

    @pytest.mark.asyncio
    async def test_aembedding(self, clock: FakeClock, calls: list[dict[str, Any]]) -> None:
        """aembedding honours no-store."""
        aembedding = llm_cached(backend=MemoryBackend(clock=clock))(
            acounted(litellm.aembedding, calls)
        )
        await aembedding(**EMBED, cache={"no-store": True})
        await aembedding(**EMBED)
        await aembedding(**EMBED)
        assert len(calls) == 2

    def test_transcription(self, transcriptions: tuple[str, list[str]]) -> None:
        """transcription (against a loopback stub) honours no-cache and caching=False, and its
        hit is a marked TranscriptionResponse."""
        base, log = transcriptions
        transcription = llm_cached(backend="memory://")(litellm.transcription)
        request: dict[str, Any] = {
            "model": "whisper-1",
            "file": ("a.wav", b"RIFF0000WAVE", "audio/wav"),
            "api_base": base,
            "api_key": "sk-test",
        }
        transcription(**request)
        hit = transcription(**request)
        assert isinstance(hit, litellm.TranscriptionResponse)
        assert hit.text == "hello"
        assert hit._hidden_params["cache_hit"] is True
        assert len(log) == 1
        transcription(**request, cache={"no-cache": True})
        transcription(**request, caching=False)
        assert log == ["/v1/audio/transcriptions"] * 3
        stats = transcription.cache.stats()
        assert (stats.hits, stats.misses, stats.refreshes, stats.bypasses) == (1, 1, 1, 1)


@litellm_warnings
class TestHitMarker:
    def test_a_hit_carries_litellm_s_cache_hit_marker_and_the_key(self, completion: Any) -> None:
        """A hit is a ModelResponse with cache_hit, cache_key and a zero response_cost."""
        miss = completion(**CHAT)
        assert miss._hidden_params.get("cache_hit") is not True
        hit = completion(**CHAT)
        assert isinstance(hit, litellm.ModelResponse)
        assert hit.choices[0].message.content == "Hello"
        assert hit._hidden_params["cache_hit"] is True
        assert hit._hidden_params["cache_key"] == completion.cache.key(**CHAT)
        assert hit._hidden_params["response_cost"] == 0.0
        assert miss._hidden_params.get("cache_hit") is not True  # the miss is left alone

    def test_litellm_reads_the_hit_as_served_from_cache_at_no_charge(self, completion: Any) -> None:
        """litellm's own reader of the marker says served from cache; completion_cost prices
        the tokens of any response it is handed, as for litellm's own cache hits."""
        from litellm.litellm_core_utils.hidden_params import served_from_cache

        miss = completion(**CHAT)
        hit = completion(**CHAT)
        assert served_from_cache(hit)
        assert not served_from_cache(miss)
        assert litellm.completion_cost(completion_response=hit) == litellm.completion_cost(
            completion_response=miss
        )

    def test_a_single_flight_waiter_s_copy_is_marked_and_the_leader_s_is_not(
        self, completion: Any
    ) -> None:
        """An identical concurrent call answered by the one in flight (a hit) gets a marked
        copy; the leader's own result, returned as a miss, is left alone."""
        leader = completion(**CHAT)
        key = completion.cache.key(**CHAT)
        memo = completion._self_memo
        waiter = memo.copy_for_waiter(leader, None, key)
        assert waiter is not leader
        assert waiter._hidden_params["cache_hit"] is True
        assert waiter._hidden_params["cache_key"] == key
        assert leader._hidden_params.get("cache_hit") is not True


# -- the per-call form of directives (every cached function) ----------------------------------


class TestPerCallForm:
    def test_no_cache_for_one_call(self) -> None:
        """fn.cache.controls(no_cache=True)(...) calls again, as inside cache_controls."""
        calls: list[str] = []

        @llm_cached(backend="memory://")
        def ask(prompt: str) -> str:
            calls.append(prompt)
            return prompt.upper()

        ask("a")
        assert ask.cache.controls(no_cache=True)("a") == "A"
        assert calls == ["a", "a"]
        ask("a")
        assert calls == ["a", "a"]

    def test_no_store_and_namespace_for_one_call(self) -> None:
        """Directives apply to the controlled calls only, and merge with an enclosing block."""

        @llm_cached(backend="memory://")
        def ask(prompt: str) -> str:
            return prompt

        draft = ask.cache.controls(no_store=True)
        with cache_controls(namespace="n") as scope:
            draft("a")
            draft("b")
        assert scope.misses == 2
        with cache_controls(namespace="n"):
            assert not ask.cache.contains("a")
        ask("a")
        assert ask.cache.contains("a")

    def test_a_bad_directive_raises_at_controls(self) -> None:
        """An unknown directive or invalid value raises when the form is made."""

        @llm_cached(backend="memory://")
        def ask(prompt: str) -> str:
            return prompt

        with pytest.raises(ConfigurationError, match="unknown directive"):
            ask.cache.controls(no_cahce=True)
        with pytest.raises(ConfigurationError, match="ttl"):
            ask.cache.controls(ttl=-1)

    @pytest.mark.asyncio
    async def test_async_function(self) -> None:
        """For an async def the block is entered inside the awaited call."""
        calls: list[str] = []

        @llm_cached(backend="memory://")
        async def ask(prompt: str) -> str:
            calls.append(prompt)
            return prompt

        await ask.cache.controls(no_store=True)("a")
        assert not await ask.cache.acontains("a")
        await ask("a")
        await ask.cache.controls(only_if_cached=True)("a")
        assert calls == ["a", "a"]

    def test_bound_method(self) -> None:
        """obj.method.cache.controls(...) calls the bound method (the instance is keyed)."""

        class Bot:
            def __init__(self) -> None:
                self.calls = 0

            def __repr__(self) -> str:
                return "Bot()"

            @llm_cached(backend="memory://", key=lambda self, prompt: prompt)
            def ask(self, prompt: str) -> str:
                self.calls += 1
                return prompt

        bot = Bot()
        bot.ask("a")
        bot.ask.cache.controls(no_cache=True)("a")
        bot.ask("a")
        assert bot.calls == 2

    def test_generator_function(self) -> None:
        """A generator's policy is taken at the call: no_store holds while it is iterated."""

        @llm_cached(backend="memory://")
        def chunks(prompt: str) -> Iterator[str]:
            yield from prompt

        assert list(chunks.cache.controls(no_store=True)("ab")) == ["a", "b"]
        assert not chunks.cache.contains("ab")
        assert list(chunks("ab")) == ["a", "b"]
        assert chunks.cache.contains("ab")
