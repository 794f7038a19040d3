"""A fault-injecting TCP proxy for tests and benchmarks (toxiproxy's modes, in-process).

`FaultProxy` listens on a random loopback port and forwards every connection to an upstream
``(host, port)``: any TCP server (Redis, the object-store emulators...). Its mode can be switched
at any time, and applies at once to new *and* open connections:

===========================  ===============================================================
``proxy.pass_through()``     forward both ways (the default)
``proxy.refuse()``           close the listener (new connections: ``ECONNREFUSED``) and reset
                             the open ones
``proxy.hang()``             accept, never answer: every byte, both ways, is swallowed; the
                             peer waits for its own timeout
``proxy.reset_after(n)``     forward ``n`` more bytes of replies per connection, then reset it
                             (RST) mid-reply
``proxy.blackhole_after(n)`` forward ``n`` more bytes of replies per connection, then swallow
                             everything, both ways, leaving the connection open
``proxy.cut()``              reset every open connection now (the mode stays)
===========================  ===============================================================

A connection that swallowed bytes (``hang``, ``blackhole_after``) has lost its protocol state:
it is reset when the proxy goes back to ``pass_through``, so the client reconnects cleanly.
Upstream refusing the proxy's own connection (the server is down) closes the client's.

Counters: ``accepted`` (connections accepted), ``open_connections``, ``bytes_up`` /
``bytes_down`` (forwarded). Use it as a context manager, or ``start()`` / ``stop()``::

    with FaultProxy((redis_server.host, redis_server.port)) as proxy:
        backend = RedisBackend.from_url(f"redis://127.0.0.1:{proxy.port}/0")
        proxy.hang()
        ...
        proxy.pass_through()

:func:`within` runs a test body in a thread and fails, instead of hanging the suite, if it has
not ended after a bound: a regression that waits for ever is a clear failure.

Threads, one listener plus two pumps per connection; each waits at most ``TICK`` seconds before
it looks at the mode again. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

__all__ = ["TICK", "FaultProxy", "Mode"]

Mode = Literal["pass", "refuse", "hang", "reset", "blackhole"]

#: Seconds a proxy thread waits on a socket before it checks the mode (and stop) again.
TICK = 0.02
_CHUNK = 65536


@dataclass
class _Fault:
    mode: Mode
    budget: int  # reply bytes each connection may still forward (reset / blackhole)
    generation: int  # bumped by every switch, so each connection starts the new budget afresh


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (linger 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Connection:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.swallowed = False  # lost bytes: reset when the proxy passes traffic again
        self.generation = -1
        self.budget = 0

    def kill(self, rst: bool = True) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if rst:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._forget(self)

    def run(self) -> None:
        fault = self.proxy._fault
        if fault.mode in ("pass", "reset", "blackhole"):
            try:
                self.upstream = socket.create_connection(self.proxy.upstream, timeout=5)
            except OSError:
                self.kill(rst=False)  # upstream down: the client sees its connection closed
                return
        # In hang mode the upstream is connected only if the proxy passes traffic again.
        down = threading.Thread(target=self._pump, args=(False,), daemon=True)
        down.start()
        self._pump(True)
        down.join()

    def _budget(self, fault: _Fault) -> int:
        with self.lock:
            if self.generation != fault.generation:
                self.generation, self.budget = fault.generation, fault.budget
            return self.budget

    def _spend(self, n: int) -> None:
        with self.lock:
            self.budget -= n

    def _pump(self, upward: bool) -> None:
        """Move bytes client -> upstream (``upward``) or upstream -> client, obeying the mode."""
        while not self.closed and not self.proxy._stopping.is_set():
            fault = self.proxy._fault
            if fault.mode == "pass" and self.swallowed:
                self.kill()
                return
            if fault.mode == "refuse":
                self.kill()
                return
            source = self.client if upward else self.upstream
            if source is None:  # hang mode, upstream never connected
                if fault.mode == "pass":
                    self.kill()  # bytes were swallowed on the way in: start over
                    return
                if not upward:
                    self.proxy._stopping.wait(TICK)
                    continue
                source = self.client
            try:
                readable, _, _ = select.select([source], [], [], TICK)
                if not readable:
                    continue
                data = source.recv(_CHUNK)
            except (OSError, ValueError):  # closed under us
                self.kill(rst=False)
                return
            if not data:  # orderly close from this side: pass it on
                self.kill(rst=False)
                return
            fault = self.proxy._fault
            if fault.mode == "hang":
                self.swallowed = True
                continue
            if not upward and fault.mode in ("reset", "blackhole"):
                budget = self._budget(fault)
                if budget <= 0:
                    if fault.mode == "reset":
                        self.kill()
                        return
                    self.swallowed = True
                    continue
                data = data[:budget]
                self._spend(len(data))
            if upward and fault.mode == "blackhole" and self._budget(fault) <= 0:
                self.swallowed = True
                continue
            target = self.upstream if upward else self.client
            try:
                assert target is not None
                target.sendall(data)
            except (OSError, ValueError, AssertionError):
                self.kill()
                return
            self.proxy._count(upward, len(data))
            if not upward and fault.mode == "reset" and self._budget(fault) <= 0:
                self.kill()
                return


class FaultProxy:
    """A TCP proxy on ``127.0.0.1:<random port>`` in front of ``upstream``, with faults.

    Args:
        upstream: the server's ``(host, port)``.
        host: the loopback address to listen on.
    """

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.accepted = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._fault = _Fault("pass", 0, 0)
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen (on a fresh random port the first time, the same port afterwards)."""
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and reset every connection."""
        self._stopping.set()
        self._close_listener()
        for connection in self._snapshot():
            connection.kill()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect: ``(host, port)``."""
        return self.host, self.port

    @property
    def mode(self) -> Mode:
        return self._fault.mode

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # -- faults --------------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward both ways (listening again after ``refuse``)."""
        self._switch("pass")
        if self._listener is None and not self._stopping.is_set():
            self._listen()

    def refuse(self) -> None:
        """Refuse new connections (the listener is closed) and reset the open ones."""
        self._switch("refuse")
        self._close_listener()
        for connection in self._snapshot():
            connection.kill()

    def hang(self) -> None:
        """Accept, never answer: every byte from now on is swallowed, both ways."""
        self._switch("hang")

    def reset_after(self, n: int) -> None:
        """Forward ``n`` more reply bytes per connection, then reset it mid-reply."""
        self._switch("reset", n)

    def blackhole_after(self, n: int) -> None:
        """Forward ``n`` more reply bytes per connection, then swallow everything, both ways."""
        self._switch("blackhole", n)

    def cut(self) -> None:
        """Reset every open connection now; the mode is unchanged."""
        for connection in self._snapshot():
            connection.kill()

    # -- internals -----------------------------------------------------------------------------

    def _switch(self, mode: Mode, budget: int = 0) -> None:
        with self._lock:
            self._fault = _Fault(mode, budget, self._fault.generation + 1)

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: a close() alone takes effect only when the accept thread's
            # select() returns (the kernel holds the socket while it is polled), and a connect
            # in between would still be accepted.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._stopping.wait(TICK)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], TICK)
                if not readable:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # the listener was closed under us (refuse / stop)
                continue
            with self._lock:
                self.accepted += 1
                connection = _Connection(self, client)
                self._connections.add(connection)
            threading.Thread(target=connection.run, daemon=True, name="fault-proxy-conn").start()

    def _snapshot(self) -> list[_Connection]:
        with self._lock:
            return list(self._connections)

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _count(self, upward: bool, n: int) -> None:
        with self._lock:
            if upward:
                self.bytes_up += n
            else:
                self.bytes_down += n


def within(seconds: float, action: Callable[[], Any]) -> Any:
    """Run ``action`` in a thread and return its result (or re-raise what it raised); fail if
    it has not ended after ``seconds`` (a generous bound: reaching it means something hung)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(action())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds:.0f} s: a call hung"
    if error:
        raise error[0]
    return result[0]
