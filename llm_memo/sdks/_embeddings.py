"""The OpenAI embedding response, cached item by item: :data:`EMBEDDINGS`.

``openai``'s ``CreateEmbeddingResponse`` and litellm's ``EmbeddingResponse`` have one shape: a
``data`` list of ``{"embedding", "index", "object"}`` items (pydantic objects for openai, dicts
for litellm), the ``model``, and a ``usage`` with ``prompt_tokens`` / ``total_tokens`` for the
whole batch. Both SDK modules use the :class:`~._base.ItemBatch` here for their embedding
functions; responses are rebuilt with pydantic's ``model_copy`` so the SDK's own type (and its
private attributes, such as litellm's ``_hidden_params``) is kept.

Not here: which functions are embedding endpoints (``openai.py``, ``litellm.py``); the batching
itself (``llm_memo._per_item``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import ItemBatch, get_field

__all__ = ["EMBEDDINGS", "items", "merge", "split"]

_TOKEN_FIELDS = ("prompt_tokens", "total_tokens")


def _is_token_array(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )


def items(value: Any) -> list[Any] | None:
    """The inputs of ``input=``: a list of strings or of token arrays is a batch; a string, a
    single token array (``[1, 2, 3]``) or anything else is one input (``None``)."""
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if all(isinstance(v, str) for v in value) or all(_is_token_array(v) for v in value):
        return list(value)
    return None


def _with_index(item: Any, index: int) -> Any:
    if isinstance(item, dict):
        return {**item, "index": index}
    return item.model_copy(update={"index": index})


def _renumbered(item: Any, index: int) -> Any:
    """``item`` with ``index``, set in place: the parts merge receives are its own (decoded for
    this call, or split from this call's response), and a pydantic ``model_copy`` per item
    cost more than the rest of an item's hit."""
    if isinstance(item, dict):
        item["index"] = index
    elif item.index != index:
        item.index = index
    return item


def _usage(usage: Any, tokens: int) -> Any:
    """``usage`` reporting ``tokens`` as its prompt and total tokens (and no output tokens)."""
    if usage is None:
        return None
    update = {name: tokens for name in _TOKEN_FIELDS}
    if get_field(usage, "completion_tokens") is not None:
        update["completion_tokens"] = 0
    if isinstance(usage, dict):
        return {**usage, **update}
    return usage.model_copy(update=update)


def split(response: Any, shares: Sequence[int]) -> list[Any] | None:
    """One one-item response per item sent (by ``index``), each with ``index`` 0 and its share
    of the batch's usage; ``None`` unless the response has exactly one answer per item."""
    data = get_field(response, "data")
    if not hasattr(response, "model_copy") or not isinstance(data, list):
        return None
    if len(data) != len(shares):
        return None
    indices = [get_field(item, "index") for item in data]
    if sorted(i for i in indices if isinstance(i, int)) == list(range(len(data))):
        data = [item for _, item in sorted(zip(indices, data, strict=True), key=lambda p: p[0])]
    usage = get_field(response, "usage")
    return [
        response.model_copy(update={"data": [_with_index(item, 0)], "usage": _usage(usage, share)})
        for item, share in zip(data, shares, strict=True)
    ]


def merge(parts: Sequence[Any], sent: Any) -> Any:
    """One response holding every part's item in order, ``index`` renumbered (in place: the
    parts are the caller's own), with the usage of ``sent`` (the call made; its model and other
    fields too), or zero tokens when every item was cached."""
    data = [_renumbered(get_field(part, "data")[0], i) for i, part in enumerate(parts)]
    if sent is None:
        template = parts[0]
        usage = _usage(get_field(template, "usage"), 0)
    else:
        template, usage = sent, get_field(sent, "usage")
    return template.model_copy(update={"data": data, "usage": usage})


#: ``input=`` of the OpenAI embedding shape.
EMBEDDINGS = ItemBatch(param="input", items=items, split=split, merge=merge)
