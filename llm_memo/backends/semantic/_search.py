"""What every semantic search follows, whichever store holds the vectors.

* :data:`DEFAULT_THRESHOLD` and :data:`DEFAULT_CANDIDATES`, and :func:`resolve_threshold` (a
  call's threshold, else the backend's, checked);
* :func:`partition_name`: one partition per (exact context, embedder), so a match never crosses
  contexts nor embedders;
* :func:`key_prefixes`: the ``:``-terminated prefixes of a key, for stores that clear by an exact
  match on a stored field;
* :class:`SearchSettings`, what both backends are built with (embedder, threshold, guard,
  candidates), checked once; each backend class starts from it.
"""

from __future__ import annotations

from typing import Any

import xxhash

from ...errors import ConfigurationError
from .guard import Guard
from .vectors import VectorCache, check_embedder, is_async_embedder

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_THRESHOLD",
    "SearchSettings",
    "key_prefixes",
    "partition_name",
    "resolve_threshold",
]

#: Cosine similarity a semantic hit needs when neither the backend nor the call says otherwise.
#: Chosen on the tune split of benchmarks/semantic_quality.py (best utility, a wrong answer
#: costing ten misses) with the offline MiniLM model, its typo correction and the lexical guard
#: on (see docs/backends/semantic.md for the table); re-measure for another embedder.
DEFAULT_THRESHOLD = 0.82

#: How many nearest neighbours a search looks at (best first): a candidate the guard refuses, or
#: whose entry expired, gives way to the next.
DEFAULT_CANDIDATES = 4


def partition_name(context: str, embedder_name: str) -> str:
    """The name of the partition a (context, embedder) pair searches and adds in.

    It starts with ``context`` (which starts with the function's key prefix), so clearing a
    namespace or a function by prefix also clears its vectors; the suffix names the embedder by
    hash, so another model's vectors live apart.
    """
    return f"{context}~sem:{xxhash.xxh3_64_hexdigest(embedder_name.encode())}"


def resolve_threshold(threshold: float | None, default: float) -> float:
    """The threshold for one search: the call's, else the backend's.

    Raises:
        ConfigurationError: outside [-1, 1] (cosine similarity's range).
    """
    value = default if threshold is None else float(threshold)
    if not -1.0 <= value <= 1.0:
        raise ConfigurationError(f"threshold must be a cosine similarity in [-1, 1], not {value}")
    return value


def key_prefixes(key: str) -> list[str]:
    """Every prefix of ``key`` that ends with ``:`` (namespace and function prefixes among them),
    for stores that clear by an exact match on a stored field."""
    return [key[: i + 1] for i, char in enumerate(key) if char == ":"]


class SearchSettings:
    """What every semantic backend is built with, checked once: the embedder (sync, or either
    kind for an async backend), the default threshold, the guard and the candidates per search;
    plus the vector cache that lets a miss embed its text once for its search and its add.

    Raises:
        ConfigurationError: no usable embedder, a threshold outside [-1, 1], fewer than one
            candidate.
    """

    def __init__(
        self,
        embedder: Any,
        *,
        threshold: float,
        guard: Guard | None,
        candidates: int,
        asynchronous: bool,
    ) -> None:
        check_embedder(embedder, asynchronous=asynchronous)
        if candidates < 1:
            raise ConfigurationError("candidates must be at least 1")
        resolve_threshold(threshold, threshold)
        self.embedder = embedder
        self._threshold = threshold
        self._guard = guard
        self._candidates = candidates
        self._async_embedder = is_async_embedder(embedder)
        self._vectors = VectorCache()

    @property
    def threshold(self) -> float:
        """The default minimum cosine similarity of a hit."""
        return self._threshold

    @property
    def guard(self) -> Guard | None:
        """The guard applied to candidate hits, if any."""
        return self._guard
