"""Shared fixtures: a clean llm_memo configuration for every test, and the real-server plugin."""

from __future__ import annotations

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
    ):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()
