"""The entry store of ``semantic+local://``: one SQLite file, the truth every index derives from.

Every entry is one row of ``entries`` (its bytes, its deadline, and for entries added with a text
its vector, partition, guard features and ``vid``, the id the ANN index knows it by). The ANN
index files are caches of the ``vid -> vector`` part of this table (:mod:`._layout`), so losing
them costs a rebuild, never an answer.

Why SQLite (through the standard library, no new dependency): it is safe across processes (one
writer at a time, readers never blocked in WAL mode) and crash-safe (a transaction killed with
``kill -9`` rolls back when the file is next opened), which is what issue 13 asks of a local
cache shared by gunicorn or celery workers. ``synchronous=NORMAL`` in WAL mode can lose the last
transactions on power loss, never corrupt the file: a cache may forget, it may not lie.

**Ids.** ``vid`` comes from a counter in ``meta`` incremented in the writing transaction, and
writers are serialised (``BEGIN IMMEDIATE``), so vids become visible in increasing order: an
index that has read every live row with ``vid <= seen`` catches up with one indexed query
(``vid > seen``). Rewriting a key gives it a new vid; the old one finds no row and is dropped
from the index that meets it. A vid is never reused.

**Clears.** ``clear(prefix)`` deletes rows and appends ``(generation, prefix)`` to ``clears``, so
another process (or an index file saved before) learns that the partitions under ``prefix`` lost
entries and rebuilds them from the rows that are left instead of searching a graph of dead ids.

Pure SQL and rows: no ANN engine, no numpy beyond byte strings; :mod:`._backend` drives it.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Candidate", "Store", "StoreError", "alive", "deadline_of", "upper_bound"]

#: What the driver raises for "the store failed" (wrapped in BackendError by the backend).
StoreError = (sqlite3.Error, OSError)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    entry BLOB NOT NULL,
    deadline REAL,
    vid INTEGER UNIQUE,
    partition TEXT,
    vector BLOB,
    features TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_partition ON entries (partition, vid)
    WHERE vid IS NOT NULL;
CREATE TABLE IF NOT EXISTS clears (generation INTEGER PRIMARY KEY, prefix TEXT NOT NULL);
"""

#: The store's format; a file of another format is refused (BackendError, with the path).
FORMAT = "1"

# Bytes of the file SQLite may map (address space, not memory: pages load as they are read).
_MMAP = 1 << 30
# KiB of page cache per connection.
_CACHE_KIB = 32 * 1024
# SQLite binds at most 999 parameters per statement in old builds: batches stay below.
_BATCH = 500


def upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``, for
    ``key >= prefix AND key < upper`` range scans on the primary key."""
    return prefix + "\U0010ffff"


class Candidate(NamedTuple):
    """A row an index search pointed at: everything a search decides on (a named tuple: a
    search builds one per row it reads, in the SELECT's column order)."""

    vid: int
    key: str
    entry: bytes
    deadline: float | None
    partition: str
    vector: bytes
    features: str


class Store:
    """The open SQLite file of one ``semantic+local://`` folder.

    Not thread-safe: the backend serialises its calls with its own lock (one connection per
    backend, which SQLite permits across threads with ``check_same_thread=False``).
    """

    def __init__(self, path: str, timeout: float) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE for writes).
        self._con = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._busy = -1.0
        self._writes = 0  # write transactions through this connection (see version())
        self.busy_timeout(timeout)
        try:
            self._use_wal(timeout)
            self._con.execute("PRAGMA synchronous = NORMAL")
            # A search reads its candidates' rows at random places in the file: through a
            # memory map (no read() per page) and a larger page cache, not SQLite's 2 MB.
            self._con.execute(f"PRAGMA mmap_size = {_MMAP}")
            self._con.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            with self._write():
                # (one statement at a time: executescript() would commit the transaction)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._con.execute(statement)
                found = dict(self._con.execute("SELECT name, value FROM meta").fetchall())
                if not found:
                    self._con.executemany(
                        "INSERT INTO meta (name, value) VALUES (?, ?)",
                        [("format", FORMAT), ("store_id", uuid.uuid4().hex), ("next_vid", "1"),
                         ("generation", "0")],
                    )  # fmt: skip
                    found = dict(self._con.execute("SELECT name, value FROM meta").fetchall())
            if found.get("format") != FORMAT:
                raise sqlite3.DatabaseError(
                    f"{path} holds format {found.get('format')!r}, this version reads {FORMAT!r}"
                )
            #: Identity of this store: an index file saved for another store is not loaded.
            self.store_id = str(found["store_id"])
        except BaseException:
            self._con.close()
            raise

    def _use_wal(self, timeout: float) -> None:
        """Put the file in WAL mode, which then persists: a process opening it later finds it
        so and changes nothing. Two processes opening a new store at once race to switch it,
        and SQLite answers the loser "database is locked" at once, without its busy timeout:
        the switch is retried until ``timeout``, then the error stands (fail-open above)."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                (mode,) = self._con.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    self._con.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's lock before failing."""
        if seconds != self._busy:
            self._con.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            self._busy = seconds

    def close(self) -> None:
        self._con.close()

    class _Transaction:
        def __init__(self, store: Store) -> None:
            self._store = store

        def __enter__(self) -> sqlite3.Connection:
            self._store._con.execute("BEGIN IMMEDIATE")
            return self._store._con

        def __exit__(self, kind: object, exc: object, tb: object) -> None:
            self._store._writes += 1
            self._store._con.execute("COMMIT" if kind is None else "ROLLBACK")

    def _write(self) -> Store._Transaction:
        return Store._Transaction(self)

    def version(self) -> tuple[int, int]:
        """A value that changes whenever the store's rows may have changed: SQLite's
        ``data_version`` (changes on every commit by another connection, in any process) and
        this connection's own write count. Equal values: nothing was written in between, so an
        index that was up to date still is (one pragma instead of two queries per search)."""
        (value,) = self._con.execute("PRAGMA data_version").fetchone()
        return int(value), self._writes

    # -- exact entries -----------------------------------------------------------------------

    def get(self, key: str, now: float) -> bytes | None:
        """The bytes of the live entry under ``key``, or ``None``."""
        row = self._con.execute(
            "SELECT entry FROM entries WHERE key = ? AND (deadline IS NULL OR deadline > ?)",
            (key, now),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put(
        self,
        key: str,
        data: bytes,
        deadline: float | None,
        indexed: tuple[str, bytes, str] | None = None,
    ) -> None:
        """Store ``data`` under ``key`` until ``deadline``; with ``indexed`` = (partition,
        float32 vector bytes, guard features), also under a fresh vid of that partition."""
        with self._write() as con:
            if indexed is None:
                con.execute(
                    "INSERT OR REPLACE INTO entries (key, entry, deadline) VALUES (?, ?, ?)",
                    (key, data, deadline),
                )
                return
            (vid,) = con.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'next_vid' "
                "RETURNING CAST(value AS INTEGER) - 1"
            ).fetchone()
            partition, vector, features = indexed
            con.execute(
                "INSERT OR REPLACE INTO entries (key, entry, deadline, vid, partition, vector,"
                " features) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, data, deadline, vid, partition, vector, features),
            )

    def delete(self, key: str, now: float) -> bool:
        """Remove ``key``; whether a live entry was there."""
        with self._write() as con:
            row = con.execute(
                "DELETE FROM entries WHERE key = ? RETURNING deadline", (key,)
            ).fetchone()
        return row is not None and (row[0] is None or row[0] > now)

    def clear(self, prefix: str, now: float) -> int:
        """Remove every key starting with ``prefix``; count the live ones; record the clear."""
        with self._write() as con:
            rows = con.execute(
                "DELETE FROM entries WHERE key >= ? AND key < ? RETURNING deadline",
                (prefix, upper_bound(prefix)),
            ).fetchall()
            (generation,) = con.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'generation' "
                "RETURNING CAST(value AS INTEGER)"
            ).fetchone()
            con.execute(
                "INSERT INTO clears (generation, prefix) VALUES (?, ?)", (generation, prefix)
            )
        return sum(1 for (deadline,) in rows if deadline is None or deadline > now)

    def keys(self, prefix: str, now: float) -> list[str]:
        """The live keys starting with ``prefix``, in key order."""
        rows = self._con.execute(
            "SELECT key FROM entries WHERE key >= ? AND key < ?"
            " AND (deadline IS NULL OR deadline > ?) ORDER BY key",
            (prefix, upper_bound(prefix), now),
        ).fetchall()
        return [str(key) for (key,) in rows]

    def purge_expired(self, now: float) -> int:
        """Delete the rows whose deadline has passed; how many."""
        with self._write() as con:
            cursor = con.execute(
                "DELETE FROM entries WHERE deadline IS NOT NULL AND deadline <= ?", (now,)
            )
            return int(cursor.rowcount)

    def plant(self, key: str, data: bytes) -> None:
        """Raw bytes under ``key``, bypassing every check (for the conformance suite)."""
        with self._write() as con:
            con.execute("INSERT OR REPLACE INTO entries (key, entry) VALUES (?, ?)", (key, data))

    # -- what indexes read -------------------------------------------------------------------

    def generation(self) -> int:
        """How many clears this store has seen."""
        (value,) = self._con.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        return int(value)

    def cleared_since(self, generation: int) -> list[str]:
        """The prefixes cleared after ``generation``."""
        rows = self._con.execute(
            "SELECT prefix FROM clears WHERE generation > ? ORDER BY generation", (generation,)
        ).fetchall()
        return [str(prefix) for (prefix,) in rows]

    def vectors_after(
        self, partition: str, seen: int, now: float, limit: int
    ) -> list[tuple[int, bytes]]:
        """(vid, vector) of the first ``limit`` live rows of ``partition`` with ``vid > seen``,
        in vid order."""
        return [
            (int(vid), bytes(vector))
            for vid, vector in self._con.execute(
                "SELECT vid, vector FROM entries WHERE partition = ? AND vid > ?"
                " AND (deadline IS NULL OR deadline > ?) ORDER BY vid LIMIT ?",
                (partition, seen, now, limit),
            )
        ]

    def last_vid(self) -> int:
        """The highest vid handed out so far (0 for none)."""
        (value,) = self._con.execute("SELECT value FROM meta WHERE name = 'next_vid'").fetchone()
        return int(value) - 1

    def candidates(self, vids: Sequence[int]) -> dict[int, Candidate]:
        """The rows behind ``vids`` that still exist (expired ones included: the caller
        decides), by vid."""
        out: dict[int, Candidate] = {}
        make = Candidate._make
        for start in range(0, len(vids), _BATCH):
            batch = list(vids[start : start + _BATCH])
            # One statement per batch size: sqlite3 keeps it prepared in its statement cache
            # (a search asks for 1 to 8 rows, so at most eight texts).
            for row in self._con.execute(_candidates_sql(len(batch)), batch):
                out[row[0]] = make(row)
        return out


def _candidates_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return (
        "SELECT vid, key, entry, deadline, partition, vector, coalesce(features, '')"
        f" FROM entries WHERE vid IN ({marks})"
    )


def alive(deadline: float | None, now: float) -> bool:
    """Whether a row with ``deadline`` is still live at ``now``."""
    return deadline is None or deadline > now


def deadline_of(ttl: float | None, now: float) -> float | None:
    """The stored deadline of an entry written at ``now`` with ``ttl`` (``None``: no expiry)."""
    if ttl is None or math.isinf(ttl):
        return None
    return now + ttl
