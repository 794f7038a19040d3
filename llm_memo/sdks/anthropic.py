"""What llm_memo knows about the ``anthropic`` SDK.

Calls go through a Stainless client (``Anthropic``, ``AsyncAnthropic``, the Bedrock and Vertex
clients): the endpoint is keyed, never the credentials; ``NOT_GIVEN`` / ``Omit`` count as
absent. Responses (``Message``, stream events) are allow-listed pydantic models; ``usage``
reports ``input_tokens`` + ``output_tokens``, and a stream reports its input tokens in the
``message_start`` event and only output tokens in the final ``message_delta``.
"""

from __future__ import annotations

from typing import Any

from . import _stainless
from ._base import Sdk, get_field, int_or_zero

__all__ = ["SDK", "reports_input", "stream_start_tokens"]


def stream_start_tokens(chunk: Any) -> int | None:
    """A ``message_start`` event's input tokens, or ``None`` for any other chunk."""
    start = get_field(chunk, "message")
    if start is None:
        return None
    return int_or_zero(get_field(get_field(start, "usage") or {}, "input_tokens"))


def reports_input(chunk: Any) -> bool:
    """Whether a chunk's ``usage`` carries ``input_tokens`` itself."""
    try:
        return get_field(get_field(chunk, "usage") or {}, "input_tokens") is not None
    except (AttributeError, TypeError):
        return False


SDK = Sdk(
    name="anthropic",
    absent_types=_stainless.ABSENT_TYPES,
    clients=_stainless.CLIENTS,
    usage_parts=("input_tokens", "output_tokens"),
    stream_start_tokens=stream_start_tokens,
    reports_input=reports_input,
)
