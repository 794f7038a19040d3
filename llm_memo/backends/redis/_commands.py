"""What the Redis backends send and how they read the answers, with no I/O: the key roots,
SCAN glob escaping, ``PX`` milliseconds, entries from ``GET`` replies, the lock-release script,
the driver errors caught at the BackendError boundary and which of them mean "the server is
unreachable".

Pure code shared by the generated pair (``_async.py`` / ``_sync.py``), kept out of it so that
it exists once. Not here: URLs (``_url.py``), clients and the backend (``_async.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from redis.exceptions import (
    ClusterDownError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    InvalidResponse,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...entry import Entry
from ...errors import BackendError, CodecError, ConfigurationError
from ...keys import KEY_ROOT
from .. import MISSING, Missing
from .._counters import COUNTER_FIELDS, COUNTER_ROOT

# Every key llm_memo writes starts with this: an empty prefix means "all of llm_memo's keys",
# never the whole database.
_ROOT = KEY_ROOT
# Lock keys live beside the entries, outside every namespace and function prefix, so clearing
# a namespace never releases a lock someone holds.
_LOCK_ROOT = _ROOT + "lock:"
_SCAN_COUNT = 1000
_UNLINK_BATCH = 500
# Keys per MGET of a bulk read (an entry can be tens of KB: a reply stays a few MB).
_MGET_KEYS = 200
_POLL_FIRST = 0.005
_POLL_MAX = 0.1
# Compare-and-delete: release the lock only if it still holds our token.
_RELEASE = """\
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
# Any of these from redis-py means the store failed. OSError covers socket errors (and
# TimeoutError) that reach us unwrapped; RedisClusterException is not a RedisError.
# What a redis-py call may raise, mapped to BackendError at this boundary. Beyond its own
# errors: the asyncio cluster client, under many tasks at once, can raise from its own races
# (a connection another task just dropped: "'NoneType' object has no attribute 'writelines'");
# such a driver bug fails one call open, as a refusal, and never reaches the caller.
_ERRORS = (RedisError, RedisClusterException, OSError, AttributeError, IndexError, KeyError)
# Counter hashes are kept this long after their last update (a day's hash, so ~13 months).
_COUNTER_KEEP = 400 * 24 * 3600
_FIELDS = frozenset(COUNTER_FIELDS)


def _counter_commands(
    prefix: str, batch: Mapping[tuple[str, str], Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """``{hash name: {"<function>:<field>": amount}}`` for a counter batch: one hash per day.
    A function identity may hold ``:``; the field name, which never does, comes last."""
    out: dict[str, dict[str, int]] = {}
    for (day, function), counts in batch.items():
        fields = out.setdefault(f"{prefix}{COUNTER_ROOT}{day}", {})
        for name, amount in counts.items():
            if amount:
                fields[f"{function}:{name}"] = fields.get(f"{function}:{name}", 0) + amount
    return {name: fields for name, fields in out.items() if fields}


def _counters_read(
    root: str, hashes: Mapping[str, Mapping[Any, Any]]
) -> dict[tuple[str, str], dict[str, int]]:
    """Counter hashes (as ``HGETALL`` returns them) back in the batch shape; fields that are
    not counters or not integers are skipped."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for name, fields in hashes.items():
        day = name[len(root) :]
        for raw, value in fields.items():
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "surrogateescape")
            function, _, field = str(raw).rpartition(":")
            try:
                amount = int(value)
            except (TypeError, ValueError):
                continue
            if field in _FIELDS and function:
                row = out.setdefault((day, function), {})
                row[field] = row.get(field, 0) + amount
    return out


_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]"})


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return text.translate(_GLOB)


def _entry_of(data: Any) -> Entry | Literal[Missing.MISSING]:
    """The entry in a ``GET`` reply: bytes that are not an entry (or nothing) read as a miss."""
    if not isinstance(data, bytes):
        return MISSING
    try:
        return Entry.from_bytes(data)
    except CodecError:
        return MISSING


def _millis(seconds: float) -> int:
    # PX wants a positive integer; round down (never keep longer than asked), at least 1 ms.
    return max(1, int(seconds * 1000))


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached: the only thing the circuit breaker,
    which exists to stop waiting on a dead server, counts.

    Counted: refused, reset or timed-out connections, a refused login or a server still loading
    (every request would fail the same way), a peer that does not speak RESP, a cluster that
    reports itself down or that no node of answers. Not counted (a refusal of *this* request,
    with the server up): every other error reply (OOM, READONLY, WRONGTYPE, NOSCRIPT, MOVED /
    ASK / TRYAGAIN redirects and a redirect loop's "TTL exhausted", CROSSSLOT), a local
    connection pool that is full, a command the client refuses to send. A ``BackendError`` is
    judged by its cause.
    """
    if isinstance(exc, BackendError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ResponseError):
        return isinstance(exc, ClusterDownError)
    if isinstance(exc, RedisClusterException):
        return not isinstance(exc, (CrossSlotTransactionError, InvalidPipelineStack))
    if isinstance(exc, MaxConnectionsError):
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, InvalidResponse, OSError))


def _check_client(client: object) -> None:
    get_encoder = getattr(client, "get_encoder", None)
    if get_encoder is not None and getattr(get_encoder(), "decode_responses", False):
        raise ConfigurationError(
            "the Redis client decodes responses to str; llm_memo stores bytes: create the client "
            "with decode_responses=False (the default)"
        )
