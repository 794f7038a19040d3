"""Faults between llm_memo and the object stores, injected by `tests.faults.FaultProxy` in front of
the real emulators (moto for S3, fake-gcs-server, Azurite): the store refusing connections,
accepting and never answering, resetting mid-reply, black-holing after a few bytes. Decorated
calls, sync and async, go through the proxy before, during and after the fault.

Each test bounds its whole run with a generous outer timeout (a hang fails the test instead of
the suite) and asserts outcomes, never durations: during the fault every call is answered by the
function (fail-open) with outcome ``error``; once the link is healthy and the breaker's cool-down
has passed (a fake breaker clock, so nothing sleeps through it), the entries written before the
fault are hits again, through the same backend and its same driver session."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from llm_memo import llm_cached
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.objectstore import AsyncObjectStoreBackend, ObjectStoreBackend
from llm_memo.testing import FakeClock
from tests.drill import Drill, adrill, drill
from tests.faults import FaultProxy, within
from tests.servers import AzureServer, GCSServer, S3Server

_OUTER = 120.0

# The backend's deadline on one get/set/delete (the default is 2 s). A fault is answered by the
# deadline or sooner, once: the breaker opens on its first failure, and gcsfs keeps retrying a
# refused or reset request until the deadline. It stays short so the test stays cheap, yet is
# far above what a healthy request to a loopback emulator takes on a loaded machine (building
# the driver's session happens outside it), so the calls before and after the fault, which must
# be misses and hits, do not run into it.
_TIMEOUT = 5.0

# The reply bytes a connection may still forward. 5 cuts every answer in its status line, so
# every request during the fault fails. 4000 lets a reply's status line and headers through and
# cuts the body of a hit (an entry is some 16 KB): the driver must raise, never hand back a short
# body, and no torn entry is ever served.
_MID_BODY = 4000
_FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "refuse": FaultProxy.refuse,
    "hang": FaultProxy.hang,
    "reset-mid-reply": lambda p: p.reset_after(5),
    "blackhole": lambda p: p.blackhole_after(5),
    "reset-mid-body": lambda p: p.reset_after(_MID_BODY),
    "blackhole-mid-body": lambda p: p.blackhole_after(_MID_BODY),
}


@dataclass
class _Store:
    """One emulator with a fresh bucket, and how to reach it through a proxy."""

    name: str
    url: str
    upstream: tuple[str, int]
    options: Callable[[FaultProxy], dict[str, Any]]


def _upstream(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.hostname is not None, endpoint
    assert parts.port is not None, endpoint
    return parts.hostname, parts.port


def _s3(server: S3Server) -> _Store:
    bucket = server.create_bucket()

    def options(proxy: FaultProxy) -> dict[str, Any]:
        return {**server.storage_options, "endpoint_url": f"http://{proxy.host}:{proxy.port}"}

    return _Store("s3", f"s3://{bucket}/llm", _upstream(server.endpoint_url), options)


def _gcs(server: GCSServer) -> _Store:
    bucket = server.create_bucket()

    def options(proxy: FaultProxy) -> dict[str, Any]:
        return {**server.storage_options, "endpoint_url": f"http://{proxy.host}:{proxy.port}"}

    return _Store("gcs", f"gs://{bucket}/llm", _upstream(server.endpoint_url), options)


def _azure(server: AzureServer) -> _Store:
    container = server.create_container()

    def options(proxy: FaultProxy) -> dict[str, Any]:
        connection = server.connection_string.replace(
            f"http://{server.host}:{server.port}/", f"http://{proxy.host}:{proxy.port}/"
        )
        assert f":{proxy.port}/" in connection, connection
        return {"connection_string": connection}

    return _Store("azure", f"az://{container}/llm", (server.host, server.port), options)


_STORES: dict[str, tuple[str, Callable[[Any], _Store]]] = {
    "s3": ("s3_server", _s3),
    "gcs": ("gcs_server", _gcs),
    "azure": ("azure_server", _azure),
}


@pytest.fixture(
    params=[pytest.param(name, marks=getattr(pytest.mark, name)) for name in _STORES],
)
def store(request: pytest.FixtureRequest) -> _Store:
    fixture, make = _STORES[request.param]
    return make(request.getfixturevalue(fixture))


def _value(n: int) -> dict[str, Any]:
    # Some 16 KB that no codec shrinks much: a hit's reply body is far longer than _MID_BODY.
    return {"n": n, "text": random.Random(n).randbytes(8000).hex()}


def _breaker() -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock(1000.0)
    # One failure opens it: a hang costs one deadline, not one per call.
    return CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock), clock


class TestObjectStoresRecover:
    """Decorated calls through a faulty link to each store never raise, are each answered (by
    the function), and go back to hits once the link is healthy and the breaker lets a probe
    through."""

    @pytest.mark.parametrize("fault", list(_FAULTS))
    def test_sync(
        self,
        store: _Store,
        fault: str,
        fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    ) -> None:
        proxy = fault_proxy(store.upstream)
        breaker, clock = _breaker()
        backend = ObjectStoreBackend(
            store.url, storage_options=store.options(proxy), timeout=_TIMEOUT, breaker=breaker
        )
        calls: Counter[int] = Counter()

        @llm_cached(backend=backend, ttl=300, name=f"osfaults-{uuid.uuid4().hex}")
        def ask(n: int) -> dict[str, Any]:
            calls[n] += 1
            return _value(n)

        def body() -> None:
            try:
                run = drill(proxy, _FAULTS[fault], clock, ask, _value)
            finally:
                backend.close()
            _check(run, calls, f"{store.name} sync {fault}", proxy)

        within(_OUTER, body)

    @pytest.mark.parametrize("fault", list(_FAULTS))
    def test_async(
        self,
        store: _Store,
        fault: str,
        fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    ) -> None:
        proxy = fault_proxy(store.upstream)
        breaker, clock = _breaker()
        backend = AsyncObjectStoreBackend(
            store.url, storage_options=store.options(proxy), timeout=_TIMEOUT, breaker=breaker
        )
        calls: Counter[int] = Counter()

        @llm_cached(backend=backend, ttl=300, name=f"aosfaults-{uuid.uuid4().hex}")
        async def ask(n: int) -> dict[str, Any]:
            calls[n] += 1
            return _value(n)

        def body() -> None:
            async def run() -> Drill:
                try:
                    return await adrill(proxy, _FAULTS[fault], clock, ask, _value)
                finally:
                    await backend.close()

            _check(asyncio.run(run()), calls, f"{store.name} async {fault}", proxy)

        within(_OUTER, body)


def _check(run: Drill, calls: Counter[int], what: str, proxy: FaultProxy) -> None:
    by_phase = {phase: [o.value for o in got] for phase, got in run.by_phase().items()}
    report = (
        f"{what}: outcomes {by_phase}; function calls {dict(calls)}; "
        f"proxy accepted {proxy.accepted} connections, forwarded {run.during_bytes} reply "
        "bytes during the fault"
    )
    # The emulator is reached through the proxy (not around it, e.g. through an env variable).
    assert proxy.accepted > 0, report
    run.check(calls, report)
    assert calls[3] == 3, report
