"""Cache keys: bound arguments -> canonical form -> canonical bytes -> xxh3-128 -> key string.

The key contract (SPEC §4), in the order the code applies it:

1. **Bind** the call to the function's signature with defaults applied, so positional vs keyword
   and omitted defaults give one key. ``**kwargs`` are merged into the top level, ``*args`` kept
   as a list. SDK "not given" sentinels (openai / anthropic ``NOT_GIVEN``, ``Omit``) count as
   absent. Names in :data:`DEFAULT_IGNORE` plus the decorator's ``ignore=`` are dropped.
2. **Canonicalise** (:func:`canonical`): mappings become key-sorted, lists and tuples one kind,
   integral floats ints (``0 == 0.0``) while ``True`` stays distinct from ``1``, pydantic
   models and dataclasses the plain JSON the SDK would send, objects with ``__llm_memo_key__``
   whatever it returns. Anything else raises :class:`~llm_memo.errors.UnkeyableArgumentError`
   naming the parameter: an unstable key is worse than an error.
3. **Hash** the compact, key-sorted JSON (orjson) with xxh3-128.
4. **Name** it ``llm_memo:<format>:<namespace>:<function>:<hash>``, the first three parts
   percent-escaped, so a namespace or one function's entries form a key prefix.

Type tags in the canonical form (``{"$bytes": ...}``, ``{"$set": [...]}``) cannot collide with
user data: user mapping keys that start with ``$`` are escaped by doubling the ``$``.

Not here: values (``codec.py``) and when a key is used (``_policy.py``).
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
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import xxhash

from .entry import FORMAT_VERSION
from .errors import UnkeyableArgumentError

__all__ = [
    "DEFAULT_IGNORE",
    "KeyBuilder",
    "canonical",
    "canonical_bytes",
    "digest",
    "split_for_similarity",
    "function_prefix",
    "key_string",
    "namespace_prefix",
]

#: Parameter names never part of a key: credentials, client objects' transport settings and
#: per-call bookkeeping that does not change the model's answer. Applied at the top level of the
#: bound arguments, including names passed through ``**kwargs``. ``ignore=`` adds to it.
DEFAULT_IGNORE: frozenset[str] = frozenset(
    {
        # credentials and accounts
        "api_key",
        "api_token",
        "organization",
        "azure_ad_token",
        "azure_ad_token_provider",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        # transport
        "timeout",
        "request_timeout",
        "max_retries",
        "num_retries",
        "extra_headers",
        "default_headers",
        "http_client",
        # litellm bookkeeping
        "caching",
        "litellm_call_id",
        "litellm_logging_obj",
        "logger_fn",
    }
)
# Deliberately not ignored: generic names a user's own function may use for inputs that
# change the answer (token, project, headers, cache...), and stream_options (include_usage
# changes which chunks a stream has).

_KEY_PREFIX = "llm_memo"
_MAX_INT = 2**64
_MIN_INT = -(2**63)
_ABSENT_NAMES = frozenset({"NotGiven", "Omit"})


class _Unkeyable(Exception):
    """Internal: carries the path to the offending value up to the parameter level."""

    def __init__(self, value: Any, path: str = "") -> None:
        super().__init__(path)
        self.value = value
        self.path = path


def _is_absent(value: Any) -> bool:
    # openai / anthropic (Stainless SDKs) mark omitted params with NotGiven / Omit instances.
    return type(value).__name__ in _ABSENT_NAMES and not value


def _canon_key(k: Any) -> Any:
    if type(k) is str:
        return "$" + k if k[:1] == "$" else k
    return None  # signals "not a str key"


def _plain(obj: Any) -> bool:
    """Whether a list/tuple/dict is canonical as it stands: only str keys not starting with
    "$", and only str, None, bool, in-range int, list, tuple and dict inside (no floats)."""
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        o = pop()
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
                push(v)
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
    by_alias=True, exclude_unset=True)``, a dataclass and its field dict.

    Raises:
        UnkeyableArgumentError: a value with no canonical form (a lock, a socket, an object
            whose only form is a ``repr`` with a memory address).

    Example::

        >>> canonical({"b": 1.0, "a": (1, 2)})
        {'b': 1, 'a': [1, 2]}

    .. versionadded:: 0.1.0
    """
    try:
        return _canon(value)
    except _Unkeyable as exc:
        raise _unkeyable_error("value", exc) from None


def _canon(obj: Any) -> Any:
    # Hot path: exact builtin types first, in order of frequency in chat requests.
    t = type(obj)
    if t is str or obj is None or t is bool:
        return obj
    if t is dict:
        return _canon_dict(obj)
    if t is list or t is tuple:
        return _canon_list(obj)
    if t is int:
        return obj if _MIN_INT <= obj < _MAX_INT else {"$int": str(obj)}
    if t is float:
        if obj.is_integer():
            return _canon(int(obj))
        if math.isfinite(obj):
            return obj
        return {"$float": repr(obj)}
    return _canon_other(obj)


def _canon_dict(obj: Mapping[Any, Any]) -> Any:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if _is_absent(v):
            continue
        ck = _canon_key(k)
        if ck is None:
            return _canon_map(obj)
        try:
            out[ck] = _canon(v)
        except _Unkeyable as exc:
            exc.path = f"[{k!r}]{exc.path}"
            raise
    return out


def _canon_map(obj: Mapping[Any, Any]) -> Any:
    # A mapping with non-str keys: a sorted list of pairs, so {1: x} differs from {"1": x}.
    pairs = []
    for k, v in obj.items():
        if _is_absent(v):
            continue
        try:
            pairs.append([_canon(k), _canon(v)])
        except _Unkeyable as exc:
            exc.path = f"[{k!r}]{exc.path}"
            raise
    pairs.sort(key=lambda p: orjson.dumps(p[0], option=orjson.OPT_SORT_KEYS))
    return {"$map": pairs}


def _canon_list(obj: Iterable[Any]) -> list[Any]:
    out = []
    for i, v in enumerate(obj):
        try:
            out.append(_canon(v))
        except _Unkeyable as exc:
            exc.path = f"[{i}]{exc.path}"
            raise
    return out


def _canon_other(obj: Any) -> Any:
    hook = getattr(type(obj), "__llm_memo_key__", None)
    if hook is not None and not isinstance(obj, type):
        return _canon(hook(obj))
    if isinstance(obj, enum.Enum):
        return _canon(obj.value)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(obj)
    if isinstance(obj, int):
        return _canon(int(obj))
    if isinstance(obj, float):
        return _canon(float(obj))
    if isinstance(obj, Mapping):
        return _canon_dict(obj)
    if isinstance(obj, (list, tuple)):
        return _canon_list(obj)
    if _is_pydantic_model(obj):
        return _canon(obj.model_dump(mode="json", by_alias=True, exclude_unset=True))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _canon_dict({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, (set, frozenset)):
        items = _canon_list(obj)
        items.sort(key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
        return {"$set": items}
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return {"$" + type(obj).__name__: obj.isoformat()}
    if isinstance(obj, _dt.timedelta):
        return {"$timedelta": _canon(obj.total_seconds())}
    if isinstance(obj, decimal.Decimal):
        return {"$decimal": str(obj.normalize())}
    if isinstance(obj, uuid.UUID):
        return {"$uuid": str(obj)}
    if isinstance(obj, pathlib.PurePath):
        return {"$path": obj.as_posix()}
    if isinstance(obj, type):
        return _canon_class(obj)
    raise _Unkeyable(obj)


def _is_pydantic_model(obj: Any) -> bool:
    return hasattr(type(obj), "__pydantic_serializer__") and hasattr(obj, "model_dump")


@functools.lru_cache(maxsize=256)
def _canon_class(cls: type) -> Any:
    # A pydantic model class (``response_format=Answer``) keys by its JSON schema: that is what
    # the SDK sends, and an edited model must not hit answers shaped for the old one.
    name = f"{cls.__module__}.{cls.__qualname__}"
    schema = getattr(cls, "model_json_schema", None)
    if callable(schema) and hasattr(cls, "__pydantic_serializer__"):
        return {"$model": name, "schema": _canon(schema())}
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


def _describe(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def _unkeyable_error(
    parameter: str, exc: _Unkeyable, function: str = "", is_self: bool = False
) -> UnkeyableArgumentError:
    where = f"{parameter}{exc.path}"
    what = _describe(exc.value)
    target = f" for {function}" if function else ""
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

    Args:
        fn: the function (or bound method, or any callable) being cached.
        function_id: the function identity in the key (``module.qualname`` or ``name=``).
        ignore: parameter names to leave out, added to :data:`DEFAULT_IGNORE`.
        key: optional ``key(*args, **kwargs)`` returning the value to key instead of the
            bound arguments.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_defaults",
        "_fast",
        "_has_var_kw",
        "_ignore",
        "_key_fn",
        "_names",
        "_pos_names",
        "_self_name",
        "_sig",
        "_var_kw",
        "_var_pos",
        "function_id",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        function_id: str,
        ignore: Iterable[str] = (),
        key: Callable[..., Any] | None = None,
    ) -> None:
        self.function_id = function_id
        self._ignore = DEFAULT_IGNORE | frozenset(ignore)
        self._key_fn = key
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        self._sig = sig
        self._var_pos: str | None = None
        self._var_kw: str | None = None
        self._pos_names: tuple[str, ...] = ()
        self._names: frozenset[str] = frozenset()
        self._defaults: dict[str, Any] = {}
        self._self_name: str | None = None
        self._fast = False
        self._has_var_kw = False
        if sig is None:
            return
        params = list(sig.parameters.values())
        if params and params[0].name in ("self", "cls"):
            self._self_name = params[0].name
        pos = []
        fast = True
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                self._var_pos = p.name
                fast = False
            elif p.kind is p.VAR_KEYWORD:
                self._var_kw = p.name
            elif p.kind is p.POSITIONAL_ONLY:
                fast = False
            elif p.kind is p.POSITIONAL_OR_KEYWORD:
                pos.append(p.name)
            if p.default is not p.empty:
                self._defaults[p.name] = p.default
        self._pos_names = tuple(pos)
        self._names = frozenset(
            p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        self._has_var_kw = self._var_kw is not None
        self._fast = fast

    # -- binding ---------------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied, ignored names removed.

        The result is a new dict the caller may modify. SDK "not given" values are still in
        it; :meth:`canonical_view` drops them.

        Raises:
            TypeError: the arguments do not fit the signature (as calling the function would).
        """
        if self._sig is None:
            view: dict[str, Any] = {"args": list(args), **kwargs}
        elif self._fast and len(args) <= len(self._pos_names):
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
        else:
            bound = self._sig.bind(*args, **kwargs)
            bound.apply_defaults()
            view = {}
            for name, value in bound.arguments.items():
                if name == self._var_kw:
                    view.update(value)
                elif name == self._var_pos:
                    view[name] = list(value)
                else:
                    view[name] = value
        ignore = self._ignore
        if not ignore.isdisjoint(view):
            for name in ignore.intersection(view):
                del view[name]
        return view

    def request_view(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What the key is computed from: the bound arguments, or ``key(*args, **kwargs)``."""
        if self._key_fn is not None:
            return self._key_fn(*args, **kwargs)
        return self.bind(args, kwargs)

    def canonical_view(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The canonical form of :meth:`request_view`.

        Raises:
            UnkeyableArgumentError: an argument has no canonical form; names it and the fix.
        """
        if self._key_fn is not None:
            try:
                return _canon(self._key_fn(*args, **kwargs))
            except _Unkeyable as exc:
                raise _unkeyable_error("key()", exc, self.function_id) from None
        view = self.bind(args, kwargs)
        absent = None
        # The view is our own dict: rewrite only the arguments that are not canonical already
        # (most are: strings, ints, plain lists of plain dicts), checked without copying.
        for name, value in view.items():
            t = type(value)
            if t is str or value is None or t is bool:
                continue
            if t is int and _MIN_INT <= value < _MAX_INT:
                continue
            if (t is dict or t is list or t is tuple) and _plain(value):
                continue
            if t is float and math.isfinite(value):
                if value.is_integer():
                    view[name] = _canon(value)
                continue
            if _is_absent(value):
                absent = [*(absent or ()), name]
                continue
            try:
                view[name] = _canon(value)
            except _Unkeyable as exc:
                raise _unkeyable_error(
                    name, exc, self.function_id, is_self=name == self._self_name
                ) from None
        if absent:
            for name in absent:
                del view[name]
        return view

    def digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The 32-hex-digit hash of the call's canonical request view."""
        data = orjson.dumps(self.canonical_view(args, kwargs), option=_DUMP_OPTIONS)
        return xxhash.xxh3_128_hexdigest(data)

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any], namespace: str) -> str:
        """The full key string of a call in ``namespace``."""
        data = orjson.dumps(self.canonical_view(args, kwargs), option=_DUMP_OPTIONS)
        return function_prefix(namespace, self.function_id) + xxhash.xxh3_128_hexdigest(data)


#: Parameters whose text a semantic cache embeds, in order of preference.
TEXT_PARAMETERS = ("messages", "prompt", "input", "query", "question")


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        texts = [t for t in parts if isinstance(t, str)]
        return "\n".join(texts) if texts else None
    return None


def split_for_similarity(view: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Split a canonical request view into (exact context, text to embed).

    The text is the conversation's user turns (``messages`` entries with role ``user``, joined
    by newlines), or else the first of ``prompt``, ``input``, ``query``, ``question`` that is a
    string. The context is the view with exactly that text removed, so everything else (model,
    parameters, system prompt, assistant turns, tools) must match exactly for a semantic hit.
    Returns ``None`` when the request has no such text.

    .. versionadded:: 0.1.0
    """
    for name in TEXT_PARAMETERS:
        value = view.get(name)
        if name == "messages" and isinstance(value, list):
            texts: list[str] = []
            context_messages = []
            for message in value:
                if isinstance(message, dict) and message.get("role") == "user":
                    text = _message_text(message.get("content"))
                    if text is not None:
                        texts.append(text)
                        context_messages.append({**message, "content": None})
                        continue
                context_messages.append(message)
            if texts:
                return {**view, "messages": context_messages}, "\n".join(texts)
        elif isinstance(value, str) and value:
            return {**view, name: None}, value
    return None
