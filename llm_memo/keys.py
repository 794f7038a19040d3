"""Cache keys: bound arguments -> canonical form -> canonical bytes -> xxh3-128 -> key string.

The key contract (SPEC §4), in the order the code applies it:

1. **Bind** the call to the function's signature with defaults applied, so positional vs keyword
   and omitted defaults give one key. ``**kwargs`` are merged into the top level, ``*args`` kept
   as a list under ``"*<name>"``; a ``**kwargs`` entry that could pass for another part is keyed
   as ``"**<name>"``, so ``f(5)`` and ``f(args=[5])`` never meet. SDK "not given" sentinels
   (openai / anthropic ``NOT_GIVEN``, ``Omit``) count as absent. Names in
   :data:`DEFAULT_IGNORE`, the SDK's own never-keyed names (``llm_memo.sdks``: litellm's ``cache``,
   ``callbacks``, ``litellm_*``...) and the decorator's ``ignore=`` are dropped, except those
   brought back with ``key_params=``. A bound SDK client method adds ``"$endpoint"`` (the
   server that answers, never its credentials); ``key_headers=`` adds ``"$headers"``.
2. **Canonicalise** (:func:`canonical`): mappings become key-sorted, lists and tuples one kind,
   integral floats ints (``0 == 0.0``) while ``True`` stays distinct from ``1``, pydantic
   models and dataclasses the plain JSON the SDK would send (set fields as sorted lists),
   objects with ``__llm_memo_key__`` whatever it returns, sets sorted by canonical bytes.
   Anything else raises :class:`~llm_memo.errors.UnkeyableArgumentError` naming the parameter:
   an unstable key is worse than an error. So does an argument that contains itself or nests
   deeper than :data:`MAX_DEPTH`: every walk here carries a depth bound, which also ends cycles.
3. **Hash** the compact, key-sorted JSON (orjson) with xxh3-128.
4. **Name** it ``llm_memo:<format>:<namespace>:<function>:<hash>``, the first three parts
   percent-escaped, so a namespace or one function's entries form a key prefix.

Type tags in the canonical form (``{"$bytes": ...}``, ``{"$set": [...]}``) cannot collide with
user data: user mapping keys that start with ``$`` are escaped by doubling the ``$``.

Not here: values (``codec.py``), when a key is used (``_policy.py``), and what is known about
each SDK (``llm_memo.sdks``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import inspect
import math
import pathlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from . import sdks
from .entry import FORMAT_VERSION
from .errors import ConfigurationError, UnkeyableArgumentError
from .sdks import is_absent, split_for_similarity

__all__ = [
    "DEFAULT_IGNORE",
    "IGNORE_GROUPS",
    "MAX_DEPTH",
    "MAX_NODES",
    "KEY_ROOT",
    "KeyBuilder",
    "KeyParts",
    "canonical",
    "canonical_bytes",
    "digest",
    "split_for_similarity",
    "function_prefix",
    "key_string",
    "namespace_prefix",
    "parse_key",
]

#: The generic never-keyed list, by group (docs/guides/keys.md shows the same table; a test
#: compares them). Exact names, matched at the top level of the bound arguments, including
#: names passed through ``**kwargs``.
IGNORE_GROUPS: dict[str, frozenset[str]] = {
    # Credentials never change the answer, and must never reach stored bytes or recordings.
    "credentials": frozenset(
        {
            "api_key",
            "api_token",
            "auth_token",
            "access_token",
            "token",
            "secret",
            "client_secret",
            "password",
            "azure_ad_token",
            "azure_ad_token_provider",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        }
    ),
    # How the request travels, not what it asks.
    "transport": frozenset(
        {"timeout", "request_timeout", "max_retries", "num_retries", "http_client"}
    ),
    # Whole header mappings: they carry credentials and per-request tracing ids (which would
    # bust every key). key_headers= keys chosen headers from them.
    "header mappings": frozenset(sdks.HEADER_MAPPINGS),
}

#: Parameter names never part of a key, whatever the function: credentials, transport
#: settings and header mappings (:data:`IGNORE_GROUPS`). SDK-specific names (litellm's
#: ``cache``, ``callbacks``, ``litellm_*``...) are in that SDK's profile and apply to its own
#: functions only. ``ignore=`` adds names; ``key_params=`` brings names back.
DEFAULT_IGNORE: frozenset[str] = frozenset().union(*IGNORE_GROUPS.values())
# Deliberately keyed: stream_options (include_usage changes which chunks a stream has),
# extra_body / extra_query (they change the request), base_url / api_base / api_version (they
# choose the server that answers), and generic input names such as project or user.

_KEY_PREFIX = "llm_memo"
#: What every key llm_memo writes starts with. Backends list and clear "all of llm_memo's
#: entries" as the keys under this prefix, and call :func:`parse_key` to read one apart.
KEY_ROOT = _KEY_PREFIX + ":"
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


class _Unkeyable(Exception):
    """Internal: carries the path to the offending value up to the parameter level.

    ``trail`` collects ``(path segment, container)`` pairs on the way up (innermost first), so
    the top level can tell a self-referencing argument from a merely deep one.
    """

    def __init__(self, value: Any, reason: str = "") -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.trail: list[tuple[str, Any]] = []

    @property
    def path(self) -> str:
        return "".join(segment for segment, _ in reversed(self.trail))


class _TooDeep(_Unkeyable):
    """Internal: the canonical form would nest deeper than :data:`MAX_DEPTH`."""


class _TooBig(_Unkeyable):
    """Internal: the canonical form would hold more than :data:`MAX_NODES` containers."""


def _step(exc: _Unkeyable, segment: str, container: Any) -> _Unkeyable:
    exc.trail.append((segment, container))
    return exc


def _canon_key(k: Any) -> Any:
    if type(k) is str:
        return "$" + k if k[:1] == "$" else k
    return None  # signals "not a str key"


def _plain(obj: Any) -> bool:
    """Whether a list/tuple/dict is canonical as it stands: only str keys not starting with
    "$", and only str, None, bool, in-range int, list, tuple and dict inside (no floats), at
    most :data:`MAX_DEPTH` levels deep (so a cycle is never plain) and :data:`MAX_NODES` big."""
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
    except _Unkeyable as exc:
        raise _unkeyable_error(parameter, exc, function, is_self) from None
    except RecursionError as exc:
        # Only when the caller had little stack left: the walk itself is bounded.
        raise _unkeyable_error(
            parameter, _TooDeep(value, "the Python stack ran out"), function
        ) from exc


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
        raise _TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise _TooBig(obj)
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if is_absent(v):
            continue
        ck = _canon_key(k)
        if ck is None:
            return _canon_map(obj, d, m, b)
        try:
            out[ck] = _canon(v, d - 1, m, b)
        except _Unkeyable as exc:
            raise _step(exc, f"[{k!r}]", obj) from None
    return out


def _canon_map(obj: Mapping[Any, Any], d: int, m: bool, b: list[int]) -> Any:
    # A mapping with non-str keys: a sorted list of pairs, so {1: x} differs from {"1": x}.
    # Three levels: the tag's dict, the list of pairs, each pair.
    if d <= 2:
        raise _TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise _TooBig(obj)
    pairs = []
    for k, v in obj.items():
        if is_absent(v):
            continue
        try:
            pairs.append([_canon(k, d - 3, m, b), _canon(v, d - 3, m, b)])
        except _Unkeyable as exc:
            raise _step(exc, f"[{k!r}]", obj) from None
    pairs.sort(key=_sort_key_of_pair)
    return {"$map": pairs}


def _sort_key_of_pair(pair: list[Any]) -> bytes:
    return orjson.dumps(pair[0], option=orjson.OPT_SORT_KEYS)


def _sort_key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _canon_list(obj: Iterable[Any], d: int, m: bool, b: list[int]) -> list[Any]:
    if d <= 0:
        raise _TooDeep(obj)
    b[0] -= 1  # the size budget: shared parts count at each place
    if b[0] < 0:
        raise _TooBig(obj)
    out = []
    for i, v in enumerate(obj):
        try:
            out.append(_canon(v, d - 1, m, b))
        except _Unkeyable as exc:
            raise _step(exc, f"[{i}]", obj) from None
    return out


def _canon_set(obj: Iterable[Any], d: int, m: bool, b: list[int]) -> Any:
    # Sorted by canonical bytes: stable in every process (never hash order) and total over
    # mixed types. Inside a model or dataclass a set is the sorted list its JSON would carry;
    # elsewhere it is tagged, so {1, 2} differs from [1, 2].
    if m:
        items = _canon_list(obj, d, m, b)
        items.sort(key=_sort_key)
        return items
    if d <= 1:
        raise _TooDeep(obj)
    items = _canon_list(obj, d - 1, m, b)
    items.sort(key=_sort_key)
    return {"$set": items}


def _canon_other(obj: Any, d: int, m: bool, b: list[int]) -> Any:
    hook = getattr(type(obj), "__llm_memo_key__", None)
    if hook is not None and not isinstance(obj, type):
        # The hook's value may be the object again, or a fresh object forever: it counts as
        # one level, so both end at the depth bound.
        if d <= 0:
            raise _TooDeep(obj)
        try:
            return _canon(hook(obj), d - 1, m, b)
        except _Unkeyable as exc:
            raise _step(exc, "", obj) from None
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
            raise _TooDeep(obj)
        try:
            return _canon(_model_json(obj, d, b), d, True, b)
        except _Unkeyable as exc:
            raise _step(exc, "", obj) from None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if d <= 0:
            raise _TooDeep(obj)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        try:
            return _canon_dict(fields, d, True, b)
        except _Unkeyable as exc:
            raise _step(exc, "", obj) from None
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
    if isinstance(obj, pathlib.PurePath):
        return {"$path": obj.as_posix()}
    if isinstance(obj, type):
        return _canon_class(obj)
    endpoint = sdks.endpoint_identity(obj)
    if endpoint is not None:
        # An SDK client (or one of its resources) as an argument: the server that answers,
        # never its credentials.
        return _canon(endpoint, d, m, b)
    raise _Unkeyable(obj)


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
        raise _Unkeyable(obj, f"its model_dump() failed: {exc}") from None
    except RecursionError:
        raise _TooDeep(obj) from None
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


def digest(data: bytes) -> str:
    """xxh3-128 of ``data`` as 32 hex digits.

    .. versionadded:: 0.1.0
    """
    return xxhash.xxh3_128_hexdigest(data)


def _escape(part: str) -> str:
    # Percent-escape everything but [A-Za-z0-9_.~-] and keep the result ASCII: a key part may
    # not contain ":" (the separator), "/" (object-store paths) or glob characters (Redis SCAN).
    from urllib.parse import quote

    return quote(part, safe="")


@functools.lru_cache(maxsize=4096)
def namespace_prefix(namespace: str) -> str:
    """The key prefix shared by every entry in ``namespace`` (for listing and clearing).

    .. versionadded:: 0.1.0
    """
    return f"{_KEY_PREFIX}:{FORMAT_VERSION}:{_escape(namespace)}:"


@functools.lru_cache(maxsize=4096)
def function_prefix(namespace: str, function: str) -> str:
    """The key prefix shared by one function's entries in ``namespace``.

    .. versionadded:: 0.1.0
    """
    return f"{namespace_prefix(namespace)}{_escape(function)}:"


def key_string(namespace: str, function: str, hexdigest: str) -> str:
    """Assemble a key: ``llm_memo:<format>:<namespace>:<function>:<hash>``.

    .. versionadded:: 0.1.0
    """
    return function_prefix(namespace, function) + hexdigest


# A key part as _escape writes it: percent-escaped, ASCII, never ":" or "/".
_PART_RE = re.compile(r"[A-Za-z0-9_.~%-]+")


@dataclass(frozen=True, slots=True)
class KeyParts:
    """A key read apart by :func:`parse_key`: ``llm_memo:<format>:<namespace>:<function>:<hash>``.

    ``namespace`` and ``function`` are decoded (as the user wrote them); :attr:`escaped` gives
    the four parts as they appear in the key (safe as path segments and glob patterns).

    .. versionadded:: 0.3.0
    """

    format: str
    namespace: str
    function: str
    digest: str
    escaped: tuple[str, str, str, str]

    @property
    def current(self) -> bool:
        """Whether the key was written in this version's key format."""
        return self.format == str(FORMAT_VERSION)


def parse_key(key: str) -> KeyParts | None:
    """The parts of a key :func:`key_string` wrote, or ``None`` for any other string.

    This is the only parser of the key format: object-store layout, recordings and the CLI
    all read keys through it, so a future format changes one place.

    .. versionadded:: 0.3.0
    """
    parts = key.split(":")
    if len(parts) != 5 or parts[0] != _KEY_PREFIX:
        return None
    fmt, ns, fn, hexdigest = parts[1], parts[2], parts[3], parts[4]
    if not all(_PART_RE.fullmatch(part) for part in (fmt, ns, fn, hexdigest)):
        return None
    from urllib.parse import unquote

    return KeyParts(fmt, unquote(ns), unquote(fn), hexdigest, (fmt, ns, fn, hexdigest))


def _describe(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def _find_cycle(trail: list[tuple[str, Any]]) -> tuple[str, str] | None:
    """In a root-first ``(segment, container)`` trail, the paths of the first container met
    again inside itself: (where it is, where it refers back to it)."""
    first: dict[int, int] = {}
    path = ""
    paths: list[str] = []
    for i, (segment, container) in enumerate(trail):
        paths.append(path)
        seen = first.get(id(container))
        if seen is not None:
            return path, paths[seen]
        first[id(container)] = i
        path += segment
    return None


def _unkeyable_error(
    parameter: str, exc: _Unkeyable, function: str = "", is_self: bool = False
) -> UnkeyableArgumentError:
    target = f" for {function}" if function else ""
    trail = list(reversed(exc.trail))
    if isinstance(exc, _TooBig):
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {parameter!r} holds more than "
            f"{MAX_NODES:,} lists, tuples, mappings and sets (a part shared by several places "
            f"counts at each). Fix: leave it out with @llm_cached(ignore=({parameter!r},)), or "
            f"pass key=<function of the same arguments> returning a smaller value.",
            parameter=parameter,
        )
    if isinstance(exc, _TooDeep):
        cycle = _find_cycle(trail)
        if cycle is not None:
            where, back = cycle
            return UnkeyableArgumentError(
                f"cannot build a cache key{target}: argument {parameter!r} refers to itself "
                f"({parameter}{where} is {parameter}{back}), so it has no finite canonical "
                f"form. Fix: pass a copy without the loop, leave it out with "
                f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
                f"arguments> to choose what is keyed.",
                parameter=f"{parameter}{where}",
            )
        why = f" ({exc.reason})" if exc.reason else ""
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {parameter!r} is nested more than "
            f"{MAX_DEPTH} levels deep{why}. Fix: leave it out with "
            f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
            f"arguments> returning a flatter value.",
            parameter=parameter,
        )
    where = f"{parameter}{exc.path}"
    what = _describe(exc.value)
    if exc.reason:
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {where!r} is a {what} with no "
            f"canonical form: {exc.reason}. Fix: leave it out with "
            f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
            f"arguments> to choose what is keyed.",
            parameter=where,
        )
    if is_self:
        fix = (
            f"if nothing on the instance changes the answer, decorate with "
            f"@llm_cached(ignore=({parameter!r},)); otherwise make {what} a dataclass or pydantic "
            f"model, or give it a __llm_memo_key__() method returning the state that matters"
        )
    else:
        fix = (
            f"leave it out of the key with @llm_cached(ignore=({parameter!r},)), pass "
            f"key=<function of the same arguments> to choose what is keyed, or give {what} a "
            f"__llm_memo_key__() method"
        )
    return UnkeyableArgumentError(
        f"cannot build a cache key{target}: argument {where!r} is a {what}, which has no "
        f"canonical form (its only form would be a repr with a memory address). Fix: {fix}.",
        parameter=where,
    )


class KeyBuilder:
    """Builds keys for one decorated function; the signature is inspected once, here.

    The request view is a dict: named parameters by name, ``**kwargs`` entries next to them,
    ``*args`` as a list under ``"*<name>"``, and, where they apply, ``"$endpoint"`` (the SDK
    client's endpoint), ``"$wrappers"`` (wrappers around the SDK method, such as
    ``with_raw_response``) and ``"$headers"`` (the headers chosen with ``key_headers``). A
    ``**kwargs`` entry that could be mistaken for one of those, or for a positional-only
    parameter, is keyed as ``"**<name>"``, so no two calls share a view by accident.

    Args:
        fn: the function (or bound method, or any callable) being cached.
        function_id: the function identity in the key (``module.qualname`` or ``name=``).
        ignore: parameter names to leave out, added to :data:`DEFAULT_IGNORE` and the SDK
            profile's names.
        key: optional ``key(*args, **kwargs)`` returning the value to key instead of the
            bound arguments.
        key_params: never-keyed names to key for this function after all.
        key_headers: header names (any case) to key from the header mappings
            (``extra_headers``, ``headers``, ``default_headers``) and the SDK client's default
            headers.

    Raises:
        ConfigurationError: a credential header in ``key_headers``, a header mapping or an
            already keyed name in ``key_params``, or a name both ignored and kept.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_client",
        "_defaults",
        "_escape",
        "_fast",
        "_has_var_kw",
        "_ignore",
        "_kept",
        "_key_fn",
        "_key_headers",
        "_names",
        "_pos_names",
        "_posonly",
        "_prefixes",
        "_self_name",
        "_sig",
        "_var_kw",
        "_var_pos",
        "_var_pos_key",
        "_wrappers",
        "function_id",
        "profile",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        function_id: str,
        ignore: Iterable[str] = (),
        key: Callable[..., Any] | None = None,
        key_params: Iterable[str] = (),
        key_headers: Iterable[str] = (),
    ) -> None:
        self.function_id = function_id
        self.profile = sdks.profile_for(fn)
        profile_ignore = self.profile.ignore if self.profile is not None else frozenset()
        kept = frozenset(key_params)
        ignored = frozenset(ignore)
        self._check_kept(kept, ignored, profile_ignore)
        self._ignore = (DEFAULT_IGNORE | profile_ignore | ignored) - kept
        self._prefixes = self.profile.ignore_prefixes if self.profile is not None else ()
        self._kept = kept
        self._key_headers = self._check_headers(key_headers)
        self._key_fn = key
        self._client, wrappers = sdks.client_for(fn)
        self._wrappers = list(wrappers)
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        self._sig = sig
        self._var_pos: str | None = None
        self._var_pos_key = "*args" if sig is None else None
        self._var_kw: str | None = None
        self._pos_names: tuple[str, ...] = ()
        self._posonly: frozenset[str] = frozenset()
        self._names: frozenset[str] = frozenset()
        self._defaults: dict[str, Any] = {}
        self._self_name: str | None = None
        self._fast = False
        self._has_var_kw = False
        self._escape = True
        if sig is None:
            return
        params = list(sig.parameters.values())
        if params and params[0].name in ("self", "cls"):
            self._self_name = params[0].name
        pos = []
        posonly = []
        fast = True
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                self._var_pos = p.name
                self._var_pos_key = "*" + p.name
                fast = False
            elif p.kind is p.VAR_KEYWORD:
                self._var_kw = p.name
            elif p.kind is p.POSITIONAL_ONLY:
                posonly.append(p.name)
                fast = False
            elif p.kind is p.POSITIONAL_OR_KEYWORD:
                pos.append(p.name)
            if p.default is not p.empty:
                self._defaults[p.name] = p.default
        self._pos_names = tuple(pos)
        self._posonly = frozenset(posonly)
        self._names = frozenset(
            p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        self._has_var_kw = self._var_kw is not None
        # **kwargs entries need escaping only when the view has names they could take: the
        # "*args" entry, positional-only names, "$endpoint" / "$headers".
        self._escape = self._has_var_kw and bool(
            self._var_pos or posonly or self._client is not None or self._key_headers
        )
        self._fast = fast and not self._escape

    def _check_kept(
        self, kept: frozenset[str], ignored: frozenset[str], profile_ignore: frozenset[str]
    ) -> None:
        for name in sorted(kept):
            if name in sdks.HEADER_MAPPINGS:
                raise ConfigurationError(
                    f"key_params: {name!r} is a header mapping and is never keyed whole; key "
                    f"chosen headers with key_headers=('anthropic-beta', ...) instead"
                )
            if name in ignored:
                raise ConfigurationError(
                    f"{name!r} is both in ignore= and in key_params=; choose one"
                )
            in_profile = self.profile is not None and self.profile.ignores(name)
            if name not in DEFAULT_IGNORE and name not in profile_ignore and not in_profile:
                raise ConfigurationError(
                    f"key_params: {name!r} is keyed already (it is not on the never-keyed list "
                    f"for {self.function_id}); key_params only brings back never-keyed names"
                )

    @staticmethod
    def _check_headers(names: Iterable[str]) -> tuple[str, ...]:
        out = []
        for name in names:
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"key_headers takes header names, got {name!r}")
            lower = name.lower()
            if lower in sdks.CREDENTIAL_HEADERS:
                raise ConfigurationError(
                    f"key_headers: {name!r} carries credentials and is never keyed or recorded"
                )
            if lower not in out:
                out.append(lower)
        return tuple(sorted(out))

    # -- binding ---------------------------------------------------------------------------

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """All of the call's arguments by view name, defaults applied, nothing dropped."""
        if self._sig is None:
            # No signature: the positional part and the keywords, kept apart.
            view: dict[str, Any] = {"*args": list(args)}
            for k, v in kwargs.items():
                view["**" + k if k[:1] in ("$", "*") else k] = v
            return view
        if self._fast and len(args) <= len(self._pos_names):
            # The common shapes (keywords, a few positionals) without inspect.Signature.bind:
            # dict operations in C, and the same TypeErrors the call itself would raise.
            if args:
                view = dict(zip(self._pos_names, args))  # noqa: B905 - args may be shorter
                if not view.keys().isdisjoint(kwargs):
                    dup = sorted(view.keys() & kwargs.keys())
                    raise TypeError(f"{self.function_id}() got multiple values for {dup}")
                view.update(kwargs)
            else:
                view = dict(kwargs)
            if not self._has_var_kw and not view.keys() <= self._names:
                extra = sorted(view.keys() - self._names)
                raise TypeError(f"{self.function_id}() got unexpected keyword arguments {extra}")
            if self._defaults:
                view = {**self._defaults, **view}
            if not view.keys() >= self._names:
                missing = sorted(self._names.difference(view))
                raise TypeError(f"{self.function_id}() missing required arguments: {missing}")
            return view
        bound = self._sig.bind(*args, **kwargs)
        bound.apply_defaults()
        view = {}
        var_kw: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name == self._var_kw:
                var_kw = value
            elif name == self._var_pos:
                view["*" + name] = list(value)
            else:
                view[name] = value
        escape, posonly = self._escape, self._posonly
        for k, v in var_kw.items():
            if escape and (k[:1] in ("$", "*") or k in posonly):
                k = "**" + k
            view[k] = v
        return view

    def _drop_ignored(self, view: dict[str, Any]) -> dict[str, Any]:
        ignore = self._ignore
        if not ignore.isdisjoint(view):
            for name in ignore.intersection(view):
                del view[name]
        if self._var_pos is not None and self._var_pos in ignore:
            view.pop("*" + self._var_pos, None)
        prefixes = self._prefixes
        if prefixes:
            kept = self._kept
            for name in [n for n in view if n.startswith(prefixes) and n not in kept]:
                del view[name]
        return view

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by view name, defaults applied, never-keyed names removed.

        The result is a new dict the caller may modify. SDK "not given" values are still in
        it; :meth:`canonical_view` drops them.

        Raises:
            TypeError: the arguments do not fit the signature (as calling the function would).
        """
        return self._drop_ignored(self._bind(args, kwargs))

    def request_view(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What the key is computed from: the bound arguments, or ``key(*args, **kwargs)``."""
        if self._key_fn is not None:
            return self._key_fn(*args, **kwargs)
        return self.bind(args, kwargs)

    def _headers(self, view: dict[str, Any]) -> dict[str, Any] | None:
        """The chosen headers' values: client defaults, then the call's header mappings."""
        wanted = self._key_headers
        found: dict[str, Any] = {}
        sources: list[Any] = []
        if self._client is not None:
            sources.append(self._client.default_headers())
        sources += [view.get(name) for name in sdks.HEADER_MAPPINGS]
        for source in sources:
            if not isinstance(source, Mapping):
                continue
            for name, value in source.items():
                lower = name.lower() if isinstance(name, str) else None
                if lower not in wanted:
                    continue
                if is_absent(value) or value is None:
                    found.pop(lower, None)  # the SDKs' way of removing a default header
                else:
                    found[lower] = value if isinstance(value, str) else str(value)
        return found or None

    def canonical_view(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The canonical form of :meth:`request_view`: what the key hashes and what recordings
        show. Never-keyed names and headers are not in it.

        Raises:
            UnkeyableArgumentError: an argument has no canonical form, contains itself or is
                nested deeper than :data:`MAX_DEPTH`; names it and the fix.
        """
        if self._key_fn is not None:
            return _canon_param("key()", self._key_fn(*args, **kwargs), self.function_id)
        view = self._bind(args, kwargs)
        headers = self._headers(view) if self._key_headers else None
        view = self._drop_ignored(view)
        absent: list[str] | None = None
        var_pos_key = self._var_pos_key
        # The view is our own dict: rewrite only the arguments that are not canonical already
        # (most are: strings, ints, plain lists of plain dicts), checked without copying.
        for name, value in view.items():
            t = type(value)
            if t is str or value is None or t is bool:
                continue
            if name == var_pos_key:
                # Each positional item is an argument of its own: the same depth allowance
                # wherever a value is passed.
                view[name] = [
                    _canon_param(f"{self._var_pos or 'args'}[{i}]", item, self.function_id)
                    for i, item in enumerate(value)
                ]
                continue
            if t is int and _MIN_INT <= value < _MAX_INT:
                continue
            if (t is dict or t is list or t is tuple) and _plain(value):
                continue
            if t is float and math.isfinite(value):
                if value.is_integer():
                    view[name] = _canon(value, MAX_DEPTH, False, [MAX_NODES])
                continue
            if is_absent(value):
                if absent is None:
                    absent = []
                absent.append(name)
                continue
            view[name] = _canon_param(
                name, value, self.function_id, is_self=name == self._self_name
            )
        if absent:
            for name in absent:
                del view[name]
        if self._client is not None:
            view["$endpoint"] = self._client.endpoint()
            if self._wrappers:
                view["$wrappers"] = list(self._wrappers)
        if headers:
            view["$headers"] = headers
        return view

    def digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The 32-hex-digit hash of the call's canonical request view."""
        data = orjson.dumps(self.canonical_view(args, kwargs), option=_DUMP_OPTIONS)
        return xxhash.xxh3_128_hexdigest(data)

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any], namespace: str) -> str:
        """The full key string of a call in ``namespace``."""
        data = orjson.dumps(self.canonical_view(args, kwargs), option=_DUMP_OPTIONS)
        return function_prefix(namespace, self.function_id) + xxhash.xxh3_128_hexdigest(data)
