"""The object-store backend under bad input and faults (GitHub issue 9).

One tenant's odd namespace or function name never stops the others from caching: long path
components are shortened (the full key kept in the object's header), and per-request refusals
are a ``BackendError`` for that call only, never a circuit-breaker failure. The breaker is used
through ``CircuitBreaker.guard``: cancellation is not a store failure, a half-open probe always
resolves. An endpoint that accepts connections and never answers costs a bounded wait per call on
every driver (S3, GCS, Azure; sync and async), and the decorated call still returns its result
with outcome ``error``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llm_memo import cache_controls, llm_cached
from llm_memo.backends import MISSING
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.objectstore import (
    DEFAULT_TIMEOUT,
    AsyncObjectStoreBackend,
    ObjectStoreBackend,
)
from llm_memo.backends.objectstore.layout import _object_name
from llm_memo.errors import BackendError, BackendUnavailableError
from llm_memo.keys import function_prefix, namespace_prefix
from tests.faults import within
from tests.stubs import StubHandler, serve

from ..servers import HOST
from .conformance import make_entry, make_key

# Namespaces and function names that no store could hold as one path component, or that are
# awkward as paths: longer than a POSIX file name once escaped, multibyte (escaped 9x longer),
# deeply "nested" (slashes are escaped into one component), odd characters.
ODD_NAMES = {
    "long": "tenant-" + "x" * 300,
    "multibyte": "é" * 200,
    "nested": "org/" * 80 + "leaf",
    "odd": "a:b/c d%e?f#g*h[i]j\\k\"l'm<n>o|p\0q\n",
    "dots": "." * 300,
    "huge": "h" * 5000,
}


# -- local endpoints that misbehave ---------------------------------------------------------------


class _ErrorReplies(StubHandler):
    """Answers every HTTP request with one error status, in the body format of each store
    (JSON for GCS's paths, the XML of S3 and Azure otherwise)."""

    protocol_version = "HTTP/1.1"
    error_status: int
    requests: list[str]

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        self.read_body()
        status = self.error_status
        code = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey"}.get(
            status, "InternalError"
        )
        if self.path.startswith(("/storage/", "/download/", "/upload/", "/b/")):
            body = json.dumps({"error": {"code": status, "message": code}}).encode()
            kind = "application/json"
        else:
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{code}</Message></Error>"
            ).encode()
            kind = "application/xml"
        self.reply(body, kind, status, headers={"x-ms-error-code": code})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer


@contextmanager
def error_server(status: int) -> Iterator[tuple[str, list[str]]]:
    """An endpoint answering ``status`` to everything: its URL and its request log."""
    requests: list[str] = []
    with serve(_ErrorReplies, error_status=status, requests=requests) as url:
        yield url, requests


class HangServer:
    """Accepts TCP connections and never answers (nor closes them): a store that hangs."""

    def __init__(self) -> None:
        self._sock = socket.create_server((HOST, 0))
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hang-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def hang_server() -> Iterator[HangServer]:
    server = HangServer()
    yield server
    server.close()


def _s3_options(endpoint: str) -> dict[str, Any]:
    return {"key": "k", "secret": "s", "endpoint_url": endpoint}


def _gcs_options(endpoint: str) -> dict[str, Any]:
    return {"token": "anon", "endpoint_url": endpoint, "project": "test"}


# Azurite's public development account (documented by Microsoft), pointed at our endpoint.
_AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _azure_options(endpoint: str) -> dict[str, Any]:
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={_AZURITE_KEY};BlobEndpoint={endpoint}/devstoreaccount1;"
    )
    return {"connection_string": connection}


DRIVERS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "s3": ("s3://bucket/llm", _s3_options),
    "gcs": ("gs://bucket/llm", _gcs_options),
    "azure": ("az://container/llm", _azure_options),
}


def _backend(driver: str, endpoint: str, mode: str, **options: Any) -> Any:
    url, make_options = DRIVERS[driver]
    cls = ObjectStoreBackend if mode == "sync" else AsyncObjectStoreBackend
    return cls(url, storage_options=make_options(endpoint), **options)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# A generous bound on a whole test's waiting (never a timing assertion: only a guard against
# a hang that would otherwise stall the suite).
OUTER = 120.0


@pytest.fixture
def file_backend(tmp_path: Path) -> Iterator[ObjectStoreBackend]:
    backend = ObjectStoreBackend(f"file://{tmp_path / 'cache'}")
    yield backend
    backend.close()


def _segments(key: str) -> list[str]:
    return _object_name(key).split("/")


class TestLongNames:
    """Any namespace and function name can be stored, listed and cleared on every store."""

    @pytest.mark.parametrize("kind", sorted(ODD_NAMES))
    def test_every_path_component_fits(self, kind: str) -> None:
        """Each component is at most 255 bytes and the whole name far below 1024 bytes."""
        name = ODD_NAMES[kind]
        key = make_key(name, name, "ab" * 16)
        segments = _segments(key)
        longest = max(len(s.encode()) for s in segments)
        assert longest <= 255, f"a {longest}-byte component in {segments}"
        total = len(_object_name(key).encode())
        assert total <= 512, f"object name of {total} bytes for a {kind} namespace"
        odd = function_prefix(name, name) + name  # a key of another shape, same subtree
        assert max(len(s.encode()) for s in _segments(odd)) <= 255
        assert len(_object_name(odd).encode()) <= 512

    def test_only_segments_past_the_limit_are_shortened(self) -> None:
        """100 characters stay as they are; 101 are shortened, never ending mid-escape."""
        assert _segments(make_key("n" * 100, "f", "ab" * 16))[1] == "n" * 100
        short = _segments(make_key("n" * 101, "f", "ab" * 16))[1]
        assert len(short) < 100
        assert "!" in short
        escaped = _segments(make_key("a" * 58 + "é" * 20, "f", "ab" * 16))[1]
        head = escaped.split("!")[0]
        assert not head.endswith(("%", "%C", "%c")), head
        assert head.startswith("a" * 58)

    def test_shortened_components_keep_a_readable_prefix(self) -> None:
        """A shortened component starts with the escaped name, so an operator recognises it."""
        key = make_key(ODD_NAMES["long"], "app.ask", "ab" * 16)
        ns = _segments(key)[1]
        assert ns.startswith("tenant-xxxxxxxx"), ns
        assert ns != _segments(make_key(ODD_NAMES["long"] + "y", "app.ask", "ab" * 16))[1]

    @pytest.mark.parametrize("kind", sorted(ODD_NAMES))
    def test_store_list_and_clear_on_files(
        self, file_backend: ObjectStoreBackend, kind: str
    ) -> None:
        """set/get/keys/clear with an odd namespace and function, next to a plain tenant."""
        name = ODD_NAMES[kind]
        odd_keys = {make_key(name, name, f"{i:032x}") for i in range(3)}
        odd_keys.add(function_prefix(name, name) + "not:a:hash" + name)
        plain = make_key("plain", "app.ask", "c" * 32)
        for key in (*odd_keys, plain):
            file_backend.set(key, make_entry(key.encode()[:50]), None)
        for key in odd_keys:
            got = file_backend.get(key)
            assert got is not MISSING, f"{key[:80]!r} was stored but reads as a miss"
            assert got.value == key.encode()[:50]
        assert set(file_backend.keys()) == {*odd_keys, plain}
        assert set(file_backend.keys(namespace_prefix(name))) == odd_keys
        assert set(file_backend.keys(function_prefix(name, name))) == odd_keys
        assert file_backend.clear(function_prefix(name, name)) == len(odd_keys)
        assert list(file_backend.keys()) == [plain]
        assert file_backend.get(plain) is not MISSING
        assert not file_backend.breaker.is_open

    def test_a_long_tenant_never_stops_the_others(self, file_backend: ObjectStoreBackend) -> None:
        """One tenant with a 300-character namespace and two others share a file:// backend:
        everyone keeps caching, the long one too, and fn.cache.clear() clears only its own."""
        calls: list[str] = []

        def make(namespace: str) -> Any:
            @llm_cached(backend=file_backend, namespace=namespace, name="app.ask")
            def ask(prompt: str) -> str:
                calls.append(namespace)
                return f"{namespace[:10]}:{prompt}"

            return ask

        tenants = [make(ODD_NAMES["long"]), make("alpha"), make("beta")]
        with cache_controls() as scope:
            for _ in range(5):
                for ask in tenants:
                    for prompt in ("p", "q"):
                        ask(prompt)
        outcomes = [e.outcome.value for e in scope.events]
        assert outcomes.count("miss") == 6, outcomes
        assert outcomes.count("hit") == 24, outcomes
        assert "error" not in outcomes
        assert not file_backend.breaker.is_open
        assert sorted(set(calls)) == sorted({ODD_NAMES["long"], "alpha", "beta"})

        listed = set(file_backend.keys())
        assert len(listed) == 6
        long_keys = set(file_backend.keys(namespace_prefix(ODD_NAMES["long"])))
        assert len(long_keys) == 2
        assert all(k.startswith(function_prefix(ODD_NAMES["long"], "app.ask")) for k in long_keys)

        assert tenants[0].cache.clear() == 2
        assert set(file_backend.keys()) == listed - long_keys
        with cache_controls() as scope:
            tenants[0]("p")
            tenants[1]("p")
        assert [e.outcome for e in scope.events] == ["miss", "hit"]

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("store", ["s3", "gcs", "azure"])
    def test_long_names_on_every_store(
        self, store: str, mode: str, request: pytest.FixtureRequest
    ) -> None:
        """S3 and GCS limit a name to 1024 bytes, Azure to 1024 characters: a 5000-character
        namespace and function are stored, read, listed in full and cleared all the same."""
        server = request.getfixturevalue(f"{store}_server")
        bucket = server.create_bucket()
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[store]
        url, options = f"{scheme}://{bucket}/llm", dict(server.storage_options)
        name = ODD_NAMES["huge"]
        key, plain = make_key(name, name, "d" * 32), make_key("plain", "f", "e" * 32)

        async def scenario(backend: Any, aio: bool) -> tuple[Any, list[str], list[str], int]:
            async def call(result: Any) -> Any:
                return await result if aio else result

            await call(backend.set(key, make_entry(b"huge"), None))
            await call(backend.set(plain, make_entry(b"plain"), None))
            got = await call(backend.get(key))
            listing = backend.keys()
            listed = [k async for k in listing] if aio else list(listing)
            ns_listing = backend.keys(namespace_prefix(name))
            in_ns = [k async for k in ns_listing] if aio else list(ns_listing)
            cleared = await call(backend.clear(namespace_prefix(name)))
            return got, sorted(listed), in_ns, cleared

        async def run_async() -> tuple[Any, list[str], list[str], int]:
            backend = AsyncObjectStoreBackend(url, storage_options=options, timeout=60)
            try:
                return await scenario(backend, True)
            finally:
                await backend.close()

        if mode == "async":
            got, listed, in_ns, cleared = asyncio.run(run_async())
        else:
            backend = ObjectStoreBackend(url, storage_options=options, timeout=60)
            got, listed, in_ns, cleared = asyncio.run(scenario(backend, False))
            backend.close()
        assert got is not MISSING
        assert got.value == b"huge"
        assert listed == sorted([key, plain])
        assert in_ns == [key]
        assert cleared == 1

    def test_a_moved_object_is_not_its_new_path_s_key(
        self, file_backend: ObjectStoreBackend
    ) -> None:
        """The full key kept in the object is checked on read and on listing: an object copied
        to another shortened path is a miss there and is not listed under that path's key."""
        name = ODD_NAMES["long"]
        first, second = make_key(name, "f", "1" * 32), make_key(name + "!", "f", "1" * 32)
        file_backend.set(first, make_entry(b"first"), None)
        src = os.path.join(file_backend.root, _object_name(first))
        dst = os.path.join(file_backend.root, _object_name(second))
        os.makedirs(os.path.dirname(dst))
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        assert file_backend.get(second) is MISSING
        assert list(file_backend.keys()) == [first]


class TestPerRequestRefusals:
    """A refusal of one request is a BackendError for that call, never a breaker failure."""

    def test_a_refused_name_does_not_open_the_breaker(
        self, file_backend: ObjectStoreBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENAMETOOLONG, EACCES, EFBIG, ENOSPC from the filesystem: each call fails alone."""
        real_open = os.open
        refusals = iter([errno.ENAMETOOLONG, errno.EACCES, errno.EFBIG, errno.ENOSPC] * 3)

        def refusing_open(path: Any, *args: Any, **kwargs: Any) -> int:
            if str(path).endswith(".tmp"):
                code = next(refusals)
                raise OSError(code, os.strerror(code), path)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        for _ in range(12):
            with pytest.raises(BackendError) as info:
                file_backend.set(make_key(), make_entry(), None)
            assert not isinstance(info.value, BackendUnavailableError)
        assert not file_backend.breaker.is_open
        monkeypatch.setattr(os, "open", real_open)
        file_backend.set(make_key(), make_entry(b"ok"), None)
        got = file_backend.get(make_key())
        assert got is not MISSING
        assert got.value == b"ok"

    def test_an_unreachable_store_still_opens_the_breaker(self) -> None:
        """A refused connection is an outage: three of them open the breaker."""
        port = _closed_port()
        backend = ObjectStoreBackend(
            "s3://bucket/llm",
            storage_options={"key": "k", "secret": "s", "endpoint_url": f"http://{HOST}:{port}"},
        )
        for _ in range(3):
            with pytest.raises(BackendError):
                backend.get(make_key())
        assert backend.breaker.is_open

    @pytest.mark.parametrize("status", [400, 403, 404, 500, 503])
    @pytest.mark.parametrize("driver", sorted(DRIVERS))
    def test_error_replies(self, driver: str, status: int) -> None:
        """An endpoint that answers every request with an error: 4xx replies (a bad request,
        a forbidden object) are per-request refusals that never open the breaker; a missing
        object is a miss; 5xx (after the driver's retries) means the store is down."""
        with error_server(status) as (url, requests):
            breaker = CircuitBreaker(failures=2)
            backend = _backend(driver, url, "sync", breaker=breaker)
            try:
                for _ in range(4):
                    if breaker.is_open:
                        break
                    if status == 404:
                        assert backend.get(make_key()) is MISSING
                        continue
                    with pytest.raises(BackendError) as info:
                        backend.get(make_key())
                    assert not isinstance(info.value, BackendUnavailableError), info.value
            finally:
                backend.close()
        assert requests, "the endpoint was never asked"
        assert breaker.is_open is (status >= 500), f"{status} from {driver}"

    @pytest.mark.parametrize("status", [403, 404, 503])
    @pytest.mark.parametrize("driver", sorted(DRIVERS))
    def test_bulk_read_error_replies(self, driver: str, status: int) -> None:
        """A bulk read (``get_many``, 8 keys, concurrent on a remote store) of an endpoint
        that answers every request with an error: a missing object is a miss for each key, a
        refusal or an outage fails the whole read as one BackendError."""
        keys = [make_key(digest=f"{i:032x}") for i in range(8)]
        # A prompt reply gets a deadline far above its time however loaded the machine (this
        # checks how replies are read); an outage, which the drivers retry, the usual one.
        options: dict[str, Any] = {"timeout": 60} if status < 500 else {}
        with error_server(status) as (url, requests):
            breaker = CircuitBreaker(failures=50)
            backend = _backend(driver, url, "sync", breaker=breaker, **options)
            try:
                if status == 404:
                    assert backend.get_many(keys) == [MISSING] * len(keys)
                else:
                    with pytest.raises(BackendError) as info:
                        backend.get_many(keys)
                    assert not isinstance(info.value, BackendUnavailableError), info.value
            finally:
                backend.close()
        assert requests, "the endpoint was never asked"

    def test_driver_errors_never_escape_as_other_exceptions(
        self, file_backend: ObjectStoreBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Whatever a driver raises (an Exception of any class) is a BackendError, neither a
        success nor a failure of the store."""
        from llm_memo.backends.objectstore import _local

        def broken(self: Any, path: str) -> bytes | None:
            raise KeyError("driver bug")

        monkeypatch.setattr(_local._LocalIO, "read", broken)
        for _ in range(5):
            with pytest.raises(BackendError):
                file_backend.get(make_key())
        assert not file_backend.breaker.is_open


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class TestListingFailures:
    def test_sync_keys_fails_when_called_async_keys_when_iterated(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing listing raises BackendError from the sync keys() call itself, and from
        the first step of the async iteration (the async call only builds the iterator)."""
        from llm_memo.backends.objectstore import _local

        def broken(self: Any, top: str) -> list[str]:
            raise OSError(errno.EIO, "listing failed")

        monkeypatch.setattr(_local._LocalIO, "find", broken)
        url = f"file://{tmp_path / 'store'}"
        with pytest.raises(BackendError):
            ObjectStoreBackend(url).keys()

        async def run() -> None:
            backend = AsyncObjectStoreBackend(url)
            listing = backend.keys()
            with pytest.raises(BackendError):
                await listing.__anext__()
            await backend.close()

        asyncio.run(run())


class TestBoundedWaits:
    """A store that accepts and never answers costs a bounded wait; calls still answer."""

    def test_default_timeouts_are_short(self) -> None:
        """Hit-path connect/read timeouts and the per-operation deadline are at most 2 s, in
        every driver's own options, and overridable through storage_options."""
        assert DEFAULT_TIMEOUT <= 2
        s3 = ObjectStoreBackend("s3://b/p", storage_options=_s3_options("http://127.0.0.1:9"))
        config = s3.fs.config_kwargs
        assert config["connect_timeout"] <= 2, config
        assert config["read_timeout"] <= 2, config
        assert s3.timeout is not None
        assert s3.timeout <= 2
        gcs = ObjectStoreBackend("gs://b/p", storage_options=_gcs_options("http://127.0.0.1:9"))
        timeout = gcs.fs.session_kwargs["timeout"]
        assert timeout.connect <= 2, timeout
        assert timeout.sock_read <= 2, timeout
        azure = ObjectStoreBackend("az://c/p", storage_options=_azure_options("http://127.0.0.1:9"))
        assert azure.fs._timeout_kwargs["connection_timeout"] <= 2, azure.fs._timeout_kwargs
        assert azure.fs._timeout_kwargs["read_timeout"] <= 2, azure.fs._timeout_kwargs
        slow = ObjectStoreBackend(
            "s3://b/p",
            storage_options={
                **_s3_options("http://127.0.0.1:9"),
                "config_kwargs": {"read_timeout": 30},
            },
            timeout=60,
        )
        assert slow.fs.config_kwargs["read_timeout"] == 30
        assert slow.fs.config_kwargs["connect_timeout"] == config["connect_timeout"]
        assert slow.timeout == 60
        for backend in (s3, gcs, azure, slow):
            backend.close()

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("driver", sorted(DRIVERS))
    def test_a_hanging_store_still_answers(
        self, hang_server: HangServer, driver: str, mode: str
    ) -> None:
        """A decorated call on a hanging endpoint returns the function's result with outcome
        error; after the breaker opens, a half-open probe also ends (and re-opens it)."""
        clock = FakeClock()
        breaker = CircuitBreaker(failures=2, clock=clock)
        backend = _backend(driver, hang_server.url, mode, breaker=breaker)

        def ask(prompt: str) -> str:
            return prompt.upper()

        async def run_async(cached: Any) -> list[str]:
            try:
                return [await cached("a"), await cached("b")]
            finally:
                await backend.close()

        def run() -> tuple[list[str], list[str]]:
            with cache_controls() as scope:
                if mode == "sync":
                    cached = llm_cached(backend=backend, ttl=60)(ask)
                    got = [cached("a"), cached("b")]
                    backend.close()
                else:

                    async def aask(prompt: str) -> str:
                        return prompt.upper()

                    acached = llm_cached(backend=backend, ttl=60)(aask)
                    got = asyncio.run(run_async(acached))
            return got, [e.outcome for e in scope.events]

        got, outcomes = within(OUTER, run)
        assert got == ["A", "B"]
        assert outcomes == ["error", "error"], outcomes
        assert breaker.is_open, "two timeouts (the get and the set of call 1) open it"
        assert hang_server.accepted >= 1, "the backend never reached the hanging endpoint"
        # Half-open: the cool-down passes, one call probes the hanging store, the probe times
        # out and the breaker opens again; it never stays "probing" forever.
        clock.now += 60
        backend = _backend(driver, hang_server.url, mode, breaker=breaker)
        got, outcomes = within(OUTER, run)
        assert got == ["A", "B"]
        assert outcomes == ["error", "error"], outcomes
        assert breaker.is_open

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("driver", sorted(DRIVERS))
    def test_management_calls_are_bounded(
        self, hang_server: HangServer, driver: str, mode: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """keys(), clear() and purge_expired() on a hanging store end with a BackendError
        after their listing deadline (shortened here), not after minutes of driver retries
        (gcsfs and the Azure SDK back off for well over 5 minutes)."""
        from llm_memo.backends.objectstore import _fsspec

        monkeypatch.setattr(_fsspec, "LISTING_TIMEOUT", 1.0)  # read where the I/O is built
        backend = _backend(driver, hang_server.url, mode, timeout=0.5)

        async def calls() -> list[str]:
            failed = []
            for name, call in [
                ("keys", lambda: _alist(backend.keys())),
                ("clear", lambda: backend.clear(namespace_prefix("n"))),
                ("purge_expired", backend.purge_expired),
            ]:
                try:
                    await call() if mode == "async" else _drain(call())
                except BackendError:
                    failed.append(name)
            if mode == "async":
                await backend.close()
            return failed

        def run() -> list[str]:
            failed = asyncio.run(calls())
            if mode == "sync":
                backend.close()
            return failed

        assert within(OUTER, run) == ["keys", "clear", "purge_expired"]


async def _alist(items: Any) -> list[Any]:
    return [item async for item in items]


def _drain(result: Any) -> Any:
    return list(result) if isinstance(result, Iterator) else result


class TestBreakerGuard:
    """The breaker counts only "the store is unreachable"; every exit resolves it."""

    @pytest.mark.parametrize("driver", sorted(DRIVERS))
    def test_a_bulk_read_of_a_hanging_store_ends_at_its_first_deadline(
        self, hang_server: HangServer, driver: str
    ) -> None:
        """get_many of 40 keys on a store that never answers: one BackendError, and the keys
        past the first wave of requests are never asked (the first deadline cancels the rest,
        instead of one deadline per wave)."""
        backend = _backend(driver, hang_server.url, "sync", breaker=CircuitBreaker(failures=50))

        def read() -> None:
            with pytest.raises(BackendError):
                backend.get_many([make_key(digest=f"{i:032x}") for i in range(40)])

        try:
            within(OUTER, read)
        finally:
            backend.close()
        assert 0 < hang_server.accepted < 40, f"{hang_server.accepted} connections for 40 keys"

    def test_cancellation_is_not_a_store_failure(self, hang_server: HangServer) -> None:
        """A get cancelled by the caller (asyncio.wait_for) counts for nothing: the breaker
        stays closed however often it happens."""
        breaker = CircuitBreaker(failures=1)
        backend = _backend("s3", hang_server.url, "async", breaker=breaker, timeout=60)

        async def main() -> None:
            try:
                for _ in range(3):
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(backend.get(make_key()), 0.3)
            finally:
                await backend.close()

        within(OUTER, lambda: asyncio.run(main()))
        assert not breaker.is_open

    def test_a_cancelled_probe_resolves(self, hang_server: HangServer) -> None:
        """A half-open probe that is cancelled ends the probe: the next call may probe again
        (it is not refused as "a probe is already under way")."""
        clock = FakeClock()
        breaker = CircuitBreaker(failures=1, clock=clock)
        backend = _backend("s3", hang_server.url, "async", breaker=breaker, timeout=60)
        breaker.failure()
        assert breaker.is_open
        clock.now += 60

        async def main() -> None:
            try:
                for _ in range(2):  # the second would be refused if the first never resolved
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(backend.get(make_key()), 0.3)
            finally:
                await backend.close()

        within(OUTER, lambda: asyncio.run(main()))
        assert not breaker.is_open

    def test_keyboard_interrupt_is_neither(
        self, file_backend: ObjectStoreBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KeyboardInterrupt propagates as is and counts as no failure."""
        from llm_memo.backends.objectstore import _local

        def interrupted(self: Any, path: str) -> bytes | None:
            raise KeyboardInterrupt

        file_backend.breaker = CircuitBreaker(failures=1)
        monkeypatch.setattr(_local._LocalIO, "read", interrupted)
        with pytest.raises(KeyboardInterrupt):
            file_backend.get(make_key())
        assert not file_backend.breaker.is_open
