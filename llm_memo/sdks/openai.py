"""What llm_memo knows about the ``openai`` SDK.

Calls go through a Stainless client (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``): the
endpoint is keyed, never the credentials; ``NOT_GIVEN`` / ``Omit`` count as absent. Responses
(``ChatCompletion``, ``ChatCompletionChunk``...) are allow-listed pydantic models, and their
``usage`` reports ``total_tokens`` or ``prompt_tokens`` + ``completion_tokens`` (split into
input, output and cached input by :func:`usage_split`). A Responses API
stream (``responses.create(stream=True)``) yields typed events (the ``ResponseStreamEvent``
union), each restored as its own class; its usage is in the final ``response.completed``
event's ``response.usage`` (:data:`USAGE_PATHS`). The file
parameters of transcriptions, translations, uploads and image edits take a path, which keys by
the file's content (the SDK uploads ``(path.name, path.read_bytes())``). ``embeddings.create``
caches each item of ``input=[...]`` on its own (:data:`PER_ITEM`).

Not here: anything the SDK's own functions take that should never be keyed (openai has none
beyond the generic list, ``keys.DEFAULT_IGNORE``).
"""

from __future__ import annotations

from typing import Any

from . import _stainless
from ._base import ItemBatch, Sdk, Usage, get_field, int_or_zero
from ._embeddings import EMBEDDINGS

__all__ = ["FILE_PARAMS", "PER_ITEM", "SDK", "UNSTORABLE", "USAGE_PATHS", "usage_split"]

#: Where responses keep their usage besides ``.usage``: a Responses API stream event carries the
#: response, whose ``usage`` is set on the final ``response.completed`` event.
USAGE_PATHS: tuple[tuple[str, ...], ...] = (("response", "usage"),)

_RESPONSES = "wrap client.responses.create(..., stream=True) instead: its events are cached"
_CHAT = "wrap client.chat.completions.create(..., stream=True) instead: its chunks are cached"

#: The stream helpers that return a context manager (a live connection, not a value): what to
#: wrap instead, by the returned class (``"module:QualName"``).
UNSTORABLE: dict[str, str] = {
    "openai.lib.streaming.responses._responses:ResponseStreamManager": _RESPONSES,
    "openai.lib.streaming.responses._responses:AsyncResponseStreamManager": _RESPONSES,
    "openai.lib.streaming.chat._completions:ChatCompletionStreamManager": _CHAT,
    "openai.lib.streaming.chat._completions:AsyncChatCompletionStreamManager": _CHAT,
}

_FILE = frozenset({"file"})
_IMAGE = frozenset({"image", "mask"})

#: The parameters of openai's own methods that upload a file, sync and async alike.
FILE_PARAMS: dict[str, frozenset[str]] = {
    f"openai.resources.{module}:{prefix}{method}": names
    for module, method, names in (
        ("audio.transcriptions", "Transcriptions.create", _FILE),
        ("audio.translations", "Translations.create", _FILE),
        ("files", "Files.create", _FILE),
        ("images", "Images.edit", _IMAGE),
        ("images", "Images.create_variation", _IMAGE),
    )
    for prefix in ("", "Async")
}

#: The embedding endpoints, sync and async: each item of ``input=[...]`` is cached on its own.
PER_ITEM: dict[str, ItemBatch] = {
    f"openai.resources.embeddings:{prefix}Embeddings.create": EMBEDDINGS for prefix in ("", "Async")
}


def usage_split(value: Any) -> Usage | None:
    """Input, output and cached-input tokens of an OpenAI-shaped ``usage``, or ``None`` for
    another shape: Chat Completions / Completions / Embeddings (``prompt_tokens``,
    ``completion_tokens``, ``prompt_tokens_details.cached_tokens``) and the Responses API
    (``input_tokens``, ``output_tokens``, ``input_tokens_details.cached_tokens``, always with
    ``total_tokens``, which tells it from Anthropic's ``input_tokens``)."""
    usage = get_field(value, "usage")
    if usage is None:
        return None
    prompt = get_field(usage, "prompt_tokens")
    if prompt is not None:
        details = get_field(usage, "prompt_tokens_details")
        return Usage(
            int_or_zero(prompt),
            int_or_zero(get_field(usage, "completion_tokens")),
            int_or_zero(get_field(details, "cached_tokens")) if details is not None else 0,
        )
    if get_field(usage, "input_tokens") is not None and get_field(usage, "total_tokens"):
        details = get_field(usage, "input_tokens_details")
        return Usage(
            int_or_zero(get_field(usage, "input_tokens")),
            int_or_zero(get_field(usage, "output_tokens")),
            int_or_zero(get_field(details, "cached_tokens")) if details is not None else 0,
        )
    return None


SDK = Sdk(
    name="openai",
    absent_types=_stainless.ABSENT_TYPES,
    clients=_stainless.CLIENTS,
    usage_parts=("prompt_tokens", "completion_tokens"),
    file_params=FILE_PARAMS,
    per_item=PER_ITEM,
    usage_split=usage_split,
)
