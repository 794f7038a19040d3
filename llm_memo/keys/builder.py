"""KeyBuilder: one decorated function's calls -> request view -> key string.

The key contract (SPEC §4), in the order :meth:`KeyBuilder.key` applies it:

1. **Bind** the call to the function's signature with defaults applied, so positional vs keyword
   and omitted defaults give one key. ``**kwargs`` are merged into the top level, ``*args`` kept
   as a list under ``"*<name>"``; a ``**kwargs`` entry that could pass for another part is keyed
   as ``"**<name>"``, so ``f(5)`` and ``f(args=[5])`` never meet. SDK "not given" sentinels
   (openai / anthropic ``NOT_GIVEN``, ``Omit``) count as absent. Names in
   :data:`DEFAULT_IGNORE`, the SDK's own never-keyed names (``llm_memo.sdks``: litellm's
   ``cache``, ``callbacks``, ``litellm_*``...) and the decorator's ``ignore=`` are dropped,
   except those brought back with ``key_params=``. A bound SDK client method adds
   ``"$endpoint"`` (the server that answers, never its credentials); ``key_headers=`` adds
   ``"$headers"``.
2. **Canonicalise** each argument (``canonical_form.py``): a file object by its content
   (``file_content.py``), and a path by its file's content where the parameter is a file (the
   SDK profile's, ``llm_memo.sdks.file_params_for``, or the decorator's ``file_params=``).
3. **Hash** the compact, key-sorted JSON (orjson) with xxh3-128 and **name** it
   (``format.py``).

Not here: the canonical walk, the key format, what is known about each SDK (``llm_memo.sdks``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import xxhash

from .. import sdks
from ..errors import ConfigurationError
from ..sdks import is_absent
from ._binder import binder_for
from .canonical_form import (
    _DUMP_OPTIONS,
    _MAX_INT,
    _MIN_INT,
    MAX_DEPTH,
    MAX_NODES,
    _canon,
    _canon_file_param,
    _canon_param,
    _plain,
)
from .format import function_prefix

__all__ = ["DEFAULT_IGNORE", "IGNORE_GROUPS", "KeyBuilder"]

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
        file_params: parameter names that are files: a ``pathlib.Path`` passed there (alone
            or in a tuple or list) keys by the file's content, not its name. Added to the ones
            the SDK profile knows (``file=`` of ``audio.transcriptions.create``...).

    Raises:
        ConfigurationError: a credential header in ``key_headers``, a header mapping or an
            already keyed name in ``key_params``, or a name both ignored and kept.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_binder",
        "_client",
        "_drop_var_pos",
        "_escape",
        "_file_params",
        "_ignore",
        "_kept",
        "_key_fn",
        "_key_headers",
        "_keywords",
        "_may_drop",
        "_nested_ignore",
        "_posonly",
        "_prefix",
        "_prefixes",
        "_self_name",
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
        file_params: Iterable[str] = (),
    ) -> None:
        self.function_id = function_id
        self._file_params = sdks.file_params_for(fn) | frozenset(file_params)
        self.profile = sdks.profile_for(fn)
        profile_ignore = self.profile.ignore if self.profile is not None else frozenset()
        kept = frozenset(key_params)
        ignored = frozenset(ignore)
        self._check_kept(kept, ignored, profile_ignore)
        self._ignore = (DEFAULT_IGNORE | profile_ignore | ignored) - kept
        self._prefixes = self.profile.ignore_prefixes if self.profile is not None else ()
        self._nested_ignore = self.profile.nested_ignore if self.profile is not None else {}
        self._kept = kept
        self._key_headers = self._check_headers(key_headers)
        self._key_fn = key
        self._client, wrappers = sdks.client_for(fn)
        self._wrappers = list(wrappers)
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        self._var_pos: str | None = None
        self._var_pos_key = "*args" if sig is None else None
        self._posonly: frozenset[str] = frozenset()
        self._self_name: str | None = None
        self._escape = True
        self._binder: Callable[..., Any] | None = None
        self._drop_var_pos = False
        self._may_drop = True
        self._prefix: tuple[str, str] | None = None
        self._keywords: tuple[dict[str, Any], frozenset[str], frozenset[str] | None] | None = None
        if sig is None:
            return
        params = list(sig.parameters.values())
        if params and params[0].name in ("self", "cls"):
            self._self_name = params[0].name
        has_var_kw = False
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                self._var_pos = p.name
                self._var_pos_key = "*" + p.name
            elif p.kind is p.VAR_KEYWORD:
                has_var_kw = True
        self._posonly = frozenset(p.name for p in params if p.kind is p.POSITIONAL_ONLY)
        self._drop_var_pos = self._var_pos is not None and self._var_pos in self._ignore
        # Without **kwargs the view's names are the parameters' own: whether any is never keyed
        # is known now, so most functions skip the per-call check.
        self._may_drop = (
            has_var_kw
            or self._drop_var_pos
            or any(
                name in self._ignore
                or (self._prefixes and name.startswith(self._prefixes) and name not in kept)
                for name in (("*" if p.kind is p.VAR_POSITIONAL else "") + p.name for p in params)
            )
        )
        # **kwargs entries need escaping only when the view has names they could take: the
        # "*args" entry, positional-only names, "$endpoint" / "$headers".
        self._escape = has_var_kw and bool(
            self._var_pos or self._posonly or self._client is not None or self._key_headers
        )
        if not self._escape and self._var_pos is None and not self._posonly:
            # A call with keywords only (the usual way to call an LLM function) binds with two
            # dict operations: defaults, then the keywords; it fits when every parameter without
            # a default is there and, without **kwargs, no other name is.
            self._keywords = (
                {p.name: p.default for p in params if p.default is not p.empty},
                frozenset(
                    p.name for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD
                ),
                None
                if has_var_kw
                else frozenset(p.name for p in params if p.kind is not p.VAR_KEYWORD),
            )
        name = getattr(fn, "__name__", None)
        qualname = getattr(fn, "__qualname__", None)
        self._binder = binder_for(
            sig,
            name if isinstance(name, str) else function_id,
            qualname if isinstance(qualname, str) else function_id,
            split_var_kw=self._escape,
        )

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
        binder = self._binder
        if binder is None:
            # No signature: the positional part and the keywords, kept apart.
            view: dict[str, Any] = {"*args": list(args)}
            for k, v in kwargs.items():
                view["**" + k if k[:1] in ("$", "*") else k] = v
            return view
        keywords = self._keywords
        if keywords is not None and not args:
            defaults, required, names = keywords
            view = {**defaults, **kwargs}
            keys = view.keys()
            if keys >= required and (names is None or keys <= names):
                return view
            # It does not fit: the binder raises the TypeError the call itself would.
        if not self._escape:
            # Every shape, one call: the generated binder (see _binder.py) raises the
            # TypeErrors the call itself would.
            result: dict[str, Any] = binder(*args, **kwargs)
            return result
        view, var_kw = binder(*args, **kwargs)
        posonly = self._posonly
        for k, v in var_kw.items():
            if k[:1] in ("$", "*") or k in posonly:
                k = "**" + k
            view[k] = v
        return view

    def _drop_ignored(self, view: dict[str, Any]) -> dict[str, Any]:
        ignore = self._ignore
        if not ignore.isdisjoint(view):
            for name in ignore.intersection(view):
                del view[name]
        if self._drop_var_pos:
            view.pop(f"*{self._var_pos}", None)
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
        """The canonical form of the bound arguments (or of ``key(*args, **kwargs)``): what the
        key hashes and what recordings show. Never-keyed names and headers are not in it.

        Raises:
            UnkeyableArgumentError: an argument has no canonical form, contains itself or is
                nested deeper than :data:`MAX_DEPTH`; names it and the fix.
        """
        if self._key_fn is not None:
            return _canon_param("key()", self._key_fn(*args, **kwargs), self.function_id)
        view = self._bind(args, kwargs)
        headers = self._headers(view) if self._key_headers else None
        if self._may_drop:
            view = self._drop_ignored(view)
        absent: list[str] | None = None
        var_pos_key = self._var_pos_key
        nested = self._nested_ignore
        # The view is our own dict: rewrite only the arguments that are not canonical already
        # (most are: strings, ints, plain lists of plain dicts), checked without copying.
        for name, value in view.items():
            if nested and name in nested:
                value = view[name] = _without_parts(value, nested[name])
            t = type(value)
            if t is str or value is None or t is bool:
                continue
            if name == var_pos_key:
                view[name] = self._canon_positional(value)
                continue
            if t is int and _MIN_INT <= value < _MAX_INT:
                continue
            if (t is dict or t is list or t is tuple) and _plain(value):
                continue
            if t is float and math.isfinite(value):
                if value.is_integer():  # 2.0 keys as 2 (as the canonical walk would)
                    as_int = int(value)
                    in_range = _MIN_INT <= as_int < _MAX_INT
                    view[name] = (
                        as_int if in_range else _canon(as_int, MAX_DEPTH, False, [MAX_NODES])
                    )
                continue
            if is_absent(value):
                if absent is None:
                    absent = []
                absent.append(name)
                continue
            if name in self._file_params:
                view[name] = _canon_file_param(name, value, self.function_id)
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

    def _canon_positional(self, items: Iterable[Any]) -> list[Any]:
        # Each positional item is an argument of its own: the same depth allowance wherever a
        # value is passed, and its own name ("args[2]") in an error.
        out = []
        for i, item in enumerate(items):
            t = type(item)
            if t is str or item is None or t is bool or (t is int and _MIN_INT <= item < _MAX_INT):
                out.append(item)
            else:
                where = f"{self._var_pos or 'args'}[{i}]"
                out.append(_canon_param(where, item, self.function_id))
        return out

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any], namespace: str) -> str:
        """The full key string of a call in ``namespace``."""
        data = orjson.dumps(self.canonical_view(args, kwargs), option=_DUMP_OPTIONS)
        return self._prefix_of(namespace) + xxhash.xxh3_128_hexdigest(data)

    def _prefix_of(self, namespace: str) -> str:
        prefix = self._prefix
        if prefix is None or prefix[0] != namespace:
            # One function is nearly always keyed in one namespace: its prefix is kept here.
            prefix = self._prefix = (namespace, function_prefix(namespace, self.function_id))
        return prefix[1]

    def item_keys(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        namespace: str,
        param: str,
        items: list[Any],
    ) -> list[str] | None:
        """The keys of one-item calls, one per item of ``items``, in one canonical pass.

        ``args`` / ``kwargs`` are the call with ``param`` already set to ``[items[0]]``; each
        key is what :meth:`key` gives for the call with ``[item]`` there (the per-item key
        contract), computed from one canonical view of the rest of the call instead of one per
        item. ``None`` when that shortcut does not apply (an item is not a plain string, a
        ``key=`` function decides, or the list is not an argument of the canonical view as
        given): the caller then keys each item with :meth:`key`.
        """
        if self._key_fn is not None or any(type(item) is not str for item in items):
            return None
        view = self.canonical_view(args, kwargs)
        if not isinstance(view, dict) or view.get(param) != [items[0]]:
            return None
        prefix = self._prefix_of(namespace)
        keys = []
        for item in items:
            view[param] = [item]
            keys.append(
                prefix + xxhash.xxh3_128_hexdigest(orjson.dumps(view, option=_DUMP_OPTIONS))
            )
        return keys


def _without_parts(value: Any, names: frozenset[str]) -> Any:
    """``value`` without its never-keyed parts ``names`` (an SDK's :attr:`~llm_memo.sdks.Sdk.
    nested_ignore`): a mapping without those keys, or a pydantic model as the JSON dump it
    keys as (``by_alias``, set fields only) without those fields. Anything else unchanged.

    The dump is taken here, before the canonical walk, so a part that has no canonical form
    (an HTTP client in google-genai's ``config.http_options``) is never walked.
    """
    if isinstance(value, Mapping):
        if names.isdisjoint(value):
            return value
        return {k: v for k, v in value.items() if k not in names}
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, Mapping) and hasattr(value, "model_dump"):
        present = {n for n in names if n in fields and n in value.model_fields_set}
        if present:
            return value.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude=present)
    return value
