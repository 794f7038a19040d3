"""ObjectStoreBackend and AsyncObjectStoreBackend (GitHub issue 3).

The conformance suite on local files, S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite),
sync and async; requests counted at each server (one GET per hit); whole-object writes raced by
several processes; the keep-until frame; the layout; fail-open on dead endpoints and bad keys.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_memo import cache_controls, llm_cached
from llm_memo.backends import MISSING, AsyncListing, Listing, from_url
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.objectstore import (
    CONNECT_TIMEOUT,
    AsyncObjectStoreBackend,
    ObjectStoreBackend,
)
from llm_memo.backends.objectstore.layout import _key_of, _object_name, _scan_top
from llm_memo.errors import BackendError, BackendUnavailableError, ConfigurationError
from llm_memo.keys import function_prefix, key_string, namespace_prefix

from ..servers import HOST, AzureServer, GCSServer, S3Server, free_port
from .conformance import HEX, BackendConformance, SyncOverAsync, make_entry, make_key

# gcsfs uploads an entry as one multipart body of raw bytes; above 1 MiB (the conformance suite's
# large value) aiohttp warns that such a body "might lock the event loop". It is a
# ResourceWarning (silent by default); here warnings are errors, so this one is let through.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Sending a large body directly with raw bytes:ResourceWarning"
)


class FakeClock:
    """Wall-clock seconds that only move when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


GENEROUS = 60.0


@dataclass
class Store:
    """One place to put entries: a root URL (fresh bucket) plus what reaches it."""

    protocol: str
    root: str  # bucket/prefix or an absolute directory
    storage_options: dict[str, Any] = field(default_factory=dict)
    server: S3Server | GCSServer | AzureServer | None = None
    bucket: str | None = None

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.root}"

    def raw_fs(self) -> Any:
        """A filesystem of our own, to plant and inspect objects behind the backend's back."""
        extra = {"auto_mkdir": True} if self.protocol == "file" else {}
        return fsspec.filesystem(
            self.protocol, skip_instance_cache=True, **self.storage_options, **extra
        )

    # Behaviour tests get a generous deadline: the 2 s default bounds a hanging store in
    # production, but a loaded CI machine may take longer to PUT the conformance suite's 1 MiB
    # value, and a timeout must not fail a test about something else. The defaults have
    # tests of their own (test_objectstore_faults.py).
    def sync(self, **options: Any) -> ObjectStoreBackend:
        options.setdefault("timeout", GENEROUS)
        return ObjectStoreBackend(self.url, storage_options=self.storage_options, **options)

    def asynchronous(self, **options: Any) -> AsyncObjectStoreBackend:
        options.setdefault("timeout", GENEROUS)
        return AsyncObjectStoreBackend(self.url, storage_options=self.storage_options, **options)

    def object_path(self, key: str) -> str:
        return f"{self.root}/{_object_name(key)}"


@pytest.fixture
def local_store(tmp_path: Path) -> Store:
    return Store("file", str(tmp_path / "cache"))


@pytest.fixture
def s3_store(s3_server: S3Server) -> Store:
    bucket = s3_server.create_bucket()
    # moto 5 sometimes answers 500 to concurrent PUTs of one key (it closes the replaced
    # object's buffer while the other request still reads it for the ETag); real S3 does not.
    # More botocore attempts keep the concurrent-writers test about our code, not moto's race.
    options = {**s3_server.storage_options, "config_kwargs": {"retries": {"total_max_attempts": 5}}}
    return Store("s3", f"{bucket}/llm", options, s3_server, bucket)


@pytest.fixture
def gcs_store(gcs_server: GCSServer) -> Store:
    bucket = gcs_server.create_bucket()
    return Store("gs", f"{bucket}/llm", dict(gcs_server.storage_options), gcs_server, bucket)


@pytest.fixture
def azure_store(azure_server: AzureServer) -> Store:
    container = azure_server.create_container()
    return Store(
        "az", f"{container}/llm", dict(azure_server.storage_options), azure_server, container
    )


# -- the conformance suite, 4 stores x sync/async -------------------------------------------------


class ObjectStoreConformance(BackendConformance):
    """Conformance for one store; subclasses provide the ``store`` fixture."""

    asynchronous: ClassVar[bool] = False

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def backend(self, store: Store, clock: FakeClock) -> Iterator[Any]:
        backend: Any
        if self.asynchronous:
            backend = SyncOverAsync(store.asynchronous(clock=clock))
        else:
            backend = store.sync(clock=clock)
        yield backend
        backend.close()

    @pytest.fixture
    def plant(self, store: Store) -> Callable[[str, bytes], None]:
        fs = store.raw_fs()

        def plant(key: str, raw: bytes) -> None:
            fs.pipe_file(store.object_path(key), raw)

        return plant


class TestLocalConformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self, local_store: Store) -> Store:
        return local_store


class TestLocalAsyncConformance(TestLocalConformance):
    asynchronous = True


class TestS3Conformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self, s3_store: Store) -> Store:
        return s3_store


class TestS3AsyncConformance(TestS3Conformance):
    asynchronous = True


class TestGCSConformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self, gcs_store: Store) -> Store:
        return gcs_store


class TestGCSAsyncConformance(TestGCSConformance):
    asynchronous = True


class TestAzureConformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self, azure_store: Store) -> Store:
        return azure_store


class TestAzureAsyncConformance(TestAzureConformance):
    asynchronous = True


# -- requests per operation, counted at the server ----------------------------------------------

#: What each store's server sees per operation (documented in docs/backends/object-stores.md).
EXPECTED_DELETE = {"s3": {"HEAD": 1, "DELETE": 1}, "gs": {"DELETE": 1}, "az": {"DELETE": 1}}


def _counted(store: Store, action: Callable[[], Any]) -> dict[str, int]:
    assert store.server is not None
    with store.server.counting(bucket=store.bucket) as seen:
        action()
    return dict(seen.counts)


def _check_request_counts(store: Store, backend: Any) -> None:
    hit_key, miss_key = make_key(digest="a" * 32), make_key(digest="b" * 32)
    assert _counted(store, lambda: backend.set(hit_key, make_entry(), 60)) == {"PUT": 1}
    hit = _counted(store, lambda: backend.get(hit_key))
    assert hit == {"GET": 1}, "a hit is exactly one GET: no HEAD, no LIST"
    assert _counted(store, lambda: backend.get(miss_key)) == {"GET": 1}
    assert _counted(store, lambda: backend.delete(hit_key)) == EXPECTED_DELETE[store.protocol]


class TestRequestCounts:
    """A hit is one GET, a miss one GET, a set one PUT, on every store, sync and async."""

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_s3(self, s3_store: Store, mode: str) -> None:
        """S3 (moto): s3fs's size-probing HEAD before a read is turned off."""
        self._run(s3_store, mode)

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_gcs(self, gcs_store: Store, mode: str) -> None:
        """GCS (fake-gcs-server): one media GET per read, one upload per write."""
        self._run(gcs_store, mode)

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_azure(self, azure_store: Store, mode: str) -> None:
        """Azure Blob (Azurite): one GET per read, one PUT per write."""
        self._run(azure_store, mode)

    @staticmethod
    def _run(store: Store, mode: str) -> None:
        if mode == "sync":
            backend = store.sync()
            try:
                _check_request_counts(store, backend)
            finally:
                backend.close()
        else:
            wrapped = SyncOverAsync(store.asynchronous())
            try:
                _check_request_counts(store, wrapped)
            finally:
                wrapped.close()

    def test_decorated_hit_is_one_get(self, s3_store: Store) -> None:
        """Through @llm_cached, a hit costs the store one GET and nothing else."""
        backend = s3_store.sync()

        @llm_cached(backend=backend, ttl=60)
        def ask(prompt: str) -> dict[str, Any]:
            return {"answer": prompt * 3}

        assert _counted(s3_store, lambda: ask("hi")) == {"GET": 1, "PUT": 1}
        assert _counted(s3_store, lambda: ask("hi")) == {"GET": 1}

    def test_clear_lists_only_the_subtree(self, s3_store: Store) -> None:
        """clear(function prefix) lists under <root>/<ver>/<ns>/<fn>/ and bulk-deletes."""
        backend = s3_store.sync()
        for i in range(3):
            backend.set(make_key("n", "f", f"{i:032x}"), make_entry(), None)
        backend.set(make_key("n", "g", HEX), make_entry(), None)
        assert s3_store.server is not None
        with s3_store.server.counting(bucket=s3_store.bucket) as seen:
            assert backend.clear(function_prefix("n", "f")) == 3
        lists = [r for r in seen.requests if r.op == "LIST"]
        assert len(lists) == 1
        assert "prefix=llm/2/n/f/&" in lists[0].query
        assert seen.count("DELETE") == 1  # one DeleteObjects batch
        assert seen.count("GET") == 0
        assert list(backend.keys()) == [make_key("n", "g", HEX)]


# -- layout -------------------------------------------------------------------------------------


class TestLayout:
    def test_key_maps_to_fanned_out_path(self) -> None:
        """llm_memo:<ver>:<ns>:<fn>:<hash> -> <ver>/<ns>/<fn>/<hash[:2]>/<hash>."""
        key = key_string("prod", "app.ask", "0f" + "1" * 30)
        assert _object_name(key) == f"2/prod/app.ask/0f/0f{'1' * 30}"

    @pytest.mark.parametrize(
        "key",
        [
            key_string("tenant:42/eu", "pkg.mod.<locals>.f", HEX),
            key_string("..", ".", HEX),
            key_string("", "f", HEX),
            key_string("_other", "_other", HEX),
            "llm_memo:1:ns:fn",
            "llm_memo:1:ns:fn:",
            "llm_memo:1:ns:fn:hash:extra",
            "llm_memo:1:ns:fn:.hidden",
            "llm_memo:1:ns:.:abc",
            "llm_memo:.:ns:fn:abc",
            "llm_memo",
            "plain key with spaces/and/slashes",
            "..",
            "",
        ],
    )
    def test_every_key_round_trips(self, key: str) -> None:
        """Every key maps to a path with no '.'/'..'/hidden segment and back to itself."""
        name = _object_name(key)
        segments = name.split("/")
        assert all(s and s not in (".", "..") and not s.startswith(".") for s in segments)
        assert _key_of("bucket/root", f"bucket/root/{name}") == key

    @settings(deadline=None)
    @given(st.text(max_size=300))
    def test_any_text_round_trips(self, key: str) -> None:
        """Any key string at all maps to a safe path and back to itself."""
        name = _object_name(key)
        assert all(s and not s.startswith(".") for s in name.split("/"))
        assert _key_of("r", f"r/{name}") in (key, None)  # None: a shortened segment
        if "!" not in name:
            assert _key_of("r", f"r/{name}") == key

    @settings(deadline=None)
    @given(st.text(max_size=150), st.text(max_size=150))
    def test_a_function_is_one_subtree(self, namespace: str, function: str) -> None:
        """Every key of a function lies below the directory its prefix scans, and below its
        namespace's, whatever the names (read through keys.parse_key, one parser)."""
        path = "r/" + _object_name(key_string(namespace, function, HEX))
        for prefix in (function_prefix(namespace, function), namespace_prefix(namespace)):
            assert path.startswith(_scan_top("r", prefix) + "/")

    def test_odd_keys_stay_in_their_subtree(self) -> None:
        """A key that leaves the usual shape is stored below its last plain level."""
        assert _object_name("llm_memo:1:ns:fn:a:b") == "1/ns/fn/_other/_a%3Ab"
        assert _object_name("llm_memo:1:ns:.:abc") == "1/ns/_other/_%2E%3Aabc"
        assert _object_name("odd") == "_other/_odd"

    def test_foreign_objects_are_not_keys(self) -> None:
        """Temporary files, other objects and other roots map to no key."""
        assert _key_of("r", "r/1/ns/fn/ab/.abcd.1234.tmp") is None
        assert _key_of("r", "r/1/ns/fn/xy/abcd") is None  # wrong fan-out directory
        assert _key_of("r", "r/README.md") is None
        assert _key_of("r", "r/_other/odd") is None  # not escaped by us
        assert _key_of("r", "other/1/ns/fn/ab/abcd") is None

    @pytest.mark.parametrize(
        ("prefix", "top"),
        [
            ("", "r"),
            ("llm", "r"),
            (namespace_prefix("a"), "r/2/a"),
            (function_prefix("a", "f"), "r/2/a/f"),
            (function_prefix("a", "f") + "ab1", "r/2/a/f"),
            ("llm_memo:1:a", "r/1"),
            ("llm_memo:1:.:", "r/1/_other"),
            ("something-else", "r/_other"),
        ],
    )
    def test_scan_top(self, prefix: str, top: str) -> None:
        """Namespace and function prefixes are one subtree; other prefixes widen."""
        assert _scan_top("r", prefix) == top

    def test_keys_lists_back(self, local_store: Store) -> None:
        """keys(prefix) maps listed objects back to keys; the backend is a Listing."""
        backend = local_store.sync()
        assert isinstance(backend, Listing)
        odd = function_prefix("a", "f") + "not:a:hash"
        keys = {make_key("a", "f", "1" * 32), make_key("a", "g", "2" * 32), "odd:key", odd}
        for key in keys:
            backend.set(key, make_entry(), None)
        assert set(backend.keys()) == keys
        assert set(backend.keys(namespace_prefix("a"))) == keys - {"odd:key"}
        assert list(backend.keys("odd")) == ["odd:key"]
        assert backend.clear(function_prefix("a", "f")) == 2
        assert set(backend.keys()) == {make_key("a", "g", "2" * 32), "odd:key"}

    def test_async_keys(self, s3_store: Store) -> None:
        """The async backend lists keys as an async iterator (an AsyncListing)."""

        async def main() -> set[str]:
            backend = s3_store.asynchronous()
            assert isinstance(backend, AsyncListing)
            try:
                await backend.set(make_key("a", "f", "1" * 32), make_entry(), None)
                await backend.set(make_key("b", "f", "2" * 32), make_entry(), None)
                return {k async for k in backend.keys(namespace_prefix("a"))}
            finally:
                await backend.close()

        assert asyncio.run(main()) == {make_key("a", "f", "1" * 32)}

    def test_clear_leaves_foreign_objects(self, s3_store: Store) -> None:
        """clear() removes entries under the root, never other objects in the bucket."""
        backend = s3_store.sync()
        fs = s3_store.raw_fs()
        fs.pipe_file(f"{s3_store.root}/README.md", b"not an entry")
        backend.set(make_key(), make_entry(), None)
        assert backend.clear() == 1
        assert fs.cat_file(f"{s3_store.root}/README.md") == b"not an entry"


# -- the keep-until frame -----------------------------------------------------------------------


class TestTTL:
    def test_ttl_is_independent_of_entry_fields(self, local_store: Store) -> None:
        """ttl decides how long the store keeps the object, whatever the entry says."""
        clock = FakeClock()
        backend = local_store.sync(clock=clock)
        stale = make_entry(expires_at=clock.now - 100)
        backend.set(make_key(digest="1" * 32), stale, None)
        backend.set(make_key(digest="2" * 32), make_entry(), 10)
        clock.advance(9.9)
        assert backend.get(make_key(digest="1" * 32)) == stale
        assert backend.get(make_key(digest="2" * 32)) is not MISSING
        clock.advance(0.2)
        assert backend.get(make_key(digest="2" * 32)) is MISSING

    @pytest.mark.parametrize(
        "raw",
        [
            struct.pack("<4sd", b"LMO1", math.nan) + make_entry().to_bytes(),
            struct.pack("<4sd", b"XXXX", math.inf) + make_entry().to_bytes(),
            struct.pack("<4sd", b"LMO1", math.inf) + b"garbage",
            struct.pack("<4sd", b"LMO1", math.inf)[:7],
            make_entry().to_bytes(),  # an entry without our frame
        ],
    )
    def test_unparsable_objects_are_missing(self, local_store: Store, raw: bytes) -> None:
        """Wrong magic, a NaN deadline, a truncated frame or entry: a miss, never an error."""
        backend = local_store.sync()
        local_store.raw_fs().pipe_file(local_store.object_path(make_key()), raw)
        assert backend.get(make_key()) is MISSING

    def test_purge_expired_local(self, local_store: Store) -> None:
        """purge_expired() deletes exactly the objects past their deadline and counts them."""
        self._check_purge(local_store)

    def test_purge_expired_s3(self, s3_store: Store) -> None:
        """The same on S3, reading 12-byte headers with ranged GETs."""
        self._check_purge(s3_store)

    @staticmethod
    def _check_purge(store: Store) -> None:
        clock = FakeClock()
        backend = store.sync(clock=clock)
        for i in range(3):
            backend.set(make_key(digest=f"{i:032x}"), make_entry(), 5)
        backend.set(make_key(digest="f" * 32), make_entry(), None)
        backend.set(make_key(digest="e" * 32), make_entry(), 500)
        foreign = store.object_path(make_key(digest="d" * 32))
        store.raw_fs().pipe_file(foreign, b"XXXX" + b"\0" * 20)  # not ours: kept
        clock.advance(6)
        assert backend.purge_expired() == 3
        assert set(backend.keys()) == {make_key(digest=d * 32) for d in "fed"}
        assert backend.purge_expired() == 0

    def test_async_purge_expired(self, gcs_store: Store) -> None:
        """The async twin purges the same way (on GCS)."""
        clock = FakeClock()

        async def main() -> tuple[int, list[str]]:
            backend = gcs_store.asynchronous(clock=clock)
            try:
                await backend.set(make_key(digest="1" * 32), make_entry(), 5)
                await backend.set(make_key(digest="2" * 32), make_entry(), None)
                clock.advance(6)
                purged = await backend.purge_expired()
                listing = backend.keys()
                return purged, [k async for k in listing]
            finally:
                await backend.close()

        assert asyncio.run(main()) == (1, [make_key(digest="2" * 32)])


# -- whole-object writes on local files, several processes ----------------------------------------

_VALUES = [bytes([i]) * 200_000 for i in range(4)]


def _hammer(url: str, worker: int, seconds: float) -> None:
    backend = ObjectStoreBackend(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        backend.set(make_key(), make_entry(_VALUES[worker]), None)


class TestLocalAtomicWrites:
    def test_processes_never_tear_an_entry(self, local_store: Store) -> None:
        """4 processes rewrite one key while this one reads: every read is one whole value."""
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_hammer, args=(local_store.url, w, 1.5)) for w in range(4)]
        for proc in procs:
            proc.start()
        backend = local_store.sync()
        seen = set()
        while any(proc.is_alive() for proc in procs):
            got = backend.get(make_key())
            if got is not MISSING:
                assert got.value in _VALUES, "a reader saw a torn or mixed entry"
                seen.add(got.value[0])
        for proc in procs:
            proc.join(30)
            assert proc.exitcode == 0
        assert seen
        leftovers = [n for _, _, names in os.walk(local_store.root) for n in names]
        assert len(leftovers) == 1, f"temporary files left behind: {leftovers}"


# -- fail-open ----------------------------------------------------------------------------------


def _dead_s3(**options: Any) -> ObjectStoreBackend:
    endpoint = f"http://{HOST}:{free_port()}"
    return ObjectStoreBackend(
        "s3://bucket/llm",
        storage_options={"key": "k", "secret": "s", "endpoint_url": endpoint},
        **options,
    )


class TestFailOpen:
    def test_closed_port_is_a_backend_error_and_opens_the_breaker(self) -> None:
        """A dead endpoint raises BackendError (not a hang: the per-operation deadline bounds
        it; how long it takes is benchmarks/bench_objectstore's); then the breaker answers."""
        backend = _dead_s3()
        with pytest.raises(BackendError) as info:
            backend.get(make_key())
        assert not isinstance(info.value, BackendUnavailableError)
        for _ in range(2):
            with pytest.raises(BackendError):
                backend.set(make_key(), make_entry(), None)
        assert backend.breaker.is_open
        with pytest.raises(BackendUnavailableError):
            backend.get(make_key())

    def test_decorator_still_answers(self) -> None:
        """Through @llm_cached every call returns the function's result while S3 is down."""
        calls = []

        @llm_cached(backend=_dead_s3(), ttl=60)
        def ask(prompt: str) -> str:
            calls.append(prompt)
            return prompt.upper()

        with cache_controls() as scope:
            assert [ask("x") for _ in range(5)] == ["X"] * 5
        assert len(calls) == 5
        assert all(e.outcome == "error" for e in scope.events)

    def test_async_decorator_still_answers(self) -> None:
        """The async backend fails open the same way."""
        endpoint = f"http://{HOST}:{free_port()}"
        backend = AsyncObjectStoreBackend(
            "s3://bucket/llm", storage_options={"key": "k", "secret": "s", "endpoint_url": endpoint}
        )

        @llm_cached(backend=backend, ttl=60)
        async def ask(prompt: str) -> str:
            return prompt.upper()

        async def main() -> list[str]:
            try:
                with pytest.raises(BackendError):
                    await backend.get(make_key())
                return [await ask("y") for _ in range(3)]
            finally:
                await backend.close()

        assert asyncio.run(main()) == ["Y"] * 3

    def test_deadline_covers_driver_retries_gcs(self, gcs_server: GCSServer) -> None:
        """gcsfs retries a refused connection for ~30 s; the deadline stops it, it counts as a
        failure (the store is unreachable) and the open breaker answers the next call."""
        options = {**gcs_server.storage_options, "endpoint_url": f"http://{HOST}:{free_port()}"}
        backend = ObjectStoreBackend(
            "gs://bucket/llm",
            storage_options=options,
            timeout=1,
            breaker=CircuitBreaker(failures=1),
        )
        with pytest.raises(BackendError):
            backend.get(make_key())
        assert backend.breaker.is_open
        with pytest.raises(BackendUnavailableError):
            backend.get(make_key())

    def test_deadline_covers_driver_retries_azure(self, azure_server: AzureServer) -> None:
        """The Azure SDK retries a refused connection with 15 s back-offs; same deadline."""
        dead = azure_server.connection_string.replace(f":{azure_server.port}/", f":{free_port()}/")
        backend = AsyncObjectStoreBackend(
            "az://container/llm",
            storage_options={"connection_string": dead},
            timeout=1,
            breaker=CircuitBreaker(failures=1),
        )

        async def main() -> None:
            try:
                with pytest.raises(BackendError):
                    await backend.get(make_key())
                assert backend.breaker.is_open
            finally:
                await backend.close()

        asyncio.run(main())

    def test_wrong_credentials(self, azure_store: Store, azure_server: AzureServer) -> None:
        """Azurite with a bad account key: 403s become BackendError, the decorator answers."""
        bad_key = "A" * 86 + "=="
        connection = azure_server.connection_string.replace(azure_server.account_key, bad_key)
        backend = ObjectStoreBackend(
            azure_store.url, storage_options={"connection_string": connection}
        )
        with pytest.raises(BackendError):
            backend.get(make_key())
        with pytest.raises(BackendError):
            backend.set(make_key(), make_entry(), None)

        @llm_cached(backend=backend, ttl=60)
        def ask(prompt: str) -> str:
            return prompt[::-1]

        assert [ask("abc") for _ in range(4)] == ["cba"] * 4


# -- configuration ------------------------------------------------------------------------------


class TestConfiguration:
    def test_urls_through_the_registry(self, s3_store: Store, tmp_path: Path) -> None:
        """s3:// and file:// URLs build the sync class, or the async one for async callers."""
        sync = from_url(s3_store.url, storage_options=s3_store.storage_options)
        assert isinstance(sync, ObjectStoreBackend)
        assert sync.root == s3_store.root
        aio = from_url(s3_store.url, asynchronous=True, storage_options=s3_store.storage_options)
        assert isinstance(aio, AsyncObjectStoreBackend)
        local = from_url(f"file://{tmp_path}/c/")
        assert isinstance(local, ObjectStoreBackend)
        assert local.root == f"{tmp_path}/c"

    def test_ready_filesystem_and_root(self, s3_store: Store) -> None:
        """A ready fsspec filesystem plus a root path works like the URL."""
        fs = s3_store.raw_fs()
        backend = ObjectStoreBackend(fs, s3_store.root)
        backend.set(make_key(), make_entry(b"via fs"), None)
        got = ObjectStoreBackend(s3_store.url, storage_options=s3_store.storage_options).get(
            make_key()
        )
        assert got is not MISSING
        assert got.value == b"via fs"

        async def main() -> bytes:
            aio = AsyncObjectStoreBackend(fs, s3_store.root)  # rebuilt in async mode
            try:
                entry = await aio.get(make_key())
                assert entry is not MISSING
                return entry.value
            finally:
                await aio.close()

        assert asyncio.run(main()) == b"via fs"

    def test_storage_options_merge_over_short_timeouts(self, s3_store: Store) -> None:
        """storage_options pass through; driver timeouts default short and stay overridable."""
        options = {**s3_store.storage_options, "config_kwargs": {"read_timeout": 3}}
        fs = ObjectStoreBackend(s3_store.url, storage_options=options).fs
        assert fs.config_kwargs["read_timeout"] == 3
        assert fs.config_kwargs["connect_timeout"] == CONNECT_TIMEOUT
        assert fs.endpoint_url == s3_store.storage_options["endpoint_url"]

    @pytest.mark.parametrize(
        ("url", "options"),
        [
            ("s3://bucket/p?region=x", {}),
            ("s3://", {}),
            ("s3://bucket/p", {"bogus": 1}),
            ("s3://bucket/p", {"storage_options": {"asynchronous": True}}),
            ("nosuchprotocol://x", {}),
        ],
    )
    def test_bad_configuration(self, url: str, options: dict[str, Any]) -> None:
        """Bad URLs and options raise ConfigurationError naming the fix."""
        with pytest.raises(ConfigurationError):
            ObjectStoreBackend.from_url(url, **options)


# -- forked workers -----------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
class TestFork:
    def test_forked_child_gets_its_own_filesystem(self, s3_store: Store) -> None:
        """A worker forked after the backend was used (gunicorn, celery) still reads and writes:
        fsspec's async filesystems refuse to cross a fork, so the child builds its own."""
        built = s3_store.sync()
        given = ObjectStoreBackend(s3_store.raw_fs(), s3_store.root)
        built.set(make_key(), make_entry(b"from parent"), None)
        assert given.get(make_key()) is not MISSING
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code, never return into pytest
            code = 1
            try:
                entries = [backend.get(make_key()) for backend in (built, given)]
                given.set(make_key(digest="c" * 32), make_entry(b"from child"), None)
                ok = all(e is not MISSING and e.value == b"from parent" for e in entries)
                code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        child = built.get(make_key(digest="c" * 32))
        assert child is not MISSING
        assert child.value == b"from child"


# -- the decorator on the async backend -----------------------------------------------------------


class TestAsyncDecorator:
    def test_async_function_on_s3(self, s3_store: Store) -> None:
        """An async def function cached on AsyncObjectStoreBackend: one call, then hits."""
        backend = s3_store.asynchronous()
        calls = []

        @llm_cached(backend=backend, ttl=60)
        async def ask(model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
            calls.append(model)
            await asyncio.sleep(0)
            return {"model": model, "choices": [{"message": messages[-1]}]}

        async def main() -> tuple[Any, Any, Any]:
            try:
                with cache_controls() as scope:
                    first = await ask("gpt-4o-mini", [{"role": "user", "content": "hi"}])
                    second = await ask("gpt-4o-mini", [{"role": "user", "content": "hi"}])
                return first, second, (scope.hits, scope.misses)
            finally:
                await backend.close()

        first, second, counts = asyncio.run(main())
        assert first == second
        assert calls == ["gpt-4o-mini"]
        assert counts == (1, 1)
