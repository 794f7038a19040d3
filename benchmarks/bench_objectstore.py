"""Object-store benchmarks: a hit through @llm_cached vs a raw ``fs.cat_file`` of the same
object, on local files and on S3 (moto), sync and async; and the requests each operation sends
(BENCHMARKS.md: exactly one GET per hit, no LIST/HEAD on the hit path); and a store that hangs:
calls made while S3 accepts connections and never answers (none fails, worst latency),
and the time until caching resumes once it answers again.

Workload: the typical chat request (~2.4 KB) answered by a ~3 KB chat completion (a dict).
Starts its own moto server on a random loopback port (helpers from tests/servers/) and stops
it at the end; local files go to a temporary directory.

Run:  python -m benchmarks.bench_objectstore     (from the repository root; prints tables, exits 0)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Before anything imports botocore: dummy credentials, no metadata-service probing.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench-key")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import fsspec

from benchmarks._timing import apaired, header, paired, show
from llm_memo import llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends.objectstore import AsyncObjectStoreBackend, ObjectStoreBackend
from tests.samples import chat_request, completion_dict
from tests.servers import (
    HOST,
    ManagedProcess,
    RequestLog,
    S3Server,
    _classify_s3,  # the S3 access-log classifier the test fixtures use
    free_port,
    poll_until,
    wait_for_port,
)

LOCAL_N = 4000
S3_N = 400


def _ask(backend: Any) -> Any:  # the decorated function, with its .cache handle
    response = completion_dict()

    @llm_cached(backend=backend, ttl=3600, name="bench.ask")
    def ask(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response

    return ask


def _aask(backend: Any) -> Any:
    response = completion_dict()

    @llm_cached(backend=backend, ttl=3600, name="bench.ask")
    async def ask(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return response

    return ask


# -- local files --------------------------------------------------------------------------------


def local_hits(directory: str) -> None:
    header("Local files (file://): hit of a ~3 KB chat completion, typical request")
    request = chat_request()
    backend = ObjectStoreBackend(f"file://{directory}/cache")
    ask = _ask(backend)
    ask(**request)
    key = ask.cache.key(**request)
    path = backend._path(key)
    fs = fsspec.filesystem("file")
    print(f"stored object: {os.path.getsize(path)} bytes at <root>/{path.split('/cache/')[1]}")

    def read_open() -> bytes:
        with open(path, "rb") as file:
            return file.read()

    show(
        *paired(
            "raw open().read() of the object",
            read_open,
            "@llm_cached hit",
            lambda: ask(**request),
            number=LOCAL_N,
        )
    )
    show(
        *paired(
            "raw fs.cat_file of the object (LocalFileSystem)",
            lambda: fs.cat_file(path),
            "@llm_cached hit",
            lambda: ask(**request),
            number=LOCAL_N,
        )
    )
    show(
        *paired(
            "raw fs.cat_file of the object (LocalFileSystem)",
            lambda: fs.cat_file(path),
            "ObjectStoreBackend.get alone (no decorator)",
            lambda: backend.get(key),
            number=LOCAL_N,
        )
    )

    async def run() -> None:
        aio = AsyncObjectStoreBackend(f"file://{directory}/cache")
        aask = _aask(aio)

        async def floor() -> bytes:
            return read_open()

        show(
            *await apaired(
                "raw open().read() in a coroutine",
                floor,
                "async @llm_cached hit (inline, no thread hop)",
                lambda: aask(**request),
                number=LOCAL_N,
            )
        )
        await aio.close()

    asyncio.run(run())
    backend.close()


# -- S3 (moto) -----------------------------------------------------------------------------------


@contextmanager
def moto_server(workdir: Path) -> Iterator[S3Server]:
    """moto's S3 server on a random loopback port, its access log in a file (for counting)."""
    port = free_port()
    log_path = workdir / "moto.log"
    proc = ManagedProcess(
        "moto-server",
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        log_path=log_path,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc.start()
    try:
        wait_for_port(HOST, port, process=proc)
        endpoint = f"http://{HOST}:{port}"
        server = S3Server(
            endpoint_url=endpoint,
            key=os.environ["AWS_ACCESS_KEY_ID"],
            secret=os.environ["AWS_SECRET_ACCESS_KEY"],
            region="us-east-1",
            _log=RequestLog(log_path, endpoint, _classify_s3),
            _process=proc,
        )
        poll_until(lambda: _answers(server), timeout=20, what="moto to answer", process=proc)
        yield server
    finally:
        proc.stop()


def _answers(server: S3Server) -> bool:
    try:
        server.mark()  # a barrier request, waited for in the access log
    except (OSError, TimeoutError):
        return False
    return True


def _requests(server: S3Server, bucket: str, action: Callable[[], Any]) -> str:
    with server.counting(bucket=bucket) as seen:
        action()
    return " + ".join(f"{n} {op}" for op, n in sorted(seen.counts.items())) or "none"


def s3_hits(server: S3Server) -> None:
    header("S3 (moto on loopback): hit of a ~3 KB chat completion, typical request")
    bucket = server.create_bucket("bench")
    options = server.storage_options
    request = chat_request()
    backend = ObjectStoreBackend(f"s3://{bucket}/cache", storage_options=options)
    ask = _ask(backend)
    ask(**request)
    key = ask.cache.key(**request)
    path = backend._path(key)
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    print(f"stored object: {fs.size(path)} bytes at s3://{path}")

    show(
        *paired(
            "raw fs.cat_file(path, max_concurrency=1): 1 GET",
            lambda: fs.cat_file(path, max_concurrency=1),
            "@llm_cached hit",
            lambda: ask(**request),
            number=S3_N,
        )
    )
    show(
        *paired(
            "raw fs.cat_file(path), s3fs default: HEAD + GET",
            lambda: fs.cat_file(path),
            "@llm_cached hit",
            lambda: ask(**request),
            number=S3_N,
        )
    )

    async def run() -> None:
        aio = AsyncObjectStoreBackend(f"s3://{bucket}/cache", storage_options=options)
        aask = _aask(aio)
        afs = fsspec.filesystem("s3", skip_instance_cache=True, asynchronous=True, **options)
        client = await afs.set_session()
        show(
            *await apaired(
                "raw await fs._cat_file(path, max_concurrency=1)",
                lambda: afs._cat_file(path, max_concurrency=1),
                "async @llm_cached hit (AsyncObjectStoreBackend)",
                lambda: aask(**request),
                number=S3_N,
            )
        )
        await client.close()
        await aio.close()

    asyncio.run(run())

    print("\nRequests seen by the S3 server per operation (the typical request):")

    def count(label: str, action: Callable[[], Any]) -> None:
        print(f"  {label:<50} {_requests(server, bucket, action)}")

    entry = backend.get(key)
    assert entry is not MISSING
    absent = key[:-1] + ("1" if key.endswith("0") else "0")
    count("hit through @llm_cached", lambda: ask(**request))
    count(
        "miss through @llm_cached (read, call, store)",
        lambda: ask(**{**request, "max_tokens": 201}),
    )
    count("ObjectStoreBackend.get, entry present", lambda: backend.get(key))
    count("ObjectStoreBackend.get, entry absent", lambda: backend.get(absent))
    count("ObjectStoreBackend.set", lambda: backend.set(key, entry, 60))
    count("ObjectStoreBackend.delete, entry present", lambda: backend.delete(key))
    count("ObjectStoreBackend.delete, entry absent", lambda: backend.delete(key))
    backend.set(key, entry, 60)
    count("raw fs.cat_file(path) with s3fs defaults", lambda: fs.cat_file(path))
    count("ask.cache.clear() (2 entries of the function)", lambda: ask.cache.clear())
    backend.close()


# -- a store that hangs, then recovers ----------------------------------------------------------


class SwitchProxy:
    """A TCP proxy in front of moto that can be switched to "hang": it then accepts connections
    and forwards nothing either way (requests in flight stall too), until switched back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.hanging = False
        self._sock = socket.create_server((HOST, 0))
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        while self.hanging:  # accepted, never answered
            time.sleep(0.02)
        try:
            server = socket.create_connection((HOST, self.upstream))
        except OSError:
            client.close()
            return
        self._conns.append(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                while self.hanging:
                    time.sleep(0.02)
                dst.sendall(data)
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()
        for sock in self._conns:
            sock.close()


def s3_hang(server: S3Server, seconds: float = 20.0) -> None:
    print(f"\n## S3 that hangs for {seconds:.0f} s, then recovers (default timeouts, breaker)\n")
    bucket = server.create_bucket("bench-hang")
    upstream = int(server.endpoint_url.rsplit(":", 1)[1])
    proxy = SwitchProxy(upstream)
    options = {**server.storage_options, "endpoint_url": proxy.url}
    backend = ObjectStoreBackend(f"s3://{bucket}/cache", storage_options=options)
    ask = _ask(backend)
    request = chat_request()
    ask(**request)  # stored while the store answers
    from llm_memo import cache_controls

    proxy.hanging = True
    latencies: list[float] = []
    outcomes: list[str] = []
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            with cache_controls() as scope:
                ask(**request)
            outcomes.extend(e.outcome.value for e in scope.events)
        except Exception:  # noqa: BLE001 (counted: the figure is "none failed")
            failed += 1
        latencies.append(time.perf_counter() - start)
        time.sleep(0.05)  # ~20 calls/s offered
    proxy.hanging = False
    recovered = time.monotonic()
    resumed = None
    while time.monotonic() - recovered < 120:
        with cache_controls() as scope:
            ask(**request)
        if scope.hits:
            resumed = time.monotonic() - recovered
            break
        time.sleep(0.05)
    latencies.sort()
    print(f"  calls while hanging        {len(latencies)} ({failed} raised)")
    tally = ", ".join(f"{o} {outcomes.count(o)}" for o in sorted(set(outcomes)))
    print(f"  outcomes                   {tally}")
    print(f"  worst call latency         {latencies[-1]:.2f} s")
    print(f"  median call latency        {latencies[len(latencies) // 2] * 1000:.1f} ms")
    print(
        "  caching resumed after      "
        + (f"{resumed:.2f} s (first hit after the store answers again)" if resumed else "> 120 s")
    )
    backend.close()
    proxy.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llm-memo-bench-objectstore-"))
    try:
        local_hits(str(workdir))
        try:
            import moto.server  # noqa: F401
        except ImportError:
            print('\n(S3 skipped: pip install "moto[server]" s3fs)')
            return
        with moto_server(workdir) as server:
            s3_hits(server)
            s3_hang(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
