"""What llm_memo knows about the ``anthropic`` SDK.

Calls go through a Stainless client (``Anthropic``, ``AsyncAnthropic``, the Bedrock and Vertex
clients): the endpoint is keyed, never the credentials; ``NOT_GIVEN`` / ``Omit`` count as
absent. Responses (``Message``, stream events) are allow-listed pydantic models; ``usage``
reports ``input_tokens`` + ``output_tokens``, and a stream reports its input tokens in the
``message_start`` event and only output tokens in the final ``message_delta``.

``client.messages.stream(...)`` returns a context manager over a live connection (a
``MessageStreamManager``), not a value: it is returned uncached, with one log line per function
that says to wrap ``client.messages.create(..., stream=True)`` instead (:data:`UNSTORABLE`),
whose events are cached and replayed. Rebuilding a ``MessageStream`` on a hit would mean
constructing the SDK's private stream machinery around a fake HTTP response.
"""

from __future__ import annotations

from typing import Any

from . import _stainless
from ._base import Sdk, Usage, get_field, int_or_zero

__all__ = ["SDK", "UNSTORABLE", "reports_input", "stream_start_tokens", "usage_split"]

_MESSAGES = (
    "wrap client.messages.create(..., stream=True) instead: its events are cached and replayed "
    "(see the anthropic recipe)"
)

#: The stream helpers that return a context manager over a live connection: what to wrap
#: instead, by the returned class (``"module:QualName"``).
UNSTORABLE: dict[str, str] = {
    f"anthropic.lib.streaming.{module}:{prefix}MessageStreamManager": _MESSAGES
    for module, prefix in (
        ("_messages", ""),
        ("_messages", "Async"),
        ("_beta_messages", "Beta"),
        ("_beta_messages", "BetaAsync"),
    )
}


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


def usage_split(value: Any) -> Usage | None:
    """Input, output and cached-input tokens of an Anthropic ``usage`` (``input_tokens``
    without ``total_tokens``), or ``None`` for another shape. Anthropic counts cache reads
    (``cache_read_input_tokens``) and cache writes (``cache_creation_input_tokens``) apart from
    ``input_tokens``; here both are input, and the reads are the cached part. For a stream's
    ``message_start`` event, the usage is the one in its ``message``."""
    usage = get_field(value, "usage")
    if usage is None:
        usage = get_field(get_field(value, "message"), "usage")
    if usage is None or get_field(usage, "total_tokens") is not None:
        return None
    if get_field(usage, "input_tokens") is None and get_field(usage, "output_tokens") is None:
        return None
    read = int_or_zero(get_field(usage, "cache_read_input_tokens"))
    written = int_or_zero(get_field(usage, "cache_creation_input_tokens"))
    return Usage(
        int_or_zero(get_field(usage, "input_tokens")) + read + written,
        int_or_zero(get_field(usage, "output_tokens")),
        read,
    )


SDK = Sdk(
    name="anthropic",
    absent_types=_stainless.ABSENT_TYPES,
    clients=_stainless.CLIENTS,
    usage_parts=("input_tokens", "output_tokens"),
    stream_start_tokens=stream_start_tokens,
    reports_input=reports_input,
    usage_split=usage_split,
)
