"""The Redis semantic index, as data: key names, record layouts, Lua scripts, reply parsing.

Pure code (no I/O) that both generated backends import: what a hash-index record and a
vector-set member's attributes hold, the scripts that add a member and evict beyond the cap,
how an index key is named, and how a reply becomes ranked candidates
(:func:`rank_records` scores a hash index with numpy). The backend in ``_async.py`` (and its
generated twin) only sends these to Redis and reads the replies.

The two Lua scripts share their shape (add, set the TTL, evict among a sample) but not their
commands (``HSET``/``HRANDFIELD`` vs ``VADD``/``VRANDMEMBER``); what they truly share is one
string, ``_EXPIRE``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ....entry import Entry
from ....errors import CodecError, ConfigurationError
from .._search import partition_name
from ..vectors import numpy

__all__ = [
    "DEFAULT_MAX_PARTITION_HASH",
    "DEFAULT_MAX_PARTITION_VECTORSET",
    "Layout",
    "Mode",
    "Quantization",
]

#: Vectors kept per partition in the hash index (Redis 7): a search transfers and scores all of
#: them (about 0.9 MB for 1,000 MiniLM vectors; see docs/backends/semantic.md for timings).
DEFAULT_MAX_PARTITION_HASH = 2_000
#: Vectors kept per partition in a vector set (Redis 8): HNSW search grows slowly with size.
DEFAULT_MAX_PARTITION_VECTORSET = 100_000

Mode = Literal["auto", "hash", "vectorset"]
Quantization = Literal["noquant", "q8", "bin"]

#: Members sampled per eviction (as Redis samples keys for its own eviction).
SAMPLE = 16
#: Keys asked per SCAN step, and unlinked per pipeline, when clearing.
SCAN_COUNT = 1000
UNLINK_BATCH = 500
# A hash index record: deadline (inf: none) and time added, the float16 unit vector, the
# entry's key (length-prefixed) and the guard's features.
HEAD = struct.Struct("<dd")
KEY_LEN = struct.Struct("<H")
_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]"})
_QUANT_FLAG = {"noquant": "NOQUANT", "q8": "Q8", "bin": "BIN"}
_SUFFIX = {"hash": "h", "noquant": "vn", "q8": "vq", "bin": "vb"}
# Index keys end like this; entry keys end with a hex digest, so they never do.
INDEX_KEY = re.compile(rb"~sem:[0-9a-f]{16}:(?:h|v[nqb])$")

HAS_VADD = "if redis.call('COMMAND', 'INFO', 'VADD')[1] then return 1 end return 0"

# Shared by both index scripts: the index key's TTL follows the longest-lived member.
_EXPIRE = """
local ttl = tonumber(ARGV[1])
if ttl < 0 then redis.call('PERSIST', KEYS[1])
elseif existed == 0 then redis.call('PEXPIRE', KEYS[1], ttl)
else redis.call('PEXPIRE', KEYS[1], ttl, 'GT') end
local cap, now, sample = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
"""

# KEYS[1] index hash; ARGV: ttl ms (-1: none), cap, now, sample size, field, record.
ADD_HASH = (
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
ADD_VSET = (
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

#: A ranked candidate: (entry key as stored, similarity, the guard's stored features).
Candidate = tuple[bytes, float, str]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a backend's index keys live and how big a partition may grow.

    Raises:
        ConfigurationError: an unknown mode or quantization, or a cap below 1.
    """

    prefix: str
    embedder_name: str
    quantization: Quantization = "noquant"
    max_partition: int | None = None

    def __post_init__(self) -> None:
        if self.quantization not in _QUANT_FLAG:
            raise ConfigurationError(
                f"quantization must be 'noquant', 'q8' or 'bin', not {self.quantization!r}"
            )
        if self.max_partition is not None and self.max_partition < 1:
            raise ConfigurationError("candidates and max_partition must be at least 1")

    def cap(self, mode: Mode) -> int:
        """Members a partition of ``mode`` keeps before each add evicts one."""
        if self.max_partition is not None:
            return self.max_partition
        if mode == "vectorset":
            return DEFAULT_MAX_PARTITION_VECTORSET
        return DEFAULT_MAX_PARTITION_HASH

    def index(self, context: str, mode: Mode) -> str:
        """The index key of ``context``'s partition (its suffix names the shape)."""
        suffix = _SUFFIX["hash" if mode == "hash" else self.quantization]
        return f"{self.prefix}{partition_name(context, self.embedder_name)}:{suffix}"

    def pattern(self, prefix: str, root: str) -> str:
        """The SCAN pattern of every key under ``prefix`` (``root``, llm_memo's keys, for "")."""
        return (self.prefix + (prefix or root)).translate(_GLOB) + "*"

    @property
    def flag(self) -> str:
        """The ``VADD`` quantisation flag."""
        return _QUANT_FLAG[self.quantization]


def check_mode(mode: str) -> None:
    """Raises ConfigurationError unless ``mode`` is a :data:`Mode`."""
    if mode not in ("auto", "hash", "vectorset"):
        raise ConfigurationError(f"mode must be 'auto', 'hash' or 'vectorset', not {mode!r}")


def millis(seconds: float) -> int:
    """Seconds as whole milliseconds, at least 1 (``PX`` refuses 0)."""
    return max(1, int(seconds * 1000))


def checked(replies: list[Any]) -> list[Any]:
    """Raise the first error reply (the backend turns it into a BackendError)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def entry_of(data: Any) -> Entry | None:
    """A ``GET`` reply as an entry, or ``None`` (absent, or not an entry): what
    ``RedisBackend.get`` does with its reply, for the candidates a search reads in its own
    pipeline (so the check that pairs this with redis/_async.py finds a decode, not a copy of
    logic)."""
    if not isinstance(data, bytes):
        return None
    try:
        return Entry.from_bytes(data)
    except CodecError:
        return None


def hash_record(deadline: float, now: float, vector: Any, key: str, features: str) -> bytes:
    """One hash-index record (see :data:`HEAD`)."""
    raw_key = key.encode("utf-8", "surrogateescape")
    return b"".join((
        HEAD.pack(deadline, now), vector.astype("<f2").tobytes(),
        KEY_LEN.pack(len(raw_key)), raw_key, features.encode(),
    ))  # fmt: skip


def vset_attributes(deadline: float, now: float, features: str) -> bytes:
    """A vector-set member's JSON attributes (``d`` 0: no deadline)."""
    return orjson.dumps({"d": deadline, "a": now, "g": features})


def _tail(record: bytes, width: int) -> tuple[bytes, str]:
    """The key and guard features after a hash record's vector (``b""`` if truncated)."""
    (size,) = KEY_LEN.unpack_from(record, width)
    start = width + KEY_LEN.size
    key = record[start : start + size]
    if len(key) != size:
        return b"", ""
    return key, record[start + size :].decode("utf-8", "replace")


def rank_records(
    values: Any, vector: Any, limit: float, now: float
) -> tuple[list[Candidate], list[bytes]]:
    """Score a hash index's records (an ``HVALS`` reply): candidates at or above ``limit``,
    best first, and the keys of expired records (to prune).

    ``HVALS``, not ``HGETALL``: each record carries its key, and parsing the reply is most of a
    search's cost, so half the items is nearly half the time.
    """
    if not isinstance(values, list) or not values:
        return [], []  # empty, or not our hash (an error reply): nothing to match
    np = numpy()
    width = HEAD.size + 2 * len(vector)
    # Too short to be ours: skipped here, and the first to go when the partition is full.
    usable = [v for v in values if len(v) >= width + 2]
    if not usable:
        return [], []
    heads = np.frombuffer(b"".join(v[: HEAD.size] for v in usable), dtype="<f8")
    matrix = np.frombuffer(b"".join(v[HEAD.size : width] for v in usable), dtype="<f2").reshape(
        len(usable), len(vector)
    )
    scores = matrix.astype(np.float32) @ vector
    alive = heads[0::2] > now
    prune = [_tail(usable[i], width)[0] for i in np.flatnonzero(~alive)]
    hits = np.flatnonzero(alive & (scores >= limit))
    hits = hits[np.argsort(-scores[hits], kind="stable")]
    ranked = []
    for i in hits:
        key, features = _tail(usable[i], width)
        if key:
            ranked.append((key, float(min(1.0, scores[i])), features))
    return ranked, [key for key in prune if key]


def vsim_query(index: str, vector: Any, count: int, now: float) -> tuple[Any, ...]:
    """The ``VSIM`` command for the ``count`` nearest live members of ``index``."""
    live = f".d == 0 or .d > {now!r}"
    blob = vector.astype("<f4").tobytes()
    return ("VSIM", index, "FP32", blob, "WITHSCORES", "COUNT", count, "FILTER", live)


def similar(reply: Any, limit: float) -> list[tuple[bytes, float]]:
    """A ``VSIM ... WITHSCORES`` reply as (element, cosine) at or above ``limit``, whether
    redis-py parsed it or not (VSIM scores are (1 + cosine) / 2)."""
    if isinstance(reply, dict):
        pairs = [(bytes(k), float(v)) for k, v in reply.items()]
    elif isinstance(reply, list):
        pairs = [(bytes(reply[i]), float(reply[i + 1])) for i in range(0, len(reply) - 1, 2)]
    else:
        pairs = []  # an error reply: no such set (or not a set), nothing to match
    scored = [(element, 2.0 * score - 1.0) for element, score in pairs]
    return [(element, min(1.0, cosine)) for element, cosine in scored if cosine >= limit]


def stored_features(raw: Any) -> str:
    """The guard features in a ``VGETATTR`` reply (``""`` when absent or unreadable)."""
    try:
        return str(orjson.loads(raw).get("g", "")) if isinstance(raw, bytes) else ""
    except (orjson.JSONDecodeError, AttributeError):
        return ""


def accepted(
    ranked: Sequence[Candidate], allows: Any, wanted: str | None, candidates: int
) -> list[tuple[bytes, float]]:
    """The first ``candidates`` of ``ranked`` the guard accepts (all of them without a guard)."""
    chosen = [
        (element, score)
        for element, score, features in ranked
        if wanted is None or allows(wanted, features)
    ]
    return chosen[:candidates]
