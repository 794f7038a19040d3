"""The canonical form of argument values: what a key is computed from, bounded and cycle-safe.

:func:`canonical` maps equal-meaning values to one JSON-native form (SPEC §4): mappings
key-sorted, lists and tuples one kind, integral floats ints (``0 == 0.0``) while ``True`` stays
distinct from ``1``, pydantic models and dataclasses the plain JSON the SDK would send (set
fields as sorted lists), objects with ``__llm_memo_key__`` whatever it returns, sets sorted by
canonical bytes, an SDK client its endpoint (``llm_memo.sdks``), a seekable file object the digest
of its content (``file_content.py``). Anything else raises
:class:`~llm_memo.errors.UnkeyableArgumentError` naming the parameter: an unstable key is worse
than an error. So does an argument that contains itself or nests deeper than
:data:`MAX_DEPTH`, or holds more than :data:`MAX_NODES` containers: every walk here carries a
depth bound, which also ends cycles, and a size budget.

Type tags (``{"$bytes": ...}``, ``{"$set": [...]}``) cannot collide with user data: user
mapping keys that start with ``$`` are escaped by doubling the ``$``.

The container walkers (``_canon_dict``, ``_canon_map``, ``_canon_list``) repeat their depth and
size checks inline on purpose: they run once per container on the key's hot path, where a shared
helper would cost a call each time.

Not here: binding a call to its parameters (``builder.py``), the key string (``format.py``),
the wording of the errors (``_unkeyable.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import math
import pathlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from .. import sdks
from ..sdks import is_absent
from ._unkeyable import TooBig, TooDeep, Unkeyable, step, unkeyable_error
from .file_content import ContentPath, is_file_object, key_form, paths_as_content

__all__ = ["MAX_DEPTH", "MAX_NODES", "canonical", "canonical_bytes"]

_MAX_INT = 2**64
_MIN_INT = -(2**63)


#: How deep the canonical form of one argument may nest: every list, tuple, mapping, set,
#: model, dataclass and ``__llm_memo_key__`` result counts one level (a set's tag two, a mapping
#: with non-string keys three). Deeper arguments, and arguments that contain themselves, are an
#: UnkeyableArgumentError naming the parameter; the bound keeps every canonical form well inside
#: orjson's own limit (254 levels) and the walk inside Python's recursion limit.
MAX_DEPTH = 128

#: How many lists, tuples, mappings and sets the canonical form of one argument may hold, a
#: part shared by several places counted at each (so ``x = [x, x]`` nested 40 times, whose
#: canonical form would have 2**40 parts, is refused instead of never finishing).
MAX_NODES = 1_000_000


def _canon_key(k: Any) -> Any:
    if type(k) is str:
        return "$" + k if k[:1] == "$" else k
    return None  # signals "not a str key"


def _plain(obj: Any) -> bool:
    """Whether a list/tuple/dict is canonical as it stands: only str keys not starting with
    "$", and only str, None, bool, in-range int, list, tuple and dict inside (no floats), at
    most :data:`MAX_DEPTH` levels deep (so a cycle is never plain) and :data:`MAX_NODES` big."""
    if type(obj) is not dict and len(obj) < MAX_NODES:
        # The common shape on the hit path, chat messages: a list of flat dicts of strings,
        # checked without the stack (half the time). Anything else takes the general walk.
        for item in obj:
            if type(item) is not dict:
                break
            for k, v in item.items():
                if type(v) is not str or type(k) is not str or k[:1] == "$":
                    break
            else:
                continue
            break
        else:
            return True
    stack = [(obj, MAX_DEPTH)]
    pop, push = stack.pop, stack.append
    budget = MAX_NODES
    while stack:
        o, d = pop()
        budget -= 1
        if d <= 0 or budget < 0:
            return False
        if type(o) is dict:
            for k in o:
                if type(k) is not str or k[:1] == "$":
                    return False
            values: Iterable[Any] = o.values()
        else:
            values = o
        for v in values:
            t = type(v)
            if t is str or v is None or t is bool:
                continue
            if t is int:
                if _MIN_INT <= v < _MAX_INT:
                    continue
                return False
            if t is dict or t is list or t is tuple:
                push((v, d - 1))
                continue
            return False
    return True


# Sorted keys; anything not plain JSON data raises instead of being serialised orjson's way
# (the canonical walk decides those forms, not orjson).
_DUMP_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def canonical(value: Any) -> Any:
    """Return the canonical, JSON-native form of ``value`` used for keys.

    Equal-meaning values give equal forms: ``{"a": 1, "b": 2.0}`` and ``{"b": 2, "a": 1.0}``,
    ``[1, 2]`` and ``(1, 2)``, a pydantic model and its ``model_dump(mode="json",
    by_alias=True, exclude_unset=True)`` (set fields as sorted lists), a dataclass and its
    field dict.

    Raises:
        UnkeyableArgumentError: a value with no canonical form (a lock, a socket, an object
            whose only form is a ``repr`` with a memory address), a value that contains itself,
            or one nested deeper than :data:`MAX_DEPTH`.

    Example::

        >>> canonical({"b": 1.0, "a": (1, 2)})
        {'b': 1, 'a': [1, 2]}

    .. versionadded:: 0.1.0
    """
    return _canon_param("value", value)


def _canon_param(parameter: str, value: Any, function: str = "", is_self: bool = False) -> Any:
    """The canonical form of one parameter's value, with errors naming the parameter."""
    try:
        return _canon(value, MAX_DEPTH, False, [MAX_NODES])
    except Unkeyable as exc:
        raise unkeyable_error(
            parameter, exc, function, is_self, max_depth=MAX_DEPTH, max_nodes=MAX_NODES
        ) from None
    except RecursionError as exc:
        # Only when the caller had little stack left: the walk itself is bounded.
        raise unkeyable_error(
            parameter,
            TooDeep(value, "the Python stack ran out"),
            function,
            max_depth=MAX_DEPTH,
            max_nodes=MAX_NODES,
        ) from exc


def _canon_file_param(parameter: str, value: Any, function: str = "") -> Any:
    """The canonical form of a parameter that is a file: as :func:`_canon_param`, with paths
    (alone, or in the tuples and lists the SDKs take there) keyed by their file's content."""
    return _canon_param(parameter, paths_as_content(value), function)


# The walk: ``d`` is the number of levels still allowed, ``m`` whether we are inside a model or
# dataclass (where a set keys as a sorted list, as in the JSON the SDK would send).


def _canon(obj: Any, d: int, m: bool, b: list[int]) -> Any:
    # Hot path: exact builtin types first, in order of frequency in chat requests.
    t = type(obj)
    if t is str or obj is None or t is bool:
        return obj
    if t is dict:
        return _canon_dict(obj, d, m, b)
    if t is list or t is tuple:
        return _canon_list(obj, d, m, b)
    if t is int:
        return obj if _MIN_INT <= obj < _MAX_INT else {"$int": str(obj)}
    if t is float:
        if obj.is_integer():
            return _canon(int(obj), d, m, b)
        if math.isfinite(obj):
            return obj
        return {"$float": repr(obj)}
    return _canon_other(obj, d, m, b)


def _canon_dict(obj: Mapping[Any, Any], d: int, m: bool, b: list[int]) -> Any:
    if d <= 0:
        raise TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise TooBig(obj)
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if is_absent(v):
            continue
        ck = _canon_key(k)
        if ck is None:
            return _canon_map(obj, d, m, b)
        try:
            out[ck] = _canon(v, d - 1, m, b)
        except Unkeyable as exc:
            raise step(exc, f"[{k!r}]", obj) from None
    return out


def _canon_map(obj: Mapping[Any, Any], d: int, m: bool, b: list[int]) -> Any:
    # A mapping with non-str keys: a sorted list of pairs, so {1: x} differs from {"1": x}.
    # Three levels: the tag's dict, the list of pairs, each pair.
    if d <= 2:
        raise TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise TooBig(obj)
    pairs = []
    for k, v in obj.items():
        if is_absent(v):
            continue
        try:
            pairs.append([_canon(k, d - 3, m, b), _canon(v, d - 3, m, b)])
        except Unkeyable as exc:
            raise step(exc, f"[{k!r}]", obj) from None
    pairs.sort(key=_sort_key_of_pair)
    return {"$map": pairs}


def _sort_key_of_pair(pair: list[Any]) -> bytes:
    return orjson.dumps(pair[0], option=orjson.OPT_SORT_KEYS)


def _sort_key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _canon_list(obj: Iterable[Any], d: int, m: bool, b: list[int]) -> list[Any]:
    if d <= 0:
        raise TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise TooBig(obj)
    out = []
    upload = type(obj) is tuple and _is_upload(obj)
    for i, v in enumerate(obj):
        try:
            if upload and i == 1 and (type(v) is ContentPath or is_file_object(v)):
                # (name, file, mime): the SDK sends the tuple's name, not the file's own.
                out.append(key_form(v, named=False))
            else:
                out.append(_canon(v, d - 1, m, b))
        except Unkeyable as exc:
            raise step(exc, f"[{i}]", obj) from None
    return out


def _is_upload(obj: Any) -> bool:
    """Whether a tuple is the SDKs' upload form, ``(name, file, mime[, headers])``."""
    return 1 < len(obj) < 5 and type(obj[0]) is str


def _canon_set(obj: Iterable[Any], d: int, m: bool, b: list[int]) -> Any:
    # Sorted by canonical bytes: stable in every process (never hash order) and total over
    # mixed types. Inside a model or dataclass a set is the sorted list its JSON would carry;
    # elsewhere it is tagged, so {1, 2} differs from [1, 2].
    if m:
        items = _canon_list(obj, d, m, b)
        items.sort(key=_sort_key)
        return items
    if d <= 1:
        raise TooDeep(obj)
    items = _canon_list(obj, d - 1, m, b)
    items.sort(key=_sort_key)
    return {"$set": items}


def _canon_other(obj: Any, d: int, m: bool, b: list[int]) -> Any:
    hook = getattr(type(obj), "__llm_memo_key__", None)
    if hook is not None and not isinstance(obj, type):
        # The hook's value may be the object again, or a fresh object forever: it counts as
        # one level, so both end at the depth bound.
        if d <= 0:
            raise TooDeep(obj)
        try:
            return _canon(hook(obj), d - 1, m, b)
        except Unkeyable as exc:
            raise step(exc, "", obj) from None
    if isinstance(obj, enum.Enum):
        return _canon(obj.value, d, m, b)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(obj)
    if isinstance(obj, int):
        return _canon(int(obj), d, m, b)
    if isinstance(obj, float):
        return _canon(float(obj), d, m, b)
    if isinstance(obj, Mapping):
        return _canon_dict(obj, d, m, b)
    if isinstance(obj, (list, tuple)):
        return _canon_list(obj, d, m, b)
    if _is_pydantic_model(obj):
        if d <= 0:
            raise TooDeep(obj)
        try:
            return _canon(_model_json(obj, d, b), d, True, b)
        except Unkeyable as exc:
            raise step(exc, "", obj) from None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if d <= 0:
            raise TooDeep(obj)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        try:
            return _canon_dict(fields, d, True, b)
        except Unkeyable as exc:
            raise step(exc, "", obj) from None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, (set, frozenset)):
        return _canon_set(obj, d, m, b)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return {"$" + type(obj).__name__: obj.isoformat()}
    if isinstance(obj, _dt.timedelta):
        return {"$timedelta": _canon(obj.total_seconds(), d, m, b)}
    if isinstance(obj, decimal.Decimal):
        return {"$decimal": str(obj.normalize())}
    if isinstance(obj, uuid.UUID):
        return {"$uuid": str(obj)}
    if type(obj) is ContentPath:
        # A path in a file parameter: the file's content (and name), as the SDK sends it.
        return key_form(obj)
    if isinstance(obj, pathlib.PurePath):
        return {"$path": obj.as_posix()}
    if isinstance(obj, type):
        return _canon_class(obj)
    if is_file_object(obj):
        # A file object keys by its content, never consumed (file_content.py, SPEC §6).
        return key_form(obj)
    endpoint = sdks.endpoint_identity(obj)
    if endpoint is not None:
        # An SDK client (or one of its resources) as an argument: the server that answers,
        # never its credentials.
        return _canon(endpoint, d, m, b)
    raise Unkeyable(obj)


def _is_pydantic_model(obj: Any) -> bool:
    return hasattr(type(obj), "__pydantic_serializer__") and hasattr(obj, "model_dump")


def _model_json(obj: Any, d: int, b: list[int]) -> Any:
    """A pydantic model's JSON dump, with every list that was a set sorted.

    ``model_dump(mode="json")`` turns a set into a list in iteration order, which for strings
    (and ``None`` before Python 3.12) is hash order: different in every process. Where the model
    may hold sets, one walk over the dump beside the model's own values finds them: the
    serializer iterated those very set objects, so a set's items pair up with the dump's list
    in order (a Python-mode dump would not do: it builds new sets, which may iterate in another
    order). A part whose shape a custom serializer changed is left as it is.
    """
    try:
        data = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    except ValueError as exc:  # pydantic: circular reference, depth, a serializer's error
        raise Unkeyable(obj, f"its model_dump() failed: {exc}") from None
    except RecursionError:
        raise TooDeep(obj) from None
    cls: Any = type(obj)
    if _may_hold_sets(cls):
        data = _sort_sets(data, obj, d, b)
    return data


def _dumped_fields(obj: Any) -> dict[str, Any] | None:
    """The values behind a model's (or dataclass's) dumped dict, by the dump's keys."""
    if _is_pydantic_model(obj):
        fields: dict[str, Any] = {}
        for name, info in type(obj).model_fields.items():
            alias = info.serialization_alias or info.alias or name
            fields[alias] = getattr(obj, name, None)
        extra = getattr(obj, "__pydantic_extra__", None)
        if isinstance(extra, dict):
            fields.update(extra)
        return fields
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    return None


def _sort_sets(js: Any, orig: Any, d: int, b: list[int]) -> Any:
    """Sort the lists of ``js`` (a JSON dump) that were sets in ``orig`` (what was dumped)."""
    if d <= 0:
        return js  # the canonical walk refuses it as too deep
    if type(js) is list:
        if isinstance(orig, (set, frozenset)) and len(orig) == len(js):
            items = [_sort_sets(j, o, d - 1, b) for j, o in zip(js, orig, strict=True)]
            items.sort(key=lambda v: _sort_key(_canon(v, d - 1, True, b)))
            return items
        if isinstance(orig, (list, tuple)) and len(orig) == len(js):
            return [_sort_sets(j, o, d - 1, b) for j, o in zip(js, orig, strict=True)]
        return js
    if type(js) is dict:
        fields = _dumped_fields(orig)
        if fields is not None:
            return {
                k: _sort_sets(v, fields[k], d - 1, b) if k in fields else v for k, v in js.items()
            }
        if isinstance(orig, Mapping) and len(orig) == len(js):
            # Both keep insertion order; keys may differ in form (1 vs "1").
            return {
                k: _sort_sets(v, o, d - 1, b)
                for (k, v), o in zip(js.items(), orig.values(), strict=True)
            }
    return js


# Core-schema types that can never hold a set, or a value of unknown type that might be one.
_SET_FREE_SCHEMAS = frozenset(
    {
        "none", "bool", "int", "float", "decimal", "str", "bytes", "date", "time",
        "datetime", "timedelta", "uuid", "url", "literal", "enum", "list", "tuple", "dict",
        "model", "model-fields", "model-field", "typed-dict", "typed-dict-field",
        "dataclass", "dataclass-args", "dataclass-field", "computed-field", "union",
        "tagged-union", "nullable", "default", "definitions", "definition-ref",
        "lax-or-strict", "json-or-python", "chain", "arguments", "arguments-parameter",
    }
)  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _may_hold_sets(cls: type) -> bool:
    """Whether instances of a pydantic model class can contain a set anywhere (fields typed
    ``set``/``frozenset``, ``Any``, arbitrary types, custom serializers, extra fields)."""
    schema = getattr(cls, "__pydantic_core_schema__", None)
    if not isinstance(schema, dict):
        return True
    stack: list[Any] = [schema]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind not in _SET_FREE_SCHEMAS:
                return True
            if node.get("extra_behavior") == "allow":
                return True
            stack.extend(v for v in node.values() if isinstance(v, (dict, list, tuple)))
        elif isinstance(node, (list, tuple)):
            stack.extend(v for v in node if isinstance(v, (dict, list, tuple)))
    return False


@functools.lru_cache(maxsize=256)
def _canon_class(cls: type) -> Any:
    # A pydantic model class (``response_format=Answer``) keys by its JSON schema: that is what
    # the SDK sends, and an edited model must not hit answers shaped for the old one.
    name = f"{cls.__module__}.{cls.__qualname__}"
    schema = getattr(cls, "model_json_schema", None)
    if callable(schema) and hasattr(cls, "__pydantic_serializer__"):
        return {"$model": name, "schema": _canon(schema(), MAX_DEPTH - 1, False, [MAX_NODES])}
    if dataclasses.is_dataclass(cls):
        fields = [[f.name, str(f.type)] for f in dataclasses.fields(cls)]
        return {"$dataclass": name, "fields": fields}
    return {"$class": name}


def canonical_bytes(value: Any) -> bytes:
    """The compact, key-sorted JSON of :func:`canonical` ``(value)``: what the key hashes.

    Raises:
        UnkeyableArgumentError: as :func:`canonical`.

    .. versionadded:: 0.1.0
    """
    return orjson.dumps(canonical(value), option=orjson.OPT_SORT_KEYS)
