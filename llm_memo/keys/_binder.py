"""Argument binders generated once per signature: a call's arguments by name, as Python binds them.

:func:`binder_for` turns an :class:`inspect.Signature` into a small function with the *same
parameters* (names, kinds, defaults) whose body returns the bound arguments as a dict, so binding
a call is one call of it: CPython's own argument parsing, in C, for every shape (positional-only,
``*args``, keyword-only, ``**kwargs``), with exactly the TypeErrors calling the function itself
raises (``ask() missing 1 required positional argument: 'messages'``), under its own name. It
replaces ``inspect.Signature.bind`` + ``apply_defaults`` (~10 µs on uncommon shapes) and the
hand-written fast path for the common ones.

For ``def ask(model, messages, /, temperature=0.0, *rest, top_p=1.0, **params)`` the generated
source is::

    def __make(__list):
        def bind(model, messages, /, temperature=None, *rest, top_p=None, **params):
            return {'model': model, 'messages': messages, 'temperature': temperature,
                    '*rest': __list(rest), 'top_p': top_p}, params
        return bind

and the real defaults are set as the function's ``__defaults__`` / ``__kwdefaults__``, so the
source depends only on the *shape* of the signature (names, kinds, which have defaults): it is
compiled once per shape and shared by every function of that shape. ``*args`` appear as a list
under ``"*<name>"``; ``**kwargs`` are merged into the view (``{..., **params}``), or returned apart
(``(view, params)``) when the caller must escape some of their names.

Not here: which names are dropped or escaped, and why (``builder.py``).
"""

from __future__ import annotations

import functools
import inspect
import keyword
import types
from collections.abc import Callable
from typing import Any

__all__ = ["binder_for"]

#: A parameter's shape: its name, its kind and whether it has a default.
_Shape = tuple[tuple[str, inspect._ParameterKind, bool], ...]

_P = inspect.Parameter


def binder_for(
    sig: inspect.Signature, name: str, qualname: str, *, split_var_kw: bool
) -> Callable[..., Any]:
    """A function binding calls of a function with signature ``sig``.

    It takes the call's arguments as the function does and returns the view dict (named
    parameters by name, defaults applied; ``*args`` as a list under ``"*<name>"``; ``**kwargs``
    merged in), or, with ``split_var_kw`` and a ``**kwargs`` parameter, ``(view, kwargs)``.

    Args:
        sig: the signature to bind to.
        name: the function's ``__name__``, for error messages.
        qualname: the function's ``__qualname__``, for error messages.
        split_var_kw: return the ``**kwargs`` apart instead of merging them.

    Raises:
        TypeError: (when called) the arguments do not fit, as calling the function would.
    """
    params = list(sig.parameters.values())
    shape: _Shape = tuple((p.name, p.kind, p.default is not p.empty) for p in params)
    make = _compile(shape, split_var_kw)
    bind = make(list)
    bind.__defaults__ = (
        tuple(
            p.default
            for p in params
            if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) and p.default is not p.empty
        )
        or None
    )
    bind.__kwdefaults__ = {
        p.name: p.default for p in params if p.kind is _P.KEYWORD_ONLY and p.default is not p.empty
    } or None
    bind.__name__ = name
    bind.__qualname__ = qualname
    return bind


def _helper_name(names: set[str]) -> str:
    # The name the generated code calls ``list`` by: never one of the parameters'.
    helper = "__list"
    while helper in names:
        helper += "_"
    return helper


@functools.lru_cache(maxsize=1024)
def _compile(shape: _Shape, split_var_kw: bool) -> Callable[[type[list[Any]]], types.FunctionType]:
    """The factory of binders for one signature shape: compiled once, cached."""
    for name, _, _ in shape:
        # inspect.Parameter refuses other names already; the source below relies on it.
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{name!r} is not a parameter name")
    helper = _helper_name({name for name, _, _ in shape})
    parts: list[str] = []
    items: list[str] = []
    var_kw: str | None = None
    star_written = False
    previous_kind: inspect._ParameterKind | None = None
    for name, kind, has_default in shape:
        if previous_kind is _P.POSITIONAL_ONLY and kind is not _P.POSITIONAL_ONLY:
            parts.append("/")
        if kind is _P.KEYWORD_ONLY and not star_written:
            parts.append("*")
            star_written = True
        default = "=None" if has_default else ""
        if kind is _P.VAR_POSITIONAL:
            parts.append(f"*{name}")
            star_written = True
            items.append(f"{'*' + name!r}: {helper}({name})")
        elif kind is _P.VAR_KEYWORD:
            parts.append(f"**{name}")
            var_kw = name
        else:
            parts.append(f"{name}{default}")
            items.append(f"{name!r}: {name}")
        previous_kind = kind
    if previous_kind is _P.POSITIONAL_ONLY:
        parts.append("/")
    if var_kw is None:
        body = "{" + ", ".join(items) + "}"
    elif split_var_kw:
        body = "{" + ", ".join(items) + "}, " + var_kw
    else:
        body = "{" + ", ".join([*items, f"**{var_kw}"]) + "}"
    source = (
        f"def __make({helper}):\n"
        f"    def bind({', '.join(parts)}):\n"
        f"        return {body}\n"
        f"    return bind\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<llm_memo.keys binder>", "exec"), {}, namespace)
    make: Callable[[type[list[Any]]], types.FunctionType] = namespace["__make"]
    return make
