"""A tiny support-desk helper whose model calls are cached with llm_memo.

``complete`` is the one function that talks to "the model". Here the model is
:class:`FakeChatModel`, a deterministic stand-in shaped like ``client.chat.completions.create``
so this example runs offline; in a real project that line calls your SDK and nothing else
changes.

``name=`` pins the function identity in the cache keys, so recordings stay valid if the module
is moved or imported under another name.
"""

from __future__ import annotations

import json
from typing import Any

from llm_memo import llm_cached

MODEL_NAME = "gpt-4o-mini"

_CATEGORIES = {
    "billing": ("refund", "charged", "invoice", "payment"),
    "outage": ("down", "outage", "error 500", "unreachable"),
    "account": ("password", "login", "sign in", "locked"),
}


class FakeChatModel:
    """Stands in for an LLM API: deterministic answers, and a count of the calls it received."""

    def __init__(self) -> None:
        self.calls = 0

    def create(
        self, *, model: str, messages: list[dict[str, str]], temperature: float = 0.0
    ) -> dict[str, Any]:
        self.calls += 1
        system, question = messages[0]["content"], messages[-1]["content"]
        if "JSON" in system:
            category = next(
                (
                    name
                    for name, words in _CATEGORIES.items()
                    if any(w in question.lower() for w in words)
                ),
                "other",
            )
            content = json.dumps({"category": category, "urgent": category == "outage"})
        else:
            content = f"Thanks for reaching out about your {system.split()[-1]} issue. We're on it."
        return {
            "id": f"chatcmpl-fake-{len(question)}",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {
                "prompt_tokens": 20 + len(question) // 4,
                "completion_tokens": 12,
                "total_tokens": 32 + len(question) // 4,
            },
        }


MODEL = FakeChatModel()


@llm_cached(name="support_bot.complete")
def complete(
    model: str, messages: list[dict[str, str]], temperature: float = 0.0
) -> dict[str, Any]:
    """One chat completion (cached): the only place the model is called."""
    return MODEL.create(model=model, messages=messages, temperature=temperature)


def triage(ticket: str) -> dict[str, Any]:
    """Classify a support ticket: ``{"category": ..., "urgent": bool}``."""
    answer = complete(
        MODEL_NAME,
        [
            {"role": "system", "content": "Classify the ticket. Answer in JSON."},
            {"role": "user", "content": ticket},
        ],
    )
    result: dict[str, Any] = json.loads(answer["choices"][0]["message"]["content"])
    return result


def draft_reply(ticket: str) -> str:
    """A first reply to the customer, worded for the ticket's category."""
    category = triage(ticket)["category"]
    answer = complete(
        MODEL_NAME,
        [
            {"role": "system", "content": f"Write a short, kind reply about a {category}"},
            {"role": "user", "content": ticket},
        ],
        temperature=0.3,
    )
    reply: str = answer["choices"][0]["message"]["content"]
    return reply
