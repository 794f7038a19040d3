"""What llm_memo knows about ``litellm``.

litellm's own functions (``litellm.completion``, ``acompletion``, ``embedding``, a ``Router``
method...) take bookkeeping parameters that never change the answer: its cache controls and
logging hooks, router deployment lists (which carry every deployment's API key), cost overrides
and transport. They are never keyed for litellm's functions; a function of yours that calls
litellm is yours, keyed as you declared it. Its responses (``ModelResponse``...) are
allow-listed pydantic models with OpenAI's ``usage`` shape (counted by ``openai.py``'s fields).
``transcription`` / ``atranscription`` take ``file=``, where a path keys by the file's content.
"""

from __future__ import annotations

from ._base import Sdk

__all__ = ["SDK"]

SDK = Sdk(
    name="litellm",
    ignore=frozenset(
        {
            # its own cache controls and logging hooks (SPEC §2: per-call cache= / caching=)
            "cache",
            "caching",
            "callbacks",
            "success_callback",
            "failure_callback",
            "logger_fn",
            "metadata",
            "proxy_server_request",
            # credentials and accounts
            "model_list",
            "vertex_credentials",
            "organization",
            # cost bookkeeping
            "input_cost_per_token",
            "output_cost_per_token",
            "input_cost_per_second",
            "output_cost_per_second",
            # transport
            "shared_session",
        }
    ),
    ignore_prefixes=("litellm_",),
    file_params={
        "litellm.main:transcription": frozenset({"file"}),
        "litellm.main:atranscription": frozenset({"file"}),
    },
)
