"""The conformance suite, as the backend tests import it: the public one in llm_memo.testing.

Kept so ``from .conformance import ...`` in the backend test modules keeps working; the suite
itself (and its documentation for third-party backend authors) is
:mod:`llm_memo.testing.conformance`.
"""

from __future__ import annotations

from llm_memo.testing.conformance import (
    HEX,
    BackendConformance,
    SyncOverAsync,
    compressed_bomb,
    entry_bytes_strategy,
    hostile_entries,
    make_entry,
    make_key,
)

__all__ = [
    "HEX",
    "BackendConformance",
    "SyncOverAsync",
    "compressed_bomb",
    "entry_bytes_strategy",
    "hostile_entries",
    "make_entry",
    "make_key",
]
