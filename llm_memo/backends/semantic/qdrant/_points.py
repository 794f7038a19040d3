"""Qdrant points as llm_memo writes them: ids, payloads, filters, and the collection's shape.

Pure code (no I/O) both generated backends import. Payload fields:

==============  ==================================================================================
``key``         the entry's key
``prefixes``    every ``:``-terminated prefix of the key: ``clear(prefix)`` deletes by an exact
                match on it (namespace and function prefixes are among them)
``partition``   context + embedder identity (:func:`~..partition_name`); similarity search filters
                on it, so a match never crosses model, parameters, namespace, tenant or embedder
``deadline``    when the store may drop the entry (set time + ``ttl``; far future for none)
``expires_at``  the entry's own expiry (informational; freshness is judged above the backend)
``entry``       base64 of the entry bytes
``guard``       the guard's features of the embedded text (not the text itself)
==============  ==================================================================================
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from qdrant_client import models

from ....entry import Entry
from ....errors import BackendError, CodecError
from .._search import key_prefixes

__all__ = ["point_id"]

#: The one named vector of a collection llm_memo creates.
VECTOR = "text"
#: The deadline of an entry kept until deleted (JSON has no infinity).
NEVER = 1.0e300
_POINTS = uuid.UUID("5f0c4f0e-1c55-4a62-9a5e-8f3a7c1d2b61")  # uuid5 namespace of point ids
#: Points asked per ``scroll`` when clearing by a prefix that is not a whole segment.
SCROLL = 1024


def point_id(key: str) -> str:
    """The point id of ``key`` (uuid5, so every process derives the same one)."""
    return str(uuid.uuid5(_POINTS, key))


def payload(key: str, entry: Entry, deadline: float) -> dict[str, Any]:
    """The payload of ``entry`` stored under ``key`` until ``deadline``."""
    return {
        "key": key,
        "prefixes": key_prefixes(key),
        "deadline": deadline,
        "expires_at": entry.expires_at,
        "entry": base64.b64encode(entry.to_bytes()).decode("ascii"),
    }


def entry_of(stored: dict[str, Any]) -> Entry | None:
    """The entry in a payload, or ``None`` (absent or corrupt)."""
    data = stored.get("entry")
    if not isinstance(data, str):
        return None
    try:
        return Entry.from_bytes(base64.b64decode(data, validate=True))
    except (CodecError, binascii.Error, ValueError):
        return None


def deadline_of(stored: dict[str, Any] | None) -> float:
    """A payload's deadline (:data:`NEVER` when it has none)."""
    return float((stored or {}).get("deadline", NEVER))


def match(name: str, value: str) -> models.FieldCondition:
    """The filter condition ``payload[name] == value``."""
    return models.FieldCondition(key=name, match=models.MatchValue(value=value))


def live(partition: str, now: float) -> models.Filter:
    """Points of ``partition`` whose deadline is after ``now``."""
    alive = models.FieldCondition(key="deadline", range=models.Range(gt=now))
    return models.Filter(must=[match("partition", partition), alive])


def expired(now: float) -> models.Filter:
    """Points whose deadline is ``now`` or before."""
    return models.Filter(must=[models.FieldCondition(key="deadline", range=models.Range(lte=now))])


def vectors_config(size: int) -> dict[str, models.VectorParams]:
    """The vector parameters of a collection llm_memo creates."""
    return {VECTOR: models.VectorParams(size=size, distance=models.Distance.COSINE)}


#: Payload indexes a collection on a server gets: (field, schema).
INDEXES = (
    ("partition", models.PayloadSchemaType.KEYWORD),
    ("prefixes", models.PayloadSchemaType.KEYWORD),
    ("deadline", models.PayloadSchemaType.FLOAT),
)


def dimension_of(info: Any, collection: str) -> int:
    """The vector size of a collection (a ``get_collection`` answer).

    Raises:
        BackendError: the collection was not created by llm_memo.
    """
    vectors = info.config.params.vectors
    params = vectors.get(VECTOR) if isinstance(vectors, dict) else None
    if params is None:
        raise BackendError(
            f"Qdrant collection {collection!r} was not created by llm_memo (it has no "
            f"{VECTOR!r} vector); use another collection"
        )
    return int(params.size)
