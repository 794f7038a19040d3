"""Realistic LLM payloads shared by tests and benchmarks (BENCHMARKS.md's "typical request")."""

from __future__ import annotations

from typing import Any

SYSTEM_PROMPT = (
    "You are a careful assistant for a logistics company. Answer in plain English, cite the "
    "relevant policy section when you use one, never invent tracking numbers, and keep answers "
    "under two hundred words unless the user asks for detail. If a question is about billing, "
    "point to the billing portal. If it is about a lost parcel, ask for the order number first. "
    "Be polite and concise; prefer bullet lists for multi-step instructions; do not discuss "
    "internal tooling; and when unsure, say so and offer to escalate to a human agent today. "
    "Always confirm the customer's name before sharing any order detail."
)
USER_MESSAGE = (
    "Hello! I ordered a standing desk three weeks ago (order placed on a Monday morning) and the "
    "tracking page has said 'in transit' for nine days without any update. "
) * 12


def chat_request(size: int | None = None) -> dict[str, Any]:
    """The typical request: ~600-char system prompt, ~1,700-char user message; or a user
    message of ``size`` characters."""
    user = USER_MESSAGE[:1700] if size is None else ("x" * size)
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ],
        "temperature": 0,
        "max_tokens": 200,
    }


def completion_dict() -> dict[str, Any]:
    """An OpenAI chat completion response of about 3 KB, as the API returns it."""
    content = (
        "I'm sorry your desk is taking so long. Here is what I can do right now:\n"
        "- I have opened a trace with the carrier for your parcel.\n"
        "- Carriers usually answer a trace within two business days.\n"
        "- If the trace shows the parcel is lost, we will ship a replacement at no cost.\n"
    ) * 9
    return {
        "id": "chatcmpl-AbCdEf0123456789",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0123456789",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 512,
            "completion_tokens": 180,
            "total_tokens": 692,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
    }


def chunk_dicts(n: int = 5) -> list[dict[str, Any]]:
    """The chunks of a streamed chat completion (the last one carries usage)."""
    chunks = [
        {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": 1_730_000_000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": f"part {i} "} if i else {"role": "assistant"},
                    "finish_reason": None if i < n - 1 else "stop",
                }
            ],
        }
        for i in range(n)
    ]
    chunks.append(
        {
            **chunks[-1],
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n},
        }
    )
    return chunks


def chat_completion() -> Any:
    """The response as the openai SDK builds it (``construct``, like the SDK does)."""
    from openai.types.chat import ChatCompletion

    return ChatCompletion.construct(**completion_dict())


def chat_chunks(n: int = 5) -> list[Any]:
    from openai.types.chat import ChatCompletionChunk

    return [ChatCompletionChunk.construct(**c) for c in chunk_dicts(n)]
