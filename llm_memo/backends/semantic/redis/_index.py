"""The Redis semantic index, as data: key names, record layouts, Lua scripts, reply parsing.

Pure code (no I/O) that both generated backends import: what a hash-index record and a
vector-set member's attributes hold, the scripts that add a member and evict beyond the cap,
the script that scores a hash index on the server (:data:`SEARCH_HASH`), how an index key is
named, and how a reply becomes ranked candidates. The backend in ``_async.py`` (and its
generated twin) only sends these to Redis and reads the replies.

The two add scripts share their shape (add, set the TTL, evict among a sample) but not their
commands (``HSET``/``HRANDFIELD`` vs ``VADD``/``VRANDMEMBER``); what they truly share is one
string, ``_EXPIRE``.

**Scoring a hash index on the server.** A hash record holds its vector as int8 (one scale per
vector, each component stored as ``round(x / scale) + 128``, padded with zeros to a multiple of
16), which Lua reads 16 bytes at a time with ``string.byte``; :data:`SEARCH_HASH` scores one
``HSCAN`` slice of the partition (:data:`SEARCH_SLICE` records), drops the expired ones
(``HDEL``) and returns only the best ``count`` (key, score, guard features) at or above the
threshold, with the cursor of the next slice. Nothing but those crosses the network; the cost is
the scripts' run time (one slice each, during which Redis serves no other client) and one round
trip per slice (see :data:`DEFAULT_MAX_PARTITION_HASH`). Every :data:`CHECK` components, the
records that can no longer reach the threshold (their partial score plus the product of the two
vectors' remaining norms, stored with each record, is below it) are dropped: exact, and what
makes a search that matches little cheap.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
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

#: Vectors kept per partition in the hash index (Redis 7): a search scores all of them on the
#: server, in script runs of :data:`SEARCH_SLICE` records (each blocks Redis: ~2 ms at most on a
#: loaded 2-core machine), so its Redis CPU time grows with the partition (~14 ms there at this
#: cap; benchmarks/semantic_redis7.py, docs/backends/redis.md). Vector sets (Redis 8) are the
#: path for larger partitions.
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
# A hash index record: deadline (inf: none) and time added, the int8 unit vector (its scale,
# then one byte per component, see the module docstring), the entry's key (length-prefixed) and
# the guard's features.
HEAD = struct.Struct("<ddf")
KEY_LEN = struct.Struct("<H")
#: Records one run of the scoring script reads (an ``HSCAN`` slice): the search calls it until the
#: cursor comes back to 0, so Redis is never blocked for more than one slice's scoring
#: (benchmarks/semantic_redis7.py), whatever the partition's size.
SEARCH_SLICE = 256
#: Components the scoring script reads per string.byte call (vectors are padded to a multiple).
CHUNK = 16
#: Every CHECK components the script drops the records that can no longer reach the threshold:
#: a record keeps, after its int8 components, the norm of the rest of its vector after each
#: such checkpoint (float32).
CHECK = 64
_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]"})
_QUANT_FLAG = {"noquant": "NOQUANT", "q8": "Q8", "bin": "BIN"}
# "hq": the int8 hash records scored on the server ("h", float16 records scored by the client,
# is what releases before it wrote: never read now, cleared like the others, expiring by itself).
_SUFFIX = {"hash": "hq", "noquant": "vn", "q8": "vq", "bin": "vb"}
# Index keys end like this; entry keys end with a hex digest, so they never do.
INDEX_KEY = re.compile(rb"~sem:[0-9a-f]{16}:(?:hq?|v[nqb])$")

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
      if #record < 20 then victim = name; break end
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


def _search_hash_script() -> str:
    """:data:`SEARCH_HASH`'s text: the scoring loop unrolled over :data:`CHUNK` components."""
    n = range(1, CHUNK + 1)
    qs = ", ".join(f"q{i}" for i in n)
    xs = ", ".join(f"x{i}" for i in n)
    dot = " + ".join(f"x{i} * q{i}" for i in n)
    return f"""
local padded, limit, now, count = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local checks = math.floor((padded - 1) / {CHECK})
local norms = {HEAD.size} + padded
local width = norms + 4 * checks
local scan = redis.call('HSCAN', KEYS[1], ARGV[7], 'COUNT', tonumber(ARGV[8]))
local records = scan[2]
local live, scales, expired = {{}}, {{}}, {{}}
for i = 2, #records, 2 do
  local r = records[i]
  if #r >= width + 2 then
    if struct.unpack('<d', r) > now then
      live[#live + 1] = r
      scales[#live] = struct.unpack('<f', r, 17)
    else
      local size = struct.unpack('<H', r, width + 1)
      expired[#expired + 1] = string.sub(r, width + 3, width + 2 + size)
    end
  end
end
local n, acc, qsum = #live, {{}}, 0
for i = 1, n do acc[i] = 0 end
for c = 0, padded - {CHUNK}, {CHUNK} do
  local {qs} = struct.unpack('<{"f" * CHUNK}', ARGV[1], 4 * c + 1)
  qsum = qsum + {" + ".join(f"q{i}" for i in n)}
  local at = {HEAD.size + 1} + c
  for i = 1, n do
    local {xs} = string.byte(live[i], at, at + {CHUNK - 1})
    acc[i] = acc[i] + {dot}
  end
  local done = c + {CHUNK}
  if done % {CHECK} == 0 and done < padded and n > 0 then
    -- Cauchy-Schwarz: the rest adds at most |query rest| * |vector rest|; drop the records
    -- that cannot reach the threshold any more.
    local k = done / {CHECK} - 1
    local rest = struct.unpack('<f', ARGV[6], 4 * k + 1)
    local at_norm = norms + 4 * k + 1
    local kept = 0
    for i = 1, n do
      local r = live[i]
      local bound = scales[i] * (acc[i] - 128 * qsum) + rest * struct.unpack('<f', r, at_norm)
      if bound >= limit - 1e-5 then
        kept = kept + 1
        live[kept], scales[kept], acc[kept] = r, scales[i], acc[i]
      end
    end
    for i = kept + 1, n do live[i], scales[i], acc[i] = nil, nil, nil end
    n = kept
  end
end
local top = {{}}
for i = 1, n do
  local score = scales[i] * (acc[i] - 128 * qsum)
  if score >= limit and (#top < count or score > top[#top][1]) then
    local j = #top
    if j == count then top[j] = nil; j = j - 1 end
    while j >= 1 and top[j][1] < score do top[j + 1] = top[j]; j = j - 1 end
    top[j + 1] = {{score, i}}
  end
end
for s = 1, #expired, 1000 do
  redis.call('HDEL', KEYS[1], unpack(expired, s, math.min(s + 999, #expired)))
end
local reply = {{scan[1], #expired}}
for _, hit in ipairs(top) do
  local r = live[hit[2]]
  local size = struct.unpack('<H', r, width + 1)
  reply[#reply + 1] = string.sub(r, width + 3, width + 2 + size)
  reply[#reply + 1] = string.format('%.9g', hit[1])
  reply[#reply + 1] = string.sub(r, width + 3 + size)
end
return reply
"""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1, for ``EVALSHA`` (``EVAL`` once when the server lacks it)."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


#: KEYS[1] index hash; ARGV: query (float32, padded), padded width, threshold, now, count, the
#: query's rest norms at the checkpoints (float32), HSCAN cursor, records per call. Replies
#: ``[next cursor, expired records removed, key, score, features, key, score, features...]``,
#: best first, for the slice of the partition that HSCAN returned.
SEARCH_HASH = Script(_search_hash_script())


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


def padded(dims: int) -> int:
    """``dims`` rounded up to a multiple of :data:`CHUNK` (what records and queries hold)."""
    return -(-dims // CHUNK) * CHUNK


def quantize(vector: Any) -> tuple[float, bytes]:
    """A unit vector as (scale, int8 components offset by 128 and zero-padded, then the float32
    norm of the rest after each checkpoint): ``x ~ scale * (byte - 128)``."""
    np = numpy()
    values = np.asarray(vector, dtype=np.float32)
    largest = float(np.abs(values).max()) if values.size else 0.0
    scale = largest / 127.0 if largest > 0 else 1.0
    codes = np.full(padded(len(values)), 128, dtype=np.uint8)
    codes[: len(values)] = np.clip(np.rint(values / scale), -127, 127).astype(np.int16) + 128
    stored = (codes.astype(np.float64) - 128) * scale  # what the script multiplies
    return scale, codes.tobytes() + rest_norms(stored).tobytes()


def rest_norms(vector: Any) -> Any:
    """The norm of ``vector`` after each checkpoint (:data:`CHECK`), as float32, rounded up a
    little so that a bound built from it is never too low."""
    np = numpy()
    checks = (len(vector) - 1) // CHECK
    tails = [float(np.linalg.norm(vector[CHECK * (k + 1) :])) for k in range(checks)]
    return (np.asarray(tails, dtype=np.float64) * (1 + 1e-6) + 1e-7).astype("<f4")


def hash_record(deadline: float, now: float, vector: Any, key: str, features: str) -> bytes:
    """One hash-index record (see :data:`HEAD`)."""
    raw_key = key.encode("utf-8", "surrogateescape")
    scale, codes = quantize(vector)
    return b"".join((
        HEAD.pack(deadline, now, scale), codes, KEY_LEN.pack(len(raw_key)), raw_key,
        features.encode(),
    ))  # fmt: skip


def search_args(vector: Any, limit: float, now: float, count: int) -> tuple[Any, ...]:
    """:data:`SEARCH_HASH`'s ARGV for a query ``vector``."""
    np = numpy()
    query = np.zeros(padded(len(vector)), dtype="<f4")
    query[: len(vector)] = vector
    norms = rest_norms(query.astype(np.float64)).tobytes()
    return (query.tobytes(), len(query), repr(float(limit)), repr(now), count, norms)


def unless_error(reply: Any) -> Any:
    """``reply``, raising it if it is an error reply, except that a key of another type (not
    our index) reads as nothing."""
    if isinstance(reply, Exception):
        if "WRONGTYPE" in str(reply):
            return None
        raise reply
    return reply


def ranked_hash(reply: Any) -> tuple[bytes, list[Candidate]]:
    """A :data:`SEARCH_HASH` reply as (next cursor, candidates best first); anything that is not
    ours (a key of another type) as the end of the scan with no candidates."""
    if not isinstance(reply, list) or len(reply) < 2:
        return b"0", []
    ranked: list[Candidate] = []
    for i in range(2, len(reply) - 2, 3):
        key, score, features = reply[i : i + 3]
        if isinstance(key, bytes) and key:
            text = features.decode("utf-8", "replace") if isinstance(features, bytes) else ""
            ranked.append((key, min(1.0, float(score)), text))
    cursor = reply[0]
    return (cursor if isinstance(cursor, bytes) else str(cursor).encode()), ranked


def best_of(ranked: Sequence[Candidate], count: int) -> list[Candidate]:
    """The ``count`` best of the slices' candidates, best first, each key once (``HSCAN`` may
    return a record twice while the hash is resized)."""
    seen: set[bytes] = set()
    out: list[Candidate] = []
    for candidate in sorted(ranked, key=lambda c: -c[1]):
        if candidate[0] not in seen:
            seen.add(candidate[0])
            out.append(candidate)
    return out[:count]


def vset_attributes(deadline: float, now: float, features: str) -> bytes:
    """A vector-set member's JSON attributes (``d`` 0: no deadline)."""
    return orjson.dumps({"d": deadline, "a": now, "g": features})


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
