"""llm_memo quickstart: cache a (simulated) chat model call on the embedded disk cache.

Run it twice: no server and no API key needed. The "model" below sleeps like a real API call
and returns a chat-completion-shaped dict; swap in your own client call and nothing else
changes.
"""

from __future__ import annotations

import time
from typing import Any

from llm_memo import cache_controls, llm_cached


def fake_chat_api(model: str, messages: list[dict[str, str]], temperature: float) -> dict[str, Any]:
    """Stands in for client.chat.completions.create(...): slow, and costs tokens."""
    time.sleep(0.8)
    question = messages[-1]["content"]
    return {
        "model": model,
        "choices": [{"message": {"role": "assistant", "content": f"You asked: {question!r}"}}],
        "usage": {"prompt_tokens": 41, "completion_tokens": 12, "total_tokens": 53},
    }


@llm_cached(ttl=24 * 3600)  # no backend given: a disk cache in your user cache directory
def ask(model: str, messages: list[dict[str, str]], temperature: float = 0.0) -> dict[str, Any]:
    return fake_chat_api(model, messages, temperature)


def main() -> None:
    messages = [{"role": "user", "content": "What is memoization?"}]
    removed = ask.cache.clear()  # start clean so the demo always shows a miss first
    print(f"cleared {removed} earlier entr{'y' if removed == 1 else 'ies'} of ask()")

    with cache_controls() as scope:
        for attempt in (1, 2):
            started = time.perf_counter()
            answer = ask("gpt-4o-mini", messages)
            elapsed_ms = (time.perf_counter() - started) * 1000
            outcome = scope.events[-1].outcome
            print(
                f"call {attempt}: {outcome:<4}  {elapsed_ms:8.2f} ms  -> "
                f"{answer['choices'][0]['message']['content']}"
            )

    stats = ask.cache.stats()
    print(f"stats: hits={stats.hits} misses={stats.misses} tokens_saved={stats.tokens_saved}")
    print(f"key:   {ask.cache.key('gpt-4o-mini', messages)}")
    same = ask.cache.explain(
        {"model": "gpt-4o-mini", "messages": messages},
        {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.7},
    )
    print(f"why would temperature=0.7 miss? {same.differences[0]}")


if __name__ == "__main__":
    main()
