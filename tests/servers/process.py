"""What every test server needs: the CI policy for missing servers, free ports, polling, and
`ManagedProcess`, one server subprocess in its own process group.

Nothing here knows a particular server; `tests.servers.redis` and `tests.servers.objectstores`
build on it, and `tests.servers.plugin` turns them into fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "HOST",
    "REPO_ROOT",
    "SERVICES_DIR",
    "STARTUP_TIMEOUT",
    "ManagedProcess",
    "ServerStartError",
    "ci_enabled",
    "free_port",
    "missing_service",
    "poll_until",
    "require_modules",
    "start_on_free_port",
    "wait_for_port",
    "which",
]

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
#: Where ``scripts/install-services`` puts what pip cannot install (Azurite).
SERVICES_DIR = REPO_ROOT / ".services"
#: Seconds a server gets to become ready.
STARTUP_TIMEOUT = 20.0


class ServerStartError(RuntimeError):
    """A server process exited or failed before it became ready."""


def ci_enabled() -> bool:
    """True when the ``CI`` environment variable holds a true value (true/1/yes)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_service(message: str) -> NoReturn:
    """Skip the requesting test because a server is not installed; fail instead on CI."""
    if ci_enabled():
        pytest.fail(f"{message} (CI is set, so a missing server is an error)", pytrace=False)
    pytest.skip(message)


def free_port(host: str = HOST, *, highest: int = 65535) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it at random), at
    most ``highest`` (a Redis cluster node also listens on its port + 10000)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port <= highest:
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
    timeout: float = STARTUP_TIMEOUT,
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


def start_on_free_port(
    name: str,
    make_argv: Callable[[int], Sequence[str]],
    *,
    log_path: Path,
    ready: Callable[[ManagedProcess, int], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    attempts: int = 3,
    highest_port: int = 65535,
) -> tuple[ManagedProcess, int]:
    """Start a server on a random free port; retry on another port if it dies at startup
    (another process may grab the port between `free_port` and the server's bind)."""
    last_error: ServerStartError | None = None
    for _ in range(attempts):
        port = free_port(highest=highest_port)
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


def which(name: str, install: str) -> str:
    """The path of executable ``name``, or `missing_service` naming the ``install`` command."""
    path = shutil.which(name)
    if path is None:
        missing_service(f"`{name}` is not installed; install it with: {install}")
    return path


def require_modules(*modules: str, install: str) -> None:
    """`missing_service` (naming ``install``) unless every Python module is importable."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            missing_service(f"Python package `{module}` is missing; install it with: {install}")
