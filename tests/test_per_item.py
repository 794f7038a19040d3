"""Embeddings cached per item (``llm_memo._per_item``): each input of a batch has its own entry,
and a batch sends only the inputs no entry answers.

The real openai and litellm packages talk to a loopback stand-in for ``POST /v1/embeddings``
whose request log shows exactly which inputs each call sent. Its embedding of a text depends on
the text, the model and ``dimensions``, so an answer served for the wrong item or parameters
shows; its usage is one token per character (or per token of a token array).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network when litellm imports

import litellm
import openai

from llm_memo import CacheMiss, ConfigurationError, cache_controls, configure, llm_cached
from llm_memo._per_item import token_shares
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.recording import RecordingBackend
from llm_memo.errors import BackendError
from llm_memo.events import Event
from llm_memo.sdks import per_item_for
from llm_memo.testing import FakeClock
from tests.stubs import StubHandler, serve
from tests.test_semantic_integration import ToySemantic

# litellm's first call imports modules that warn (pydantic on its TypedDicts).
litellm_warnings = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

MODEL = "text-embedding-3-small"


def vector(text: Any, model: str, dimensions: int | None) -> list[float]:
    """The stub's embedding: distinct per text, model and dimensions (exact in float32)."""
    raw = text if isinstance(text, str) else json.dumps(text)
    return [
        float(len(raw)),
        float(sum(map(ord, raw)) % 1000),
        float(dimensions or 0),
        float(sum(map(ord, model)) % 100),
    ]


def tokens(text: Any) -> int:
    return len(text)


class _Embeddings(StubHandler):
    log: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.read_body())
        self.log.append(body)
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if any(isinstance(t, str) and "FAIL" in t for t in inputs):
            self.reply_json({"error": {"message": "boom", "type": "server_error"}}, 500)
            return
        data = []
        for i, text in enumerate(inputs):
            vec: Any = vector(text, body["model"], body.get("dimensions"))
            if body.get("encoding_format") == "base64":
                vec = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        used = sum(tokens(t) for t in inputs)
        self.reply_json(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": used, "total_tokens": used},
            }
        )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    log: list[dict[str, Any]] = []
    with serve(_Embeddings, log=log) as url:
        yield f"{url}/v1", log


@pytest.fixture
def url(server: tuple[str, list[dict[str, Any]]]) -> str:
    return server[0]


@pytest.fixture
def log(server: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The inputs each request sent, for this test only."""
    server[1].clear()
    return server[1]


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock(1_000_000.0)
    configure(clock=clock)
    return clock


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock=clock)


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0)


@pytest.fixture
def create(client: openai.OpenAI, backend: MemoryBackend) -> Any:
    return llm_cached(backend=backend)(client.embeddings.create)


def sent(log: list[dict[str, Any]]) -> list[Any]:
    return [body["input"] for body in log]


def embeddings(response: Any) -> list[Any]:
    return [item.embedding for item in response.data]


def expected(texts: list[str], model: str = MODEL, dimensions: int | None = None) -> list[Any]:
    return [vector(t, model, dimensions) for t in texts]


class TestOpenAIBatches:
    def test_an_all_hit_batch_makes_no_call_and_keeps_request_order(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """Every item seen before: no request; items in the request's order, index 0..n-1,
        the SDK's own type, and zero tokens used (nothing was sent)."""
        create(model=MODEL, input=["alpha", "be"])
        response = create(model=MODEL, input=["be", "alpha"])
        assert sent(log) == [["alpha", "be"]]
        assert type(response) is openai.types.CreateEmbeddingResponse
        assert embeddings(response) == expected(["be", "alpha"])
        assert [item.index for item in response.data] == [0, 1]
        assert response.model == MODEL
        assert response.usage.prompt_tokens == response.usage.total_tokens == 0

    def test_a_partial_batch_sends_only_the_new_items(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """Two items cached, two new: the request carries only the new two; the answer has all
        four in order, renumbered, with the usage the provider reported for the two sent."""
        create(model=MODEL, input=["aa", "bbb"])
        response = create(model=MODEL, input=["aa", "cccc", "bbb", "d"])
        assert sent(log) == [["aa", "bbb"], ["cccc", "d"]]
        assert embeddings(response) == expected(["aa", "cccc", "bbb", "d"])
        assert [item.index for item in response.data] == [0, 1, 2, 3]
        assert response.usage.total_tokens == len("cccc") + len("d")
        assert response.usage.prompt_tokens == 5

    def test_duplicates_in_a_batch_are_sent_once(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """["x", "y", "x"] sends ["x", "y"] and answers three items; the two "x" answers are
        equal but separate objects, as a fresh call's would be."""
        response = create(model=MODEL, input=["x", "y", "x"])
        assert sent(log) == [["x", "y"]]
        assert embeddings(response) == expected(["x", "y", "x"])
        assert [item.index for item in response.data] == [0, 1, 2]
        assert response.data[0].embedding is not response.data[2].embedding

    def test_a_failed_call_stores_nothing(self, create: Any, log: list[dict[str, Any]]) -> None:
        """A batch whose call fails raises the SDK's error; none of its items is stored."""
        with pytest.raises(openai.InternalServerError):
            create(model=MODEL, input=["ok", "FAIL"])
        create(model=MODEL, input=["ok"])
        assert sent(log) == [["ok", "FAIL"], ["ok"]]

    def test_model_dimensions_and_encoding_format_are_in_each_item_key(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """The same text under another model, dimensions or encoding_format is another item."""
        create(model=MODEL, input=["t"])
        create(model="other-model", input=["t"])
        small = create(model=MODEL, input=["t"], dimensions=2)
        floats = create(model=MODEL, input=["t"], encoding_format="float")
        assert len(log) == 4
        assert embeddings(small) == expected(["t"], dimensions=2)
        assert embeddings(floats) == expected(["t"])
        keys = {
            create.cache.key(model=MODEL, input=["t"]),
            create.cache.key(model="other-model", input=["t"]),
            create.cache.key(model=MODEL, input=["t"], dimensions=2),
            create.cache.key(model=MODEL, input=["t"], encoding_format="float"),
        }
        assert len(keys) == 4
        create(model=MODEL, input=["t", "u"], dimensions=2)
        assert sent(log)[-1] == ["u"]

    def test_base64_answers_merge_as_they_came(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """encoding_format="base64": the stored and merged items keep the provider's strings."""
        create(model=MODEL, input=["p"], encoding_format="base64")
        response = create(model=MODEL, input=["q", "p"], encoding_format="base64")
        assert sent(log) == [["p"], ["q"]]
        decoded = [list(struct.unpack("<4f", base64.b64decode(e))) for e in embeddings(response)]
        assert decoded == expected(["q", "p"])

    def test_each_item_is_the_entry_of_its_one_item_batch(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """An item's entry is what input=[item] returns: the handle finds it under that call."""
        create(model=MODEL, input=["m", "n"])
        assert create.cache.contains(model=MODEL, input=["m"])
        one = create.cache.get(model=MODEL, input=["n"])
        assert embeddings(one) == expected(["n"])
        assert one.data[0].index == 0
        assert not create.cache.contains(model=MODEL, input=["m", "n"])  # batches have none

    def test_a_single_string_is_cached_whole_as_before(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """input="s" (no list) is one entry of its own, as any call."""
        create(model=MODEL, input="s")
        again = create(model=MODEL, input="s")
        assert sent(log) == ["s"]
        assert embeddings(again) == expected(["s"])
        create(model=MODEL, input=["s"])
        assert sent(log) == ["s", ["s"]]

    def test_token_arrays_are_items_and_one_array_is_one_input(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """input=[[1, 2], [3]] is two items; input=[1, 2, 3] is one input, cached whole."""
        create(model=MODEL, input=[[1, 2], [3]])
        create(model=MODEL, input=[[3], [4, 5]])
        create(model=MODEL, input=[1, 2, 3])
        assert sent(log) == [[[1, 2], [3]], [[4, 5]], [1, 2, 3]]

    def test_with_raw_response_is_cached_whole(
        self, client: openai.OpenAI, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """A raw-response wrapper returns no embedding response to split: not per item."""
        raw = llm_cached(backend=backend)(client.embeddings.with_raw_response.create)
        raw(model=MODEL, input=["r", "s"])
        raw(model=MODEL, input=["r"])
        assert sent(log) == [["r", "s"], ["r"]]


class TestStatsAndEvents:
    def test_each_item_counts_once_and_tokens_saved_is_the_split_usage(self, create: Any) -> None:
        """Items sent count as misses, items answered as hits; tokens saved adds each cached
        item's share of its batch's usage, split by text length when it was written."""
        create(model=MODEL, input=["aaaa", "b"])  # usage 5: shares 4 and 1
        create(model=MODEL, input=["b", "aaaa", "cc", "b"])
        stats = create.cache.stats()
        assert (stats.hits, stats.misses) == (2 + 1, 2 + 1)
        assert stats.tokens_saved == 1 + 4 + 1  # the second "b" is answered by the first

    def test_cost_saved_prices_the_items_answered_by_the_embedding_model(self, create: Any) -> None:
        """The items answered save their tokens at the model's price (the model the batch's
        response named, stored with each item), on a call whose outcome is a miss too."""
        events: list[Event] = []
        configure(prices={MODEL: 1.0})  # USD per 1M tokens
        create(model=MODEL, input=["aaaa", "b"])  # usage 5: shares 4 and 1
        configure(on_event=events.append)
        create(model=MODEL, input=["b", "aaaa", "cc"])
        (event,) = events
        assert (event.items_hit, event.items_sent, event.tokens) == (2, 1, 5)
        assert event.model == MODEL
        assert event.cost_saved == pytest.approx(5 / 1e6)
        assert create.cache.stats().cost_saved == pytest.approx(5 / 1e6)

    def test_one_event_per_call_says_items_hit_and_sent(self, create: Any) -> None:
        """A batch call emits one Event with items_hit / items_sent."""
        events: list[Event] = []
        configure(on_event=events.append)
        create(model=MODEL, input=["e1", "e2"])
        create(model=MODEL, input=["e1", "e3"])
        create(model=MODEL, input=["e3", "e1"])
        assert [(e.outcome.value, e.items_hit, e.items_sent) for e in events] == [
            ("miss", 0, 2),
            ("miss", 1, 1),
            ("hit", 2, 0),
        ]
        assert events[2].tokens == 4

    def test_token_shares_add_up_and_follow_length(self) -> None:
        """The split is proportional to length, and the shares sum to the batch's usage."""
        assert token_shares(10, ["a", "bbbb"]) == [2, 8]
        assert sum(token_shares(7, ["a", "b", "c"])) == 7
        assert token_shares(0, ["a", "b"]) == [0, 0]
        assert token_shares(3, ["", ""]) in ([2, 1], [1, 2])


class TestDirectives:
    def test_no_cache_refreshes_every_item(self, create: Any, log: list[dict[str, Any]]) -> None:
        """no_cache sends every (distinct) item and stores their fresh answers."""
        create(model=MODEL, input=["f", "g"])
        with cache_controls(no_cache=True):
            create(model=MODEL, input=["f", "g", "f"])
        assert sent(log) == [["f", "g"], ["f", "g"]]
        assert create.cache.stats().refreshes == 2

    def test_no_store_stores_no_item(self, create: Any, log: list[dict[str, Any]]) -> None:
        """no_store: items are looked up and sent, none is stored."""
        with cache_controls(no_store=True):
            create(model=MODEL, input=["h"])
        create(model=MODEL, input=["h"])
        assert sent(log) == [["h"], ["h"]]

    def test_only_if_cached_with_an_item_missing_raises(
        self, create: Any, log: list[dict[str, Any]]
    ) -> None:
        """only_if_cached: a batch with any item missing is a CacheMiss, and sends nothing."""
        create(model=MODEL, input=["i"])
        with cache_controls(only_if_cached=True):
            assert embeddings(create(model=MODEL, input=["i"])) == expected(["i"])
            with pytest.raises(CacheMiss):
                create(model=MODEL, input=["i", "j"])
        assert sent(log) == [["i"]]

    def test_namespace_and_ttl_apply_to_each_item(
        self, create: Any, log: list[dict[str, Any]], clock: FakeClock
    ) -> None:
        """Items live in the call's namespace and expire after the call's ttl."""
        with cache_controls(namespace="a", ttl=60):
            create(model=MODEL, input=["k"])
        create(model=MODEL, input=["k"])
        with cache_controls(namespace="a"):
            create(model=MODEL, input=["k"])
            clock.advance(61)
            create(model=MODEL, input=["k"])
        assert sent(log) == [["k"], ["k"], ["k"]]

    def test_per_item_false_caches_the_batch_whole(
        self, client: openai.OpenAI, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """per_item=False: a batch is one entry, as before per-item caching."""
        whole = llm_cached(backend=backend, per_item=False)(client.embeddings.create)
        whole(model=MODEL, input=["w", "v"])
        whole(model=MODEL, input=["w", "v"])
        whole(model=MODEL, input=["w"])
        assert sent(log) == [["w", "v"], ["w"]]


class _Flaky(MemoryBackend):
    """A memory backend whose reads or writes fail on demand."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.fail_get = self.fail_set = False

    def get(self, key: str) -> Any:
        if self.fail_get:
            raise BackendError("get refused")
        return super().get(key)

    def set(self, key: str, entry: Any, ttl: float | None = None) -> None:
        if self.fail_set:
            raise BackendError("set refused")
        super().set(key, entry, ttl)


class TestFailures:
    def test_a_failing_read_sends_every_item(
        self, client: openai.OpenAI, clock: FakeClock, log: list[dict[str, Any]]
    ) -> None:
        """Fail-open: when the store cannot be read, the batch is sent whole and answered."""
        store = _Flaky(clock)
        create = llm_cached(backend=store)(client.embeddings.create)
        create(model=MODEL, input=["r1"])
        store.fail_get = True
        response = create(model=MODEL, input=["r1", "r2"])
        assert sent(log) == [["r1"], ["r1", "r2"]]
        assert embeddings(response) == expected(["r1", "r2"])
        assert create.cache.stats().errors == 2

    def test_a_failing_write_still_answers(
        self, client: openai.OpenAI, clock: FakeClock, log: list[dict[str, Any]]
    ) -> None:
        """A write that fails is counted as an error; the answer is returned all the same."""
        store = _Flaky(clock)
        create = llm_cached(backend=store)(client.embeddings.create)
        store.fail_set = True
        response = create(model=MODEL, input=["w1", "w2"])
        assert embeddings(response) == expected(["w1", "w2"])
        assert create.cache.stats().errors == 2
        store.fail_set = False
        create(model=MODEL, input=["w1"])
        assert sent(log) == [["w1", "w2"], ["w1"]]

    def test_stale_if_error_answers_a_failed_batch_from_expired_items(
        self, backend: MemoryBackend, clock: FakeClock
    ) -> None:
        """The call fails and every missing item has a recent enough expired entry: served."""
        down: list[bool] = []

        @llm_cached(backend=backend, per_item="texts", ttl=10)
        def embed(texts: list[str]) -> list[int]:
            if down:
                raise RuntimeError("provider down")
            return [len(t) for t in texts]

        embed(["aa", "b"])
        clock.advance(20)
        down.append(True)
        with cache_controls(stale_if_error=100):
            assert embed(["b", "aa"]) == [1, 2]
            with pytest.raises(RuntimeError):
                embed(["b", "new"])
        assert embed.cache.stats().stale == 2

    def test_a_semantic_backend_caches_batches_whole(
        self, client: openai.OpenAI, log: list[dict[str, Any]]
    ) -> None:
        """Per-item entries are exact: on a semantic backend a batch is one request, as
        before (a repeat of the batch hits; a batch sharing items with it does not)."""
        create = llm_cached(backend=ToySemantic())(client.embeddings.create)
        create(model=MODEL, input=["s1", "s2"])
        create(model=MODEL, input=["s1", "s2"])
        create(model=MODEL, input=["s1", "s3"])
        assert sent(log) == [["s1", "s2"], ["s1", "s3"]]


class TestAsyncClient:
    def test_async_client_sends_only_new_items(
        self, url: str, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """AsyncOpenAI's embeddings.create: the same per-item behaviour, awaited."""

        async def run() -> Any:
            client = openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0)
            create = llm_cached(backend=backend)(client.embeddings.create)
            await create(model=MODEL, input=["one", "two"])
            response = await create(model=MODEL, input=["three", "one", "two"])
            await client.close()
            return response

        response = asyncio.run(run())
        assert sent(log) == [["one", "two"], ["three"]]
        assert embeddings(response) == expected(["three", "one", "two"])
        assert [item.index for item in response.data] == [0, 1, 2]
        assert response.usage.total_tokens == len("three")


@litellm_warnings
class TestLitellm:
    def test_profile_batches_litellm_embedding(self) -> None:
        """litellm.embedding / aembedding are embedding endpoints of its profile."""
        assert per_item_for(litellm.embedding) is not None
        assert per_item_for(litellm.aembedding) is not None
        assert per_item_for(litellm.completion) is None

    def test_embedding_sends_only_new_items(
        self, url: str, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """litellm.embedding against the stub: partial batches send only the new items and
        return litellm's EmbeddingResponse with every item in order."""
        embedding: Any = llm_cached(backend=backend)(litellm.embedding)
        call: dict[str, Any] = {"model": f"openai/{MODEL}", "api_base": url, "api_key": "k"}
        embedding(**call, input=["l1", "l22"])
        response = embedding(**call, input=["l333", "l1", "l22", "l1"])
        assert sent(log) == [["l1", "l22"], ["l333"]]
        assert type(response) is litellm.EmbeddingResponse
        assert [d["embedding"] for d in response.data] == expected(["l333", "l1", "l22", "l1"])
        assert [d["index"] for d in response.data] == [0, 1, 2, 3]
        assert response.usage.total_tokens == 4
        hit = embedding(**call, input=["l22"])
        assert hit._hidden_params["cache_hit"] is True
        assert len(log) == 2

    def test_litellm_no_cache_control_refreshes_every_item(
        self, url: str, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """litellm's own cache={"no-cache": True} applies to every item of the batch."""
        embedding: Any = llm_cached(backend=backend)(litellm.embedding)
        call: dict[str, Any] = {"model": f"openai/{MODEL}", "api_base": url, "api_key": "k"}
        embedding(**call, input=["n1"])
        embedding(**call, input=["n1", "n2"], cache={"no-cache": True})
        assert sent(log) == [["n1"], ["n1", "n2"]]

    def test_aembedding_sends_only_new_items(
        self, url: str, backend: MemoryBackend, log: list[dict[str, Any]]
    ) -> None:
        """litellm.aembedding(input=[...]): the same, awaited."""
        aembedding = llm_cached(backend=backend)(litellm.aembedding)
        call: dict[str, Any] = {"model": f"openai/{MODEL}", "api_base": url, "api_key": "k"}

        async def run() -> Any:
            await aembedding(**call, input=["z1"])
            return await aembedding(**call, input=["z1", "z22"])

        response = asyncio.run(run())
        assert sent(log) == [["z1"], ["z22"]]
        assert [d["embedding"] for d in response.data] == expected(["z1", "z22"])


class TestYourFunction:
    def test_per_item_on_a_function_returning_a_list(self, backend: MemoryBackend) -> None:
        """per_item="texts": each text cached on its own; the function gets only new texts,
        by keyword or by position, and the batch's answer is a list in request order."""
        calls: list[list[str]] = []

        @llm_cached(backend=backend, per_item="texts")
        def embed(texts: list[str], model: str = "m") -> list[list[float]]:
            calls.append(list(texts))
            return [vector(t, model, None) for t in texts]

        assert embed(["a", "b"]) == expected(["a", "b"], model="m")
        assert embed(texts=["c", "a", "b", "c"]) == expected(["c", "a", "b", "c"], model="m")
        assert embed(["b"], model="m2") == expected(["b"], model="m2")
        assert calls == [["a", "b"], ["c"], ["b"]]
        assert embed.cache.stats().hits == 3

    def test_per_item_on_a_method(self, backend: MemoryBackend) -> None:
        """A method's list parameter is found past self, positional or not."""
        calls: list[list[str]] = []

        class Embedder:
            @llm_cached(backend=backend, per_item="texts", ignore=("self",))
            def embed(self, texts: list[str]) -> list[int]:
                calls.append(list(texts))
                return [len(t) for t in texts]

        e = Embedder()
        assert e.embed(["aa", "b"]) == [2, 1]
        assert e.embed(["ccc", "aa"]) == [3, 2]
        assert e.embed(texts=["b", "dddd"]) == [1, 4]
        assert calls == [["aa", "b"], ["ccc"], ["dddd"]]

    def test_a_result_without_one_answer_per_item_is_not_stored(
        self, backend: MemoryBackend
    ) -> None:
        """A result of another length cannot be split: nothing is stored, and a partial batch
        is called again whole (its answer is the function's own)."""
        calls: list[list[str]] = []
        extra: list[int] = []

        @llm_cached(backend=backend, per_item="texts")
        def embed(texts: list[str]) -> list[int]:
            calls.append(list(texts))
            return [len(t) for t in texts] + extra

        assert embed(["a"]) == [1]
        extra.append(0)
        assert embed(["a", "bb"]) == [1, 2, 0]
        assert calls == [["a"], ["bb"], ["a", "bb"]]
        assert not embed.cache.contains(["bb"])
        assert embed(["cc"]) == [2, 0]  # the whole request was sent: returned as it came
        assert not embed.cache.contains(["cc"])

    def test_recordings_show_each_item_s_one_item_request(self, tmp_path: Path) -> None:
        """A recordings store writes one file per item, whose request is the one-item call."""
        store = RecordingBackend(tmp_path)

        @llm_cached(backend=store, per_item="texts")
        def embed(texts: list[str]) -> list[int]:
            return [len(t) for t in texts]

        embed(["aa", "b", "aa"])
        requests = sorted(
            json.loads(p.read_text())["request"]["texts"] for p in tmp_path.rglob("*.json")
        )
        assert requests == [["aa"], ["b"]]

    def test_bad_per_item_options_are_refused_at_decoration(self) -> None:
        """An unknown parameter, a non-name, a generator or a name the SDK does not batch."""

        def embed(texts: list[str]) -> list[int]:
            return [len(t) for t in texts]

        def stream(texts: list[str]) -> Iterator[int]:
            yield from (len(t) for t in texts)

        with pytest.raises(ConfigurationError, match="no such parameter"):
            llm_cached(per_item="input")(embed)
        with pytest.raises(ConfigurationError, match="per_item"):
            llm_cached(per_item=3)(embed)
        with pytest.raises(ConfigurationError, match="generator"):
            llm_cached(per_item="texts")(stream)
        client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k")
        with pytest.raises(ConfigurationError, match="'input'"):
            llm_cached(per_item="texts")(client.embeddings.create)


VOCABULARY = ["a", "bb", "ccc", "dddd", "e", "ff"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(
        st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=6), min_size=1, max_size=4
    )
)
def test_merged_answers_equal_a_fresh_call_item_for_item(
    client: openai.OpenAI, server: tuple[str, list[dict[str, Any]]], batches: list[list[str]]
) -> None:
    """Any run of batches over a small vocabulary: every answer equals what an uncached call
    returns, item for item (embedding and index), and each request sent exactly the items not
    seen before, once each, in order of first appearance."""
    log = server[1]
    create = llm_cached(backend=MemoryBackend())(client.embeddings.create)
    seen: set[str] = set()
    for batch in batches:
        log.clear()
        response = create(model=MODEL, input=batch)
        new = list(dict.fromkeys(t for t in batch if t not in seen))
        assert sent(log) == ([new] if new else [])
        seen.update(batch)
        fresh = client.embeddings.create(model=MODEL, input=batch)
        assert [(d.embedding, d.index) for d in response.data] == [
            (d.embedding, d.index) for d in fresh.data
        ]
