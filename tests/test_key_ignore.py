"""What is never keyed (SPEC §4): one generic list, SDK profiles, credential headers, and the
options that key what the lists leave out. The docs table is checked against the code."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_memo import ConfigurationError, UnkeyableArgumentError, llm_cached
from llm_memo.keys import DEFAULT_IGNORE, IGNORE_GROUPS, KeyBuilder
from llm_memo.recording import use_recordings
from llm_memo.sdks import CREDENTIAL_HEADERS, HEADER_MAPPINGS, profile_for
from llm_memo.sdks.litellm import SDK as LITELLM

DOCS = Path(__file__).resolve().parents[1] / "docs" / "guides" / "keys.md"


def ask(model: str, messages: list[Any], temperature: float = 0.0, **params: Any) -> Any:
    return None


KB = KeyBuilder(ask, "tests.ask")
MSGS = [{"role": "user", "content": "hi"}]


def key(*args: Any, **kwargs: Any) -> str:
    return KB.key(args, kwargs, "default")


# -- the docs table ----------------------------------------------------------------------------


def _table_after(heading: str) -> list[list[str]]:
    """The rows (cells) of the first markdown table after ``heading`` in the keys guide."""
    lines = DOCS.read_text().splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            break
    assert rows, f"no table after {heading!r} in {DOCS}"
    return rows[1:]  # without the header row


def _names(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


class TestDocsTable:
    def test_generic_table_matches_the_code(self) -> None:
        """The generic never-keyed table lists exactly IGNORE_GROUPS, group by group."""
        rows = _table_after("## Never in the key: the default ignore list")
        documented = {row[0]: _names(row[1]) for row in rows}
        in_code = {group: set(names) for group, names in IGNORE_GROUPS.items()}
        assert documented == in_code
        assert set().union(*documented.values()) == DEFAULT_IGNORE

    def test_litellm_profile_table_matches_the_code(self) -> None:
        """The SDK profile table lists exactly litellm's names and prefixes."""
        rows = {row[0]: _names(row[2]) for row in _table_after("### SDK profiles")}
        expected = set(LITELLM.ignore) | {p + "*" for p in LITELLM.ignore_prefixes}
        assert rows == {"litellm": expected}

    def test_credential_headers_table_matches_the_code(self) -> None:
        """The credential-header table lists exactly CREDENTIAL_HEADERS (case-insensitive)."""
        rows = _table_after("### Credential headers")
        documented = set().union(*(_names(row[0]) for row in rows))
        assert {h.lower() for h in documented} == CREDENTIAL_HEADERS
        assert len(documented) == len(CREDENTIAL_HEADERS)

    def test_header_mappings_are_the_documented_group(self) -> None:
        """The header-mapping group is the mappings key_headers= reads."""
        assert IGNORE_GROUPS["header mappings"] == frozenset(HEADER_MAPPINGS)


# -- the generic list --------------------------------------------------------------------------


class TestGenericList:
    @pytest.mark.parametrize("name", sorted(DEFAULT_IGNORE))
    def test_never_keyed_and_never_in_the_view(self, name: str) -> None:
        """Each generic name is dropped from the key and from the request view, also when it
        arrives through **params."""
        value = {"Authorization": "Bearer sk-secret"} if "headers" in name else "sk-secret-1"
        assert key("m", MSGS, **{name: value}) == key("m", MSGS)
        view = KB.canonical_view(("m", MSGS), {name: value})
        assert name not in view
        assert "sk-secret" not in json.dumps(view)

    def test_named_parameters_are_dropped_too(self) -> None:
        """A declared parameter with a never-keyed name is dropped like a **params one."""

        def f(prompt: str, password: str, headers: dict[str, str] | None = None) -> None: ...

        kb = KeyBuilder(f, "f")
        assert kb.key(("p", "a"), {"headers": {"x": "1"}}, "d") == kb.key(("p", "b"), {}, "d")
        assert kb.canonical_view(("p", "a"), {}) == {"prompt": "p"}

    @pytest.mark.parametrize(
        ("name", "a", "b"),
        [
            ("stream_options", {"include_usage": True}, None),
            ("extra_body", {"x": 1}, None),
            ("extra_query", {"x": 1}, None),
            ("base_url", "http://a", "http://b"),
            ("api_base", "http://a", "http://b"),
            ("project", "p1", "p2"),
            ("organization", "o1", "o2"),
            ("cache", {"no-cache": True}, None),
            ("user", "u1", "u2"),
        ],
    )
    def test_keyed_on_purpose(self, name: str, a: Any, b: Any) -> None:
        """stream_options, extra_body, endpoints and generic input names are keyed (in a
        function that is not an SDK's own)."""
        assert key("m", MSGS, **{name: a}) != key("m", MSGS, **{name: b})

    def test_keys_do_not_depend_on_what_is_imported(self) -> None:
        """A process that imported litellm, openai and anthropic keys like one that did not."""
        request = {"model": "m", "messages": MSGS, "cache": {"x": 1}, "callbacks": ["a"]}
        code = (
            "import sys\n"
            "if sys.argv[1] == 'sdks':\n"
            "    import litellm, openai, anthropic\n"
            "from tests.test_key_ignore import key\n"
            f"print(key(**{request!r}))\n"
        )
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        outs = []
        for mode in ("bare", "sdks"):
            out = subprocess.run(
                [sys.executable, "-W", "ignore", "-c", code, mode],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            assert out.returncode == 0, out.stderr
            outs.append(out.stdout.strip().splitlines()[-1])
        assert outs[0] == outs[1] == key(**request)


# -- key_params= -------------------------------------------------------------------------------


class TestKeyParams:
    def test_key_params_brings_a_name_back(self) -> None:
        """key_params=("token",) keys a parameter the generic list leaves out."""

        @llm_cached(backend="memory://", key_params=("token",))
        def next_word(token: str, timeout: float = 1.0) -> str:
            return token + "!"

        assert next_word.cache.key("a") != next_word.cache.key("b")
        assert next_word.cache.key("a", timeout=5) == next_word.cache.key("a")
        assert next_word("a") == "a!"
        assert next_word("b") == "b!"

    def test_key_params_on_an_sdk_profile_name_and_prefix(self) -> None:
        """key_params works on profile names, including one under an ignored prefix."""
        import litellm

        kept = KeyBuilder(litellm.completion, "c", key_params=("metadata", "litellm_trace_id"))
        plain = KeyBuilder(litellm.completion, "c")
        base: dict[str, Any] = {"model": "m", "messages": MSGS}
        for name in ("metadata", "litellm_trace_id"):
            extra = {**base, name: "x"}
            assert kept.key((), extra, "d") != kept.key((), base, "d")
            assert plain.key((), extra, "d") == plain.key((), base, "d")
        assert kept.key((), {**base, "litellm_call_id": "1"}, "d") == kept.key((), base, "d")

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"key_params": ("headers",)}, "key_headers"),
            ({"key_params": ("extra_headers",)}, "key_headers"),
            ({"key_params": ("model",)}, "keyed already"),
            ({"key_params": ("token",), "ignore": ("token",)}, "both"),
            ({"key_params": "token"}, "tuple"),
            ({"key_headers": "anthropic-beta"}, "tuple"),
            ({"key_params": 5}, "tuple"),
            ({"key_headers": (b"x-f",)}, "tuple"),
        ],
    )
    def test_misuse_is_a_configuration_error_at_decoration(
        self, options: dict[str, Any], match: str
    ) -> None:
        """Nonsense key options fail when decorating, with the fix in the message."""
        with pytest.raises(ConfigurationError, match=match):
            llm_cached(backend="memory://", **options)(ask)


# -- key_headers= ------------------------------------------------------------------------------


class TestKeyHeaders:
    @pytest.mark.parametrize("header", [*sorted(CREDENTIAL_HEADERS), "Authorization", "X-API-Key"])
    def test_credential_headers_are_refused(self, header: str) -> None:
        """Credential headers are never keyed, even when asked: a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="credentials"):
            llm_cached(backend="memory://", key_headers=(header,))(ask)

    def test_chosen_headers_are_keyed_case_insensitively(self) -> None:
        """key_headers= keys the chosen header from any header mapping, in any case."""
        kb = KeyBuilder(ask, "a", key_headers=("Anthropic-Beta",))

        def k(**kw: Any) -> str:
            return kb.key(("m", MSGS), kw, "d")

        beta = {"anthropic-beta": "tools-1"}
        assert k(extra_headers=beta) != k()
        assert k(extra_headers=beta) != k(extra_headers={"anthropic-beta": "tools-2"})
        assert k(extra_headers=beta) == k(extra_headers={"ANTHROPIC-BETA": "tools-1"})
        assert k(extra_headers=beta) == k(headers=beta)
        assert k(extra_headers={**beta, "x-trace": "1"}) == k(extra_headers={**beta, "x-t": "2"})
        assert k(extra_headers={**beta, "Authorization": "Bearer a"}) == k(
            extra_headers={**beta, "Authorization": "Bearer b"}
        )

    def test_later_mappings_win_and_omit_removes(self) -> None:
        """default_headers < headers < extra_headers; an SDK Omit() removes the header."""
        from openai import Omit

        kb = KeyBuilder(ask, "a", key_headers=("x-feature",))
        view = kb.canonical_view(
            ("m", MSGS),
            {"default_headers": {"x-feature": "1"}, "extra_headers": {"X-Feature": "2"}},
        )
        assert view["$headers"] == {"x-feature": "2"}
        removed = kb.canonical_view(
            ("m", MSGS), {"headers": {"x-feature": "1"}, "extra_headers": {"x-feature": Omit()}}
        )
        assert "$headers" not in removed

    def test_view_shows_only_chosen_headers(self) -> None:
        """The request view (what recordings show) holds the chosen headers, nothing else."""
        kb = KeyBuilder(ask, "a", key_headers=("anthropic-beta",))
        view = kb.canonical_view(
            ("m", MSGS),
            {"extra_headers": {"anthropic-beta": "b", "Authorization": "Bearer sk-live", "x": "y"}},
        )
        assert view == {
            "model": "m",
            "messages": MSGS,
            "temperature": 0,
            "$headers": {"anthropic-beta": "b"},
        }

    def test_a_keyword_named_like_the_headers_entry_cannot_collide(self) -> None:
        """A **params entry literally named "$headers" is escaped, never merged with it."""
        kb = KeyBuilder(ask, "a", key_headers=("x-f",))
        a = kb.key(("m", MSGS), {"extra_headers": {"x-f": "1"}}, "d")
        b = kb.key(("m", MSGS), {"$headers": {"x-f": "1"}}, "d")
        assert a != b


# -- litellm's profile -------------------------------------------------------------------------


class _Logger:
    """A litellm callback object (no canonical form)."""

    def log_success_event(self, *args: Any, **kwargs: Any) -> None: ...


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
class TestLitellmProfile:
    def test_profile_is_chosen_from_the_callable(self) -> None:
        """litellm's own functions (following wrappers) get its profile; yours do not."""
        import litellm

        assert profile_for(litellm.completion) is LITELLM
        assert profile_for(litellm.acompletion) is LITELLM
        assert profile_for(litellm.embedding) is LITELLM
        assert profile_for(ask) is None

    def test_callbacks_on_a_wrapped_completion_are_not_unkeyable(self) -> None:
        """callbacks=[logger] (and cache=, metadata=, litellm_*) are never keyed for a wrapped
        litellm.completion: the call goes through and the second one hits."""
        import litellm

        completion = llm_cached(backend="memory://")(litellm.completion)
        request: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": MSGS,
            "mock_response": "Hello from a mock",
        }
        first = completion(**request, callbacks=[_Logger()], metadata={"trace": "1"})
        assert first.choices[0].message.content == "Hello from a mock"
        assert completion.cache.contains(**request)
        assert completion.cache.key(**request, litellm_call_id="x", cache={"no-store": True}) == (
            completion.cache.key(**request)
        )
        second = completion(**request, callbacks=[_Logger()])
        assert second.choices[0].message.content == "Hello from a mock"
        assert completion.cache.stats().hits == 1

    def test_mock_response_and_endpoint_params_are_keyed(self) -> None:
        """What changes the answer or the server stays keyed for litellm too."""
        import litellm

        kb = KeyBuilder(litellm.completion, "c")
        base: dict[str, Any] = {"model": "m", "messages": MSGS}
        for name, value in (("mock_response", "x"), ("api_base", "http://a"), ("base_url", "b")):
            assert kb.key((), {**base, name: value}, "d") != kb.key((), base, "d")

    def test_your_own_function_keeps_its_parameters(self) -> None:
        """A function of yours calling litellm is not litellm's: callbacks is an argument."""

        @llm_cached(backend="memory://")
        def mine(prompt: str, callbacks: list[Any] | None = None) -> str:
            return prompt

        with pytest.raises(UnkeyableArgumentError, match="callbacks"):
            mine("p", callbacks=[_Logger()])


# -- recordings --------------------------------------------------------------------------------


def test_recordings_leave_never_keyed_names_and_headers_out(tmp_path: Path) -> None:
    """The recorded request has neither never-keyed parameters nor unchosen headers."""

    @llm_cached(ttl=1, key_headers=("anthropic-beta",))
    def chat(model: str, **params: Any) -> dict[str, str]:
        return {"model": model}

    secrets = {
        "api_key": "sk-live-aaaa",
        "password": "hunter2-pw",
        "secret": "s3cr3t-value",
        "token": "tok-value-1",
        "timeout": 12345,
        "headers": {"Authorization": "Bearer live-bearer"},
        "extra_headers": {"anthropic-beta": "beta-1", "X-Api-Key": "xk-live", "x-trace": "tr-9"},
    }
    logging.getLogger("llm_memo").setLevel(logging.WARNING)
    with use_recordings(tmp_path, "record"):
        chat("m", **secrets)
    text = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    for leaked in ("sk-live", "hunter2", "s3cr3t", "tok-value", "12345", "live-bearer", "xk-live"):
        assert leaked not in text, f"{leaked!r} in the recording: {text}"
    assert "tr-9" not in text
    assert "beta-1" in text
