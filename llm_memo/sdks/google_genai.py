"""What llm_memo knows about the ``google-genai`` SDK (``from google import genai``).

Calls go through a ``genai.Client``: ``client.models.generate_content`` /
``generate_content_stream`` and their async forms under ``client.aio.models``. The client
family (:data:`CLIENTS`) reads a client's endpoint identity: which backend answers (the Gemini
API or Vertex AI), the base URL, the API version and, on Vertex AI, the project and location.
Never the API key or the Google credentials (the key travels in the ``x-goog-api-key`` header,
which is a credential header, never keyed even with ``key_headers=``).

Responses (``GenerateContentResponse``, also each chunk of a stream) are allow-listed pydantic
models of ``google.genai.types``, restored only when the program has imported that module. Their
usage is ``usage_metadata`` (:data:`USAGE_PATHS`): ``total_token_count``, else
``prompt_token_count`` + ``candidates_token_count``; a stream's tokens are those of the last
chunk that reports usage (Gemini reports running totals). The text a semantic cache embeds is
the user text of ``contents`` (:func:`split_contents`).

Not here: which parameters are keyed in general (``keys``); the registry (``__init__``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ._base import (
    ClientFamily,
    ItemBatch,
    Sdk,
    Usage,
    get_field,
    int_or_zero,
    without_credentials,
)

__all__ = [
    "CLIENTS",
    "EMBED_CONTENT",
    "PER_ITEM",
    "SDK",
    "USAGE_PATHS",
    "USAGE_TOTAL",
    "split_contents",
    "usage_split",
]

#: The SDK's top-level package: ``google`` alone is a namespace shared by many packages.
NAME = "google.genai"

#: Where a response keeps its usage, and the field with its total.
USAGE_PATHS: tuple[tuple[str, ...], ...] = (("usage_metadata",),)
USAGE_TOTAL = "total_token_count"


# -- the client family ----------------------------------------------------------------------


def _mro_names(cls: type) -> Iterable[tuple[str, str]]:
    for klass in cls.__mro__:
        yield klass.__module__, klass.__qualname__


def client_of(obj: Any) -> Any:
    """The ``BaseApiClient`` behind a genai client, ``client.aio``, or one of their resources
    (``client.models``, ``client.aio.models``...), else ``None``. Recognised by class names in
    ``google.genai``'s own modules, so nothing is imported to ask."""
    cls = type(obj)
    if not cls.__module__.startswith(NAME):
        return None
    for module, name in _mro_names(cls):
        if module == "google.genai._api_client" and name == "BaseApiClient":
            return obj
        if (module, name) in (
            ("google.genai._api_module", "BaseModule"),
            ("google.genai.client", "Client"),
            ("google.genai.client", "AsyncClient"),
        ):
            return getattr(obj, "_api_client", None)
    return None


def _options(client: Any) -> Any:
    return getattr(client, "_http_options", None)


def endpoint_of(client: Any) -> dict[str, Any]:
    """A genai client's endpoint identity: ``{"vertexai": ..., "base_url": ..., "api_version":
    ...}`` plus, on Vertex AI, ``project`` and ``location``. User info in the URL and
    credential-named query parameters are left out; the API key and credentials never enter."""
    options = _options(client)
    parts = urlsplit(str(getattr(options, "base_url", None) or ""))
    netloc = parts.netloc.rpartition("@")[2]
    endpoint: dict[str, Any] = {
        "vertexai": bool(getattr(client, "vertexai", False)),
        "base_url": urlunsplit((parts.scheme, netloc, parts.path, "", "")),
        "query": without_credentials(parse_qsl(parts.query, keep_blank_values=True), frozenset()),
    }
    for name, value in (
        ("api_version", getattr(options, "api_version", None)),
        ("resource_scope", getattr(options, "base_url_resource_scope", None)),
    ):
        if value is not None:
            endpoint[name] = str(getattr(value, "value", value))
    if endpoint["vertexai"]:
        for name in ("project", "location"):
            value = getattr(client, name, None)
            if isinstance(value, str):
                endpoint[name] = value
    return endpoint


def default_headers(client: Any) -> Any:
    """The headers a genai client sends by default (for ``key_headers=``; its API key header
    is a credential header, never keyed)."""
    headers = getattr(_options(client), "headers", None)
    return headers if isinstance(headers, dict) else {}


def endpoint_inputs(client: Any) -> tuple[Any, ...]:
    """What :func:`endpoint_of` reads that can change: the options object (replaced as a whole
    by the SDK) and the fields read from it and from the client."""
    options = _options(client)
    return (
        options,
        getattr(options, "base_url", None),
        getattr(options, "api_version", None),
        getattr(client, "vertexai", None),
        getattr(client, "project", None),
        getattr(client, "location", None),
    )


#: The genai client family.
CLIENTS = ClientFamily(
    client_of=client_of,
    endpoint_of=endpoint_of,
    default_headers=default_headers,
    endpoint_inputs=endpoint_inputs,
)


# -- text to embed --------------------------------------------------------------------------


def _parts_text(parts: Any) -> tuple[Any, list[str]]:
    """Parts with their text taken out (``{"text": None}``, other parts kept), and the texts."""
    if not isinstance(parts, list):
        return parts, []
    texts: list[str] = []
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            out.append(None)
        elif (
            isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
        ):
            texts.append(part["text"])
            out.append({**part, "text": None})
        else:
            out.append(part)
    return out, texts


def split_contents(contents: Any) -> tuple[Any, str] | None:
    """Split a canonical ``contents`` argument into (exact context, text to embed).

    ``contents`` is a string, a list of strings (each a part of one user turn), or a list of
    ``Content`` (as dicts: ``{"role": ..., "parts": [{"text": ...}, ...]}``); the text is that of
    the user turns (``role`` ``"user"`` or none given), joined by newlines. The context keeps
    every other part (images, files, model turns) in place, with the text replaced by ``None``.
    Returns ``None`` when there is no user text.
    """
    if isinstance(contents, str):
        return (None, contents) if contents else None
    if isinstance(contents, dict):  # a single Content
        found = split_contents([contents])
        return None if found is None else (found[0][0], found[1])
    if not isinstance(contents, list):
        return None
    texts: list[str] = []
    context: list[Any] = []
    for item in contents:
        if isinstance(item, str):
            texts.append(item)
            context.append(None)
        elif isinstance(item, dict) and item.get("role") in (None, "user"):
            parts, item_texts = _parts_text(item.get("parts"))
            texts.extend(item_texts)
            context.append({**item, "parts": parts} if item_texts else item)
        else:
            context.append(item)
    return (context, "\n".join(texts)) if texts else None


def usage_split(value: Any) -> Usage | None:
    """Input, output and cached-input tokens of a Gemini ``usage_metadata``, or ``None`` for
    another shape: input is ``prompt_token_count`` (cached tokens included) plus
    ``tool_use_prompt_token_count``; output is ``candidates_token_count`` plus
    ``thoughts_token_count`` (thinking is billed as output); cached input is
    ``cached_content_token_count``."""
    usage = get_field(value, "usage_metadata")
    if usage is None or get_field(usage, "prompt_token_count") is None:
        return None
    return Usage(
        int_or_zero(get_field(usage, "prompt_token_count"))
        + int_or_zero(get_field(usage, "tool_use_prompt_token_count")),
        int_or_zero(get_field(usage, "candidates_token_count"))
        + int_or_zero(get_field(usage, "thoughts_token_count")),
        int_or_zero(get_field(usage, "cached_content_token_count")),
    )


# -- embeddings, item by item -------------------------------------------------------------------


def _embed_items(value: Any) -> list[Any] | None:
    """``contents=["a", "b"]`` of ``embed_content`` is a batch (one embedding per string);
    anything else (one string, ``Content`` objects or parts, whose grouping the SDK decides) is
    one input, cached whole."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _embed_usage(usage: Any, tokens: int) -> Any:
    if usage is None or not hasattr(usage, "model_copy"):
        return None if tokens == 0 else usage
    return usage.model_copy(update={"prompt_token_count": tokens, "total_token_count": tokens})


def _embed_split(response: Any, shares: Sequence[int]) -> list[Any] | None:
    """One one-item ``EmbedContentResponse`` per string sent (embeddings come in request
    order: they carry no index), each with its share of the usage, if any was reported."""
    embeddings = get_field(response, "embeddings")
    if not hasattr(response, "model_copy") or not isinstance(embeddings, list):
        return None
    if len(embeddings) != len(shares):
        return None
    usage = get_field(response, "usage_metadata")
    return [
        response.model_copy(
            update={"embeddings": [e], "usage_metadata": _embed_usage(usage, share)}
        )
        for e, share in zip(embeddings, shares, strict=True)
    ]


def _embed_merge(parts: Sequence[Any], sent: Any) -> Any:
    """One ``EmbedContentResponse`` with every part's embedding in request order and the
    usage (and metadata) of the call made, or no usage when every string was cached."""
    embeddings = [get_field(part, "embeddings")[0] for part in parts]
    if sent is None:
        template = parts[0]
        usage = _embed_usage(get_field(template, "usage_metadata"), 0)
    else:
        template, usage = sent, get_field(sent, "usage_metadata")
    return template.model_copy(update={"embeddings": embeddings, "usage_metadata": usage})


#: ``contents=[...]`` of ``models.embed_content``.
EMBED_CONTENT = ItemBatch(
    param="contents", items=_embed_items, split=_embed_split, merge=_embed_merge
)

#: The embedding endpoints, sync and async: each string of ``contents=[...]`` is cached alone.
PER_ITEM: dict[str, ItemBatch] = {
    f"google.genai.models:{cls}.embed_content": EMBED_CONTENT for cls in ("Models", "AsyncModels")
}


SDK = Sdk(
    name=NAME,
    ignore=frozenset(
        {
            # credentials
            "credentials",
            # transport: how the request travels, not what it asks
            "http_options",
            "transport",
            "client",
        }
    ),
    clients=CLIENTS,
    usage_parts=("prompt_token_count", "candidates_token_count"),
    # per-call transport inside config (GenerateContentConfig(http_options=...), or a dict in
    # either spelling): headers there may carry credentials, and an httpx client has no key
    nested_ignore={"config": frozenset({"http_options", "httpOptions"})},
    usage_split=usage_split,
    per_item=PER_ITEM,
)
