"""The generated argument binder (keys/_binder.py): for every signature and every call, the same
view as ``inspect.Signature.bind`` + ``apply_defaults`` and a TypeError exactly when it raises
one; generated once per signature shape."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings

from llm_memo.keys import KeyBuilder, function_prefix
from llm_memo.keys._binder import binder_for

from .strategies import calls, signatures


def reference_view(
    sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The view as the binder before this one built it: Signature.bind, defaults applied.

    One difference, on purpose: a positional-only name passed by keyword to a function with
    ``**kwargs`` is one of the ``**kwargs`` (as Python binds it), where Signature.bind refuses it.
    """
    kwargs_order = list(kwargs)
    params = sig.parameters.values()
    moved: dict[str, Any] = {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        posonly = {p.name for p in params if p.kind is p.POSITIONAL_ONLY}
        moved = {k: v for k, v in kwargs.items() if k in posonly}
        kwargs = {k: v for k, v in kwargs.items() if k not in posonly}
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    view: dict[str, Any] = {}
    var_kw: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = value
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            view["*" + name] = list(value)
        else:
            view[name] = value
    # Python passes the keywords in call order, the moved ones among them.
    rest = {**moved, **var_kw}
    return {**view, **{k: rest[k] for k in kwargs_order if k in rest}}


class TestAgainstSignatureBind:
    @settings(max_examples=400, deadline=None)
    @given(sig=signatures(), call=calls())
    def test_same_view_or_same_refusal(
        self, sig: inspect.Signature, call: tuple[tuple[Any, ...], dict[str, Any]]
    ) -> None:
        """Any call binds to the view Signature.bind gives, or both refuse it with TypeError."""
        args, kwargs = call
        bind = binder_for(sig, "f", "f", split_var_kw=False)
        try:
            expected = reference_view(sig, args, kwargs)
        except TypeError:
            with pytest.raises(TypeError):
                bind(*args, **kwargs)
            return
        got = bind(*args, **kwargs)
        assert got == expected
        assert list(got) == list(expected)

    @settings(max_examples=200, deadline=None)
    @given(sig=signatures(), call=calls())
    def test_split_keywords_are_the_var_keyword_part(
        self, sig: inspect.Signature, call: tuple[tuple[Any, ...], dict[str, Any]]
    ) -> None:
        """With split_var_kw, a **kwargs parameter's entries come back apart from the view."""
        args, kwargs = call
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        bind = binder_for(sig, "f", "f", split_var_kw=True)
        try:
            expected = reference_view(sig, args, kwargs)
        except TypeError:
            return
        got = bind(*args, **kwargs)
        if not has_var_kw:
            assert got == expected
            return
        view, var_kw = got
        assert {**view, **var_kw} == expected
        assert set(view) <= {
            ("*" + n if p.kind is p.VAR_POSITIONAL else n) for n, p in sig.parameters.items()
        }


class TestKeyBuilderBinding:
    @settings(max_examples=300, deadline=None)
    @given(sig=signatures(), call=calls())
    def test_builder_binds_as_the_reference(
        self, sig: inspect.Signature, call: tuple[tuple[Any, ...], dict[str, Any]]
    ) -> None:
        """KeyBuilder's binding (keyword-only fast path included) gives the reference view, or
        a TypeError exactly when the reference refuses the call."""
        args, kwargs = call

        def fn(*a: Any, **k: Any) -> None:
            return None

        fn.__signature__ = sig  # type: ignore[attr-defined]
        kb = KeyBuilder(fn, "tests.fn")
        if kb._escape:
            return  # escaped views are TestBinder.test_escaped_keywords' subject
        try:
            expected = reference_view(sig, args, kwargs)
        except TypeError:
            with pytest.raises(TypeError):
                kb._bind(args, kwargs)
            return
        assert kb._bind(args, kwargs) == expected


class TestBinder:
    def test_positional_only_name_as_keyword_goes_to_kwargs(self) -> None:
        """A positional-only name passed by keyword to a function taking **kwargs binds as
        Python binds it (one of the **kwargs, escaped in the view), not as a TypeError."""

        def f(a: int = 1, /, **kwargs: int) -> None:
            return None

        f(a=2)  # Python accepts it
        assert KeyBuilder(f, "f").bind((), {"a": 2}) == {"a": 1, "**a": 2}

    def test_errors_are_the_calls_own(self) -> None:
        """A call that does not fit raises the TypeError calling the function raises."""

        def ask(model: str, messages: list[Any], /, temperature: float = 0.0) -> None:
            return None

        kb = KeyBuilder(ask, "tests.ask")
        call: Any = ask
        cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((), {}),
            (("m",), {}),
            (("m", [], 0.1, 2), {}),
            (("m", []), {"x": 1}),
        ]
        for args, kwargs in cases:
            with pytest.raises(TypeError) as ours:
                kb.key(args, kwargs, "default")
            with pytest.raises(TypeError) as theirs:
                call(*args, **kwargs)
            assert str(ours.value) == str(theirs.value)

    def test_generated_once_per_shape(self) -> None:
        """Functions of one signature shape share the generated code; defaults stay their own."""

        def one(a: int, b: int = 1, *, c: int = 2) -> None:
            return None

        def two(a: int, b: int = 10, *, c: int = 20) -> None:
            return None

        kb1, kb2 = KeyBuilder(one, "one"), KeyBuilder(two, "two")
        assert kb1._binder is not None
        assert kb2._binder is not None
        assert kb1._binder.__code__ is kb2._binder.__code__
        assert kb1.bind((0,), {}) == {"a": 0, "b": 1, "c": 2}
        assert kb2.bind((0,), {}) == {"a": 0, "b": 10, "c": 20}

    def test_a_parameter_named_list_keeps_star_args_a_list(self) -> None:
        """The generated code's own helper never takes a parameter's name."""

        def odd(list: int, *rest: int) -> None:
            return None

        assert KeyBuilder(odd, "odd").bind((1, 2, 3), {}) == {"list": 1, "*rest": [2, 3]}

    def test_escaped_keywords(self) -> None:
        """Keyword entries that could pass for *args or a positional-only name are escaped."""

        def f(a: int, /, *args: int, **kwargs: int) -> None:
            return None

        view = KeyBuilder(f, "f").bind((1, 2), {"a": 3, "*args": 4, "$x": 5, "b": 6})
        assert view == {"a": 1, "*args": [2], "**a": 3, "***args": 4, "**$x": 5, "b": 6}


class TestPerFunctionWork:
    def test_namespace_prefix_follows_the_namespace(self) -> None:
        """The prefix kept per builder is the namespace's own, whichever namespace came last."""

        def ask(q: str) -> None:
            return None

        kb = KeyBuilder(ask, "tests.ask")
        a1, b1, a2 = kb.key(("x",), {}, "a"), kb.key(("x",), {}, "b"), kb.key(("x",), {}, "a")
        assert a1 == a2
        assert a1.startswith(function_prefix("a", "tests.ask"))
        assert b1.startswith(function_prefix("b", "tests.ask"))
        assert a1.rsplit(":", 1)[1] == b1.rsplit(":", 1)[1]

    def test_ignored_names_without_kwargs(self) -> None:
        """A never-keyed parameter (or *args) is dropped when the function takes no **kwargs."""

        def ask(q: str, api_key: str = "", *rest: int) -> None:
            return None

        assert KeyBuilder(ask, "a").canonical_view(("x", "k", 1), {}) == {"q": "x", "*rest": [1]}
        kb = KeyBuilder(ask, "a", ignore=("rest",))
        assert kb.canonical_view(("x", "k", 1), {}) == {"q": "x"}
        assert KeyBuilder(ask, "a", key_params=("api_key",)).canonical_view(("x", "k"), {}) == {
            "q": "x",
            "api_key": "k",
            "*rest": [],
        }
