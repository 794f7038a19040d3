"""``redis+semantic://``: semantic caching on Redis 7 (hash indexes) or Redis 8 (vector sets).

==============  ==================================================================================
``_async.py``   :class:`AsyncRedisSemanticBackend`, the one written source (see its docstring for
                the storage layout, expiry and eviction)
``_sync.py``    :class:`RedisSemanticBackend`, GENERATED from ``_async.py`` by ``scripts/unasync``
``_index.py``   the index as data: key names, records, Lua scripts, reply parsing, ranking
``_url.py``     ``redis+semantic://`` URLs
==============  ==================================================================================
"""

from __future__ import annotations

from ._async import AsyncRedisSemanticBackend
from ._index import DEFAULT_MAX_PARTITION_HASH, DEFAULT_MAX_PARTITION_VECTORSET
from ._sync import RedisSemanticBackend

# The public path, not the (generated) file the class lives in: reprs, docs and pickles name it.
AsyncRedisSemanticBackend.__module__ = RedisSemanticBackend.__module__ = __name__

__all__ = [
    "DEFAULT_MAX_PARTITION_HASH",
    "DEFAULT_MAX_PARTITION_VECTORSET",
    "AsyncRedisSemanticBackend",
    "RedisSemanticBackend",
]
