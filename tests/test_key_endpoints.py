"""A bound SDK client method keys the client's endpoint, never its credentials (SPEC §4).

Real openai / anthropic clients, built against loopback base URLs; computing keys makes no
network call.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import anthropic
import openai
import pytest

from llm_memo import llm_cached
from llm_memo.keys import KeyBuilder

A = "http://127.0.0.1:9/v1"
B = "http://127.0.0.1:10/v1"
MSGS = [{"role": "user", "content": "hi"}]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSGS}
MESSAGE: dict[str, Any] = {"model": "claude-x", "messages": MSGS, "max_tokens": 5}


def key_of(fn: Any, **kwargs: Any) -> str:
    return KeyBuilder(fn, "create").key((), kwargs, "d")


def view_of(fn: Any, **kwargs: Any) -> Any:
    return KeyBuilder(fn, "create").canonical_view((), kwargs)


class TestOpenAI:
    @pytest.mark.parametrize("cls", [openai.OpenAI, openai.AsyncOpenAI])
    def test_two_servers_never_share_a_key(self, cls: Any) -> None:
        """OpenAI(base_url=A) and OpenAI(base_url=B): same request, different keys."""
        a = cls(base_url=A, api_key="sk-a").chat.completions.create
        b = cls(base_url=B, api_key="sk-a").chat.completions.create
        assert key_of(a, **CHAT) != key_of(b, **CHAT)

    def test_credentials_are_never_keyed(self) -> None:
        """Clients on one server with other API keys, organisations and projects share keys;
        none of those values is in the request view."""
        a = openai.OpenAI(base_url=A, api_key="sk-live-a", organization="org-a", project="p-a")
        b = openai.OpenAI(base_url=A, api_key="sk-live-b", organization="org-b", project="p-b")
        create_a, create_b = a.chat.completions.create, b.chat.completions.create
        assert key_of(create_a, **CHAT) == key_of(create_b, **CHAT)
        text = json.dumps(view_of(create_a, **CHAT))
        for secret in ("sk-live", "org-a", "p-a"):
            assert secret not in text, text

    def test_user_info_and_credential_query_are_left_out(self) -> None:
        """A base URL's user:password and credential-named query parameters are not keyed."""
        a = openai.OpenAI(
            base_url="http://user:pw-1@127.0.0.1:9/v1", api_key="k", default_query={"key": "q1"}
        )
        b = openai.OpenAI(
            base_url="http://other:pw-2@127.0.0.1:9/v1", api_key="k", default_query={"key": "q2"}
        )
        create_a = a.chat.completions.create
        assert key_of(create_a, **CHAT) == key_of(b.chat.completions.create, **CHAT)
        endpoint = view_of(create_a, **CHAT)["$endpoint"]
        assert endpoint == {"base_url": "http://127.0.0.1:9/v1/", "query": {}}

    def test_default_query_is_part_of_the_endpoint(self) -> None:
        """Non-credential default query parameters select what answers: keyed."""
        a = openai.OpenAI(base_url=A, api_key="k", default_query={"tier": "1"})
        b = openai.OpenAI(base_url=A, api_key="k", default_query={"tier": "2"})
        assert key_of(a.chat.completions.create, **CHAT) != key_of(
            b.chat.completions.create, **CHAT
        )

    def test_raw_response_streaming_response_options_and_partial(self) -> None:
        """with_raw_response, with_streaming_response, with_options(...) and partial all key
        the endpoint of the client that answers."""
        a = openai.OpenAI(base_url=A, api_key="k")
        b = openai.OpenAI(base_url=B, api_key="k")
        same_as_a = {
            key_of(a.chat.completions.create, **CHAT),
            key_of(a.with_options(timeout=3, max_retries=1).chat.completions.create, **CHAT),
            key_of(b.with_options(base_url=A).chat.completions.create, **CHAT),
        }
        assert len(same_as_a) == 1, same_as_a
        assert key_of(a.with_options(base_url=B).chat.completions.create, **CHAT) == key_of(
            b.chat.completions.create, **CHAT
        )
        for wrapped in ("with_raw_response", "with_streaming_response"):
            on_a = getattr(a.chat.completions, wrapped).create
            on_b = getattr(b.chat.completions, wrapped).create
            assert view_of(on_a, **CHAT)["$endpoint"]["base_url"] == A + "/"
            assert key_of(on_a, **CHAT) != key_of(on_b, **CHAT)
        partial_a = functools.partial(a.chat.completions.create, model="gpt-4o-mini")
        partial_b = functools.partial(b.chat.completions.create, model="gpt-4o-mini")
        assert KeyBuilder(partial_a, "p").key((), {"messages": MSGS}, "d") != KeyBuilder(
            partial_b, "p"
        ).key((), {"messages": MSGS}, "d")

    def test_changing_base_url_changes_the_key(self) -> None:
        """The endpoint is read at each call: client.base_url = ... takes effect."""
        client = openai.OpenAI(base_url=A, api_key="k")
        kb = KeyBuilder(client.chat.completions.create, "create")
        before = kb.key((), dict(CHAT), "d")
        client.base_url = B
        assert kb.key((), dict(CHAT), "d") != before
        client.base_url = A
        assert kb.key((), dict(CHAT), "d") == before

    def test_other_resources_key_the_endpoint_too(self) -> None:
        """Embeddings and the Responses API are bound resource methods like chat."""
        a = openai.OpenAI(base_url=A, api_key="k")
        b = openai.OpenAI(base_url=B, api_key="k")
        emb: dict[str, Any] = {"model": "e", "input": "x"}
        assert key_of(a.embeddings.create, **emb) != key_of(b.embeddings.create, **emb)
        resp: dict[str, Any] = {"model": "m", "input": "x"}
        assert key_of(a.responses.create, **resp) != key_of(b.responses.create, **resp)

    def test_decorated_clients_answer_from_their_own_server(self) -> None:
        """Through the decorator, two wrapped clients on two servers keep separate entries."""
        a = openai.OpenAI(base_url=A, api_key="k")
        b = openai.OpenAI(base_url=B, api_key="k")
        create_a = llm_cached(backend="memory://")(a.chat.completions.create)
        create_b = llm_cached(backend="memory://")(b.chat.completions.create)
        assert create_a.cache.key(**CHAT) != create_b.cache.key(**CHAT)


class TestAzure:
    def _azure(self, **kw: Any) -> Any:
        options: dict[str, Any] = {
            "azure_endpoint": "http://127.0.0.1:9",
            "api_key": "k",
            "api_version": "2024-06-01",
            "azure_deployment": "dep-1",
        }
        return openai.AzureOpenAI(**{**options, **kw}).chat.completions.create

    def test_deployment_and_api_version_are_keyed(self) -> None:
        """Azure: another deployment or API version is another endpoint."""
        base = key_of(self._azure(), **CHAT)
        assert key_of(self._azure(azure_deployment="dep-2"), **CHAT) != base
        assert key_of(self._azure(api_version="2025-01-01"), **CHAT) != base
        assert key_of(self._azure(azure_endpoint="http://127.0.0.1:10"), **CHAT) != base
        assert key_of(self._azure(api_key="other"), **CHAT) == base

    def test_azure_ad_token_is_not_keyed(self) -> None:
        """Azure AD tokens are credentials: not keyed, not in the view."""
        del_key = self._azure(api_key=None, azure_ad_token="ad-token-1")
        other = self._azure(api_key=None, azure_ad_token="ad-token-2")
        assert key_of(del_key, **CHAT) == key_of(other, **CHAT)
        assert "ad-token" not in json.dumps(view_of(del_key, **CHAT))
        endpoint = view_of(del_key, **CHAT)["$endpoint"]
        assert endpoint["api_version"] == "2024-06-01"
        assert endpoint["deployment"] == "dep-1"

    def test_async_azure(self) -> None:
        """AsyncAzureOpenAI keys its endpoint the same way."""
        a = openai.AsyncAzureOpenAI(
            azure_endpoint="http://127.0.0.1:9", api_key="k", api_version="2024-06-01"
        )
        b = openai.AsyncAzureOpenAI(
            azure_endpoint="http://127.0.0.1:9", api_key="k", api_version="2024-10-21"
        )
        assert key_of(a.chat.completions.create, **CHAT) != key_of(
            b.chat.completions.create, **CHAT
        )


class TestAnthropic:
    @pytest.mark.parametrize("cls", [anthropic.Anthropic, anthropic.AsyncAnthropic])
    def test_two_servers_never_share_a_key(self, cls: Any) -> None:
        """Anthropic(base_url=A) and (base_url=B) key differently; API keys never count."""
        a = cls(base_url=A, api_key="sk-ant-a").messages.create
        b = cls(base_url=B, api_key="sk-ant-a").messages.create
        a2 = cls(base_url=A, api_key="sk-ant-b").messages.create
        assert key_of(a, **MESSAGE) != key_of(b, **MESSAGE)
        assert key_of(a, **MESSAGE) == key_of(a2, **MESSAGE)
        assert "sk-ant" not in json.dumps(view_of(a, **MESSAGE))

    def test_beta_resource_and_client_default_headers(self) -> None:
        """A beta resource keys its endpoint; key_headers= reads the client's default
        headers and the call's extra_headers (the call wins)."""
        client = anthropic.Anthropic(
            base_url=A, api_key="k", default_headers={"anthropic-beta": "b-1"}
        )
        kb = KeyBuilder(client.beta.messages.create, "c", key_headers=("anthropic-beta",))
        view = kb.canonical_view((), dict(MESSAGE))
        assert view["$headers"] == {"anthropic-beta": "b-1"}
        assert "$endpoint" in view
        over = kb.canonical_view((), {**MESSAGE, "extra_headers": {"anthropic-beta": "b-2"}})
        assert over["$headers"] == {"anthropic-beta": "b-2"}
        text = json.dumps(view)
        assert "Bearer" not in text
        assert '"k"' not in text

    def test_vertex_project_and_region(self) -> None:
        """Anthropic on Vertex: project and region choose the server; the token never counts."""

        def vertex(**kw: Any) -> Any:
            options = {"region": "us-east5", "project_id": "p1", "access_token": "tok-1"}
            return anthropic.AnthropicVertex(**{**options, **kw}).messages.create

        base = key_of(vertex(), **MESSAGE)
        assert key_of(vertex(project_id="p2"), **MESSAGE) != base
        assert key_of(vertex(region="europe-west1"), **MESSAGE) != base
        assert key_of(vertex(access_token="tok-2"), **MESSAGE) == base

    def test_bedrock_region(self) -> None:
        """Anthropic on Bedrock: the AWS region is the endpoint; AWS keys never count."""

        def bedrock(**kw: Any) -> Any:
            options = {"aws_region": "us-west-2", "aws_access_key": "a1", "aws_secret_key": "s1"}
            return anthropic.AnthropicBedrock(**{**options, **kw}).messages.create

        base = key_of(bedrock(), **MESSAGE)
        assert key_of(bedrock(aws_region="eu-west-1"), **MESSAGE) != base
        assert key_of(bedrock(aws_access_key="a2", aws_secret_key="s2"), **MESSAGE) == base


class TestClientAsArgument:
    def test_a_client_argument_keys_as_its_endpoint(self) -> None:
        """An SDK client passed as an argument keys by its endpoint instead of being
        unkeyable; credentials never count."""

        def ask(client: Any, prompt: str) -> None: ...

        kb = KeyBuilder(ask, "ask")
        a = openai.OpenAI(base_url=A, api_key="sk-1")
        a2 = openai.OpenAI(base_url=A, api_key="sk-2")
        b = openai.OpenAI(base_url=B, api_key="sk-1")
        assert kb.key((a, "p"), {}, "d") == kb.key((a2, "p"), {}, "d")
        assert kb.key((a, "p"), {}, "d") != kb.key((b, "p"), {}, "d")
        assert kb.key((a.chat.completions, "p"), {}, "d") == kb.key((a, "p"), {}, "d")
        assert "sk-1" not in json.dumps(kb.canonical_view((a, "p"), {}))

    def test_plain_functions_have_no_endpoint(self) -> None:
        """Ordinary functions' views have no endpoint entry."""

        def ask(prompt: str) -> None: ...

        assert KeyBuilder(ask, "ask").canonical_view(("p",), {}) == {"prompt": "p"}


class TestResponseWrappers:
    def test_raw_and_streaming_response_never_share_entries_with_create(self) -> None:
        """with_raw_response.create copies create's name (the same function identity) but
        returns a raw response: its keys differ from create's, and from the streamed one's."""
        client = openai.OpenAI(base_url=A, api_key="k")
        plain = llm_cached(backend="memory://")(client.chat.completions.create)
        raw = llm_cached(backend="memory://")(client.chat.completions.with_raw_response.create)
        streamed = llm_cached(backend="memory://")(
            client.chat.completions.with_streaming_response.create
        )
        assert plain.cache.function_id == raw.cache.function_id
        keys = {plain.cache.key(**CHAT), raw.cache.key(**CHAT), streamed.cache.key(**CHAT)}
        assert len(keys) == 3, keys

    def test_your_own_wraps_wrapper_is_its_own_request(self) -> None:
        """A functools.wraps wrapper of yours around an SDK method keys apart from it."""
        client = openai.OpenAI(base_url=A, api_key="k")

        @functools.wraps(client.chat.completions.create)
        def my_create(**kw: Any) -> Any:
            return client.chat.completions.create(**kw)

        assert key_of(my_create, **CHAT) != key_of(client.chat.completions.create, **CHAT)
        assert key_of(my_create, **CHAT) == key_of(my_create, **CHAT)
