"""The clients a Redis backend built, one per owner, closed with their owner.

An owner is what a client cannot outlive or be shared across: the event loop for the async
backend (asyncio connections belong to the loop that opened them), the process for the sync one
(a forked child must not write into its parent's sockets). The backends are generated from one
source (``_async.py``), so this helper takes either kind of owner and does what each needs.

Closing with the loop: a cached ``async def`` used across several ``asyncio.run()``
calls used to leave one open connection per loop, reported as ``ResourceWarning: unclosed
Connection`` when the garbage collector found it. asyncio has no "loop is closing" callback, but
``asyncio.run()`` (and ``asyncio.Runner``, IsolatedAsyncioTestCase, pytest-asyncio...) finalise
the loop's open async generators with ``loop.shutdown_asyncgens()`` before closing it. So the
first client built on a loop starts a tiny async generator *on that loop* (the loop tracks it
through its asyncgen hooks), whose ``finally`` closes the client: the connections close on their
own loop, before it closes. A loop closed without that step (``loop.close()`` by hand) cannot
run anything any more; its clients are released without the loop (sockets closed, nothing left
to warn) the next time the backend builds a client or is closed.

Not here: building clients (``_async.py``), the URL table, the breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Owned"]

C = TypeVar("C")

logger = logging.getLogger("llm_memo")


class _Held(Generic[C]):
    """One client and the watcher that closes it with its loop."""

    __slots__ = ("client", "done", "watcher")

    def __init__(self, client: C) -> None:
        self.client = client
        self.done = False  # closed or released by someone: the watcher has nothing left to do
        self.watcher: Any = None  # the async generator started on the client's loop


class Owned(Generic[C]):
    """The clients built per owner (an event loop, or a process id), closed with their owner.

    Args:
        closer: closes one client; ``async def`` for async clients (awaited on their loop),
            ``def`` for sync ones.
        errors: what closing a client may raise (swallowed and logged when a loop shuts down).
    """

    def __init__(self, closer: Callable[[C], Any], errors: tuple[type[BaseException], ...]) -> None:
        self._closer = closer
        self._errors = errors
        self._lock = threading.Lock()
        self._held: dict[object, _Held[C]] = {}

    def get(self, owner: object) -> C | None:
        """The client of ``owner``, if one was built (the hit path: one dict lookup)."""
        held = self._held.get(owner)
        return None if held is None else held.client

    def add(self, owner: object, client: C) -> None:
        """Keep ``client`` for ``owner`` (the running loop, or this process); on a loop, it will
        be closed when the loop shuts down."""
        held: _Held[C] = _Held(client)
        with self._lock:
            dead = self._take_dead()
            self._held[owner] = held
        for old in dead:
            _release(old)
        # A loop already finalising its generators would warn about a new one and never close
        # it: a client built then is released once the loop is closed.
        if isinstance(owner, asyncio.AbstractEventLoop) and not getattr(
            owner, "_asyncgens_shutdown_called", False
        ):
            held.watcher = _start(
                _closes_with_loop(owner, weakref.ref(self), held, self._closer, self._errors)
            )

    async def aclose(self, owner: object) -> None:
        """Close ``owner``'s client (on its loop, now) and release those of closed loops.
        Clients of loops still running in other threads stay theirs: they close with their loop.

        Raises:
            whatever the closer raises (one of ``errors``).
        """
        held = self._pop(owner)
        if held is None:
            return
        await _finish(held)
        await self._closer(held.client)

    def close(self, owner: object) -> None:
        """The sync twin of :meth:`aclose`: close ``owner``'s client (a sync one) now."""
        held = self._pop(owner)
        if held is not None:
            held.done = True
            self._closer(held.client)

    def forget(self) -> None:
        """Drop every client without touching it (in a forked child: they are the parent's)."""
        held, self._held = self._held, {}
        self._lock = threading.Lock()
        for each in held.values():
            _end(each)

    def __del__(self) -> None:
        # A backend dropped with clients of closed loops: release them rather than leave the
        # garbage collector to warn about them. (Live loops close theirs through the watcher.)
        # At interpreter exit module globals may already be gone: then there is nothing to do.
        with contextlib.suppress(AttributeError, TypeError):
            for held in self._take_dead():
                _release(held)

    # -- internals ---------------------------------------------------------------------------

    def _pop(self, owner: object) -> _Held[C] | None:
        with self._lock:
            dead = self._take_dead()
            held = self._held.pop(owner, None)
        for old in dead:
            _release(old)
        return held

    def _take_dead(self) -> list[_Held[C]]:
        # Called with the lock held: the clients whose loop is closed, taken out of the table.
        dead = [o for o in self._held if isinstance(o, asyncio.AbstractEventLoop) and o.is_closed()]
        return [self._held.pop(o) for o in dead]

    def _discard(self, owner: object, held: _Held[C]) -> None:
        """Take ``held`` out of the table if it is still ``owner``'s."""
        with self._lock:
            if self._held.get(owner) is held:
                del self._held[owner]


# -- the loop side ---------------------------------------------------------------------------


async def _closes_with_loop(
    loop: asyncio.AbstractEventLoop,
    owned: weakref.ref[Owned[Any]],
    held: _Held[Any],
    closer: Callable[[Any], Any],
    errors: tuple[type[BaseException], ...],
) -> AsyncIterator[None]:
    # Started on ``loop`` and left suspended at the yield; the loop finalises it (aclose) in
    # shutdown_asyncgens, or the garbage collector does through the loop's finalizer hook if
    # the backend goes first. Only a weak reference to the table: the backend can be collected.
    try:
        yield
    finally:
        if not held.done:
            held.done = True
            table = owned()
            if table is not None:
                table._discard(loop, held)
            try:
                await closer(held.client)
            except errors as exc:  # the loop is shutting down: nobody to report to
                logger.debug("closing a Redis client with its event loop failed: %s", exc)


def _start(watcher: Any) -> Any:
    """Run ``watcher`` to its first yield now, from sync code on the running loop's thread, so
    that loop's asyncgen hooks register it."""
    step = watcher.asend(None)
    try:
        step.send(None)
    except StopIteration:
        return watcher
    raise AssertionError("the watcher awaited before its first yield")  # pragma: no cover


async def _finish(held: _Held[Any]) -> None:
    """Mark ``held`` closed by its owner and end its watcher (on the running loop)."""
    held.done = True
    watcher, held.watcher = held.watcher, None
    if watcher is not None:
        await watcher.aclose()


def _end(held: _Held[Any]) -> None:
    """Mark ``held`` done and end its watcher without a loop (its finally sees ``done`` and
    awaits nothing, so it ends within one step)."""
    held.done = True
    watcher, held.watcher = held.watcher, None
    if watcher is not None:
        step = watcher.aclose()
        try:
            step.send(None)
        except StopIteration:
            pass
        else:  # pragma: no cover - cannot happen, see above
            step.close()


def _release(held: _Held[Any]) -> None:
    """Release a client whose loop is closed: no loop can run its close any more, so its sockets
    are closed directly and its watcher is ended without one."""
    _end(held)
    for connection in _connections(held.client):
        _drop(connection)
    if getattr(held.client, "_initialize", True) is False:
        # A cluster client warns from __del__ unless it was closed; aclose() would set this.
        held.client._initialize = True


def _connections(client: Any) -> list[Any]:
    """Every asyncio connection a redis.asyncio client holds (standalone, Sentinel with its
    sentinels, or Cluster with its nodes)."""
    pools = []
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pools.append(pool)
        manager = getattr(pool, "sentinel_manager", None)
        pools += [
            getattr(sentinel, "connection_pool", None)
            for sentinel in getattr(manager, "sentinels", ())
        ]
    found: list[Any] = []
    for each in pools:
        found += getattr(each, "_available_connections", [])
        found += list(getattr(each, "_in_use_connections", ()))
    manager = getattr(client, "nodes_manager", None)
    if manager is not None:
        nodes = [
            *getattr(manager, "nodes_cache", {}).values(),
            *getattr(manager, "startup_nodes", {}).values(),
        ]
        for node in nodes:
            found += getattr(node, "_connections", [])
    return found


def _drop(connection: Any) -> None:
    # redis-py and asyncio both warn from __del__ about a connection, stream or transport that
    # was never closed, and closing them the public way schedules callbacks on their (closed)
    # loop, which raises. So: close the socket, and mark each layer closed, as its own close()
    # would have (best effort, by attribute; a transport of another kind is left to warn).
    writer = getattr(connection, "_writer", None)
    if writer is None:
        return
    connection._writer = connection._reader = None
    transport = getattr(writer, "transport", None)
    while transport is not None:
        if hasattr(transport, "_closed"):  # the SSL layer
            transport._closed = True
        if hasattr(transport, "_closing"):
            transport._closing = True
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            transport._sock = None
            sock.close()
        transport = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
