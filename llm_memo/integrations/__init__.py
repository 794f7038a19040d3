"""llm_memo inside the frameworks that make the model calls for you.

One module per framework, each through that framework's own extension point:

==========================================  ===================================================
:mod:`llm_memo.integrations.langchain`      a LangChain ``BaseCache`` (``set_llm_cache``)
:mod:`llm_memo.integrations.pydantic_ai`    a pydantic-ai wrapper model (``CachedModel``)
:mod:`llm_memo.integrations.dspy`           an llm_memo-backed DSPy cache
==========================================  ===================================================

Importing ``llm_memo`` (or this package) imports no framework: each module imports its own
framework when it is imported itself, and each is an extra (``pip install 'llm-memo[langchain]'``).
"""
