"""The qdrant-client instances a backend calls, and the small sync/async pairs it calls them with.

* Local-mode clients built from URLs are shared per folder (qdrant-client locks the folder, so a
  sync and an async backend of one path in one process must use one client), counted, and
  closed by their last user or at exit.
* Helper pairs the backend source ``_async.py`` calls and its generated twin ``_sync.py`` calls
  under the other name (``scripts/unasync`` swaps ``*_async`` for ``*_sync``): :func:`owner_async`
  (whose a client built now is), :func:`call_async` (one client call), :func:`close_async`,
  :func:`retire_async` (close the client of an event loop the backend has moved off).

A sync backend's client belongs to the process: its owner never changes, and a forked child
drops the parent's client through :mod:`llm_memo._fork` instead of checking a pid per call.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from qdrant_client import QdrantClient

from .... import _fork
from ....errors import ConfigurationError
from ._failures import FAILURES

__all__ = ["is_local", "local_client", "release_local"]

logger = logging.getLogger("llm_memo")

# What closing a client of a finished loop may raise (its transports cannot reach the loop).
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*FAILURES, AttributeError)

_local_clients: dict[str, tuple[QdrantClient, int]] = {}
_local_lock = threading.Lock()


@_fork.on_fork
def _reset_local_lock() -> None:
    # A lock held by another thread at fork() stays held in the child (see _fork.py).
    global _local_lock
    _local_lock = threading.Lock()


def local_client(location: str) -> QdrantClient:
    """The local-mode client of ``location`` (``:memory:``: a new one), one more user counted.

    Raises:
        ConfigurationError: the folder is locked by another process.
    """
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    with _local_lock:
        client, users = _local_clients.get(location, (None, 0))
        if client is None:
            os.makedirs(location, exist_ok=True)
            try:
                client = QdrantClient(path=location)
            except RuntimeError as exc:  # the folder is locked by another process
                raise ConfigurationError(f"qdrant+local://{location}: {exc}") from exc
        _local_clients[location] = (client, users + 1)
        return client


@atexit.register
def _close_local_clients() -> None:
    # An async backend's close() may never be awaited (URL-built backends are closed without
    # an event loop): release the folders' locks before the interpreter tears modules down.
    with _local_lock:
        clients = [client for client, _ in _local_clients.values()]
        _local_clients.clear()
    for client in clients:
        client.close()


def release_local(client: Any) -> bool:
    """Drop one user of a shared local client; whether it was the last one (close it then)."""
    with _local_lock:
        for location, (shared, users) in list(_local_clients.items()):
            if shared is client:
                if users > 1:
                    _local_clients[location] = (shared, users - 1)
                    return False
                del _local_clients[location]
        return True


def is_local(client: Any) -> bool:
    """Whether ``client`` runs qdrant-client's in-process engine (local mode)."""
    return type(getattr(client, "_client", None)).__name__ in ("QdrantLocal", "AsyncQdrantLocal")


def is_sync(client: Any) -> bool:
    """Whether ``client`` answers without ``await`` (a ``QdrantClient``)."""
    return client is not None and not inspect.iscoroutinefunction(
        getattr(type(client), "query_points", None)
    )


def _locked(lock: threading.Lock | None, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    # Local mode is not thread-safe: one call at a time per client.
    if lock is None:
        return method(**kwargs)
    with lock:
        return method(**kwargs)


# -- the pairs ---------------------------------------------------------------------------------


def owner_async() -> object:
    """Whose a client built now is: the running event loop (asyncio clients cannot cross
    loops)."""
    return asyncio.get_running_loop()


def owner_sync() -> object:
    """Whose a client built now is: the process (``None``; a forked child drops the client)."""
    return None


async def call_async(
    method: Callable[..., Any], kwargs: dict[str, Any], lock: threading.Lock | None, sync: bool
) -> Any:
    """Call a client method: awaited, or in a worker thread for a sync client (that is how an
    async backend shares a ``qdrant+local`` folder with sync functions)."""
    if sync:
        return await asyncio.to_thread(_locked, lock, method, kwargs)
    return await method(**kwargs)


def call_sync(
    method: Callable[..., Any], kwargs: dict[str, Any], lock: threading.Lock | None, sync: bool
) -> Any:
    """Call a sync client's method (``sync`` is the async twin's argument)."""
    return _locked(lock, method, kwargs)


async def close_async(client: Any) -> None:
    """Close ``client``, awaiting it when it is an async one."""
    result = client.close()
    if inspect.isawaitable(result):
        await result


def close_sync(client: Any) -> None:
    """Close ``client``."""
    client.close()


async def retire_async(client: Any, owner: object) -> None:
    """Close the client of ``owner``, an event loop the backend has moved off.

    On its own loop when that loop still runs (in another thread); here otherwise. A client of a
    closed loop may not close cleanly (its transports cannot schedule their callbacks any
    more): that is logged, never raised, since the operation that replaced it must go on.
    """
    loop = owner if isinstance(owner, asyncio.AbstractEventLoop) else None
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called from async code
            running = None
        if loop is not running:
            asyncio.run_coroutine_threadsafe(close_async(client), loop)
            return
    try:
        await close_async(client)
    except _CLOSE_ERRORS as exc:
        logger.debug("llm_memo: closing the Qdrant client of a finished event loop: %s", exc)


def retire_sync(client: Any, owner: object) -> None:
    """The sync twin of :func:`retire_async` (a sync backend's owner never changes, so it only
    runs if that ever stops being true)."""
    close_sync(client)
