"""Keys never hang, never drift between processes and never merge two requests (issue 9 §2).

Self-referencing and absurdly deep arguments are refused with a library error naming the
parameter; sets are canonical wherever they appear; the variadic parts of a call keep apart
from keywords of the same name.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from llm_memo import UnkeyableArgumentError, call, llm_cached
from llm_memo.keys import (
    MAX_DEPTH,
    MAX_NODES,
    KeyBuilder,
    canonical,
    canonical_bytes,
    split_for_similarity,
)


def ask(model: str, messages: list[Any], temperature: float = 0.0, **params: Any) -> Any:
    return None


KB = KeyBuilder(ask, "tests.ask")


def key(*args: Any, **kwargs: Any) -> str:
    return KB.key(args, kwargs, "default")


def nested_lists(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def nested_dicts(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# -- cycles ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Node:
    name: str
    child: Any = None


class Hooked:
    """An object whose key view contains the object itself."""

    def __init__(self) -> None:
        self.parts: list[Any] = [self]

    def __llm_memo_key__(self) -> Any:
        return {"parts": self.parts}


class Chain:
    """An object whose key view is a fresh object of the same kind, forever."""

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def __llm_memo_key__(self) -> Any:
        return Chain(self.n + 1)


class Anything(BaseModel):
    value: Any = None


def _cycles() -> dict[str, tuple[str, Any]]:
    """Self-referencing arguments, each with the parameter the error must name."""
    message: dict[str, Any] = {"role": "user", "content": []}
    message["content"].append(message)
    inner: list[Any] = []
    outer = (inner,)
    inner.append(outer)
    own: list[Any] = []
    own.append(own)
    node = Node("a")
    node.child = Node("b", node)
    model = Anything()
    model.value = {"loop": model}
    loop: dict[str, Any] = {}
    model2 = Anything(value=loop)
    loop["m"] = model2
    return {
        "dict containing its own list": ("messages", [message]),
        "list inside a tuple inside itself": ("messages", outer),
        "list containing itself": ("messages", own),
        "dataclass field cycle": ("messages", node),
        "pydantic model containing itself": ("messages", model),
        "pydantic model inside its own field": ("messages", loop),
        "__llm_memo_key__ returning itself": ("messages", Hooked()),
        "cycle in **params": ("stop", own),
    }


class TestCycles:
    @pytest.mark.parametrize("case", sorted(_cycles()))
    def test_cycle_is_an_unkeyable_argument_naming_the_parameter(self, case: str) -> None:
        """A self-referencing argument raises UnkeyableArgumentError naming it, never hangs."""
        parameter, value = _cycles()[case]
        kwargs = {"stop": value} if parameter == "stop" else {}
        messages = [] if parameter == "stop" else value
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", messages, **kwargs)
        assert info.value.parameter.startswith(parameter), info.value.parameter
        assert parameter in str(info.value), str(info.value)

    def test_cycle_error_says_cycle_and_where(self) -> None:
        """The message says the argument refers to itself and gives the path of the loop."""
        message: dict[str, Any] = {"role": "user", "content": []}
        message["content"].append(message)
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [message])
        assert "refers to itself" in str(info.value), str(info.value)
        assert info.value.parameter == "messages[0]['content'][0]", info.value.parameter

    def test_hook_chain_without_a_cycle_is_refused_as_too_deep(self) -> None:
        """A __llm_memo_key__ that returns a fresh object forever is refused, not followed."""
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [], persona=Chain())
        assert info.value.parameter.startswith("persona"), info.value.parameter
        assert "deep" in str(info.value)

    def test_public_canonical_refuses_cycles(self) -> None:
        """canonical() and canonical_bytes() refuse a cycle the same way."""
        own: list[Any] = []
        own.append(own)
        with pytest.raises(UnkeyableArgumentError):
            canonical(own)
        with pytest.raises(UnkeyableArgumentError):
            canonical_bytes({"x": own})

    def test_key_function_returning_a_cycle(self) -> None:
        """A key= function whose value refers to itself is refused naming key()."""
        own: list[Any] = []
        own.append(own)
        kb = KeyBuilder(ask, "tests.ask", key=lambda *a, **k: own)
        with pytest.raises(UnkeyableArgumentError) as info:
            kb.key(("m", []), {}, "d")
        assert info.value.parameter.startswith("key()"), info.value.parameter

    def test_shared_substructure_is_not_a_cycle(self) -> None:
        """The same object appearing twice (not inside itself) keys normally."""
        part = {"type": "text", "text": "hi"}
        msgs = [{"role": "user", "content": [part, part]}]
        assert key("m", msgs) == key("m", json.loads(json.dumps(msgs)))

    def test_decorated_call_with_a_cycle_raises_before_calling(self) -> None:
        """Through the decorator, a cycle is an UnkeyableArgumentError, the function not called."""
        calls: list[int] = []

        @llm_cached(backend="memory://")
        def f(messages: list[Any]) -> int:
            calls.append(1)
            return 1

        own: list[Any] = []
        own.append(own)
        with pytest.raises(UnkeyableArgumentError):
            f(own)
        assert calls == []


# -- depth -------------------------------------------------------------------------------------


class TestDepth:
    @pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 255, 300, 10_000])
    @pytest.mark.parametrize("shape", ["lists", "dicts", "tuples"])
    def test_too_deep_is_an_unkeyable_argument(self, shape: str, levels: int) -> None:
        """Nesting past MAX_DEPTH raises UnkeyableArgumentError naming the parameter, never a
        RecursionError or orjson's TypeError (its own limit is ~254 levels)."""
        value: Any = nested_dicts(levels) if shape == "dicts" else nested_lists(levels)
        if shape == "tuples":
            value = tuple(value)
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [], extra=value)
        assert info.value.parameter.startswith("extra"), info.value.parameter
        assert str(MAX_DEPTH) in str(info.value)

    @pytest.mark.parametrize("shape", ["lists", "dicts"])
    def test_up_to_max_depth_is_keyed(self, shape: str) -> None:
        """An argument MAX_DEPTH levels deep keys, stably, and the view serialises."""
        value: Any = nested_dicts(MAX_DEPTH) if shape == "dicts" else nested_lists(MAX_DEPTH)
        assert key("m", [], extra=value) == key("m", [], extra=value)
        assert key("m", [], extra=value) != key("m", [], extra=[])

    def test_deep_sets_and_maps_stay_within_the_bound(self) -> None:
        """Tagged forms count their extra levels, so the canonical form stays serialisable."""
        value: Any = frozenset()
        for _ in range(MAX_DEPTH):
            value = frozenset({value})
        with pytest.raises(UnkeyableArgumentError):
            key("m", [], extra=value)
        mapping: Any = {}
        for _ in range(MAX_DEPTH):
            mapping = {1: mapping}
        with pytest.raises(UnkeyableArgumentError):
            key("m", [], extra=mapping)

    def test_deep_pydantic_model_is_refused(self) -> None:
        """A deeply nested value inside a pydantic model is refused like a plain one."""
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [], extra=Anything(value=nested_lists(1000)))
        assert info.value.parameter.startswith("extra"), info.value.parameter

    def test_deep_dataclass_chain_is_refused(self) -> None:
        """A linked chain of dataclasses deeper than the bound is refused."""
        node: Any = None
        for i in range(1000):
            node = Node(str(i), node)
        with pytest.raises(UnkeyableArgumentError):
            key("m", [], extra=node)

    def test_deep_argument_with_little_stack_left(self) -> None:
        """Even called with most of the Python stack used up, a deep argument is an
        UnkeyableArgumentError (or keys), never a raw RecursionError."""
        value = nested_lists(MAX_DEPTH)

        def recurse(n: int) -> str:
            if n == 0:
                return key("m", [], extra=value)
            return recurse(n - 1)

        limit = sys.getrecursionlimit()
        try:
            recurse(limit - 150)
        except UnkeyableArgumentError:
            pass
        except RecursionError:  # pragma: no cover - what the test guards against
            pytest.fail("a RecursionError escaped the key builder")

    def test_explain_on_deep_values(self) -> None:
        """explain() walks only bounded canonical views, so deep arguments cannot crash it."""
        cached = llm_cached(backend="memory://")(ask)
        a = nested_lists(MAX_DEPTH - 1)
        result = cached.cache.explain(call("m", [], extra=a), call("m", [], extra=[a]))
        assert not result.same
        with pytest.raises(UnkeyableArgumentError):
            cached.cache.explain(call("m", [], extra=nested_lists(5000)), call("m", []))

    def test_similarity_split_of_a_deep_request(self) -> None:
        """The similarity split sees only bounded canonical views."""
        view = KB.canonical_view(
            ("m", [{"role": "user", "content": "hi"}]), {"x": nested_lists(50)}
        )
        split = split_for_similarity(view)
        assert split is not None
        assert split[1] == "hi"


# -- sets --------------------------------------------------------------------------------------


class Tagged(BaseModel):
    tags: set[str]
    ids: frozenset[int] = frozenset()
    groups: list[set[str]] = []
    mixed: set[int | str] = set()


@dataclasses.dataclass
class DTagged:
    tags: set[str]
    nested: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


WORDS = [f"w{i}" for i in range(40)]


def _sorted_by_canonical_bytes(items: Any) -> list[Any]:
    return sorted(items, key=canonical_bytes)


class AnyTags(BaseModel):
    tags: Any


def _sets_that_dump_in_another_order() -> tuple[AnyTags, AnyTags, AnyTags]:
    """Three models holding a set of a frozenset and a tuple: the first set iterates in an
    order a rebuilt copy of it does not (a large table emptied down to two items), the second
    holds the same set built afresh, the third the same but with the tuple reversed."""
    for i in range(400):
        a, b = frozenset({i, i + 1}), (i + 3, i + 2)
        filler = set(range(5000, 7000))
        big = filler | {a, b}
        big -= filler
        model = AnyTags(tags=big)
        if list(big) != list(model.model_dump(mode="python")["tags"]):
            return model, AnyTags(tags={b, a}), AnyTags(tags={a, (i + 2, i + 3)})
    raise AssertionError("no set found whose copy iterates in another order")  # pragma: no cover


class TestSets:
    def test_nested_sets_pair_with_the_values_that_were_dumped(self) -> None:
        """A set's JSON items are matched with the set's own items (not a rebuilt copy's), so
        an equal set keys the same whatever its iteration order, and a tuple inside it keeps
        its order (two different requests never merge)."""
        model, same, reversed_tuple = _sets_that_dump_in_another_order()
        assert canonical_bytes(model) == canonical_bytes(same)
        assert canonical_bytes(model) != canonical_bytes(reversed_tuple)

    def test_set_field_in_a_model_keys_as_its_json_dump_with_sorted_lists(self) -> None:
        """A pydantic model with set fields keys as its JSON dump, each set a sorted list."""
        m = Tagged(tags=set(WORDS), ids=frozenset({3, 10, 2}), groups=[{"b", "a"}])
        dump = m.model_dump(mode="json", by_alias=True, exclude_unset=True)
        dump["tags"] = _sorted_by_canonical_bytes(dump["tags"])
        dump["ids"] = _sorted_by_canonical_bytes(dump["ids"])
        dump["groups"] = [_sorted_by_canonical_bytes(g) for g in dump["groups"]]
        assert canonical_bytes(m) == canonical_bytes(dump)

    def test_set_field_in_a_dataclass_keys_as_a_sorted_list(self) -> None:
        """A dataclass's set field keys as a sorted list, as its JSON would carry it."""
        d = DTagged(set(WORDS), {"k": frozenset({"y", "x"})})
        plain = {"tags": _sorted_by_canonical_bytes(WORDS), "nested": {"k": ["x", "y"]}}
        assert canonical_bytes(d) == canonical_bytes(plain)

    def test_bare_set_argument_is_a_tagged_set(self) -> None:
        """Outside a model a set keys as a tagged set: not equal to the list."""
        assert canonical_bytes({"b", "a"}) == canonical_bytes(frozenset({"a", "b"}))
        assert canonical_bytes({"a", "b"}) != canonical_bytes(["a", "b"])

    def test_mixed_types_in_a_set_do_not_crash(self) -> None:
        """Sets of mixed types (int, str, None, tuples, enums) sort by canonical bytes."""
        value = {1, "1", None, (1, 2), 2.5, Color.RED, False, b"x"}
        assert canonical_bytes(value) == canonical_bytes(set(value))
        m = Tagged(tags=set(), mixed={1, "a", 2, "b"})
        assert canonical_bytes(m) == canonical_bytes(m.model_copy())

    @pytest.mark.parametrize("seed", ["1", "2", "3", "12345"])
    def test_keys_with_sets_are_the_same_in_every_process(self, seed: str) -> None:
        """Keys of requests holding sets (bare, in models, in dataclasses) do not depend on
        PYTHONHASHSEED."""
        code = (
            "from tests.test_key_safety import set_keys; import json; print(json.dumps(set_keys()))"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == set_keys()


def set_keys() -> list[str]:
    """Keys of set-holding requests (computed here and in subprocesses)."""
    requests: list[dict[str, Any]] = [
        {"extra": set(WORDS)},
        {"extra": frozenset(WORDS)},
        {"extra": Tagged(tags=set(WORDS), groups=[set(WORDS[:7])], mixed={1, "a", "b"})},
        {"extra": DTagged(set(WORDS), {"k": frozenset(WORDS[:9])})},
        {"extra": {"nested": [set(WORDS[:5]), {frozenset(WORDS[:3])}]}},
    ]
    return [key("m", [], **r) for r in requests]


# -- variadic parts ----------------------------------------------------------------------------


class TestVariadicParts:
    def test_var_positional_never_collides_with_a_keyword_of_its_name(self) -> None:
        """def f(*args, **kw): f(5) and f(args=[5]) have different keys."""

        def f(*args: Any, **kw: Any) -> None: ...

        kb = KeyBuilder(f, "f")
        assert kb.key((5,), {}, "d") != kb.key((), {"args": [5]}, "d")
        assert kb.key((5,), {}, "d") != kb.key((), {"args": (5,)}, "d")
        assert kb.key((), {}, "d") != kb.key((), {"args": []}, "d")

    def test_var_keyword_dict_never_collides_with_real_keywords(self) -> None:
        """f(kw={...}) and f(**{...}) have different keys, in every arrangement."""

        def f(*args: Any, **kw: Any) -> None: ...

        kb = KeyBuilder(f, "f")
        assert kb.key((), {"kw": {"a": 1}}, "d") != kb.key((), {"a": 1}, "d")
        assert kb.key((), {"*args": [5]}, "d") != kb.key((5,), {}, "d")
        assert kb.key((), {"**args": [5]}, "d") != kb.key((), {"*args": [5]}, "d")

    def test_positional_only_name_in_kwargs(self) -> None:
        """def f(a, /, **kw): f(1, a=2) and f(2) have different keys."""

        def f(a: int, /, **kw: Any) -> None: ...

        kb = KeyBuilder(f, "f")
        assert kb.key((1,), {"a": 2}, "d") != kb.key((2,), {}, "d")
        assert kb.key((1,), {"a": 2}, "d") != kb.key((2,), {"a": 1}, "d")

    def test_uninspectable_callable(self) -> None:
        """A callable without a signature keeps positional and keyword parts apart too."""

        class NoSignature:
            @property
            def __signature__(self) -> Any:
                raise ValueError("no signature")

            def __call__(self, *a: Any, **k: Any) -> None: ...

        kb = KeyBuilder(NoSignature(), "nosig")
        assert kb.key((5,), {}, "d") != kb.key((), {"args": [5]}, "d")
        assert kb.key((5,), {}, "d") != kb.key((), {"*args": [5]}, "d")
        assert kb.key((5,), {"a": 1}, "d") == kb.key((5,), {"a": 1}, "d")

    def test_ordinary_signature_keys_are_unchanged_in_shape(self) -> None:
        """Named parameters and **params stay flat, so equal requests still share a key."""
        view = KB.canonical_view(("m", []), {"max_tokens": 5})
        assert view == {"model": "m", "messages": [], "temperature": 0, "max_tokens": 5}

    def test_decorated_variadic_function_answers_each_request(self) -> None:
        """Through the decorator, f(5) and f(args=[5]) each get their own answer."""

        @llm_cached(backend="memory://")
        def f(*args: Any, **kw: Any) -> str:
            return f"{args}|{kw}"

        assert f(5) == "(5,)|{}"
        assert f(args=[5]) == "()|{'args': [5]}"
        assert f(5) == "(5,)|{}"


# -- size ----------------------------------------------------------------------------------


class TestSize:
    def test_shared_parts_that_explode_are_refused_at_the_default_bound(self) -> None:
        """x = [x, x] nested 40 times (2**40 parts once expanded) is refused, not walked."""
        value: Any = "leaf"
        for _ in range(40):
            value = [value, value]
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [], extra=value)
        assert f"{MAX_NODES:,}" in str(info.value)

    @pytest.mark.parametrize("shape", ["lists", "dicts", "tuples", "dataclasses", "sets"])
    def test_shared_parts_that_explode_are_refused(
        self, shape: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every container kind counts against the size bound (a small one here, for speed)."""
        monkeypatch.setattr("llm_memo.keys.canonical_form.MAX_NODES", 10_000)
        value: Any = "leaf"
        for _ in range(40):
            if shape == "lists":
                value = [value, value]
            elif shape == "dicts":
                value = {"a": value, "b": value}
            elif shape == "tuples":
                value = (value, value)
            elif shape == "dataclasses":
                value = Node("n", [value, value])
            else:
                value = [frozenset({1}), value, value]
        with pytest.raises(UnkeyableArgumentError) as info:
            key("m", [], extra=value)
        assert info.value.parameter == "extra", info.value.parameter
        assert "10,000" in str(info.value)

    def test_large_flat_values_are_keyed(self) -> None:
        """Size counts containers, not items: a long list of numbers or strings keys."""
        assert key("m", [], extra=[0.5] * 200_000) != key("m", [], extra=[0.5] * 199_999)
        assert key("m", [], extra=[{"a": i} for i in range(50_000)])
