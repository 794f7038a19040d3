"""The in-memory ANN indexes of one backend: one usearch HNSW index per partition, kept up to
date with the store, loaded from and saved to the files :mod:`._layout` describes.

:class:`Indexes` answers one question for a search: "the index of this partition, with every
live row of the store in it". It loads the partition's file when it is sound and current (same
store, same engine settings, no clear of the partition since), else starts empty; then it adds
the rows written since (``vid > seen``, in batches), so a rebuild and another process's write
are the same code path; while nothing was written since its last look (:meth:`Store.version`,
one pragma) it skips those queries. It forgets the partitions under each prefix cleared since
its last look (by any process), and rewrites a file once its partition has ``max(1000, 10%)``
vectors more.

Not thread-safe: the backend holds its lock around every call. Not here: what a search does
with the vids it gets (:mod:`._backend`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ....errors import MissingDependencyError
from ..vectors import numpy
from . import _layout
from ._store import Store

__all__ = ["Indexes", "Partition"]

logger = logging.getLogger("llm_memo")

# An index file is rewritten once its partition has this many vectors more (or 10% more).
_SAVE_MIN = 1000
# Rows read per query when an index catches up with the store (a rebuild reads many).
_CATCH_UP = 20_000


def _usearch() -> Any:
    # usearch 2.26 loaded before onnxruntime 1.32 makes onnxruntime's InferenceSession() crash
    # the process (SIGSEGV; measured here, whichever comes first in the process decides), and
    # the offline LocalEmbedder runs on onnxruntime: load it first when it is installed.
    if "onnxruntime" not in sys.modules and importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # noqa: F401
    try:
        from usearch import index
    except ImportError as exc:
        raise MissingDependencyError(
            "the semantic+local:// backend needs usearch; fix: pip install 'llm-memo[ann]'"
        ) from exc
    return index


@dataclass(slots=True)
class Partition:
    """One partition's in-memory index and how far it has read the store."""

    index: Any  # usearch.index.Index
    ndim: int
    seen: int  # every live row of the partition with vid <= seen is in the index
    generation: int  # the store's clear count when last brought up to date
    saved: int  # vectors in the index when its file was last written or read
    #: The store's version() when last brought up to date (``None``: never): while it has not
    #: changed, a search skips the catch-up queries.
    version: tuple[int, int] | None = None


class Indexes:
    """The partitions' indexes of one backend (see the module docstring)."""

    def __init__(
        self,
        directory: str,
        *,
        dtype: str,
        connectivity: int,
        expansion_add: int,
        expansion_search: int,
    ) -> None:
        self.directory = directory
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        #: partition name -> its index (only the partitions searched in this process).
        self.parts: dict[str, Partition] = {}
        #: The store's clear count the partitions were checked against (-1: never).
        self.generation = -1
        #: The store's version() when that check was made.
        self.version: tuple[int, int] | None = None
        self._save_failed = False

    def reset(self) -> None:
        """Forget every index (the store was closed)."""
        self.parts.clear()
        self.generation = -1
        self.version = None

    def save(self, db: Store) -> None:
        """Write the file of every partition that has vectors its file lacks."""
        for name, part in self.parts.items():
            if len(part.index) != part.saved:
                self.write(db, name, part)

    def refresh(self, db: Store) -> int:
        """Catch up with the clears made since the last look (by any process): drop the
        in-memory indexes of the partitions under each cleared prefix (rebuilt when next
        searched, from the rows left). Returns the store's generation."""
        generation = db.generation()
        if generation != self.generation:
            known = self.generation
            prefixes = db.cleared_since(known) if known >= 0 else [""]
            for prefix in prefixes:
                for name in [n for n in self.parts if n.startswith(prefix)]:
                    del self.parts[name]
            self.generation = generation
        return generation

    def remove_files(self) -> None:
        """Delete every index file (after ``clear()`` of everything)."""
        folder = os.path.dirname(_layout.index_path(self.directory, ""))
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for file in names:
            if file.endswith(".usearch"):
                with suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, file))

    def current(self, db: Store, name: str, ndim: int, now: float) -> Partition | None:
        """``name``'s index with every live row of the store in it (built, loaded or caught
        up now); ``None`` when its vectors have another dimension than ``ndim``."""
        version = db.version()
        part = self.parts.get(name)
        if part is not None and part.version == version and self.version == version:
            return part if part.ndim == ndim else None  # nothing written since: up to date
        generation = self.refresh(db)
        self.version = version
        part = self.parts.get(name)
        if part is None:
            part = self._load(db, name, ndim, generation)
            self.parts[name] = part
        if part.ndim != ndim:
            return None
        added = False
        while True:  # in batches, so a rebuild never holds every vector twice in memory
            rows = db.vectors_after(name, part.seen, now, _CATCH_UP)
            if not rows:
                break
            np = numpy()
            width = part.ndim * 4
            fitting = [(vid, blob) for vid, blob in rows if len(blob) == width]
            if fitting:
                keys = np.fromiter((vid for vid, _ in fitting), dtype=np.uint64, count=len(fitting))
                matrix = np.frombuffer(b"".join(blob for _, blob in fitting), dtype="<f4")
                part.index.add(keys, matrix.reshape(len(fitting), part.ndim))
            part.seen = rows[-1][0]
            added = True
            if len(rows) < _CATCH_UP:
                break
        part.generation = generation
        part.version = version
        if added and len(part.index) - part.saved >= max(_SAVE_MIN, part.saved // 10):
            self.write(db, name, part)
        return part

    def _new_index(self, ndim: int) -> Any:
        return _usearch().Index(
            ndim=ndim,
            metric="cos",
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self.expansion_search,
        )

    def _load(self, db: Store, name: str, ndim: int, generation: int) -> Partition:
        """The partition's index from its file if the file is sound and current, else empty
        (the caller's catch-up then rebuilds it from the store)."""
        path = _layout.index_path(self.directory, name)
        found = _layout.read_index(path)
        if found is not None:
            header, blob = found
            settings = (self.dtype, self.connectivity, self.expansion_add)
            if (
                header.store_id == db.store_id
                and header.partition == name
                and (header.dtype, header.connectivity, header.expansion_add) == settings
                and header.ndim == ndim
                and header.generation <= generation
                and header.seen <= db.last_vid()
                and not any(name.startswith(p) for p in db.cleared_since(header.generation))
            ):
                index = self._new_index(ndim)
                try:
                    index.load(blob)
                except (RuntimeError, ValueError) as exc:
                    logger.warning("llm_memo: rebuilding damaged index %s (%s)", path, exc)
                else:
                    index.expansion_search = self.expansion_search
                    return Partition(index, ndim, header.seen, generation, len(index))
        return Partition(self._new_index(ndim), ndim, 0, generation, 0)

    def write(self, db: Store, name: str, part: Partition) -> None:
        """Save ``part``'s index file (a failure is logged once: the file is only a cache)."""
        header = _layout.Header(
            store_id=db.store_id, partition=name, seen=part.seen, generation=part.generation,
            ndim=part.ndim, dtype=self.dtype, connectivity=self.connectivity,
            expansion_add=self.expansion_add,
        )  # fmt: skip
        try:
            _layout.write_index(_layout.index_path(self.directory, name), header, part.index.save())
        except OSError as exc:
            # The file is a cache of the store: a search goes on without it (warned once).
            if not self._save_failed:
                self._save_failed = True
                logger.warning("llm_memo: cannot save the index of %s: %s", self.directory, exc)
        part.saved = len(part.index)
