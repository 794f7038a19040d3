"""What every semantic search follows, whichever store holds the vectors.

* :data:`DEFAULT_THRESHOLD` and :data:`DEFAULT_CANDIDATES`, and :func:`resolve_threshold` (a
  call's threshold, else the backend's, checked);
* :func:`partition_name`: one partition per (exact context, embedder), so a match never crosses
  contexts nor embedders;
* :func:`key_prefixes`: the ``:``-terminated prefixes of a key, for stores that clear by an exact
  match on a stored field.
"""

from __future__ import annotations

import xxhash

from ...errors import ConfigurationError

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_THRESHOLD",
    "key_prefixes",
    "partition_name",
    "resolve_threshold",
]

#: Cosine similarity a semantic hit needs when neither the backend nor the call says otherwise.
#: Chosen from benchmarks/semantic_quality.py with the offline MiniLM model and the lexical guard
#: on (see docs/backends/semantic.md for the table); re-measure for another embedder.
DEFAULT_THRESHOLD = 0.85

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
