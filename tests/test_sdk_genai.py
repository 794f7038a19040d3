"""google-genai is first class (``llm_memo.sdks.google_genai``): real ``genai.Client`` calls
against a loopback stub round-trip as the SDK's own types, count ``usage_metadata`` tokens, key
the endpoint but never the API key, and embed the user text of ``contents``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from llm_memo import configure, llm_cached, sdks
from llm_memo.keys import KeyBuilder
from llm_memo.sdks import google_genai
from tests.stubs import StubHandler, serve
from tests.third_party.dict_backend import DictBackend

SECRET = "gk-live-secret-123"
USAGE = {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}


def _response(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
        "modelVersion": "gemini-x",
        "responseId": "r-1",
    }
    if usage is not None:
        out["usageMetadata"] = usage
    return out


@dataclass
class Stub:
    """The loopback Gemini API: what it was asked, and its base URL."""

    base_url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    embedded: list[list[str]] = field(default_factory=list)  # the texts of each embed request


def embedding_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 97)]


class _Gemini(StubHandler):
    stub: Stub

    def do_POST(self) -> None:
        raw = self.read_body()
        self.stub.requests.append((self.path, dict(self.headers)))
        if ":streamGenerateContent" in self.path:
            # SSE, as the Gemini API answers ?alt=sse: usage grows to its total on the last chunk.
            chunks = [_response("Hel", {"promptTokenCount": 4}), _response("lo", USAGE)]
            body = b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)
            kind = "text/event-stream"
        elif "mbedContent" in self.path:  # :embedContent / :batchEmbedContents
            # one embedding per content sent, derived from its text (the log says what was sent)
            request = json.loads(raw)
            contents = [r["content"] for r in request.get("requests", [])] or [request["content"]]
            texts = ["".join(p.get("text", "") for p in c["parts"]) for c in contents]
            self.stub.embedded.append(texts)
            vectors = [{"values": embedding_of(t)} for t in texts]
            body, kind = json.dumps({"embeddings": vectors}).encode(), "application/json"
        else:
            body, kind = json.dumps(_response("Hello", USAGE)).encode(), "application/json"
        self.reply(body, kind)


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(base_url="")
    with serve(_Gemini, stub=state) as url:
        state.base_url = url
        yield state


def client_for(base_url: str, api_key: str = SECRET) -> genai.Client:
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=base_url))


def async_client_for(base_url: str) -> genai.Client:
    """A client whose async calls go through httpx: with aiohttp installed (litellm brings it)
    the SDK would otherwise subclass aiohttp's ClientSession, a DeprecationWarning here."""
    options = types.HttpOptions(base_url=base_url, httpx_async_client=httpx.AsyncClient())
    return genai.Client(api_key=SECRET, http_options=options)


def stored_bytes(backend: DictBackend) -> bytes:
    return b"".join(raw for raw, _ in backend.data.values())


class TestRoundTrip:
    def test_generate_content_hits_as_the_same_type(self, stub: Stub) -> None:
        """generate_content: the second call is answered from the cache as an equal
        GenerateContentResponse, and the stats count its usage_metadata total."""
        client = client_for(stub.base_url)
        generate = llm_cached(backend="memory://")(client.models.generate_content)
        first = generate(model="gemini-x", contents="hi")
        second = generate(model="gemini-x", contents="hi")
        assert type(second) is types.GenerateContentResponse
        assert second == first
        assert second.text == "Hello"
        assert len(stub.requests) == 1
        assert stub.requests[0][0].endswith("/models/gemini-x:generateContent")
        stats = generate.cache.stats()
        assert (stats.hits, stats.misses, stats.tokens_saved) == (1, 1, 7)

    def test_a_hit_saves_input_and_output_tokens_apart_at_the_models_price(
        self, stub: Stub
    ) -> None:
        """usage_metadata splits into input (prompt) and output (candidates) tokens, and the
        hit is priced by the model_version the response names."""
        configure(prices={"gemini-x": {"input": 1.0, "output": 10.0}})  # USD per 1M tokens
        client = client_for(stub.base_url)  # kept: a collected genai Client closes its transport
        generate = llm_cached(backend="memory://")(client.models.generate_content)
        generate(model="gemini-x", contents="hi")
        generate(model="gemini-x", contents="hi")
        stats = generate.cache.stats()
        assert (stats.input_tokens_saved, stats.output_tokens_saved) == (4, 3)
        assert stats.cost_saved == pytest.approx((4 * 1.0 + 3 * 10.0) / 1e6)

    def test_generate_content_stream_replays_its_chunks(self, stub: Stub) -> None:
        """generate_content_stream: the replay yields the same GenerateContentResponse chunks,
        in order; the tokens are those of the last chunk that reports usage."""
        client = client_for(stub.base_url)
        stream = llm_cached(backend="memory://")(client.models.generate_content_stream)
        first = list(stream(model="gemini-x", contents="hi"))
        second = list(stream(model="gemini-x", contents="hi"))
        assert [type(c) for c in second] == [types.GenerateContentResponse] * 2
        assert second == first
        assert "".join(c.text or "" for c in second) == "Hello"
        assert len(stub.requests) == 1
        assert "streamGenerateContent?alt=sse" in stub.requests[0][0]
        assert stream.cache.stats().tokens_saved == 7

    @pytest.mark.asyncio
    async def test_async_generate_content(self, stub: Stub) -> None:
        """client.aio.models.generate_content hits as the same type."""
        client = async_client_for(stub.base_url)
        generate = llm_cached(backend="memory://")(client.aio.models.generate_content)
        first = await generate(model="gemini-x", contents="hi")
        second = await generate(model="gemini-x", contents="hi")
        assert type(second) is types.GenerateContentResponse
        assert second == first
        assert len(stub.requests) == 1
        assert generate.cache.stats().tokens_saved == 7

    @pytest.mark.asyncio
    async def test_async_stream_is_an_awaitable_returning_an_async_iterator(
        self, stub: Stub
    ) -> None:
        """client.aio.models.generate_content_stream is awaited for its async iterator, on a
        miss and on a hit alike; the hit replays the same chunks."""
        client = async_client_for(stub.base_url)
        stream = llm_cached(backend="memory://")(client.aio.models.generate_content_stream)
        first = [c async for c in await stream(model="gemini-x", contents="hi")]
        second = [c async for c in await stream(model="gemini-x", contents="hi")]
        assert [type(c) for c in second] == [types.GenerateContentResponse] * 2
        assert second == first
        assert len(stub.requests) == 1
        assert stream.cache.stats().tokens_saved == 7

    def test_embed_content_caches_each_string_and_sends_only_new_ones(self, stub: Stub) -> None:
        """embed_content(contents=[...]) caches each string on its own: a batch with some new
        strings sends only those (each once), and the answer is one EmbedContentResponse with
        every embedding in request order; an all-cached batch sends nothing."""
        client = client_for(stub.base_url)
        embed = llm_cached(backend="memory://")(client.models.embed_content)
        first = embed(model="text-embedding-x", contents=["a", "bb"])
        assert type(first) is types.EmbedContentResponse
        second = embed(model="text-embedding-x", contents=["ccc", "a", "ccc", "bb"])
        assert type(second) is types.EmbedContentResponse
        assert [e.values for e in second.embeddings or []] == [
            embedding_of(t) for t in ["ccc", "a", "ccc", "bb"]
        ]
        third = embed(model="text-embedding-x", contents=["bb", "a"])
        assert [e.values for e in third.embeddings or []] == [embedding_of("bb"), embedding_of("a")]
        assert stub.embedded == [["a", "bb"], ["ccc"]]
        stats = embed.cache.stats()
        assert (stats.hits, stats.misses) == (2 + 1 + 2, 2 + 1)

    def test_embed_content_of_one_string_or_content_objects_is_cached_whole(
        self, stub: Stub
    ) -> None:
        """A single string, or Content objects (whose grouping the SDK decides), are one entry."""
        client = client_for(stub.base_url)
        embed = llm_cached(backend="memory://")(client.models.embed_content)
        embed(model="text-embedding-x", contents="a")
        embed(model="text-embedding-x", contents="a")
        parts = [
            types.Content(parts=[types.Part(text="x")]),
            types.Content(parts=[types.Part(text="y")]),
        ]
        embed(model="text-embedding-x", contents=parts)
        embed(model="text-embedding-x", contents=parts)
        assert stub.embedded == [["a"], ["x", "y"]]

    def test_a_function_of_yours_returning_the_type_is_allow_listed(self, stub: Stub) -> None:
        """Without a return annotation naming it, a GenerateContentResponse is still stored
        and restored (an SDK type whose module the program has imported)."""
        client = client_for(stub.base_url)
        calls: list[str] = []

        @llm_cached(backend="memory://")
        def ask(q: str) -> Any:  # Any: no annotation names the type
            calls.append(q)
            return client.models.generate_content(model="gemini-x", contents=q)

        assert ask("hi") == ask("hi")
        assert type(ask("hi")) is types.GenerateContentResponse
        assert calls == ["hi"]


class TestCredentials:
    def test_the_api_key_never_reaches_the_stored_bytes_or_the_key(self, stub: Stub) -> None:
        """The API key goes to the server (x-goog-api-key) but into no stored byte, no request
        view; clients with other keys on the same server share entries."""
        backend = DictBackend()
        client = client_for(stub.base_url)
        generate = llm_cached(backend=backend)(client.models.generate_content)
        generate(model="gemini-x", contents="hi")
        stream = llm_cached(backend=backend, name="s")(client.models.generate_content_stream)
        list(stream(model="gemini-x", contents="hi"))
        assert all(headers.get("x-goog-api-key") == SECRET for _, headers in stub.requests)
        raw = stored_bytes(backend)
        assert b"Hello" in raw  # the scan reads plain entries
        assert b"lo" in raw
        assert SECRET.encode() not in raw
        other_client = client_for(stub.base_url, api_key="another-key")
        other = llm_cached(backend=backend)(other_client.models.generate_content)
        assert other(model="gemini-x", contents="hi").text == "Hello"
        assert len(stub.requests) == 2  # a hit for the other key
        view = KeyBuilder(generate.__wrapped__, "g").canonical_view(
            (), {"model": "gemini-x", "contents": "hi"}
        )
        assert SECRET not in json.dumps(view)

    def test_key_headers_never_key_the_api_key_header(self, stub: Stub) -> None:
        """x-goog-api-key is a credential header: key_headers= cannot bring it into the key."""
        assert "x-goog-api-key" in sdks.CREDENTIAL_HEADERS
        client = client_for(stub.base_url)
        assert google_genai.default_headers(client._api_client)["x-goog-api-key"] == SECRET


class TestEndpoint:
    def view(self, client: genai.Client, aio: bool = False) -> Any:
        models: Any = client.aio.models if aio else client.models
        return KeyBuilder(models.generate_content, "g").canonical_view(
            (), {"model": "m", "contents": "hi"}
        )

    def test_gemini_api_endpoint(self) -> None:
        """The endpoint is the backend, base URL and API version; sync and async agree."""
        client = client_for("http://user:pw@127.0.0.1:9/?key=q&tier=1")
        endpoint = self.view(client)["$endpoint"]
        assert endpoint == {
            "vertexai": False,
            "base_url": "http://127.0.0.1:9/",
            "query": {"tier": "1"},
            "api_version": "v1",
        }
        assert self.view(client, aio=True)["$endpoint"] == endpoint

    def test_transport_objects_are_not_keyed(self) -> None:
        """A client given its own httpx client answers from the same server: the same key."""
        plain = client_for("http://127.0.0.1:9")
        options = types.HttpOptions(
            base_url="http://127.0.0.1:9", httpx_async_client=httpx.AsyncClient(), timeout=5
        )
        own = genai.Client(api_key="other", http_options=options)
        assert self.view(own, aio=True) == self.view(plain)

    def test_servers_and_versions_do_not_share_keys(self) -> None:
        """Another base URL or API version is another server: another key."""
        a = client_for("http://127.0.0.1:9")
        b = client_for("http://127.0.0.1:10")
        v1 = genai.Client(
            api_key="k",
            http_options=types.HttpOptions(base_url="http://127.0.0.1:9", api_version="v1beta"),
        )
        assert len({json.dumps(self.view(c), sort_keys=True) for c in (a, b, v1)}) == 3

    def test_vertex_keys_project_and_location_never_credentials(self) -> None:
        """On Vertex AI the project and location choose what answers; the credentials don't."""
        from google.oauth2.credentials import Credentials

        def vertex(project: str, token: str) -> genai.Client:
            return genai.Client(
                vertexai=True,
                project=project,
                location="us-central1",
                credentials=Credentials(token=token),
            )

        endpoint = self.view(vertex("p1", "tok-secret"))["$endpoint"]
        assert endpoint["vertexai"] is True
        assert (endpoint["project"], endpoint["location"]) == ("p1", "us-central1")
        assert "tok-secret" not in json.dumps(endpoint)
        assert self.view(vertex("p1", "tok-a")) == self.view(vertex("p1", "tok-b"))
        assert self.view(vertex("p1", "t")) != self.view(vertex("p2", "t"))

    def test_a_changed_base_url_is_read_again(self) -> None:
        """Options replaced on the client change the endpoint read at the next call."""
        client = client_for("http://127.0.0.1:9")
        kb = KeyBuilder(client.models.generate_content, "g")
        before = kb.key((), {"model": "m", "contents": "hi"}, "d")
        client._api_client._http_options = types.HttpOptions(
            base_url="http://127.0.0.1:10", api_version="v1", headers={}
        )
        assert kb.key((), {"model": "m", "contents": "hi"}, "d") != before

    def test_the_profile_is_google_genai(self) -> None:
        """The SDK's own methods are recognised as google.genai's, sync and async."""
        client = client_for("http://127.0.0.1:9")
        for fn in (client.models.generate_content, client.aio.models.generate_content_stream):
            assert sdks.profile_for(fn) is google_genai.SDK
        assert google_genai.SDK.ignores("http_options")
        assert google_genai.SDK.ignores("credentials")


class TestKeys:
    def test_a_content_object_and_its_dict_share_a_key(self) -> None:
        """types.Content keys as its JSON: the equivalent dict is the same request."""
        kb = KeyBuilder(client_for("http://127.0.0.1:9").models.generate_content, "g")
        as_model = [types.Content(role="user", parts=[types.Part(text="hi")])]
        as_dict = [{"role": "user", "parts": [{"text": "hi"}]}]
        assert kb.key((), {"model": "m", "contents": as_model}, "d") == kb.key(
            (), {"model": "m", "contents": as_dict}, "d"
        )

    @pytest.mark.parametrize("spelling", ["http_options", "httpOptions"])
    def test_per_call_transport_in_config_is_never_keyed(self, spelling: str) -> None:
        """config's http_options (headers with a credential, a timeout, an httpx client) is
        dropped before keying, as a model or a dict in either spelling: the key and the request
        view equal those of the same config without it, and never show the header."""
        kb = KeyBuilder(client_for("http://127.0.0.1:9").models.generate_content, "g")
        bare = {
            "model": "m",
            "contents": "hi",
            "config": types.GenerateContentConfig(temperature=0),
        }
        options = types.HttpOptions(headers={"Authorization": "Bearer tok-secret"}, timeout=5)
        as_model = types.GenerateContentConfig(temperature=0, http_options=options)
        with_client = types.GenerateContentConfig(
            temperature=0, http_options=types.HttpOptions(httpx_client=httpx.Client())
        )
        as_dict = {"temperature": 0, spelling: {"headers": {"Authorization": "Bearer tok-secret"}}}
        expected = kb.key((), bare, "d")
        for config in (as_model, with_client, as_dict):
            call = {**bare, "config": config}
            assert kb.key((), call, "d") == expected
            assert "tok-secret" not in json.dumps(kb.canonical_view((), call))
        changed = {**bare, "config": types.GenerateContentConfig(temperature=1)}
        assert kb.key((), changed, "d") != expected


class TestAllowList:
    def test_types_resolve_only_from_the_imported_sdk(self) -> None:
        """google.genai classes resolve by tag; other google packages and unknown names don't."""
        assert sdks.sdk_class("google.genai.types:GenerateContentResponse") is (
            types.GenerateContentResponse
        )
        assert sdks.is_sdk_type(types.GenerateContentResponse)
        assert sdks.sdk_class("google.protobuf.message:Message") is None
        assert sdks.sdk_class("google.genai.types:NoSuchClass") is None

    def test_a_stored_tag_never_imports_the_sdk(self) -> None:
        """In a process that has not imported google.genai, its tags resolve to nothing and the
        lookup imports nothing."""
        code = (
            "import sys, llm_memo\n"
            "from llm_memo import sdks\n"
            "assert sdks.sdk_class('google.genai.types:GenerateContentResponse') is None\n"
            "assert 'google.genai' not in sys.modules, 'imported'\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


class TestUsage:
    def test_usage_metadata_total_or_parts(self) -> None:
        """total_token_count when reported, else prompt + candidates tokens."""
        total = types.GenerateContentResponse.model_validate(_response("x", USAGE))
        assert sdks.usage_tokens(total) == 7
        parts = types.GenerateContentResponse.model_validate(
            _response("x", {"promptTokenCount": 4, "candidatesTokenCount": 2})
        )
        assert sdks.usage_tokens(parts) == 6
        assert sdks.usage_tokens(types.GenerateContentResponse.model_validate(_response("x"))) == 0


class TestTextToEmbed:
    def split(self, contents: Any) -> Any:
        return sdks.split_for_similarity({"model": "m", "contents": contents, "config": None})

    def test_a_string(self) -> None:
        """contents="..." is the text; the context keeps model and config."""
        assert self.split("what is 2+2?") == (
            {"model": "m", "contents": None, "config": None},
            "what is 2+2?",
        )

    def test_a_list_of_strings(self) -> None:
        """A list of strings is one user turn's parts: joined by newlines."""
        context, text = self.split(["a", "b"])
        assert (context["contents"], text) == ([None, None], "a\nb")

    def test_content_turns_keep_what_is_not_user_text(self) -> None:
        """User text parts are embedded; model turns and non-text parts stay in the context."""
        image = {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
        contents = [
            {"role": "user", "parts": [{"text": "describe"}, image]},
            {"role": "model", "parts": [{"text": "a cat"}]},
            {"parts": [{"text": "and its colour?"}]},
        ]
        context, text = self.split(contents)
        assert text == "describe\nand its colour?"
        assert context["contents"] == [
            {"role": "user", "parts": [{"text": None}, image]},
            {"role": "model", "parts": [{"text": "a cat"}]},
            {"parts": [{"text": None}]},
        ]

    def test_content_models_canonicalise_to_the_same_split(self) -> None:
        """A types.Content argument keys as its JSON: it splits like the dict form."""
        client = client_for("http://127.0.0.1:9")
        view = KeyBuilder(client.models.generate_content, "g").canonical_view(
            (),
            {
                "model": "m",
                "contents": [types.Content(role="user", parts=[types.Part(text="hello")])],
            },
        )
        found = sdks.split_for_similarity(view)
        assert found is not None
        assert found[1] == "hello"

    def test_a_semantic_backend_matches_similar_contents(self, stub: Stub) -> None:
        """Through a semantic backend, a near-identical prompt hits on the same model, and the
        same prompt for another model misses (the context is exact)."""
        from tests.test_semantic_integration import ToySemantic

        client = client_for(stub.base_url)
        generate = llm_cached(backend=ToySemantic(threshold=0.8))(client.models.generate_content)
        generate(model="gemini-x", contents="what is the capital of france")
        hit = generate(model="gemini-x", contents="what is the capital of france please")
        assert type(hit) is types.GenerateContentResponse
        assert len(stub.requests) == 1
        generate(model="gemini-y", contents="what is the capital of france")
        assert len(stub.requests) == 2

    def test_no_user_text(self) -> None:
        """Only a model turn, or no contents: nothing to embed."""
        assert self.split([{"role": "model", "parts": [{"text": "x"}]}]) is None
        assert self.split("") is None
