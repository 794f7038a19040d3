"""The record one SDK module fills in (:class:`Sdk`), and the helpers SDK modules share.

Every SDK module (``openai.py``, ``anthropic.py``, ``litellm.py``) builds one :class:`Sdk` and
names it ``SDK``; ``sdks/__init__.py`` lists those records and answers the rest of llm_memo's
questions from them. This module holds only what the SDK modules and the registry both need,
so neither imports the other's internals.

Not here: any one SDK's facts (its own module), the registry and the questions (``__init__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClientFamily",
    "ItemBatch",
    "Sdk",
    "Usage",
    "get_field",
    "int_or_zero",
    "without_credentials",
]


@dataclass(frozen=True)
class ClientFamily:
    """How to recognise an SDK's client objects and read the endpoint that answers them.

    Attributes:
        client_of: the client behind a client or resource object, else ``None``.
        endpoint_of: a client's endpoint identity (what decides which server answers; never
            credentials), as a JSON-native dict.
        default_headers: the headers a client sends by default (for ``key_headers=``).
        endpoint_inputs: the objects ``endpoint_of`` reads; while each is the same object,
            the endpoint read before still holds.
    """

    client_of: Callable[[Any], Any]
    endpoint_of: Callable[[Any], dict[str, Any]]
    default_headers: Callable[[Any], Any]
    endpoint_inputs: Callable[[Any], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Usage:
    """A response's tokens, counted apart because they are priced apart.

    Attributes:
        input: prompt tokens, *including* the cached ones (OpenAI's ``prompt_tokens``;
            Anthropic's ``input_tokens`` plus its cache reads and writes).
        output: completion tokens (reasoning tokens included, as the SDKs count them).
        cached_input: the part of ``input`` read from the provider's prompt cache, which is
            priced lower.

    .. versionadded:: 0.1.0
    """

    input: int = 0
    output: int = 0
    cached_input: int = 0

    def __bool__(self) -> bool:
        return bool(self.input or self.output)


@dataclass(frozen=True)
class ItemBatch:
    """How a function's list parameter is cached item by item (embeddings: ``input=[...]``).

    Each item is cached under the key of the same call with the list replaced by a one-item
    list, holding what that one-item call returns; a batch is answered from those entries, and
    only the items none answers are sent (see ``llm_memo._per_item``).

    Attributes:
        param: the parameter whose list items are cached one by one (``"input"``).
        items: the items of that parameter's value, or ``None`` when the value is not a batch
            (a single string, one token array), so the call is cached whole, as any call.
        split: the response to ``len(shares)`` items sent -> one one-item response per item,
            in request order, each reporting its share of the usage tokens; ``None`` when the
            response does not hold one answer per item.
        merge: one-item responses in request order, and the response of the call made for
            the missing ones (``None`` when none was made) -> one response of the SDK's own
            type: every item in request order, ``index`` renumbered, the usage of the call
            made (zero tokens when none was).

    .. versionadded:: 0.1.0
    """

    param: str
    items: Callable[[Any], list[Any] | None]
    split: Callable[[Any, Sequence[int]], list[Any] | None]
    merge: Callable[[Sequence[Any], Any], Any]


@dataclass(frozen=True)
class Sdk:
    """Everything llm_memo knows about one SDK (see the ``llm_memo.sdks`` docstring).

    Attributes:
        name: the SDK's top-level module name (``"openai"``).
        ignore: parameter names of the SDK's own functions that are never keyed.
        ignore_prefixes: parameter name prefixes of its own functions that are never keyed.
        absent_types: class names of its "not given" sentinels (``NotGiven``, ``Omit``): a
            falsy instance counts as an argument not passed.
        clients: its client objects and their endpoints, when calls go through a client.
        response_types: whether its pydantic response types are allow-listed (restored from
            the cache when the program has imported their module) and rebuilt without
            validation when the strict validator refuses a stored one, as the SDK builds them.
        usage_parts: the ``usage`` fields whose sum is the tokens of a response that reports no
            ``total_tokens``.
        stream_start_tokens: for a stream that reports its prompt tokens in its first chunk
            apart from the final usage (Anthropic's ``message_start``): those tokens, or
            ``None`` when the chunk is not such a start.
        reports_input: whether a chunk's usage carries prompt tokens itself.
        per_call: the SDK's own per-call cache controls, read from a call's keyword
            arguments (litellm's ``cache={"no-cache": True}``, ``caching=False``) as
            directive names and values for that one call, or ``None`` when the call has none.
        mark_hit: marks a value answered from the cache the way the SDK marks its own cache
            hits (litellm's ``_hidden_params["cache_hit"]``), given the value and its key.
        nested_ignore: parts of its own functions' arguments that are never keyed, by argument
            (google-genai's per-call transport inside ``config``: ``{"config": frozenset(
            {"http_options", "httpOptions"})}``), as field names of a pydantic model or keys of a
            mapping; dropped before the argument is keyed, so a recording never shows them.
        usage_split: a response's (or a chunk's) ``usage`` as a :class:`Usage` when it has
            this SDK's shape, else ``None`` (so the registry asks the next SDK). An SDK without
            one is priced by its total tokens at the input price (a lower bound).
        file_params: which parameters of its own functions are files, by function
            (``"module:QualName"`` of the function's code, as ``openai.resources.files:Files.
            create``): a ``pathlib.Path`` passed there keys by the file's content.
        per_item: which of its own functions cache a list parameter item by item
            (embeddings), keyed like ``file_params``.
    """

    name: str
    ignore: frozenset[str] = frozenset()
    ignore_prefixes: tuple[str, ...] = ()
    absent_types: frozenset[str] = frozenset()
    clients: ClientFamily | None = None
    response_types: bool = True
    usage_parts: tuple[str, ...] = ()
    stream_start_tokens: Callable[[Any], int | None] | None = field(default=None)
    reports_input: Callable[[Any], bool] | None = field(default=None)
    per_call: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = field(default=None)
    mark_hit: Callable[[Any, str], None] | None = field(default=None)
    file_params: Mapping[str, frozenset[str]] = field(default_factory=dict)
    nested_ignore: Mapping[str, frozenset[str]] = field(default_factory=dict)
    per_item: Mapping[str, ItemBatch] = field(default_factory=dict)
    usage_split: Callable[[Any], Usage | None] | None = field(default=None)

    def ignores(self, name: str) -> bool:
        """Whether this SDK's own functions leave parameter ``name`` out of keys."""
        return name in self.ignore or name.startswith(self.ignore_prefixes)


def get_field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a dict response, ``obj.name`` of an object one, else ``None``."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def int_or_zero(value: Any) -> int:
    """``value`` if it is an int (never a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# Query parameters that carry credentials (compared lower case, "-" as "_").
_CREDENTIAL_QUERY = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "auth",
        "code",
        "sig",
        "signature",
        "password",
        "secret",
        "client_secret",
        "x_amz_security_token",
        "x_amz_signature",
        "x_amz_credential",
    }
)


def without_credentials(
    query: Iterable[tuple[str, Any]], absent_types: frozenset[str]
) -> dict[str, Any]:
    """A query's parameters without credential-named ones and "not given" values, each value
    JSON-native (others as ``str``)."""
    out: dict[str, Any] = {}
    for name, value in query:
        name = str(name)
        if name.lower().replace("-", "_") in _CREDENTIAL_QUERY:
            continue
        if type(value).__name__ in absent_types:
            continue
        out[name] = (
            value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
        )
    return out
