"""``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``redis+sentinel://``.

:class:`RedisBackend` (redis-py) and :class:`AsyncRedisBackend` (redis.asyncio) have the same
methods and behaviour: the async one is the source (``_async.py``), the sync one is generated
from it (``_sync.py``, by ``scripts/unasync``). Both implement the backend protocol plus
``Listing`` (``keys``) and ``Locking`` / ``AsyncLocking`` (``lock``, for ``lock=True``).
See ``docs/backends/redis.md``.
"""

from __future__ import annotations

from ._async import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT, AsyncRedisBackend
from ._sync import RedisBackend

# The public path, not the (generated) file the class lives in: reprs, docs and pickles name it.
AsyncRedisBackend.__module__ = RedisBackend.__module__ = __name__

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "AsyncRedisBackend",
    "RedisBackend",
]
