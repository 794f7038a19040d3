"""``redis://`` and friends: the Redis backends, written once, in async.

This is the hand-written source. ``scripts/unasync`` generates the sync twin ``_sync.py`` from
it by swapping ``async``/``await`` and the redis.asyncio names for their sync counterparts; CI
runs ``scripts/unasync --check``. Edit this file, then run ``scripts/unasync``.

What the backend does, and why:

* **One round trip per hit.** An entry is stored whole, as :meth:`Entry.to_bytes`, under its
  key: a hit is one ``GET``, a write one ``SET key value PX ms`` with Redis's native expiry.
* **Fail fast, then stay away.** Connections get short timeouts and redis-py's retries are off
  (one immediate retry on a cluster, to follow a topology change); every driver error becomes
  :class:`~llm_memo.errors.BackendError`, so the decorator calls the function instead. A
  :class:`~llm_memo.backends._breaker.CircuitBreaker` stops calling a server that keeps failing
  and probes it again after a cool-down: an outage costs microseconds per call, not a connect
  timeout, and caching resumes by itself when the server is back. Every operation runs inside
  the breaker's guard, which counts only an unreachable server (:func:`_unreachable`): an error
  reply (OOM, READONLY...) fails that one call, and a probe always resolves, cancelled or not.
* **Only our keys.** ``clear`` and ``keys`` walk ``SCAN MATCH <escaped prefix>*`` (on every
  master of a cluster) and ``UNLINK`` in batches; never ``FLUSHDB``. An empty prefix covers the
  keys llm_memo writes (``llm_memo:...``), never other data in the database.
* **Cross-process single-flight** (``lock=True``): ``SET lockkey token NX PX ttl``, polled with
  a short jittered back-off, released by a compare-and-delete script, so a holder whose lock
  expired never releases the next holder's.

Clients built from a URL (or by a factory) belong to the backend: built on first use, one per
owner (the event loop for the async backend, since asyncio connections cannot cross loops; the
process for the sync one, so a forked worker never shares sockets), closed with their event loop
(see ``_owners.py``) or by ``close()``. A ready-made client passed in stays the caller's.

Pure code both twins share lives beside them, outside the generated pair: URL parsing in
``_url.py``; key roots, glob escaping, the release script and the error classification in
``_commands.py``; per-owner clients in ``_owners.py``. Fork safety is ``_fork.register``: a
forked child gets a fresh breaker and builds its own connections.

Not here: encoding values (``llm_memo.codec``), freshness (``_policy.py``), the URL scheme table
(``_registry.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from ... import _fork
from ...entry import Entry
from ...errors import BackendError, ConfigurationError
from .. import MISSING, Missing
from .._breaker import BreakerGuard, CircuitBreaker
from .._counters import COUNTER_ROOT
from ._commands import (
    _COUNTER_KEEP,
    _ERRORS,
    _LOCK_ROOT,
    _MGET_KEYS,
    _POLL_FIRST,
    _POLL_MAX,
    _RELEASE,
    _ROOT,
    _SCAN_COUNT,
    _UNLINK_BATCH,
    _check_client,
    _counter_commands,
    _counters_read,
    _entry_of,
    _glob_escape,
    _millis,
    _unreachable,
)
from ._owners import Owned
from ._url import _parse_url, _Target

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "AsyncRedisBackend",
]

#: Seconds to wait for a TCP (or TLS) connection before the store counts as down.
DEFAULT_CONNECT_TIMEOUT = 0.5
#: Seconds to wait for a reply on an open connection.
DEFAULT_SOCKET_TIMEOUT = 1.0

_Client: TypeAlias = "Redis | RedisCluster"


def _build_client(target: _Target, client_kwargs: Mapping[str, Any]) -> _Client:
    """Make the redis-py client a URL asks for: llm_memo's defaults, then the URL's settings,
    then ``client_kwargs``."""
    options: dict[str, Any] = {
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        # redis-py retries 10 times with back-off by default (seconds of waiting per call while
        # a server is down, ~2.8 s for a refused login); the breaker handles outages instead.
        "retry": Retry(NoBackoff(), 0),
        **target.connection,
        **client_kwargs,
    }
    if target.kind == "cluster":
        # One immediate retry lets the client refresh the slot map after a failover; the
        # cluster client takes ``retry`` for itself and gives its nodes none.
        options["retry"] = client_kwargs.get("retry", Retry(NoBackoff(), 1))
        # redis-py types some of its sync constructors and not their async twins (or the
        # reverse): hence "unused-ignore" next to the codes one twin needs.
        nodes = [
            ClusterNode(host, port)  # type: ignore[no-untyped-call, unused-ignore]
            for host, port in target.hosts
        ]
        return RedisCluster(startup_nodes=nodes, **options)
    if target.kind == "sentinel":
        sentinel_kwargs = options.pop("sentinel_kwargs", None)
        if sentinel_kwargs is None:
            sentinel_kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
            sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(target.hosts), sentinel_kwargs=sentinel_kwargs, **options
        )
        client: Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            target.service
        )
        return client
    if target.kind == "unix":
        return Redis(unix_socket_path=target.path, **options)
    host, port = target.hosts[0]
    return Redis(host=host, port=port, **options)


@dataclass(frozen=True)
class _UrlClient:
    """The client factory :meth:`AsyncRedisBackend.from_url` hands the constructor."""

    target: _Target
    client_kwargs: Mapping[str, Any]

    def __call__(self) -> _Client:
        return _build_client(self.target, self.client_kwargs)


async def _close_client(client: _Client) -> None:
    # A Sentinel client also holds connections to the sentinels themselves.
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    await client.aclose()
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


# -- the backend -----------------------------------------------------------------------------


class AsyncRedisBackend:
    """Entries in Redis (standalone, TLS, Cluster or Sentinel), one ``GET`` per hit.

    Args:
        client: a ready client (``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``,
            or a Sentinel ``master_for(...)`` client), which stays the caller's to close; or a
            zero-argument callable returning one, called on first use and again for each new
            event loop (async) or process (sync), whose clients the backend closes. Clients
            must keep ``decode_responses=False`` (the default).
        prefix: prepended to every key, for sharing a database with other applications
            (llm_memo's keys are already namespaced ``llm_memo:...``, so none is needed).
        breaker: the circuit breaker guarding calls (default: open after 3 consecutive
            failures, 2 s cool-down doubling up to 30 s).

    Raises:
        ConfigurationError: the client decodes responses to ``str``.

    Example::

        backend = AsyncRedisBackend.from_url("rediss://:secret@cache.internal:6380/0")
        backend = AsyncRedisBackend(Redis(host="localhost"), prefix="myapp:")

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: _Client | Callable[[], _Client],
        *,
        prefix: str = "",
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.prefix = prefix
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._build_lock = threading.Lock()
        # Clients the backend builds, one per owner (event loop / process), closed with it.
        self._owned: Owned[_Client] = Owned(_close_client, _ERRORS)
        if callable(client):
            self._factory: Callable[[], _Client] | None = client
            self._given: _Client | None = None
            self._label = client.target.label if isinstance(client, _UrlClient) else "redis"
        else:
            _check_client(client)
            self._factory = None
            self._given = client
            self._label = type(client).__name__
        _fork.register(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> AsyncRedisBackend:
        """Build from a URL; the client is created on first use.

        =====================================================  ================================
        ``redis://[user:password@]host[:6379][/db]``           one server
        ``rediss://...``                                       the same over TLS
        ``unix://[user:password@]/path/redis.sock[?db=N]``     a Unix socket
        ``redis+cluster://host1:port1,host2:port2/``           Redis Cluster (``rediss+`` TLS)
        ``redis+sentinel://s1:26379,s2:26379/service[/db]``    the master a Sentinel names
        =====================================================  ================================

        Query parameters: ``prefix``, ``db``, ``username``, ``password``, ``socket_timeout``,
        ``socket_connect_timeout``, ``max_connections``, ``client_name``, and with ``rediss``
        ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
        ``ssl_check_hostname``. URL credentials authenticate to the data nodes; a Sentinel's
        own credentials go in ``client_kwargs={"sentinel_kwargs": {...}}``.

        Args:
            url: the URL.
            prefix: overrides the URL's ``prefix`` parameter.
            client_kwargs: any other redis-py client option (TLS certificates, ``retry``,
                ``health_check_interval``...); overrides llm_memo's defaults and the URL.
            breaker: see the constructor.

        Raises:
            ConfigurationError: unknown scheme or query parameter, malformed URL, or
                ``decode_responses`` in ``client_kwargs``.

        Example::

            AsyncRedisBackend.from_url(
                "rediss://cache:6380/0", client_kwargs={"ssl_ca_certs": "/etc/ssl/ca.pem"}
            )
        """
        target = _parse_url(url)
        kwargs = dict(client_kwargs or {})
        if kwargs.get("decode_responses"):
            raise ConfigurationError(
                "decode_responses=True cannot be used: llm_memo stores bytes; remove it"
            )
        return cls(
            _UrlClient(target, kwargs),
            prefix=target.prefix if prefix is None else prefix,
            breaker=breaker,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> _Client:
        """The redis-py client in use (built now if the backend builds its own)."""
        return self._redis()

    # -- plumbing --------------------------------------------------------------------------

    def _redis(self) -> _Client:
        client = self._given
        if client is None:
            owner = asyncio.get_running_loop()
            client = self._owned.get(owner)
            if client is None:
                client = self._connect(owner)
        return client

    def _connect(self, owner: object) -> _Client:
        # A client per owner: asyncio connections cannot cross event loops, and a forked child
        # must not share its parent's sockets. Each is closed with its owner (see _owners.py).
        assert self._factory is not None
        with self._build_lock:
            client = self._owned.get(owner)
            if client is None:
                client = self._factory()
                _check_client(client)
                self._owned.add(owner, client)
            return client

    def _guard(self) -> BreakerGuard:
        # Every operation runs inside one: it resolves the breaker on every way out, cancelled
        # included, and counts only an unreachable server against it.
        return self._breaker.guard(self._label, outage=_unreachable)

    def _failed(self, operation: str, exc: BaseException) -> BackendError:
        return BackendError(f"{self._label}: {operation} failed: {type(exc).__name__}: {exc}")

    def _after_fork(self) -> None:
        # A fresh breaker rather than reset(): the old one's lock may be held by a thread that
        # does not exist in the child.
        old = self._breaker
        clock = getattr(old, "_clock", time.monotonic)
        self._breaker = CircuitBreaker(old.failures, old.cooldown, old.max_cooldown, clock)
        self._build_lock = threading.Lock()
        self._owned.forget()  # the parent's clients: dropped, never touched

    def _pattern(self, prefix: str) -> str:
        return _glob_escape(self.prefix + (prefix or _ROOT)) + "*"

    # -- the Backend protocol --------------------------------------------------------------

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """Return the entry under ``key`` (one ``GET``), or :data:`MISSING`.

        Bytes that are not an entry, or a key holding another Redis type, read as a miss.

        Raises:
            BackendError: Redis failed or the breaker is open.
        """
        with self._guard():
            try:
                data = await self._redis().get(self.prefix + key)
            except _ERRORS as exc:
                if isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE"):
                    return MISSING
                raise self._failed("GET", exc) from exc
        return _entry_of(data)

    async def get_many(self, keys: Sequence[str]) -> list[Entry | Literal[Missing.MISSING]]:
        """The entries under ``keys``, in order: one ``MGET`` per :data:`_MGET_KEYS` keys (on
        a cluster, redis-py's ``mget_nonatomic`` groups them by hash slot). What :meth:`get`
        reads as a miss reads as one here.

        Raises:
            BackendError: Redis failed or the breaker is open.
        """
        names = [self.prefix + key for key in keys]
        found: list[Any] = []
        with self._guard():
            try:
                client = self._redis()
                for at in range(0, len(names), _MGET_KEYS):
                    part = names[at : at + _MGET_KEYS]
                    if isinstance(client, RedisCluster):
                        found += await client.mget_nonatomic(part)
                    else:
                        found += await client.mget(part)
            except _ERRORS as exc:
                raise self._failed("MGET", exc) from exc
        return [_entry_of(data) for data in found]

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` with one ``SET`` (``PX`` from ``ttl``; no expiry for ``None``).

        A ``ttl`` of 0 or less stores nothing and removes any previous entry.

        Raises:
            BackendError: Redis failed (unreachable, out of memory...) or the breaker is open.
        """
        if ttl is not None and ttl <= 0:
            await self.delete(key)
            return
        data = entry.to_bytes()
        with self._guard():
            try:
                if ttl is None:
                    await self._redis().set(self.prefix + key, data)
                else:
                    await self._redis().set(self.prefix + key, data, px=_millis(ttl))
            except _ERRORS as exc:
                raise self._failed("SET", exc) from exc

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (``UNLINK``); return whether it was there."""
        with self._guard():
            try:
                removed = await self._redis().unlink(self.prefix + key)
            except _ERRORS as exc:
                raise self._failed("UNLINK", exc) from exc
        return bool(removed)

    async def clear(self, prefix: str = "") -> int:
        """Remove the keys starting with ``prefix``; return how many were removed.

        ``SCAN MATCH`` (on every master of a cluster) and ``UNLINK`` in batches. An empty
        prefix removes every llm_memo key (``llm_memo:...``) and nothing else.
        """
        removed = 0
        with self._guard():
            try:
                client = self._redis()
                batch: list[bytes] = []
                async for name in client.scan_iter(match=self._pattern(prefix), count=_SCAN_COUNT):
                    batch.append(name)
                    if len(batch) >= _UNLINK_BATCH:
                        removed += await client.unlink(*batch)
                        batch = []
                if batch:
                    removed += await client.unlink(*batch)
            except _ERRORS as exc:
                raise self._failed("clear", exc) from exc
        return removed

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Iterate the stored keys starting with ``prefix`` (``SCAN``; no order; each once).

        An empty prefix lists every llm_memo key. Locks in use are not listed.
        """
        skip = len(self.prefix)
        lock_root = self.prefix + _LOCK_ROOT
        seen: set[bytes] = set()  # SCAN may return a key twice while the table grows
        # The guard spans the iteration: a consumer that stops early closes the generator, and
        # the guard resolves that (GeneratorExit) as neither success nor failure.
        with self._guard():
            try:
                async for name in self._redis().scan_iter(
                    match=self._pattern(prefix), count=_SCAN_COUNT
                ):
                    if name in seen:
                        continue
                    seen.add(name)
                    text = name.decode("utf-8", "surrogateescape")
                    if not text.startswith(lock_root):
                        yield text[skip:]
            except _ERRORS as exc:
                raise self._failed("SCAN", exc) from exc

    async def close(self) -> None:
        """Close the client the backend built for this event loop (process, for the sync
        backend), and release those of loops already closed; a client passed in stays open.
        Clients of loops still running in other threads close with their loop. The backend
        stays usable: the next operation builds a new client."""
        if self._factory is None:
            return
        try:
            await self._owned.aclose(asyncio.get_running_loop())
        except _ERRORS as exc:
            raise BackendError(f"{self._label}: close failed: {exc}") from exc

    # -- the Counting protocol (persist_stats) -----------------------------------------------

    async def add_counters(self, batch: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
        """Add a batch of per-function counters: one ``HINCRBY`` per field into one hash per
        day (kept 400 days), all in one pipeline, one round trip on a standalone server.

        Raises:
            BackendError: Redis failed or the breaker is open.
        """
        commands = _counter_commands(self.prefix, batch)
        if not commands:
            return
        with self._guard():
            try:
                async with self._redis().pipeline(transaction=False) as pipe:
                    for name, fields in commands.items():
                        for field, amount in fields.items():
                            pipe.hincrby(name, field, amount)
                        pipe.expire(name, _COUNTER_KEEP)
                    await pipe.execute()
            except _ERRORS as exc:
                raise self._failed("HINCRBY", exc) from exc

    async def read_counters(self, since: str = "") -> dict[tuple[str, str], dict[str, int]]:
        """Every process's counters for days ``since`` and later (``SCAN`` + ``HGETALL``).

        Raises:
            BackendError: Redis failed or the breaker is open.
        """
        root = self.prefix + COUNTER_ROOT
        hashes: dict[str, Mapping[Any, Any]] = {}
        with self._guard():
            try:
                client = self._redis()
                async for name in client.scan_iter(
                    match=_glob_escape(root) + "*", count=_SCAN_COUNT
                ):
                    text = name.decode("utf-8", "surrogateescape")
                    if text[len(root) :] >= since and text not in hashes:
                        hashes[text] = await client.hgetall(name)
            except _ERRORS as exc:
                raise self._failed("HGETALL", exc) from exc
        return _counters_read(root, hashes)

    # -- the Locking protocol --------------------------------------------------------------

    def lock(self, key: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[bool]:
        """A lock on ``key`` shared by every process using this Redis.

        Entering waits up to ``wait`` seconds (polling ``SET NX`` with a jittered back-off)
        and yields whether the lock was taken. The lock expires ``ttl`` seconds after it was
        taken, so a crashed holder blocks others at most that long; leaving releases it only
        if it is still ours.

        Raises:
            BackendError: Redis failed or the breaker is open (on entering or leaving).

        Example::

            async with backend.lock(key, ttl=120, wait=300) as acquired: ...
        """
        return self._locked(self.prefix + _LOCK_ROOT + key, ttl, wait)

    @contextlib.asynccontextmanager
    async def _locked(self, name: str, ttl: float, wait: float) -> AsyncIterator[bool]:
        token = secrets.token_hex(16)
        acquired = await self._acquire(name, token, ttl, wait)
        try:
            yield acquired
        finally:
            if acquired:
                await self._release(name, token)

    async def _acquire(self, name: str, token: str, ttl: float, wait: float) -> bool:
        px = _millis(ttl)
        deadline = time.monotonic() + max(wait, 0.0)
        delay = _POLL_FIRST
        while True:
            with self._guard():
                try:
                    taken = await self._redis().set(name, token, px=px, nx=True)
                except _ERRORS as exc:
                    raise self._failed("lock", exc) from exc
            if taken:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Jitter spreads the waiters out when the holder lets go.
            await asyncio.sleep(min(left, delay * (0.5 + random.random())))
            delay = min(delay * 2, _POLL_MAX)

    async def _release(self, name: str, token: str) -> None:
        with self._guard():
            try:
                await self._redis().eval(_RELEASE, 1, name, token)
            except _ERRORS as exc:
                raise self._failed("unlock", exc) from exc
