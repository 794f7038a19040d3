"""Loopback HTTP stubs: the one server helper the tests that call real SDK clients share.

A test writes only what its stub answers: a :class:`StubHandler` subclass whose ``do_POST``
(or ``do_GET``...) records what the test checks and replies with :meth:`StubHandler.reply` or
:meth:`StubHandler.reply_json`. :func:`serve` runs it on a random loopback port, in a thread,
for the length of a ``with`` block, and shuts it down however the block ends. What the stub
records (a request log) is passed to :func:`serve` as class attributes of the handler, so each
test keeps its own log and the handler no state of its own.

Never the network: the server binds 127.0.0.1 only, port 0 (the system picks a free one).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StubHandler", "serve"]

HOST = "127.0.0.1"


class StubHandler(BaseHTTPRequestHandler):
    """A stub's request handler: reads the request body, replies with bytes, logs nothing."""

    def read_body(self) -> bytes:
        """The request's body (empty without a ``content-length``)."""
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def reply(
        self,
        body: bytes,
        content_type: str = "application/json",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with ``body`` and its length (so a keep-alive client knows where it ends),
        plus ``headers``; a ``HEAD`` request gets the headers only."""
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, payload: Any, status: int = 200) -> None:
        """Answer with ``payload`` as JSON."""
        self.reply(json.dumps(payload).encode(), "application/json", status)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output stays the test's


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], **state: Any) -> Iterator[str]:
    """Serve ``handler`` on a loopback port for the ``with`` block; yield its base URL.

    ``state``: class attributes of the handler for this server only (a request log the test
    reads), set on a subclass, so two servers of one handler never share them.

    Example::

        log: list[str] = []
        with serve(_Stub, log=log) as url:   # "http://127.0.0.1:<port>"
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test")
    """
    bound = type(handler.__name__, (handler,), state) if state else handler
    server = ThreadingHTTPServer((HOST, 0), bound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
