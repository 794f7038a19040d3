"""SDK response types round-trip through the cache as the same types (SPEC §5): openai,
anthropic and litellm, allow-listed only because their packages are already imported."""

from __future__ import annotations

import os
from typing import Any

import pytest

from llm_memo import llm_cached
from llm_memo.testing import CacheRecorder

from .samples import chat_completion

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import


def cached_identity() -> tuple[Any, list[int]]:
    calls: list[int] = []

    @llm_cached
    def produce(value: Any, n: int) -> Any:  # unannotated result type on purpose: Any
        calls.append(n)
        return value

    return produce, calls


def test_openai_chat_completion(llm_cache: CacheRecorder) -> None:
    produce, calls = cached_identity()
    original = chat_completion()
    produce(original, 1)
    got = produce(original, 1)
    assert calls == [1]
    assert type(got) is type(original)
    assert got == original
    assert got is not original


def test_anthropic_message(llm_cache: CacheRecorder) -> None:
    from anthropic.types import Message, TextBlock

    message = Message.construct(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-3-5-sonnet-latest",
        content=[TextBlock.construct(type="text", text="Hello!")],
        stop_reason="end_turn",
        stop_sequence=None,
        usage={"input_tokens": 12, "output_tokens": 3},
    )
    message = Message.model_validate(message.model_dump())
    produce, calls = cached_identity()
    produce(message, 1)
    got = produce(message, 1)
    assert calls == [1]
    assert type(got) is Message
    assert type(got.content[0]) is TextBlock
    assert got == message
    assert produce.cache.stats().tokens_saved == 15


# litellm's import emits pydantic and deprecation warnings of its own.
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_litellm_model_response(llm_cache: CacheRecorder) -> None:
    import litellm

    response = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        mock_response="Hello from a mock",
    )
    produce, calls = cached_identity()
    produce(response, 1)
    got = produce(response, 1)
    assert calls == [1]
    assert type(got) is type(response)
    assert type(got.choices[0]) is type(response.choices[0])
    assert got.model_dump() == response.model_dump()
