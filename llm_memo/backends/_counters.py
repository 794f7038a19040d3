"""Persistent counters, the part every backend shares: the counted fields, day buckets, merging,
and where the counters live next to the entries. Pure code, no I/O.

With ``configure(persist_stats=True)`` the decorator sums each function's calls in memory and
hands a batch to the backend now and then (``llm_memo/_counters.py``, never on a call's own
path); a backend that can keep cheap counters implements :class:`~llm_memo.backends.Counting`
(``add_counters`` / ``read_counters``) and stores them its own way: Redis one hash per day
(``HINCRBY`` in one pipeline), disk a diskcache beside the entries (``incr``), object stores
one small file per writing process per day, summed on read. ``llm-memo stats`` reads them.

Counters live outside the keys llm_memo writes (:data:`COUNTER_ROOT` is not under
``KEY_ROOT``), so listing or clearing entries never touches them.

Not here: what is counted per call (``_memo.py``), the flusher (``llm_memo/_counters.py``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import TypeAlias

__all__ = [
    "COUNTER_FIELDS",
    "COUNTER_ROOT",
    "Batch",
    "day_of",
    "merge",
]

#: What is counted per function and day. Money is in nano-dollars (``cost_saved_nusd``), so
#: every counter is an integer that Redis ``HINCRBY`` and diskcache ``incr`` add atomically.
COUNTER_FIELDS: tuple[str, ...] = (
    "hits",
    "misses",
    "refreshes",
    "stale",
    "bypasses",
    "errors",
    "tokens_saved",
    "input_tokens_saved",
    "output_tokens_saved",
    "cached_input_tokens_saved",
    "cost_saved_nusd",
)

#: The root of counter names in a store (beside ``llm_memo:``, never under it).
COUNTER_ROOT = "llm_memo-stats:"

#: Counts by (day ``YYYY-MM-DD``, function identity): field -> amount.
Batch: TypeAlias = Mapping[tuple[str, str], Mapping[str, int]]


def day_of(timestamp: float) -> str:
    """The UTC day (``YYYY-MM-DD``) a timestamp falls in: the counters' bucket."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d")


def merge(
    into: dict[tuple[str, str], dict[str, int]], batches: Iterable[Batch]
) -> dict[tuple[str, str], dict[str, int]]:
    """Add ``batches`` into ``into`` (known, non-negative integer fields only) and return it."""
    for batch in batches:
        for where, counts in batch.items():
            row = into.setdefault(where, {})
            for name, amount in counts.items():
                if name in COUNTER_FIELDS and type(amount) is int and amount > 0:
                    row[name] = row.get(name, 0) + amount
    return into
