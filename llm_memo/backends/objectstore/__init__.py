"""Object stores through fsspec: ``file://``, ``s3://``, ``gs://``, ``az://`` and any fsspec URL.

One entry is one object. Its path comes from the key alone, so a hit is a single read of a known
name: ``cat_file`` (one GET), never an ``exists``/``info``/LIST first, with a missing object
(``FileNotFoundError``) read as a miss. Object stores have no per-object expiry, so the object
is framed with a keep-until deadline and its full key; :meth:`purge_expired` (or a bucket
lifecycle rule on object age) deletes what has expired. Writes replace the whole object: one
PUT on S3, GCS and Azure; on local files a temporary file renamed over the target, so no reader
ever sees a torn entry.

Failures fail open: every exception a driver raises is raised as
:class:`~llm_memo.errors.BackendError`. Each backend has a
:class:`~llm_memo.backends._breaker.CircuitBreaker`, used through its guard, that counts only an
unreachable store (no answer, a deadline passed, 5xx): a refusal of one request (a name the store
rejects, a 403, a value too large) never stops caching for everyone. Each get/set/delete has one
deadline covering the driver's own retries; management calls have one per listing step.

The package, pure modules first:

* ``layout.py``: object names from keys (through ``keys.parse_key``) and keys from listings.
* ``framing.py``: the LMO2 frame (deadline, key, entry) and reading it back.
* ``errors.py``: "unreachable" versus "refused", and the one BackendError boundary.
* ``target.py``: URLs and filesystems resolved to a target; driver defaults and timeouts.
* ``_local.py`` / ``_fsspec.py``: the I/O classes (local files; fsspec's sync and async APIs).
* ``_io.py``: the I/O interface in its sync and async flavours and who owns each (the process,
  the event loop).
* ``_base.py``: construction, ``from_url``, paths and the guard, shared by both backends.
* ``_async.py``: :class:`AsyncObjectStoreBackend`, the one hand-written backend body;
  ``_sync.py``: :class:`ObjectStoreBackend`, generated from it by ``scripts/unasync``.

Not here: value encoding (``llm_memo.codec``); Redis-style native expiry or locks.
"""

from __future__ import annotations

from ._async import AsyncObjectStoreBackend
from ._sync import ObjectStoreBackend
from .target import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, LISTING_TIMEOUT, READ_TIMEOUT

# Where the classes were defined before the package split (reprs, docs and pickles say so).
AsyncObjectStoreBackend.__module__ = ObjectStoreBackend.__module__ = __name__

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "LISTING_TIMEOUT",
    "READ_TIMEOUT",
    "AsyncObjectStoreBackend",
    "ObjectStoreBackend",
]
