"""Shared fixtures: a clean llm_memo configuration for every test, and the real-server plugin."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_memo import config

pytest_plugins = ["tests.servers"]


@pytest.fixture(autouse=True)
def _clean_llm_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the environment's defaults, with the user cache dir in tmp."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in (
        "LLM_MEMO_BACKEND",
        "LLM_MEMO_TTL",
        "LLM_MEMO_MAX_AGE",
        "LLM_MEMO_STALE_IF_ERROR",
        "LLM_MEMO_NAMESPACE",
        "LLM_MEMO_ENABLED",
        "LLM_MEMO_NO_CACHE",
        "LLM_MEMO_NO_STORE",
        "LLM_MEMO_ONLY_IF_CACHED",
        "LLM_MEMO_STRICT",
        "LLM_MEMO_SIGNING_KEY",
        "LLM_MEMO_GRACE",
        "LLM_MEMO_PERSIST_STATS",
    ):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()
    _close_leaked_default_loop()


def _close_leaked_default_loop() -> None:
    """Close an event loop a sync call left set as the thread's default (litellm's service
    logger calls ``asyncio.get_event_loop()`` from sync code and never closes what it made), so
    its ResourceWarning is not raised, at garbage collection, inside a later, unrelated test.
    A running loop or one already closed (pytest-asyncio's own) is left alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running() and not loop.is_closed():
        loop.close()
        asyncio.set_event_loop(None)
