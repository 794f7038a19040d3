"""Keys (SPEC §4): binding, canonical form, ignore lists, unkeyable arguments, key strings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import random
import threading
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from llm_memo import UnkeyableArgumentError, call, llm_cached
from llm_memo.entry import FORMAT_VERSION
from llm_memo.keys import (
    DEFAULT_IGNORE,
    KeyBuilder,
    canonical,
    canonical_bytes,
    function_prefix,
    key_string,
    namespace_prefix,
)

from .strategies import json_like, reorder, requests


def ask(model: str, messages: list[dict[str, Any]], temperature: float = 0.0, **params: Any) -> Any:
    return None


KB = KeyBuilder(ask, "tests.ask")


def key(*args: Any, **kwargs: Any) -> str:
    return KB.key(args, kwargs, "default")


MSGS = [{"role": "user", "content": "hi"}]


class TestBinding:
    def test_positional_keyword_and_defaults_agree(self) -> None:
        """Positional vs keyword arguments and omitted defaults give one key."""
        k = key("gpt-4o-mini", MSGS)
        assert key(model="gpt-4o-mini", messages=MSGS) == k
        assert key("gpt-4o-mini", MSGS, 0.0) == k
        assert key("gpt-4o-mini", messages=MSGS, temperature=0) == k

    def test_var_keyword_params_are_keyed_flat(self) -> None:
        """Extra **params are part of the key, in any order."""
        a = key("m", MSGS, max_tokens=200, top_p=1)
        assert a == key("m", MSGS, top_p=1, max_tokens=200)
        assert a != key("m", MSGS, max_tokens=201, top_p=1)
        assert a != key("m", MSGS)

    def test_default_ignore_list_drops_credentials_and_transport(self) -> None:
        """api_key, timeout, extra_headers... never change the key, even inside **params."""
        k = key("m", MSGS)
        assert key("m", MSGS, api_key="sk-1", timeout=30, max_retries=5) == k
        assert key("m", MSGS, extra_headers={"X": "1"}) == k
        assert {"api_key", "timeout", "max_retries", "extra_headers"} <= DEFAULT_IGNORE

    def test_ignore_adds_names(self) -> None:
        """ignore= adds parameter names, including ones passed through **params."""
        kb = KeyBuilder(ask, "tests.ask", ignore=("user",))
        assert kb.key(("m", MSGS), {"user": "a"}, "d") == kb.key(("m", MSGS), {"user": "b"}, "d")

    def test_sdk_not_given_counts_as_absent(self) -> None:
        """openai's NOT_GIVEN / Omit sentinels are the same as leaving the argument out."""
        from openai import NOT_GIVEN, Omit

        assert key("m", MSGS, max_tokens=NOT_GIVEN) == key("m", MSGS)
        assert key("m", MSGS, stop=Omit()) == key("m", MSGS)
        assert key("m", [{"role": "user", "content": "hi", "name": NOT_GIVEN}]) == key("m", MSGS)

    def test_bad_call_raises_type_error_like_the_function(self) -> None:
        """Arguments that do not fit the signature are a TypeError, as calling would be."""
        with pytest.raises(TypeError):
            key("m")
        with pytest.raises(TypeError):
            KB.key(("m", MSGS), {"model": "x"}, "d")

    def test_positional_only_and_var_positional(self) -> None:
        """Signatures with positional-only and *args parameters bind through inspect."""

        def f(a: int, /, *rest: int, flag: bool = False) -> None: ...

        kb = KeyBuilder(f, "f")
        assert kb.key((1, 2, 3), {}, "d") == kb.key((1, 2, 3), {"flag": False}, "d")
        assert kb.key((1, 2, 3), {}, "d") != kb.key((1, 3, 2), {}, "d")

    def test_key_function_replaces_the_view(self) -> None:
        """key= decides what is keyed; identity and namespace still apply."""
        kb = KeyBuilder(ask, "tests.ask", key=lambda model, messages, **_: messages[-1]["content"])
        assert kb.key(("a", MSGS), {}, "d") == kb.key(("b", MSGS), {"temperature": 2}, "d")
        assert kb.key(("a", MSGS), {}, "d") != kb.key(("a", MSGS), {}, "other")


class TestCanonicalForm:
    def test_mapping_order_list_tuple_int_float(self) -> None:
        """Mapping order, list vs tuple and 0 vs 0.0 do not change the form."""
        assert canonical_bytes({"a": [1, 2.0], "b": 0.0}) == canonical_bytes(
            {"b": 0, "a": (1.0, 2)}
        )

    def test_bool_differs_from_int(self) -> None:
        """True and 1 (and False and 0) give different forms."""
        assert canonical_bytes({"x": True}) != canonical_bytes({"x": 1})
        assert canonical_bytes([False]) != canonical_bytes([0])

    def test_pydantic_and_dataclass_match_plain_dicts(self) -> None:
        """A pydantic model or dataclass keys as the plain JSON the SDK would send."""

        class Msg(BaseModel):
            role: str
            content: str
            name: str | None = None
            kind: str = Field(default="text", alias="type")

        @dataclasses.dataclass
        class DMsg:
            role: str
            content: str

        plain = {"role": "user", "content": "hi"}
        assert canonical_bytes(Msg(role="user", content="hi")) == canonical_bytes(plain)
        assert canonical_bytes(DMsg("user", "hi")) == canonical_bytes(plain)
        assert canonical_bytes(Msg(role="user", content="hi", type="img")) == canonical_bytes(
            {**plain, "type": "img"}
        )

    def test_tags_cannot_collide_with_user_keys(self) -> None:
        """User data that looks like a type tag keys differently from the tagged value."""
        assert canonical_bytes(b"ab") != canonical_bytes({"$bytes": "YWI="})
        assert canonical_bytes({1: "a"}) != canonical_bytes({"1": "a"})
        assert canonical_bytes({1, 2}) == canonical_bytes(frozenset({2, 1}))
        assert canonical_bytes({1, 2}) != canonical_bytes([1, 2])

    def test_special_values(self) -> None:
        """NaN, infinities, huge ints, dates, decimals, UUIDs and enums have stable forms."""

        class Color(enum.Enum):
            RED = "red"

        values = [
            float("nan"),
            float("inf"),
            2**100,
            dt.datetime(2024, 1, 2, 3, 4, 5),
            dt.date(2024, 1, 2),
            decimal.Decimal("1.50"),
            uuid.UUID(int=5),
            Color.RED,
        ]
        for v in values:
            assert canonical_bytes(v) == canonical_bytes(v)
        assert canonical_bytes(float("nan")) != canonical_bytes(None)
        assert canonical_bytes(Color.RED) == canonical_bytes("red")
        assert canonical_bytes(decimal.Decimal("1.50")) == canonical_bytes(decimal.Decimal("1.5"))

    def test_llm_memo_key_hook(self) -> None:
        """An object's __llm_memo_key__() is its key view."""

        class Client:
            def __init__(self, model: str) -> None:
                self.model = model

            def __llm_memo_key__(self) -> Any:
                return {"model": self.model}

        assert canonical(Client("a")) == {"model": "a"}

    def test_pydantic_model_class_keys_by_schema(self) -> None:
        """A response_format=Model class keys by its JSON schema, so editing it misses."""

        class A(BaseModel):
            x: int

        form = canonical(A)
        assert form["schema"]["properties"] == {"x": {"title": "X", "type": "integer"}}

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(["a", "b", "messages", "x"]), json_like, max_size=4))
    def test_fast_path_matches_the_canonical_walk(self, params: dict[str, Any]) -> None:
        """The key builder's no-copy fast path gives exactly the canonical walk's bytes."""
        import orjson

        def f(**kw: Any) -> None: ...

        kb = KeyBuilder(f, "f")
        fast = orjson.dumps(kb.canonical_view((), dict(params)), option=orjson.OPT_SORT_KEYS)
        assert fast == canonical_bytes(params)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.dictionaries(
                st.sampled_from(["role", "content", "$ref", "name"]),
                st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.none()),
                max_size=3,
            ),
            max_size=4,
        )
    )
    def test_message_shaped_lists_match_the_canonical_walk(
        self, messages: list[dict[str, Any]]
    ) -> None:
        """The flat-messages shortcut (lists of dicts of strings) gives the canonical walk's
        bytes, and steps aside for "$" keys, numbers and None inside."""
        import orjson

        def f(messages: Any) -> None: ...

        kb = KeyBuilder(f, "f")
        fast = orjson.dumps(kb.canonical_view((messages,), {}), option=orjson.OPT_SORT_KEYS)
        assert fast == canonical_bytes({"messages": messages})

    def test_message_shortcut_keeps_the_size_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A list of flat dicts over MAX_NODES parts is refused like any other argument."""
        from llm_memo.keys import canonical_form

        monkeypatch.setattr(canonical_form, "MAX_NODES", 5)
        assert canonical_form._plain([{"a": "b"}] * 4)
        assert not canonical_form._plain([{"a": "b"}] * 5)
        with pytest.raises(UnkeyableArgumentError, match="messages"):
            key("m", [{"role": "user", "content": "x"}] * 5)

    @settings(max_examples=200, deadline=None)
    @given(requests(), st.randoms())
    def test_equal_meaning_gives_equal_keys(self, request: dict[str, Any], rnd: Any) -> None:
        """Reordered mappings, tuples for lists and int/float twins give the same key."""
        assert key(**request) == key(**reorder(request, rnd))

    @settings(max_examples=200, deadline=None)
    @given(json_like, json_like)
    def test_different_values_give_different_forms(self, a: Any, b: Any) -> None:
        """Different values (beyond int/float twins) never share a canonical form."""
        if _loosely_equal(a, b):
            return
        assert canonical_bytes(a) != canonical_bytes(b)

    @settings(max_examples=200, deadline=None)
    @given(requests(), st.data())
    def test_any_single_change_changes_the_key(self, request: dict[str, Any], data: Any) -> None:
        """Changing the model, a sampling parameter or any message content changes the key."""
        changed = dict(request)
        what = data.draw(st.sampled_from(["model", "temperature", "content", "role", "extra"]))
        if what == "model":
            changed["model"] = request["model"] + "-x"
        elif what == "temperature":
            changed["temperature"] = request["temperature"] + 0.1
        elif what == "content":
            i = data.draw(st.integers(0, len(request["messages"]) - 1))
            msgs = [dict(m) for m in request["messages"]]
            msgs[i]["content"] += data.draw(st.text(min_size=1, max_size=3))
            changed["messages"] = msgs
        elif what == "role":
            msgs = [dict(m) for m in request["messages"]]
            msgs[0]["role"] = "tool"
            changed["messages"] = msgs
        else:
            changed["seed"] = data.draw(st.integers()) if "seed" not in request else None
        assert key(**request) != key(**changed)


def _loosely_equal(a: Any, b: Any) -> bool:
    # Values the contract deliberately merges: ints equal to floats (0 == 0.0), tuples = lists.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_loosely_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_loosely_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class TestUnkeyable:
    def test_error_names_parameter_and_fix(self) -> None:
        """An argument with no canonical form raises, naming the parameter and ignore=/key=."""
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", MSGS, client=threading.Lock())
        msg = str(info.value)
        assert "'client'" in msg
        assert "ignore=('client',)" in msg
        assert "key=" in msg
        assert info.value.parameter == "client"

    def test_error_gives_the_path_inside_an_argument(self) -> None:
        """A bad value deep in a structure is reported with its path."""
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [{"role": "user", "content": object()}])
        assert info.value.parameter == "messages[0]['content']"

    def test_method_self_needs_a_canonical_form(self) -> None:
        """A plain instance as self is unkeyable, and the message suggests ignore=('self',)."""

        class Bot:
            @llm_cached(backend="memory://")
            def reply(self, text: str) -> str:
                return text

        with pytest.raises(UnkeyableArgumentError, match=r"ignore=\('self',\)"):
            Bot().reply("x")

    def test_dataclass_self_is_keyed_by_its_fields(self) -> None:
        """A dataclass instance as self is keyed by its fields: state that changes answers."""
        calls: list[str] = []

        @dataclasses.dataclass
        class Bot:
            model: str

            @llm_cached(backend="memory://")
            def reply(self, text: str) -> str:
                calls.append(self.model)
                return f"{self.model}:{text}"

        assert Bot("a").reply("x") == "a:x"
        assert Bot("a").reply("x") == "a:x"
        assert Bot("b").reply("x") == "b:x"
        assert calls == ["a", "b"]


class TestKeyStrings:
    def test_format(self) -> None:
        """Keys read format version, namespace, function, then the hash."""
        k = key_string("tenant:42", "pkg.mod.ask", "0" * 32)
        assert k == f"llm_memo:{FORMAT_VERSION}:tenant%3A42:pkg.mod.ask:" + "0" * 32
        assert k.startswith(namespace_prefix("tenant:42"))
        assert k.startswith(function_prefix("tenant:42", "pkg.mod.ask"))

    def test_hash_is_xxh3_128_of_canonical_bytes(self) -> None:
        """The hash part is xxh3-128 over the canonical JSON of the bound arguments."""
        import xxhash

        k = key("m", MSGS)
        view = {"model": "m", "messages": MSGS, "temperature": 0}
        assert k.endswith(xxhash.xxh3_128_hexdigest(canonical_bytes(view)))

    def test_namespaces_do_not_prefix_each_other(self) -> None:
        """Namespace 'a' is not a prefix of namespace 'ab' (escaping keeps separators)."""
        assert not namespace_prefix("ab").startswith(namespace_prefix("a"))


class TestExplain:
    def test_explain_lists_differences(self) -> None:
        """explain() names each differing part of two calls' requests."""
        cached = llm_cached(backend="memory://")(ask)
        result = cached.cache.explain(
            call("m", MSGS), call("m", [{"role": "user", "content": "ho"}], temperature=1)
        )
        assert not result.same
        paths = {d.path for d in result.differences}
        assert paths == {"messages[0].content", "temperature"}
        assert "temperature: 0 != 1" in str(result)

    def test_explain_same(self) -> None:
        """Equal-meaning calls are reported as sharing a key."""
        cached = llm_cached(backend="memory://")(ask)
        result = cached.cache.explain(call("m", MSGS), {"model": "m", "messages": MSGS})
        assert result.same
        assert result.differences == ()


def test_random_requests_have_stable_keys_across_processes() -> None:
    """The key of a request does not depend on the process (no hash randomisation)."""
    import subprocess
    import sys

    req = {"model": "m", "messages": MSGS, "temperature": 0.5, "stop": ["a", "b"]}
    code = f"from tests.test_keys import key;print(key(**{req!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": str(random.randint(1, 10_000)), "PATH": ""},
    ).stdout.strip()
    assert out == key(**req)


class TestKeyFormat:
    """``parse_key`` is the one reader of what ``key_string`` writes."""

    @settings(max_examples=300, deadline=None)
    @given(st.text(min_size=1), st.text(min_size=1), st.text("0123456789abcdef", min_size=1))
    def test_parse_reads_back_what_key_string_wrote(
        self, namespace: str, function: str, hexdigest: str
    ) -> None:
        from llm_memo.keys import KEY_ROOT, key_string, parse_key

        key = key_string(namespace, function, hexdigest)
        parts = parse_key(key)
        assert key.startswith(KEY_ROOT)
        assert parts is not None, key
        assert (parts.namespace, parts.function, parts.digest) == (namespace, function, hexdigest)
        assert parts.current
        assert ":".join(("llm_memo", *parts.escaped)) == key

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    def test_anything_else_is_none_or_a_well_formed_key(self, text: str) -> None:
        from urllib.parse import unquote

        from llm_memo.keys import parse_key

        parts = parse_key(text)
        if parts is not None:
            assert text == ":".join(("llm_memo", *parts.escaped))
            assert (parts.namespace, parts.function) == tuple(map(unquote, parts.escaped[1:3]))

    def test_shapes_that_are_not_keys(self) -> None:
        from llm_memo.keys import parse_key

        for text in (
            "",
            "llm_memo",
            "llm_memo:2:ns:fn",
            "llm_memo:2:ns:fn:abc:extra",
            "other:2:ns:fn:abc",
            "llm_memo:2:a b:fn:abc",
            "llm_memo:2:ns:fn/x:abc",
            "llm_memo:2::fn:abc",
            "llm_memo:2:ns:fn:abc\n",
        ):
            assert parse_key(text) is None, text
        old = parse_key("llm_memo:1:ns:fn:abc")
        assert old is not None
        assert not old.current
