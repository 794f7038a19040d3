"""The pytest plugin (entry point ``pytest11``): the ``llm_cache`` fixture.

Registered automatically when llm_memo is installed; it changes nothing for tests that do not
request the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import CacheRecorder, recording_cache

__all__ = ["llm_cache"]


@pytest.fixture
def llm_cache() -> Iterator[CacheRecorder]:
    """A fresh in-memory cache for this test, replacing every cached function's backend.

    Yields a :class:`~llm_memo.testing.CacheRecorder` with ``.hits``, ``.misses``,
    ``.events``, ``.entries()`` and ``.advance(seconds)``; nothing leaks between tests.

    .. versionadded:: 0.1.0
    """
    with recording_cache() as recorder:
        yield recorder
