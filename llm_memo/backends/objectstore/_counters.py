"""The object stores' persistent counters: one small JSON file per writing process per day.

An object store has no atomic increment, and a read-modify-write of one shared object would lose
counts between processes. So each process writes only its own files: it keeps its running sums
per day and, at each flush, rewrites ``<root>/llm_memo-stats/<day>/<writer>.json`` whole (one
PUT per day touched). A reader lists ``llm_memo-stats/`` and sums every writer's files. The
writer name (host, pid, a random part) is renewed in a forked child, whose counts are its own.
The directory is not an entry path, so listing, clearing and purging entries leave it alone.

Pure code the generated pair shares (``_async.py`` / ``_sync.py`` do the I/O). Not here: what is
counted (``llm_memo/_counters.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence

from ... import _fork
from .._counters import COUNTER_FIELDS, merge
from .layout import _join

__all__ = ["COUNTER_DIR", "CounterFiles", "counter_paths", "counter_top", "read_counter_files"]

#: The directory below the root that holds the counter files.
COUNTER_DIR = "llm_memo-stats"
_FIELDS = frozenset(COUNTER_FIELDS)


def _writer() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    return f"{host or 'host'}-{os.getpid()}-{secrets.token_hex(4)}"


class CounterFiles:
    """This process's running sums for one store, and the files they are written to."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._writer = _writer()
        self._sums: dict[str, dict[str, dict[str, int]]] = {}  # day -> function -> field
        _fork.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._writer = _writer()
        self._sums = {}

    def add(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> dict[str, bytes]:
        """Add ``batch`` to the running sums; return ``{path: content}`` of the files to write
        (this writer's file of every day the batch touched)."""
        with self._lock:
            touched: set[str] = set()
            for (day, function), counts in batch.items():
                row = self._sums.setdefault(day, {}).setdefault(function, {})
                for field, amount in counts.items():
                    if field in _FIELDS and amount:
                        row[field] = row.get(field, 0) + amount
                        touched.add(day)
            return {
                _join(self.root, COUNTER_DIR, day, f"{self._writer}.json"): json.dumps(
                    {"day": day, "functions": self._sums[day]}, sort_keys=True
                ).encode()
                for day in sorted(touched)
            }


def counter_top(root: str) -> str:
    """The directory every counter file is below."""
    return _join(root, COUNTER_DIR)


def counter_paths(root: str, listed: Sequence[str], since: str) -> list[str]:
    """The listed counter files of days ``since`` and later."""
    head = counter_top(root) + "/"
    out = []
    for path in listed:
        day, _, name = path[len(head) :].partition("/") if path.startswith(head) else ("", "", "")
        if day and day >= since and name.endswith(".json") and "/" not in name:
            out.append(path)
    return out


def read_counter_files(contents: Sequence[bytes | None]) -> dict[tuple[str, str], dict[str, int]]:
    """Sum counter files (unreadable or foreign ones are skipped)."""
    batches = []
    for data in contents:
        try:
            doc = json.loads(data) if data is not None else None
        except ValueError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("functions"), dict):
            continue
        day = doc.get("day")
        if not isinstance(day, str):
            continue
        batches.append(
            {
                (day, function): counts
                for function, counts in doc["functions"].items()
                if isinstance(counts, dict)
            }
        )
    return merge({}, batches)
