"""llm_memo with pydantic-ai: a tool-calling agent whose model requests are cached.

Runs offline (``pip install '.[pydantic-ai]'``): the "model" is pydantic-ai's FunctionModel,
which plays a model that first calls the ``add`` tool and then answers. Swap in a real one
(``CachedModel("openai:gpt-4o-mini", ...)``) and nothing else changes.

The cache is llm_memo's default disk cache in your user cache directory: within one run the
second question is answered from it, and a second run of the script makes no model request.
"""

from __future__ import annotations

import asyncio

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from llm_memo.integrations.pydantic_ai import CachedModel

model_requests = 0


def play_the_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for a real model: asks for the tool, then answers with its result."""
    global model_requests
    model_requests += 1
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("add", {"a": 19, "b": 23})])
    return ModelResponse(parts=[TextPart("19 + 23 = 42")])


agent = Agent(
    CachedModel(
        FunctionModel(play_the_model, model_name="calculator"),
        ttl=24 * 3600,  # no backend given: llm_memo's default, a disk cache (or configure()'s)
    ),
    instructions="Use the add tool for arithmetic.",
)


@agent.tool_plain
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def main() -> None:
    for run in (1, 2):
        result = await agent.run("What is 19 + 23?")
        print(f"run {run}: {result.output!r}  (model requests so far: {model_requests})")
    model = agent.model
    assert isinstance(model, CachedModel)
    stats = model.cache.stats()
    print(f"stats: hits={stats.hits} misses={stats.misses} tokens_saved={stats.tokens_saved}")


if __name__ == "__main__":
    asyncio.run(main())
