"""Hypothesis strategies for the key tests: chat requests, JSON-like values, and arbitrary
nested arguments (cycles, sets, deep nesting, enums, models, dataclasses, mixed numbers)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

# Scalars whose key forms must be canonical: ints, finite floats, bools, None, text.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)

json_like: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)

roles = st.sampled_from(["system", "user", "assistant"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(min_size=0, max_size=60)}),
    min_size=1,
    max_size=4,
)
models = st.sampled_from(["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "o3-mini"])
temperatures = st.sampled_from([0, 0.2, 0.7, 1, 1.5, 2])
params = st.dictionaries(
    st.sampled_from(["max_tokens", "top_p", "seed", "stop", "presence_penalty"]),
    st.one_of(st.integers(0, 4096), st.floats(0, 1, allow_nan=False), st.text(max_size=5)),
    max_size=3,
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A chat request: model, messages, temperature and a few extra parameters."""
    return {
        "model": draw(models),
        "messages": draw(messages),
        "temperature": draw(temperatures),
        **draw(params),
    }


def reorder(value: Any, rnd: Any) -> Any:
    """The same value with every mapping's key order shuffled and lists turned to tuples
    at random (equal meaning, different Python form)."""
    if isinstance(value, dict):
        items = [(k, reorder(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        items = [reorder(v, rnd) for v in value]
        return tuple(items) if rnd.random() < 0.5 else items
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value) if rnd.random() < 0.5 else value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return float(value) if rnd.random() < 0.5 else value
    return value


# -- arbitrary nested arguments (issue 9): cycles, sets, deep nesting, models ---------------------
#
# Every value drawn here must be either keyed stably (the same key every time, in every process)
# or refused with UnkeyableArgumentError: tests/test_key_fuzz.py checks both. The classes live
# at module level so values can be pickled into another process.


class Color(enum.Enum):
    RED = "red"
    ONE = 1


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class FuzzModel(BaseModel):
    """A pydantic model with set, list and untyped fields."""

    value: Any = None
    tags: set[str] = set()
    ids: frozenset[int] = frozenset()
    items: list[Any] = []


@dataclasses.dataclass
class FuzzData:
    """A dataclass with an untyped field and a set field."""

    value: Any = None
    tags: set[str] = dataclasses.field(default_factory=set)


class Keyed:
    """An object with its own key view (which may be anything, itself included)."""

    def __init__(self, view: Any) -> None:
        self.view = view

    def __llm_memo_key__(self) -> Any:
        return self.view


mixed_numbers = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN and infinities included
    st.decimals(allow_nan=False),
    st.fractions(max_denominator=10),  # no canonical form: refused
    st.complex_numbers(max_magnitude=10, allow_nan=False),  # no canonical form: refused
)
hashable_scalars = st.one_of(
    st.none(),
    mixed_numbers.filter(lambda v: v == v),  # NaN is not equal to itself inside a set
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(list(Color) + list(Level)),
    st.dates(),
)
hashables = st.one_of(
    hashable_scalars,
    st.tuples(hashable_scalars, hashable_scalars),
    st.frozensets(hashable_scalars, max_size=4),
)
leaves = st.one_of(hashable_scalars, st.sets(hashables, max_size=5), st.frozensets(hashables))
mapping_keys = st.one_of(
    st.text(max_size=6), st.sampled_from(["$set", "$$x", "$int"]), st.integers()
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(mapping_keys, children, max_size=4),
        st.builds(FuzzModel, value=children, tags=st.sets(st.text(max_size=5), max_size=6)),
        st.builds(
            FuzzModel, items=st.lists(children, max_size=3), ids=st.frozensets(st.integers())
        ),
        st.builds(FuzzData, value=children, tags=st.sets(st.text(max_size=5), max_size=6)),
        st.builds(Keyed, children),
    )


nested: st.SearchStrategy[Any] = st.recursive(leaves, _containers, max_leaves=16)


@st.composite
def deep(draw: st.DrawFn, max_levels: int = 400) -> Any:
    """A value nested from 1 to ``max_levels`` levels deep (by default past MAX_DEPTH and
    orjson's own limit)."""
    value = draw(leaves)
    for _ in range(draw(st.integers(1, max_levels))):
        kind = draw(st.sampled_from(["list", "tuple", "dict", "model", "data"]))
        if kind == "list":
            value = [value]
        elif kind == "tuple":
            value = (value,)
        elif kind == "dict":
            value = {"k": value}
        elif kind == "model":
            value = FuzzModel(value=value)
        else:
            value = FuzzData(value=value)
    return value


def _mutable_parts(value: Any, out: list[Any], seen: set[int]) -> None:
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (list, dict, FuzzModel, FuzzData, Keyed)):
        out.append(value)
    children: Any = ()
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, (list, tuple)):
        children = value
    elif isinstance(value, (FuzzModel, FuzzData)):
        children = [value.value]
    elif isinstance(value, Keyed):
        children = [value.view]
    for child in children:
        _mutable_parts(child, out, seen)


@st.composite
def with_cycles(draw: st.DrawFn) -> Any:
    """A nested value in which one mutable part is made to refer back to the root or to itself
    (a message dict holding its own list, a model field pointing up, a key view of itself)."""
    root = draw(st.one_of(st.lists(nested, min_size=1, max_size=3), st.builds(Keyed, nested)))
    parts: list[Any] = []
    _mutable_parts(root, parts, set())
    holder = draw(st.sampled_from(parts))
    target = draw(st.sampled_from([root, holder]))
    if isinstance(holder, list):
        holder.append(target)
    elif isinstance(holder, dict):
        holder["loop"] = target
    elif isinstance(holder, Keyed):
        holder.view = [holder.view, target]
    else:
        holder.value = target  # a model field or a dataclass field
    return root


#: Anything a careless or hostile caller might pass as one argument.
arguments: st.SearchStrategy[Any] = st.one_of(nested, deep(), with_cycles())
#: The same, shallow enough to pickle into another process (still past MAX_DEPTH).
picklable_arguments: st.SearchStrategy[Any] = st.one_of(nested, deep(150), with_cycles())


# -- signatures and calls, for the generated argument binder -------------------------------------

_P = inspect.Parameter
_NAMES = ["a", "b", "c", "d", "e", "model", "messages", "args", "kwargs", "self", "list"]


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    """Any valid signature over a few names: positional-only, positional-or-keyword, *args,
    keyword-only and **kwargs parameters, with defaults on a suffix of the positional ones and
    on any keyword-only one."""
    names = draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=7))
    cuts = sorted(draw(st.lists(st.integers(0, len(names)), min_size=2, max_size=2)))
    var_pos = draw(st.booleans())
    var_kw = draw(st.booleans())
    spare = [n for n in ["rest", "opts"] if n not in names]
    positional = names[: cuts[1]]
    first_default = draw(st.integers(0, len(positional)))
    params = []
    for i, name in enumerate(positional):
        kind = _P.POSITIONAL_ONLY if i < cuts[0] else _P.POSITIONAL_OR_KEYWORD
        default = ("default", name) if i >= first_default else _P.empty
        params.append(_P(name, kind, default=default))
    if var_pos:
        params.append(_P(spare[0], _P.VAR_POSITIONAL))
    for name in names[cuts[1] :]:
        default = ("default", name) if draw(st.booleans()) else _P.empty
        params.append(_P(name, _P.KEYWORD_ONLY, default=default))
    if var_kw:
        params.append(_P(spare[1], _P.VAR_KEYWORD))
    return inspect.Signature(params)


@st.composite
def calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments that may or may not fit a signature over the names of :func:`signatures`."""
    args = tuple(draw(st.lists(st.integers(0, 9), max_size=8)))
    keywords = draw(st.lists(st.sampled_from([*_NAMES, "rest", "opts", "$x", "*y"]), unique=True))
    return args, {name: draw(st.integers(10, 19)) for name in keywords}
