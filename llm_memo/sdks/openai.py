"""What llm_memo knows about the ``openai`` SDK.

Calls go through a Stainless client (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``): the
endpoint is keyed, never the credentials; ``NOT_GIVEN`` / ``Omit`` count as absent. Responses
(``ChatCompletion``, ``ChatCompletionChunk``...) are allow-listed pydantic models, and their
``usage`` reports ``total_tokens`` or ``prompt_tokens`` + ``completion_tokens``. The file
parameters of transcriptions, translations, uploads and image edits take a path, which keys by
the file's content (the SDK uploads ``(path.name, path.read_bytes())``). ``embeddings.create``
caches each item of ``input=[...]`` on its own (:data:`PER_ITEM`).

Not here: anything the SDK's own functions take that should never be keyed (openai has none
beyond the generic list, ``keys.DEFAULT_IGNORE``).
"""

from __future__ import annotations

from . import _stainless
from ._base import ItemBatch, Sdk
from ._embeddings import EMBEDDINGS

__all__ = ["FILE_PARAMS", "PER_ITEM", "SDK"]

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

SDK = Sdk(
    name="openai",
    absent_types=_stainless.ABSENT_TYPES,
    clients=_stainless.CLIENTS,
    usage_parts=("prompt_tokens", "completion_tokens"),
    file_params=FILE_PARAMS,
    per_item=PER_ITEM,
)
