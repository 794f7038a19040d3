"""``redis+semantic://``: semantic caching on plain Redis 7, or on Redis 8 vector sets.

Entries are stored exactly as the ``redis://`` backend stores them (one key each, ``SET ... PX``
with Redis's native expiry; a hit by key is one ``GET``); that part *is* a
:class:`~llm_memo.backends.redis.RedisBackend`, wrapped. Next to the entries, each partition
(exact context + embedder, see :func:`~llm_memo.backends.semantic.partition_name`) has one index
key named after it, so a search reads exactly one partition and a match never crosses model,
parameters, namespace, tenant or embedder. The index has one of two shapes:

* **hash** (any Redis >= 7.0, no module): a hash of entry key -> record (deadline, time added,
  the unit vector as float16, the key, the guard's features). A search reads the whole hash
  (``HVALS``) and scores it with numpy, so its cost grows with the partition: each partition
  keeps at most ``max_partition`` vectors (default :data:`DEFAULT_MAX_PARTITION_HASH`).
* **vectorset** (Redis >= 8, ``VADD`` / ``VSIM``): a vector set per partition (HNSW, float32,
  no quantisation by default), the deadline, time added and guard features as its JSON
  attributes; a search is one ``VSIM ... FILTER`` (expired members filtered out on the server).
  Cap: :data:`DEFAULT_MAX_PARTITION_VECTORSET`.

``mode="auto"`` (the default) picks vector sets when the server has ``VADD`` (asked once, with a
tiny Lua script), else the hash. Both shapes give the same results contract.

**Beyond the cap.** Adding to a full partition evicts one member per add, chosen the way Redis
evicts keys: among 16 random members, an expired one, else the one added longest ago. The newest
entry is never evicted. An evicted vector only stops *similar* requests from finding the entry;
the entry itself stays until its own TTL (an identical request still hits).

**Expiry.** Entries expire natively. Index members whose entry has expired or was deleted are
skipped by searches and removed when a search meets them (hash: every expired record it reads;
vector set: the candidates it checks) or when eviction samples them. The index key itself gets
the longest TTL of what it holds (``PEXPIRE ... GT``), so an idle partition disappears.

**Writes** are one round trip: the entry's ``SET`` and a Lua script that updates the index,
sets its TTL and evicts, pipelined. **Searches** are two: read the index, then ``GET`` the best
candidates (plus a third, rarely, to prune members whose entry is gone).

There is no ``FT.SEARCH`` (RediSearch / Redis Stack) path: it cannot be tested here, so it is
not shipped.

Both classes run the same flows (:mod:`llm_memo.backends.semantic`); only the client differs.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import orjson
from redis.exceptions import RedisClusterException, RedisError

from ...entry import Entry
from ...errors import BackendError, CodecError, ConfigurationError
from ...keys import _KEY_PREFIX
from .. import Missing
from .._breaker import BreakerGuard, CircuitBreaker
from ..redis import AsyncRedisBackend, RedisBackend
from ..redis._async import _unreachable
from . import (
    DEFAULT_CANDIDATES,
    DEFAULT_THRESHOLD,
    Guard,
    LexicalGuard,
    VectorCache,
    check_embedder,
    configured_embedder,
    is_async_embedder,
    numpy,
    partition_name,
    resolve_threshold,
)
from ._flows import Embed, Flow, adrive, drive, embed_flow
from .vectors import embed_async, embed_sync

__all__ = [
    "DEFAULT_MAX_PARTITION_HASH",
    "DEFAULT_MAX_PARTITION_VECTORSET",
    "AsyncRedisSemanticBackend",
    "RedisSemanticBackend",
]

#: Vectors kept per partition in the hash index (Redis 7): a search transfers and scores all of
#: them (about 0.9 MB for 1,000 MiniLM vectors; see docs/backends/semantic.md for timings).
DEFAULT_MAX_PARTITION_HASH = 2_000
#: Vectors kept per partition in a vector set (Redis 8): HNSW search grows slowly with size.
DEFAULT_MAX_PARTITION_VECTORSET = 100_000

Mode = Literal["auto", "hash", "vectorset"]
Quantization = Literal["noquant", "q8", "bin"]

_ERRORS = (RedisError, RedisClusterException, OSError)
_ROOT = _KEY_PREFIX + ":"
_SAMPLE = 16
_SCAN_COUNT = 1000
_UNLINK_BATCH = 500
# A hash index record: deadline (inf: none) and time added, the float16 unit vector, the
# entry's key (length-prefixed) and the guard's features.
_HEAD = struct.Struct("<dd")
_KEY_LEN = struct.Struct("<H")
_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]"})
_QUANT_FLAG = {"noquant": "NOQUANT", "q8": "Q8", "bin": "BIN"}
_SUFFIX = {"hash": "h", "noquant": "vn", "q8": "vq", "bin": "vb"}
# Index keys end like this; entry keys end with a hex digest, so they never do.
_INDEX_KEY = re.compile(rb"~sem:[0-9a-f]{16}:(?:h|v[nqb])$")
_GUARD = LexicalGuard()

_HAS_VADD = "if redis.call('COMMAND', 'INFO', 'VADD')[1] then return 1 end return 0"

# Shared by both index scripts: the index key's TTL follows the longest-lived member.
_EXPIRE = """
local ttl = tonumber(ARGV[1])
if ttl < 0 then redis.call('PERSIST', KEYS[1])
elseif existed == 0 then redis.call('PEXPIRE', KEYS[1], ttl)
else redis.call('PEXPIRE', KEYS[1], ttl, 'GT') end
local cap, now, sample = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
"""

# KEYS[1] index hash; ARGV: ttl ms (-1: none), cap, now, sample size, field, record.
_ADD_HASH = (
    "local existed = redis.call('EXISTS', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], ARGV[5], ARGV[6])\n"
    + _EXPIRE
    + """
local evicted = 0
while redis.call('HLEN', KEYS[1]) > cap do
  local sampled = redis.call('HRANDFIELD', KEYS[1], sample, 'WITHVALUES')
  local victim, oldest = nil, nil
  for i = 1, #sampled, 2 do
    local name, record = sampled[i], sampled[i + 1]
    if name ~= ARGV[5] then
      if #record < 16 then victim = name; break end
      local deadline, added = struct.unpack('<dd', record)
      if deadline <= now then victim = name; break end
      if oldest == nil or added < oldest then victim, oldest = name, added end
    end
  end
  if victim == nil then break end
  redis.call('HDEL', KEYS[1], victim)
  evicted = evicted + 1
end
return evicted
"""
)

# KEYS[1] vector set; ARGV: ttl ms, cap, now, sample size, element, fp32 blob, attributes,
# quantisation flag.
_ADD_VSET = (
    "local existed = redis.call('EXISTS', KEYS[1])\n"
    "redis.call('VADD', KEYS[1], 'FP32', ARGV[6], ARGV[5], ARGV[8], 'SETATTR', ARGV[7])\n"
    + _EXPIRE
    + """
local evicted = 0
while redis.call('VCARD', KEYS[1]) > cap do
  local sampled = redis.call('VRANDMEMBER', KEYS[1], sample)
  local victim, oldest = nil, nil
  for _, name in ipairs(sampled) do
    if name ~= ARGV[5] then
      local ok, attrs = pcall(cjson.decode, redis.call('VGETATTR', KEYS[1], name) or '')
      if not ok or type(attrs) ~= 'table' then victim = name; break end
      local deadline, added = tonumber(attrs.d) or 0, tonumber(attrs.a) or 0
      if deadline > 0 and deadline <= now then victim = name; break end
      if oldest == nil or added < oldest then victim, oldest = name, added end
    end
  end
  if victim == nil then break end
  redis.call('VREM', KEYS[1], victim)
  evicted = evicted + 1
end
return evicted
"""
)


@dataclass(frozen=True, slots=True)
class _Pipe:
    """Operation: run ``commands`` in one non-transactional pipeline; the replies are sent back
    (an error reply as its exception object)."""

    commands: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class _Scan:
    """Operation: every key name matching ``pattern`` (``SCAN``, every master of a cluster)."""

    pattern: str


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _checked(replies: list[Any]) -> list[Any]:
    """Raise the first error reply (the shell turns it into a BackendError)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _scored(reply: Any) -> list[tuple[bytes, float]]:
    """``VSIM ... WITHSCORES`` as (element, score) pairs, whether redis-py parsed it or not."""
    if isinstance(reply, dict):
        return [(bytes(k), float(v)) for k, v in reply.items()]
    if isinstance(reply, list):
        return [(bytes(reply[i]), float(reply[i + 1])) for i in range(0, len(reply) - 1, 2)]
    return []


def _tail(record: bytes, width: int) -> tuple[bytes, str]:
    """The key and guard features after a hash record's vector (``b""`` if truncated)."""
    (size,) = _KEY_LEN.unpack_from(record, width)
    start = width + _KEY_LEN.size
    key = record[start : start + size]
    if len(key) != size:
        return b"", ""
    return key, record[start + size :].decode("utf-8", "replace")


def _entry_of(data: Any) -> Entry | None:
    if not isinstance(data, bytes):
        return None
    try:
        return Entry.from_bytes(data)
    except CodecError:
        return None


class _Flows:
    """Everything the Redis semantic backends do, as flows of ``_Pipe`` / ``_Scan`` / ``Embed``."""

    def __init__(
        self,
        *,
        prefix: str,
        embedder: Any,
        threshold: float,
        candidates: int,
        guard: Guard | None,
        mode: Mode,
        max_partition: int | None,
        quantization: Quantization,
        clock: Callable[[], float],
    ) -> None:
        if mode not in ("auto", "hash", "vectorset"):
            raise ConfigurationError(f"mode must be 'auto', 'hash' or 'vectorset', not {mode!r}")
        if quantization not in _QUANT_FLAG:
            raise ConfigurationError(
                f"quantization must be 'noquant', 'q8' or 'bin', not {quantization!r}"
            )
        if candidates < 1 or (max_partition is not None and max_partition < 1):
            raise ConfigurationError("candidates and max_partition must be at least 1")
        resolve_threshold(threshold, threshold)
        self.prefix = prefix
        self.embedder = embedder
        self.threshold = threshold
        self.candidates = candidates
        self.guard = guard
        self.mode: Mode = mode
        self.max_partition = max_partition
        self.quantization: Quantization = quantization
        self.clock = clock
        self.vectors = VectorCache()

    def detect(self) -> Flow[Mode]:
        """``hash`` or ``vectorset``: what ``auto`` means on this server (asked once)."""
        if self.mode == "auto":
            (has,) = yield _Pipe((("EVAL", _HAS_VADD, 0),))
            self.mode = "vectorset" if has == 1 else "hash"
        return self.mode

    def cap(self, mode: Mode) -> int:
        if self.max_partition is not None:
            return self.max_partition
        if mode == "vectorset":
            return DEFAULT_MAX_PARTITION_VECTORSET
        return DEFAULT_MAX_PARTITION_HASH

    def index(self, context: str, mode: Mode) -> str:
        suffix = _SUFFIX["hash" if mode == "hash" else self.quantization]
        return f"{self.prefix}{partition_name(context, self.embedder.name)}:{suffix}"

    # -- writes ----------------------------------------------------------------------------

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> Flow[None]:
        name = self.prefix + key
        if ttl is not None and ttl <= 0:
            yield _Pipe((("UNLINK", name),))
            return
        vector = yield from embed_flow(text, self.vectors)
        mode = yield from self.detect()
        now = self.clock()
        store: tuple[Any, ...] = ("SET", name, entry.to_bytes())
        if ttl is not None:
            store += ("PX", _millis(ttl))
        features = self.guard.features(text) if self.guard is not None else ""
        common = (-1 if ttl is None else _millis(ttl), self.cap(mode), repr(now), _SAMPLE, key)
        index = self.index(context, mode)
        if mode == "hash":
            deadline = float("inf") if ttl is None else now + ttl
            raw_key = key.encode("utf-8", "surrogateescape")
            record = b"".join((
                _HEAD.pack(deadline, now), vector.astype("<f2").tobytes(),
                _KEY_LEN.pack(len(raw_key)), raw_key, features.encode(),
            ))  # fmt: skip
            script: tuple[Any, ...] = ("EVAL", _ADD_HASH, 1, index, *common, record)
        else:
            attributes = orjson.dumps(
                {"d": 0 if ttl is None else now + ttl, "a": now, "g": features}
            )
            blob = vector.astype("<f4").tobytes()
            flag = _QUANT_FLAG[self.quantization]
            script = ("EVAL", _ADD_VSET, 1, index, *common, blob, attributes, flag)
        _checked((yield _Pipe((store, script))))

    # -- searches --------------------------------------------------------------------------

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> Flow[tuple[str, Entry, float] | None]:
        limit = resolve_threshold(threshold, self.threshold)
        vector = yield from embed_flow(text, self.vectors)
        mode = yield from self.detect()
        index = self.index(context, mode)
        if mode == "hash":
            ranked, prune = yield from self._rank_hash(index, vector, limit)
            remove = "HDEL"
        else:
            ranked, prune = yield from self._rank_vset(index, vector, limit)
            remove = "VREM"
        wanted = self.guard.features(text) if self.guard is not None else None
        chosen = [
            (field, score)
            for field, score, features in ranked
            if wanted is None or self.guard is None or self.guard.allows(wanted, features)
        ][: self.candidates]
        found: tuple[str, Entry, float] | None = None
        if chosen:
            commands: tuple[tuple[Any, ...], ...] = tuple(
                ("GET", self.prefix + f.decode("utf-8", "surrogateescape")) for f, _ in chosen
            )
            if prune:
                commands += ((remove, index, *prune),)
                prune = []
            replies = yield _Pipe(commands)
            for (field, score), data in zip(chosen, replies, strict=False):  # + a prune reply
                entry = _entry_of(data)
                if entry is None:
                    if data is None:  # expired or deleted: forget its vector too
                        prune.append(field)
                    continue
                found = (field.decode("utf-8", "surrogateescape"), entry, score)
                break
        if prune:
            yield _Pipe(((remove, index, *prune),))
        return found

    def _rank_hash(
        self, index: str, vector: Any, limit: float
    ) -> Flow[tuple[list[tuple[bytes, float, str]], list[bytes]]]:
        """Score every record of a hash index: (key, similarity, features) best first, plus the
        keys of expired records (to prune).

        ``HVALS``, not ``HGETALL``: each record carries its key, and parsing the reply is most
        of a search's cost, so half the items is nearly half the time.
        """
        np = numpy()
        (values,) = yield _Pipe((("HVALS", index),))
        if not isinstance(values, list) or not values:
            return [], []  # empty, or not our hash (an error reply): nothing to match
        width = _HEAD.size + 2 * len(vector)
        # Too short to be ours: skipped here, and the first to go when the partition is full.
        usable = [v for v in values if len(v) >= width + 2]
        if not usable:
            return [], []
        heads = np.frombuffer(b"".join(v[: _HEAD.size] for v in usable), dtype="<f8")
        matrix = np.frombuffer(
            b"".join(v[_HEAD.size : width] for v in usable), dtype="<f2"
        ).reshape(len(usable), len(vector))
        scores = matrix.astype(np.float32) @ vector
        alive = heads[0::2] > self.clock()
        prune = [_tail(usable[i], width)[0] for i in np.flatnonzero(~alive)]
        hits = np.flatnonzero(alive & (scores >= limit))
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        ranked = []
        for i in hits:
            key, features = _tail(usable[i], width)
            if key:
                ranked.append((key, float(min(1.0, scores[i])), features))
        return ranked, [key for key in prune if key]

    def _rank_vset(
        self, index: str, vector: Any, limit: float
    ) -> Flow[tuple[list[tuple[bytes, float, str]], list[bytes]]]:
        """Ask the vector set for the nearest live members: (element, similarity, features)
        best first (nothing to prune: the filter skips expired members)."""
        count = self.candidates * 2 if self.guard is not None else self.candidates
        live = f".d == 0 or .d > {self.clock()!r}"
        blob = vector.astype("<f4").tobytes()
        (reply,) = yield _Pipe(
            (("VSIM", index, "FP32", blob, "WITHSCORES", "COUNT", count, "FILTER", live),)
        )
        if isinstance(reply, Exception):
            return [], []  # no such set (or not a set): nothing to match
        # VSIM scores are (1 + cosine) / 2.
        scored = [(e, 2.0 * s - 1.0) for e, s in _scored(reply) if 2.0 * s - 1.0 >= limit]
        if not scored:
            return [], []
        ranked: list[tuple[bytes, float, str]] = []
        if self.guard is None:
            return [(e, min(1.0, s), "") for e, s in scored], []
        attributes = yield _Pipe(tuple(("VGETATTR", index, e) for e, _ in scored))
        for (element, score), raw in zip(scored, attributes, strict=True):
            try:
                features = str(orjson.loads(raw).get("g", "")) if isinstance(raw, bytes) else ""
            except (orjson.JSONDecodeError, AttributeError):
                features = ""
            ranked.append((element, min(1.0, score), features))
        return ranked, []

    # -- clearing --------------------------------------------------------------------------

    def clear(self, prefix: str) -> Flow[int]:
        """Unlink every key under ``prefix`` (indexes included); count the entries."""
        pattern = (self.prefix + (prefix or _ROOT)).translate(_GLOB) + "*"
        names: list[bytes] = yield _Scan(pattern)
        removed = 0
        for start in range(0, len(names), _UNLINK_BATCH):
            batch = names[start : start + _UNLINK_BATCH]
            replies = _checked((yield _Pipe(tuple(("UNLINK", n) for n in batch))))
            removed += sum(
                1
                for name, gone in zip(batch, replies, strict=True)
                if gone and not _INDEX_KEY.search(name)
            )
        return removed


# -- the two shells -------------------------------------------------------------------------------

_URL_QUERY: dict[str, Callable[[str], Any]] = {
    "threshold": float,
    "candidates": int,
    "mode": str,
    "max_partition": int,
    "quantization": str,
}


def _split_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """``redis+semantic://...`` -> (scheme, the ``redis://`` URL for the entries, our settings).

    Raises:
        ConfigurationError: another scheme or a bad value.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("redis+semantic", "rediss+semantic"):
        raise ConfigurationError(
            f"{url!r} is not a semantic Redis URL; use redis+semantic://[:password@]host:6379/0"
        )
    rest, _, query = rest.partition("?")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        convert = _URL_QUERY.get(name)
        if convert is None:
            theirs.append((name, value))
            continue
        try:
            ours[name] = convert(value)
        except ValueError:
            raise ConfigurationError(f"query parameter {name}={value!r} is not valid") from None
    base = scheme.partition("+")[0]
    return scheme, f"{base}://{rest}" + (f"?{urlencode(theirs)}" if theirs else ""), ours


class _Base:
    """Settings, repr and the breaker, shared by the sync and async backends."""

    _flows: _Flows

    def __init__(
        self,
        *,
        embedder: Any,
        prefix: str,
        threshold: float,
        guard: Guard | None,
        candidates: int,
        mode: Mode,
        max_partition: int | None,
        quantization: Quantization,
        clock: Callable[[], float],
        breaker: CircuitBreaker,
        asynchronous: bool,
    ) -> None:
        check_embedder(embedder, asynchronous=asynchronous)
        self.embedder = embedder
        self._breaker = breaker
        self._flows = _Flows(
            prefix=prefix, embedder=embedder, threshold=threshold, candidates=candidates,
            guard=guard, mode=mode, max_partition=max_partition, quantization=quantization,
            clock=clock,
        )  # fmt: skip

    @property
    def threshold(self) -> float:
        """The default minimum cosine similarity of a hit."""
        return self._flows.threshold

    @property
    def guard(self) -> Guard | None:
        """The guard applied to candidate hits, if any."""
        return self._flows.guard

    @property
    def mode(self) -> Mode:
        """``hash`` (Redis 7, client-side scoring), ``vectorset`` (Redis 8), or ``auto`` until
        the first search or add asks the server."""
        return self._flows.mode

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(embedder={self.embedder.name!r}, mode={self.mode!r}, "
            f"threshold={self.threshold})"
        )

    def _guard(self) -> BreakerGuard:
        # One guard per flow: it resolves the breaker however the flow ends (an error reply, a
        # failing embedder, a cancelled task), and only an unreachable server counts against it.
        return self._breaker.guard("redis semantic", outage=_unreachable)

    @staticmethod
    def _failed(what: str, exc: BaseException) -> BackendError:
        return BackendError(f"redis semantic: {what} failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _options(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any], CircuitBreaker]:
        scheme, redis_url, ours = _split_url(url)
        kwargs = {**ours, **options}
        if kwargs.get("embedder") is None:
            kwargs["embedder"] = configured_embedder(scheme)
        breaker = kwargs.pop("breaker", None) or CircuitBreaker()
        return redis_url, kwargs, breaker


class RedisSemanticBackend(_Base):
    """Semantic cache on Redis: exact entries as ``redis://`` stores them, plus a per-partition
    vector index (a hash scored client-side on Redis 7, a vector set on Redis 8).

    Args:
        client: a ``redis.Redis`` (or cluster / sentinel client), a zero-argument factory of
            one, or a ready :class:`~llm_memo.backends.redis.RedisBackend` (whose client and
            prefix are used). Clients must keep ``decode_responses=False``.
        embedder: an :class:`~llm_memo.backends.semantic.Embedder` (sync).
        threshold: default minimum cosine similarity of a hit (a call's ``threshold`` wins).
        guard: checks a candidate beyond similarity (default :class:`LexicalGuard`); ``None``
            turns it off.
        candidates: candidates examined per search, best first.
        mode: ``"auto"`` (vector sets when the server has them), ``"hash"`` or ``"vectorset"``.
        max_partition: vectors kept per partition (default :data:`DEFAULT_MAX_PARTITION_HASH` or
            :data:`DEFAULT_MAX_PARTITION_VECTORSET`); beyond it each add evicts one.
        quantization: vector-set storage: ``"noquant"`` (float32, exact scores), ``"q8"``,
            ``"bin"``.
        prefix: prepended to every key (entries and indexes).
        clock: seconds clock for index deadlines.
        breaker: the circuit breaker guarding calls.

    Raises:
        ConfigurationError: no usable embedder, an async one, or a bad option.

    Example::

        backend = RedisSemanticBackend(redis.Redis(), embedder=LocalEmbedder())

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: Any,
        *,
        embedder: Any,
        threshold: float = DEFAULT_THRESHOLD,
        guard: Guard | None = _GUARD,
        candidates: int = DEFAULT_CANDIDATES,
        mode: Mode = "auto",
        max_partition: int | None = None,
        quantization: Quantization = "noquant",
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        breaker = breaker if breaker is not None else CircuitBreaker()
        if isinstance(client, RedisBackend):
            self.exact = client
        else:
            self.exact = RedisBackend(client, prefix=prefix, breaker=breaker)
        super().__init__(
            embedder=embedder, prefix=self.exact.prefix, threshold=threshold, guard=guard,
            candidates=candidates, mode=mode, max_partition=max_partition,
            quantization=quantization, clock=clock, breaker=breaker, asynchronous=False,
        )  # fmt: skip
        self._async_embedder = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSemanticBackend:
        """Build from ``redis+semantic://[user:password@]host:6379/0`` (``rediss+semantic`` for
        TLS). Query parameters: ``threshold``, ``candidates``, ``mode``, ``max_partition``,
        ``quantization``, and every parameter ``redis://`` takes (``prefix``, ``db``, timeouts).

        Args:
            url: the URL.
            **options: ``embedder`` (default: ``configure(embedder=...)``), ``client_kwargs``
                (more redis-py options), and the constructor's other arguments.

        Raises:
            ConfigurationError: a malformed URL, an unknown parameter, or no embedder
                configured (the message says how).

        Example::

            configure(embedder=LocalEmbedder())
            backend = RedisSemanticBackend.from_url("redis+semantic://localhost:6379/0")
        """
        redis_url, kwargs, breaker = cls._options(url, options)
        exact = RedisBackend.from_url(
            redis_url,
            prefix=kwargs.pop("prefix", None),
            client_kwargs=kwargs.pop("client_kwargs", None),
            breaker=breaker,
        )
        return cls(exact, breaker=breaker, **kwargs)

    def _perform(self, op: Any) -> Any:
        if isinstance(op, Embed):
            return embed_sync(self.embedder, op.text)
        client = self.exact.client
        if isinstance(op, _Scan):
            return list(dict.fromkeys(client.scan_iter(match=op.pattern, count=_SCAN_COUNT)))
        pipe = client.pipeline(transaction=False)
        for command in op.commands:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)

    def _run(self, flow: Flow[Any], what: str) -> Any:
        with self._guard():
            try:
                return drive(flow, self._perform, _ERRORS)
            except _ERRORS as exc:
                raise self._failed(what, exc) from exc

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The entry under ``key`` (one ``GET``), or :data:`MISSING`."""
        return self.exact.get(key)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` (``SET ... PX``), without a vector."""
        self.exact.set(key, entry, ttl)

    def delete(self, key: str) -> bool:
        """Remove ``key``; its vector is dropped by the next search that meets it."""
        return self.exact.delete(key)

    def clear(self, prefix: str = "") -> int:
        """Remove entries and indexes under ``prefix``; return how many *entries* went."""
        return int(self._run(self._flows.clear(prefix), "clear"))

    def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """The most similar live entry added in ``context`` (by this embedder) with cosine
        similarity >= ``threshold`` (the backend's when ``None``) that the guard accepts, as
        ``(key, entry, similarity)``.

        Raises:
            BackendError: Redis or the embedder failed.
        """
        result: tuple[str, Entry, float] | None = self._run(
            self._flows.search(context, text, threshold), "search"
        )
        return result

    def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """Store ``entry`` and index the vector of ``text`` in ``context``'s partition, in one
        round trip (the vector of a search just made for ``text`` is reused)."""
        self._run(self._flows.add(key, entry, ttl, context, text), "add")

    def close(self) -> None:
        """Close the client if the backend built it."""
        self.exact.close()


class AsyncRedisSemanticBackend(_Base):
    """The async twin of :class:`RedisSemanticBackend` (``redis.asyncio`` clients, or an
    :class:`~llm_memo.backends.redis.AsyncRedisBackend`). ``embedder`` may be an
    :class:`~llm_memo.backends.semantic.AsyncEmbedder`, or a sync one (run in a worker thread).

    Example::

        backend = AsyncRedisSemanticBackend(redis.asyncio.Redis(), embedder=LocalEmbedder())

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: Any,
        *,
        embedder: Any,
        threshold: float = DEFAULT_THRESHOLD,
        guard: Guard | None = _GUARD,
        candidates: int = DEFAULT_CANDIDATES,
        mode: Mode = "auto",
        max_partition: int | None = None,
        quantization: Quantization = "noquant",
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        breaker = breaker if breaker is not None else CircuitBreaker()
        if isinstance(client, AsyncRedisBackend):
            self.exact = client
        else:
            self.exact = AsyncRedisBackend(client, prefix=prefix, breaker=breaker)
        super().__init__(
            embedder=embedder, prefix=self.exact.prefix, threshold=threshold, guard=guard,
            candidates=candidates, mode=mode, max_partition=max_partition,
            quantization=quantization, clock=clock, breaker=breaker, asynchronous=True,
        )  # fmt: skip
        self._async_embedder = is_async_embedder(embedder)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisSemanticBackend:
        """As :meth:`RedisSemanticBackend.from_url`."""
        redis_url, kwargs, breaker = cls._options(url, options)
        exact = AsyncRedisBackend.from_url(
            redis_url,
            prefix=kwargs.pop("prefix", None),
            client_kwargs=kwargs.pop("client_kwargs", None),
            breaker=breaker,
        )
        return cls(exact, breaker=breaker, **kwargs)

    async def _perform(self, op: Any) -> Any:
        if isinstance(op, Embed):
            return await embed_async(self.embedder, op.text, self._async_embedder)
        client = self.exact.client
        if isinstance(op, _Scan):
            names = [name async for name in client.scan_iter(match=op.pattern, count=_SCAN_COUNT)]
            return list(dict.fromkeys(names))
        pipe = client.pipeline(transaction=False)
        for command in op.commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)

    async def _run(self, flow: Flow[Any], what: str) -> Any:
        with self._guard():
            try:
                return await adrive(flow, self._perform, _ERRORS)
            except _ERRORS as exc:
                raise self._failed(what, exc) from exc

    async def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """As :meth:`RedisSemanticBackend.get`."""
        return await self.exact.get(key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """As :meth:`RedisSemanticBackend.set`."""
        await self.exact.set(key, entry, ttl)

    async def delete(self, key: str) -> bool:
        """As :meth:`RedisSemanticBackend.delete`."""
        return await self.exact.delete(key)

    async def clear(self, prefix: str = "") -> int:
        """As :meth:`RedisSemanticBackend.clear`."""
        return int(await self._run(self._flows.clear(prefix), "clear"))

    async def search(
        self, context: str, text: str, threshold: float | None
    ) -> tuple[str, Entry, float] | None:
        """As :meth:`RedisSemanticBackend.search`."""
        result: tuple[str, Entry, float] | None = await self._run(
            self._flows.search(context, text, threshold), "search"
        )
        return result

    async def add(self, key: str, entry: Entry, ttl: float | None, context: str, text: str) -> None:
        """As :meth:`RedisSemanticBackend.add`."""
        await self._run(self._flows.add(key, entry, ttl, context, text), "add")

    async def close(self) -> None:
        """As :meth:`RedisSemanticBackend.close`."""
        await self.exact.close()
