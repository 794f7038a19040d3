"""What llm_memo knows about ``litellm``.

litellm's own functions (``litellm.completion``, ``acompletion``, ``embedding``, a ``Router``
method...) take bookkeeping parameters that never change the answer: its cache controls and
logging hooks, router deployment lists (which carry every deployment's API key), cost overrides
and transport. They are never keyed for litellm's functions; a function of yours that calls
litellm is yours, keyed as you declared it. Its responses (``ModelResponse``...) are
allow-listed pydantic models with OpenAI's ``usage`` shape (counted by ``openai.py``'s fields).

litellm's own per-call cache controls act on llm_memo's cache when one of its functions is
wrapped (:func:`per_call`): ``cache={"no-cache": True}`` is ``no_cache``,
``"no-store"`` is ``no_store``, ``"ttl"`` is ``ttl``, ``"s-maxage"`` is ``max_age``,
``"namespace"`` is ``namespace``, and ``caching=False`` is ``enabled=False``, for that one call.
They are still passed on to litellm unchanged (its own cache, if you configured one, reads them
too). A hit is marked as litellm marks its own cache hits (:func:`mark_hit`).

``metadata`` is bookkeeping here, as in litellm's cache (whose key never includes it): it is
never keyed and is passed on to the call (a miss) unchanged; a hit does not call litellm, so
its callbacks do not see that call's ``metadata``.

``transcription`` / ``atranscription`` take ``file=``, where a path keys by the file's content.
``embedding`` / ``aembedding`` cache each item of ``input=[...]`` on its own (``aembedding``
takes ``*args``: pass ``input=`` by keyword for that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import openai
from ._base import Sdk
from ._embeddings import EMBEDDINGS

__all__ = ["SDK", "mark_hit", "per_call"]

# litellm's `cache=` dict keys (its Cache docs: "Dynamic Cache Controls") -> our directives.
_CACHE_CONTROLS = {
    "no-cache": "no_cache",
    "no-store": "no_store",
    "ttl": "ttl",
    "s-maxage": "max_age",
    "namespace": "namespace",
}


def per_call(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The directives a litellm call's own ``cache=`` / ``caching=`` arguments ask for.

    Keys of ``cache`` litellm defines but llm_memo has no directive for (``"use-cache"``, which
    only opts a call into litellm's cache) are left to litellm. ``caching=True`` asks for what
    is already the default and is no directive. Values are validated where directives are
    built (a bad one is a :class:`~llm_memo.errors.ConfigurationError` at the call).
    """
    cache = kwargs.get("cache")
    caching = kwargs.get("caching")
    if cache is None and caching is None:  # the common call: nothing to translate
        return None
    out: dict[str, Any] = {}
    if isinstance(cache, Mapping):
        for name, directive in _CACHE_CONTROLS.items():
            if name in cache:
                out[directive] = cache[name]
    if caching is False:
        out["enabled"] = False
    return out or None


def mark_hit(value: Any, key: str) -> None:
    """Mark a response answered from the cache as litellm marks its own cache hits: in its
    ``_hidden_params``, ``cache_hit`` is True, ``cache_key`` is the key and ``response_cost``
    is 0 (what litellm's logging reports for a hit: ``response_cost_calculator(cache_hit=True)``
    is 0). Values without ``_hidden_params`` (a dict, a list of stream chunks) are left alone.
    """
    hidden = getattr(value, "_hidden_params", None)
    if isinstance(hidden, dict):
        # A new dict, never the one the decoded object may share with anything else.
        value._hidden_params = {**hidden, "cache_hit": True, "cache_key": key, "response_cost": 0.0}


SDK = Sdk(
    name="litellm",
    ignore=frozenset(
        {
            # its own cache controls and logging hooks (SPEC §2: per-call cache= / caching=)
            "cache",
            "caching",
            "callbacks",
            "success_callback",
            "failure_callback",
            "logger_fn",
            "metadata",
            "proxy_server_request",
            # credentials and accounts
            "model_list",
            "vertex_credentials",
            "organization",
            # cost bookkeeping
            "input_cost_per_token",
            "output_cost_per_token",
            "input_cost_per_second",
            "output_cost_per_second",
            # transport
            "shared_session",
        }
    ),
    ignore_prefixes=("litellm_",),
    per_call=per_call,
    mark_hit=mark_hit,
    usage_split=openai.usage_split,  # litellm's responses have OpenAI's usage shape
    file_params={
        "litellm.main:transcription": frozenset({"file"}),
        "litellm.main:atranscription": frozenset({"file"}),
    },
    # litellm.embedding moved from litellm.main to litellm.embeddings.dispatch; both are named.
    per_item={
        f"{module}:{name}": EMBEDDINGS
        for module in ("litellm.main", "litellm.embeddings.dispatch")
        for name in ("embedding", "aembedding")
    },
)
