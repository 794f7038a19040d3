"""llm_memo as LangChain's cache: the second identical question is answered without the model.

Runs offline after ``pip install '.[langchain]'``: the "model" is langchain-core's own fake
chat model, counting its calls. Swap in ``ChatOpenAI(...)`` (or any chat model) and nothing
else changes. Entries go to a disk cache in a temporary folder (pass ``--backend URL`` to use
another, e.g. ``redis://localhost:6379/0``).
"""

from __future__ import annotations

import argparse
import tempfile

from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from llm_memo import cache_controls
from llm_memo.integrations.langchain import LlmMemoCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help="an llm_memo backend URL (default: a temporary disk)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cache = LlmMemoCache(args.backend or f"disk://{folder}", ttl=24 * 3600)
        cache.clear()  # start clean so the demo always shows a miss first
        set_llm_cache(cache)  # every model without a cache of its own now uses llm_memo
        try:
            run()
        finally:
            set_llm_cache(None)
        stats = cache.stats()
        print(f"stats: hits={stats.hits} misses={stats.misses} tokens_saved={stats.tokens_saved}")


def run() -> None:
    model = FakeMessagesListChatModel(
        responses=[
            AIMessage(
                "Memoization stores a function's results and reuses them for repeated inputs.",
                usage_metadata={"input_tokens": 24, "output_tokens": 15, "total_tokens": 39},
            ),
            AIMessage("(the model was called again)"),
        ]
    )
    question = [SystemMessage("Answer in one sentence."), HumanMessage("What is memoization?")]
    with cache_controls() as scope:
        for attempt in (1, 2):
            reply = model.invoke(question)
            outcome = scope.events[-1].outcome
            print(f"call {attempt}: {outcome:<4} -> {reply.content}")
    # The fake model's index counts its calls: one, for two identical questions.
    print(f"the second call was a {scope.events[-1].outcome}; model calls: {model.i}")
    with cache_controls(no_cache=True) as refresh:  # directives work inside the block
        model.invoke(question)
    print(f"under no_cache: {refresh.events[-1].outcome}")


if __name__ == "__main__":
    main()
