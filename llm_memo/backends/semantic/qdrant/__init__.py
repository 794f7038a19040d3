"""``qdrant://`` and ``qdrant+local://``: semantic caching on Qdrant (server or local mode).

================  ================================================================================
``_async.py``     :class:`AsyncQdrantSemanticBackend`, the one written source (see its docstring
                  for the collection, expiry and local mode)
``_sync.py``      :class:`QdrantSemanticBackend`, GENERATED from ``_async.py`` by
                  ``scripts/unasync``
``_points.py``    point ids, payloads, filters, the collection's shape
``_url.py``       ``qdrant://`` / ``qdrant+local://`` URLs
``_failures.py``  which exceptions are store failures, and which say "unreachable"
``_clients.py``   shared local clients, and the sync/async call/close helper pairs
================  ================================================================================
"""

from __future__ import annotations

from ._async import DEFAULT_COLLECTION, AsyncQdrantSemanticBackend
from ._points import point_id
from ._sync import QdrantSemanticBackend
from ._url import DEFAULT_TIMEOUT

# The public path, not the (generated) file the class lives in: reprs, docs and pickles name it.
AsyncQdrantSemanticBackend.__module__ = QdrantSemanticBackend.__module__ = __name__

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_TIMEOUT",
    "AsyncQdrantSemanticBackend",
    "QdrantSemanticBackend",
    "point_id",
]
