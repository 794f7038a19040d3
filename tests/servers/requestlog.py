"""Counting the requests an object-store emulator received, from its access log.

Each emulator (moto, fake-gcs-server, Azurite) writes one access-log line per HTTP request into
a file; `RequestLog` parses those lines into `LoggedRequest` records. Before it reads, it sends a
*barrier* request (``GET /llm-memo-log-barrier/<uuid>``) and waits until that line is in the
file, so every request the test made before is in the log too. A *classifier* per emulator
(`classify_s3`, `classify_gcs`, `classify_azure`) turns method and path into a normalised ``op``:
``GET`` (object data read), ``HEAD`` (metadata read, including GCS's ``GET .../o/NAME`` without
``alt=media``), ``PUT`` (object or bucket write, including GCS uploads sent as ``POST
/upload/...``), ``LIST``, ``DELETE`` (including S3's batch ``POST ?delete``) or the raw method.

Pure parsing plus the one loopback HTTP helper (`http_request`) the object-store handles in
`tests.servers.objectstores` also use; no server is started here.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BARRIER",
    "Classifier",
    "LoggedRequest",
    "RequestLog",
    "RequestWindow",
    "classify_azure",
    "classify_gcs",
    "classify_s3",
    "http_request",
    "parse_line",
]

#: The first path segment of a barrier request (never a real bucket: it is not a valid name).
BARRIER = "llm-memo-log-barrier"

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_ACCESS = re.compile(
    rb'"(?P<method>GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) (?P<target>\S+) HTTP/\d(?:\.\d)?\\?"'
    rb"\s+(?P<status>\d{3})"
)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
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


def parse_line(line: bytes, classify: Classifier) -> LoggedRequest | None:
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
            http_request(f"{self.base_url}/{BARRIER}/{token}")
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
            if BARRIER.encode() in line:
                continue
            request = parse_line(line, self.classify)
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


def classify_s3(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str | None, str]:
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


def classify_gcs(
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


def classify_azure(
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
