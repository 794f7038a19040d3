"""The SDK registry (``llm_memo.sdks``): every SDK module is registered, and the generic
questions answer from the registered records."""

from __future__ import annotations

import pkgutil
from typing import Any

import llm_memo.sdks
from llm_memo import sdks
from llm_memo.sdks import SDKS, Sdk


class TestRegistry:
    def test_every_sdk_module_is_registered(self) -> None:
        """Each public module of the package defines one Sdk named SDK, and it is in SDKS."""
        names = [m.name for m in pkgutil.iter_modules(llm_memo.sdks.__path__)]
        public = [n for n in names if not n.startswith("_")]
        assert sorted(public) == ["anthropic", "google_genai", "litellm", "openai"]
        for name in public:
            module = getattr(sdks, name)
            assert isinstance(module.SDK, Sdk)
            assert module.SDK in SDKS
            # A package inside a namespace is named with its dot: google.genai -> google_genai.
            assert module.SDK.name.replace(".", "_") == name
        assert len({sdk.name for sdk in SDKS}) == len(SDKS)


class TestAbsent:
    def test_stainless_sentinels_count_as_absent_only_when_falsy(self) -> None:
        """A falsy NotGiven / Omit is absent; a truthy object of that name is a value."""

        class NotGiven:
            def __bool__(self) -> bool:
                return False

        class Omit:
            def __bool__(self) -> bool:
                return True

        assert sdks.is_absent(NotGiven())
        assert not sdks.is_absent(Omit())
        assert not sdks.is_absent(None)
        assert not sdks.is_absent(0)


class TestClients:
    def test_plain_objects_have_no_endpoint(self) -> None:
        """Objects that are no SDK client have no endpoint identity and no client."""
        assert sdks.endpoint_identity(object()) is None
        assert sdks.endpoint_identity({"base_url": "x"}) is None

        def ask(x: int) -> int:
            return x

        assert sdks.client_for(ask) == (None, ())

    def test_client_endpoint_follows_a_changed_base_url(self) -> None:
        """A cached endpoint is read again when the client's base URL object changes."""
        from openai import OpenAI

        client = OpenAI(api_key="sk-secret", base_url="https://one.example/v1")
        found, wrappers = sdks.client_for(client.chat.completions.create)
        assert found is not None
        assert wrappers == ()
        first = found.endpoint()
        assert first["base_url"] == "https://one.example/v1/"
        assert found.endpoint() is first
        client.base_url = "https://two.example/v1"
        assert found.endpoint()["base_url"] == "https://two.example/v1/"
        assert "sk-secret" not in repr(found.endpoint())


class TestUsage:
    def test_sums_every_registered_usage_shape(self) -> None:
        """Without total_tokens, the usage fields every SDK declares are summed."""
        usage: dict[str, Any] = {"prompt_tokens": 3, "completion_tokens": 4}
        assert sdks.usage_tokens({"usage": usage}) == 7
        assert sdks.usage_tokens({"usage": {"input_tokens": 5, "output_tokens": 1}}) == 6
        assert sdks.usage_tokens({"usage": {"total_tokens": 9, "prompt_tokens": 1}}) == 9
        assert sdks.usage_tokens({"usage": {"prompt_tokens": True}}) == 0

    def test_anthropic_stream_adds_the_start_input(self) -> None:
        """A stream whose start reports input tokens and whose end only output adds both."""
        chunks = [
            {"type": "message_start", "message": {"usage": {"input_tokens": 10}}},
            {"type": "message_delta", "usage": {"output_tokens": 4}},
        ]
        assert sdks.usage_tokens(chunks) == 14
