"""What llm_memo knows about the ``openai`` SDK.

Calls go through a Stainless client (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``): the
endpoint is keyed, never the credentials; ``NOT_GIVEN`` / ``Omit`` count as absent. Responses
(``ChatCompletion``, ``ChatCompletionChunk``...) are allow-listed pydantic models, and their
``usage`` reports ``total_tokens`` or ``prompt_tokens`` + ``completion_tokens``.

Not here: anything the SDK's own functions take that should never be keyed (openai has none
beyond the generic list, ``keys.DEFAULT_IGNORE``).
"""

from __future__ import annotations

from . import _stainless
from ._base import Sdk

__all__ = ["SDK"]

SDK = Sdk(
    name="openai",
    absent_types=_stainless.ABSENT_TYPES,
    clients=_stainless.CLIENTS,
    usage_parts=("prompt_tokens", "completion_tokens"),
)
