"""RedisSemanticBackend / AsyncRedisSemanticBackend against real servers: Redis 7 (no modules:
hash index scored client-side) and Redis 8.2 (vector sets), plus the hash path forced on Redis 8.
The conformance suite for the exact part, similarity within a partition only, threshold, guard,
native TTL and pruning of dead members, the partition cap, clearing, the decorator's isolation
matrix with the real offline model, URLs, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio
import redis.cluster

from llm_memo import BackendError, ConfigurationError, configure, llm_cached
from llm_memo.backends import MISSING, AsyncSemantic, Semantic, from_url
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.redis import RedisBackend
from llm_memo.backends.semantic import DEFAULT_THRESHOLD, LexicalGuard, partition_name
from llm_memo.backends.semantic.redis import (
    DEFAULT_MAX_PARTITION_HASH,
    DEFAULT_MAX_PARTITION_VECTORSET,
    AsyncRedisSemanticBackend,
    RedisSemanticBackend,
    _index,
)
from llm_memo.backends.semantic.redis._url import split_url
from llm_memo.testing import FakeClock
from tests.servers import RedisCluster, RedisServer, free_port

from .conformance import BackendConformance, SyncOverAsync, make_entry, make_key
from .test_embedders import (
    AsyncToyEmbedder,
    ToyEmbedder,
    async_isolation,
    isolation_matrix,
    local_embedder,
)

pytestmark = pytest.mark.redis

CTX = make_key("ns", "mod.ask", "c" * 32)
KEY_A = make_key("ns", "mod.ask", "a" * 32)
KEY_B = make_key("ns", "mod.ask", "b" * 32)
RESET = "how do i reset my account password"
RESET2 = "how do i reset my password for my account"
OTHER = "what is the boiling point of water"


def semantic_url(url: str) -> str:
    return url.replace("redis://", "redis+semantic://", 1)


def _fresh(server: RedisServer, db: int) -> str:
    server.ensure_running()
    url = server.url_for_db(db)
    raw = redis.Redis.from_url(url)
    raw.flushdb()
    raw.close()
    return url


# -- conformance (the exact part), sync and async, Redis 7 and 8 -----------------------------------


class _Server:
    server = "redis_server"
    db = 8

    @pytest.fixture
    def url(self, request: pytest.FixtureRequest) -> str:
        return _fresh(request.getfixturevalue(self.server), self.db)

    @pytest.fixture
    def plant(self, url: str) -> Iterator[Callable[[str, bytes], None]]:
        raw = redis.Redis.from_url(url)

        def plant(key: str, data: bytes) -> None:
            raw.set(key, data)

        yield plant
        raw.close()


class TestRedis7Conformance(_Server, BackendConformance):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisSemanticBackend]:
        backend = RedisSemanticBackend.from_url(semantic_url(url), embedder=ToyEmbedder())
        yield backend
        backend.close()


class TestRedis7AsyncConformance(_Server, BackendConformance):
    db = 9

    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:
        inner = AsyncRedisSemanticBackend.from_url(semantic_url(url), embedder=AsyncToyEmbedder())
        backend = SyncOverAsync(inner)
        yield backend
        backend.close()


class TestRedis8Conformance(_Server, BackendConformance):
    server = "redis8_server"

    @pytest.fixture
    def backend(self, url: str) -> Iterator[RedisSemanticBackend]:
        backend = RedisSemanticBackend.from_url(semantic_url(url), embedder=ToyEmbedder())
        yield backend
        backend.close()


class TestRedis8AsyncConformance(_Server, BackendConformance):
    server = "redis8_server"
    db = 9

    @pytest.fixture
    def backend(self, url: str) -> Iterator[SyncOverAsync]:
        inner = AsyncRedisSemanticBackend.from_url(semantic_url(url), embedder=ToyEmbedder())
        backend = SyncOverAsync(inner)
        yield backend
        backend.close()


# -- behaviour on every index shape ----------------------------------------------------------------


@dataclass
class Setup:
    """A backend under test, a raw client on the same database, and the expected index shape."""

    backend: RedisSemanticBackend
    raw: redis.Redis
    shape: str  # "hash" or "vectorset"
    toy: ToyEmbedder

    def index(self, context: str = CTX, embedder: str = "toy-v1") -> str:
        suffix = "hq" if self.shape == "hash" else "vn"
        return f"{partition_name(context, embedder)}:{suffix}"

    def size(self, context: str = CTX) -> int:
        name = self.index(context)
        if self.shape == "hash":
            return int(self.raw.hlen(name))
        return int(self.raw.execute_command("VCARD", name))  # type: ignore[no-untyped-call]

    def members(self, context: str = CTX) -> set[str]:
        name = self.index(context)
        if self.shape == "hash":
            return {f.decode() for f in self.raw.hkeys(name) if isinstance(f, bytes)}
        if not self.raw.exists(name):
            return set()
        members = self.raw.execute_command("VRANDMEMBER", name, 1000)  # type: ignore[no-untyped-call]
        return {bytes(m).decode() for m in members}

    def make(self, **kwargs: Any) -> RedisSemanticBackend:
        options: dict[str, Any] = {"embedder": self.toy, "threshold": 0.8, "guard": None}
        if self.shape == "hash":
            options["mode"] = "hash"
        options.update(kwargs)
        return RedisSemanticBackend(self.raw, **options)


def _setup(server: RedisServer, mode: str, shape: str) -> Setup:
    raw = redis.Redis.from_url(_fresh(server, 10))
    toy = ToyEmbedder()
    backend = RedisSemanticBackend(raw, embedder=toy, threshold=0.8, guard=None, mode=mode)  # type: ignore[arg-type]
    return Setup(backend, raw, shape, toy)


@pytest.fixture(
    params=[("redis_server", "auto", "hash"), ("redis8_server", "auto", "vectorset"),
            ("redis8_server", "hash", "hash")],
    ids=["redis7-hash", "redis8-vectorset", "redis8-hash"],
)  # fmt: skip
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    server_name, mode, shape = request.param
    made = _setup(request.getfixturevalue(server_name), mode, shape)
    yield made
    made.raw.close()


@pytest.fixture
def hash7(redis_server: RedisServer) -> Iterator[Setup]:
    made = _setup(redis_server, "auto", "hash")
    yield made
    made.raw.close()


@pytest.fixture
def vset8(redis8_server: RedisServer) -> Iterator[Setup]:
    made = _setup(redis8_server, "auto", "vectorset")
    yield made
    made.raw.close()


class TestSearch:
    def test_protocols(self, setup: Setup) -> None:
        """Both classes are semantic backends to the decorator."""
        assert isinstance(setup.backend, Semantic)
        assert isinstance(
            AsyncRedisSemanticBackend(redis.asyncio.Redis(), embedder=ToyEmbedder()), AsyncSemantic
        )

    def test_mode_is_detected_once(self, setup: Setup) -> None:
        """auto means vector sets where the server has VADD, the hash index elsewhere."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert setup.backend.mode == setup.shape
        assert setup.raw.type(setup.index()) == (b"hash" if setup.shape == "hash" else b"vectorset")

    def test_similar_text_hits_with_its_similarity(self, setup: Setup) -> None:
        """A similar text in the same context finds the entry, its key and the cosine score."""
        entry = make_entry(b'"reset answer"')
        setup.backend.add(KEY_A, entry, 60, CTX, RESET)
        setup.backend.add(KEY_B, make_entry(b'"water"'), 60, CTX, OTHER)
        found = setup.backend.search(CTX, RESET2, None)
        assert found is not None
        key, got, similarity = found
        assert (key, got) == (KEY_A, entry)
        exact = float(
            sum(a * b for a, b in zip(*setup.toy([RESET, RESET2]), strict=True))
            / (
                sum(a * a for a in setup.toy([RESET])[0])
                * sum(b * b for b in setup.toy([RESET2])[0])
            )
            ** 0.5
        )
        assert similarity == pytest.approx(exact, abs=2e-3)  # float16 / float32 storage
        assert setup.backend.search(CTX, "completely unrelated words here", None) is None

    def test_threshold_per_backend_and_per_call(self, setup: Setup) -> None:
        """The call's threshold wins; None means the backend's default."""
        strict = setup.make(threshold=0.99)
        strict.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert strict.search(CTX, RESET2, None) is None
        assert strict.search(CTX, RESET2, 0.5) is not None
        assert setup.make(threshold=DEFAULT_THRESHOLD).threshold == DEFAULT_THRESHOLD

    def test_never_crosses_contexts(self, setup: Setup) -> None:
        """Identical text in another context is no match: each context is its own key."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert setup.backend.search(make_key("other", "mod.ask", "c" * 32), RESET, None) is None
        assert setup.backend.search(CTX[:-1] + "d", RESET, None) is None

    def test_never_crosses_embedders(self, setup: Setup) -> None:
        """Another embedder (same dimension) searches another index key."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        other = setup.make(embedder=ToyEmbedder("toy-v2"))
        assert other.search(CTX, RESET, -1.0) is None
        assert other.get(KEY_A) is not MISSING  # the exact part is shared

    def test_a_miss_embeds_once(self, setup: Setup) -> None:
        """search then add for the same text make one embedding call."""
        assert setup.backend.search(CTX, RESET, None) is None
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert setup.toy.calls == 1

    def test_set_is_exact_only(self, setup: Setup) -> None:
        """An entry stored with set() (no text) is found by key, never by similarity."""
        setup.backend.set(KEY_A, make_entry(), 60)
        assert setup.backend.get(KEY_A) is not MISSING
        assert setup.backend.search(CTX, RESET, -1.0) is None

    def test_guard_passes_over_refused_candidates(self, setup: Setup) -> None:
        """With the guard, a refused best candidate gives way to the next one."""
        guarded = setup.make(guard=LexicalGuard(), threshold=0.5)
        guarded.add(KEY_A, make_entry(b'"5"'), 60, CTX, "pace for running 5 miles")
        guarded.add(KEY_B, make_entry(b'"50"'), 60, CTX, "pace for running 50 miles")
        found = guarded.search(CTX, "good pace for running 50 miles", None)
        assert found is not None
        assert found[0] == KEY_B
        assert guarded.search(CTX, "good pace for running 7 miles", None) is None

    def test_ttl_zero_stores_nothing(self, setup: Setup) -> None:
        """ttl <= 0 removes any previous entry and indexes nothing."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        setup.backend.add(KEY_A, make_entry(), 0, CTX, RESET)
        assert setup.backend.get(KEY_A) is MISSING
        assert setup.backend.search(CTX, RESET, None) is None


class TestExpiryAndPruning:
    def test_expired_entries_are_not_found(self, setup: Setup) -> None:
        """Entries expire natively; their vectors are skipped, then pruned."""
        setup.backend.add(KEY_A, make_entry(), 0.3, CTX, RESET)
        setup.backend.add(KEY_B, make_entry(), None, CTX, OTHER)
        assert setup.backend.search(CTX, RESET2, None) is not None
        time.sleep(0.45)
        assert setup.backend.get(KEY_A) is MISSING
        assert setup.backend.search(CTX, RESET2, None) is None
        if setup.shape == "hash":  # every expired record read is dropped
            assert setup.members() == {KEY_B}

    def test_deleted_entries_are_pruned_when_met(self, setup: Setup) -> None:
        """A vector whose entry is gone is skipped and removed by the search that meets it."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        setup.backend.add(KEY_B, make_entry(), 60, CTX, OTHER)
        assert setup.backend.delete(KEY_A)
        assert setup.members() == {KEY_A, KEY_B}
        assert setup.backend.search(CTX, RESET2, None) is None
        assert setup.members() == {KEY_B}

    def test_index_lives_as_long_as_its_longest_entry(self, setup: Setup) -> None:
        """The index key takes the longest TTL of its members; no TTL makes it persistent."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert 59_000 < setup.raw.pttl(setup.index()) <= 60_000
        setup.backend.add(KEY_B, make_entry(), 5, CTX, OTHER)
        assert setup.raw.pttl(setup.index()) > 59_000  # never shortened
        setup.backend.add(make_key(digest="e" * 32), make_entry(), None, CTX, "no expiry")
        assert setup.raw.pttl(setup.index()) == -1

    def test_partition_cap_keeps_the_newest(self, setup: Setup) -> None:
        """Beyond max_partition, each add evicts one older member; the newest always stays."""
        capped = setup.make(max_partition=5)
        keys = [make_key(digest=f"{i:032d}") for i in range(8)]
        for i, key in enumerate(keys):
            capped.add(key, make_entry(), 60, CTX, f"question number {i} about topic {i}")
            assert keys[i] in setup.members()
        assert setup.size() == 5
        assert capped.get(keys[0]) is not MISSING  # eviction only unindexes the entry

    def test_eviction_prefers_expired_members(self, setup: Setup) -> None:
        """A full partition drops an expired member before any live one."""
        capped = setup.make(max_partition=3)
        capped.add(KEY_A, make_entry(), 0.2, CTX, "first question")
        capped.add(KEY_B, make_entry(), None, CTX, "second question")
        third = make_key(digest="3" * 32)
        capped.add(third, make_entry(), None, CTX, "third question")
        time.sleep(0.3)
        fourth = make_key(digest="4" * 32)
        capped.add(fourth, make_entry(), None, CTX, "fourth question")
        assert setup.members() == {KEY_B, third, fourth}

    def test_default_caps(self, setup: Setup) -> None:
        """The documented per-shape defaults."""
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        expected = (
            DEFAULT_MAX_PARTITION_HASH if setup.shape == "hash" else DEFAULT_MAX_PARTITION_VECTORSET
        )
        assert setup.backend._layout.cap(setup.backend.mode) == expected


class TestClear:
    def test_clear_counts_entries_and_drops_indexes(self, setup: Setup) -> None:
        """clear(namespace) removes entries and their index keys; it counts entries only."""
        kept_ctx = make_key("keep", "mod.ask", "c" * 32)
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        setup.backend.add(KEY_B, make_entry(), 60, CTX, OTHER)
        setup.backend.add(make_key("keep", "mod.ask", "f" * 32), make_entry(), 60, kept_ctx, RESET)
        assert setup.backend.clear("llm_memo:2:ns:") == 2
        assert setup.raw.keys("llm_memo:2:ns:*") == []
        assert setup.backend.search(kept_ctx, RESET, None) is not None
        assert setup.backend.clear() == 1
        assert setup.raw.dbsize() == 0

    def test_clear_leaves_other_data(self, setup: Setup) -> None:
        """Keys that are not llm_memo's are never touched."""
        setup.raw.set("someone-else", b"x")
        setup.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert setup.backend.clear() == 1
        assert setup.raw.get("someone-else") == b"x"


class TestIndexDetails:
    def test_malformed_records_are_skipped_then_evicted(self, hash7: Setup) -> None:
        """A hash record that is not ours (too short) is skipped, and evicted first."""
        setup = hash7
        capped = setup.make(max_partition=2)
        capped.add(KEY_A, make_entry(), 60, CTX, RESET)
        setup.raw.hset(setup.index(), "junk", b"short")
        assert capped.search(CTX, RESET2, None) is not None
        capped.add(KEY_B, make_entry(), 60, CTX, OTHER)
        assert setup.members() == {KEY_A, KEY_B}

    def test_quantized_vector_sets(self, vset8: Setup) -> None:
        """Q8 vector sets work too (with approximate scores), under their own key."""
        setup = vset8
        q8 = setup.make(quantization="q8")
        q8.add(KEY_A, make_entry(), 60, CTX, RESET)
        found = q8.search(CTX, RESET2, None)
        assert found is not None
        assert found[0] == KEY_A
        assert setup.raw.exists(setup.index().replace(":vn", ":vq"))

    def test_prefix_applies_to_indexes(self, setup: Setup) -> None:
        """A key prefix covers entries and index keys alike."""
        prefixed = setup.make(prefix="app:")
        prefixed.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert setup.raw.exists("app:" + KEY_A)
        assert setup.raw.exists("app:" + setup.index())
        assert prefixed.search(CTX, RESET2, None) is not None
        assert prefixed.clear() == 1


# -- the hash index scored on the server (Redis 7) -------------------------------------------------


class TableEmbedder:
    """Text ``"v<i>"`` -> the i-th row of a matrix (anything else: the query row)."""

    def __init__(self, vectors: np.ndarray, query: np.ndarray) -> None:
        self.name = f"table-{vectors.shape[1]}"
        self.dimension = int(vectors.shape[1])
        self.vectors, self.query = vectors, query

    def __call__(self, texts: list[str]) -> list[list[float]]:
        rows = [self.vectors[int(t[1:])] if t.startswith("v") else self.query for t in texts]
        return [[float(x) for x in row] for row in rows]


def _random_unit(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    matrix = rng.standard_normal((n, dims))
    unit: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


class TestServerSideScoring:
    @pytest.mark.parametrize("shape", ["hash", "vectorset"])
    @pytest.mark.parametrize("seed", range(8))
    def test_same_top_hit_as_client_side_scoring(
        self, shape: str, seed: int, redis_server: RedisServer, redis8_server: RedisServer
    ) -> None:
        """Random unit vectors of several widths (padded or not): the hash script's and the
        vector set's best hit is the exact client-side best, with its cosine (the hash path
        to its int8 precision)."""
        rng = np.random.default_rng(seed)
        dims = int(rng.choice([3, 16, 37, 384]))
        n = int(rng.integers(1, 120))
        vectors, query = _random_unit(rng, n, dims), _random_unit(rng, 1, dims)[0]
        server = redis_server if shape == "hash" else redis8_server
        raw = redis.Redis.from_url(_fresh(server, 12))
        backend = RedisSemanticBackend(
            raw, embedder=TableEmbedder(vectors, query), threshold=-1.0, guard=None, candidates=1
        )
        keys = [make_key(digest=f"{i:032d}") for i in range(n)]
        for i, key in enumerate(keys):
            backend.add(key, make_entry(), 60, CTX, f"v{i}")
        assert backend.mode == shape
        exact = vectors @ query
        found = backend.search(CTX, "query", None)
        raw.close()
        assert found is not None
        best = int(np.argmax(exact))
        runner_up = float(np.sort(exact)[-2]) if n > 1 else -2.0
        tolerance = 0.01 if shape == "hash" else 1e-4
        if exact[best] - runner_up > 2 * tolerance:  # else either is a right answer
            assert found[0] == keys[best]
        assert found[2] == pytest.approx(float(exact[keys.index(found[0])]), abs=tolerance)

    def test_only_the_best_cross_the_network(self, hash7: Setup) -> None:
        """One script run replies with at most ``count`` candidates, best first, above the
        limit, and the cursor of the next slice."""
        backend = hash7.make(candidates=2)
        for i in range(30):
            backend.add(make_key(digest=f"{i:032d}"), make_entry(), 60, CTX, f"reset password {i}")
        assert backend.search(CTX, "reset password", None) is not None  # loads the script
        vector = backend._embed("reset password")

        def run(limit: float) -> tuple[bytes, list[_index.Candidate]]:
            args = _index.search_args(vector, limit, time.time(), 3)
            sha = _index.SEARCH_HASH.sha
            return _index.ranked_hash(hash7.raw.evalsha(sha, 1, hash7.index(), *args, 0, 1000))

        cursor, ranked = run(0.1)
        assert cursor == b"0"
        assert len(ranked) == 3
        scores = [score for _, score, _ in ranked]
        assert scores == sorted(scores, reverse=True)
        assert run(0.999) == (b"0", [])

    def test_a_search_reads_the_partition_slice_by_slice(
        self, hash7: Setup, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Small slices (many script runs, each blocking Redis briefly) find the same best."""
        backend = hash7.make(candidates=1)
        for i in range(40):
            backend.add(make_key(digest=f"{i:032d}"), make_entry(), 60, CTX, f"topic {i} words")
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        whole = backend.search(CTX, RESET2, None)
        monkeypatch.setattr(_index, "SEARCH_SLICE", 3)
        calls = hash7.raw.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        assert backend.search(CTX, RESET2, None) == whole
        assert whole is not None
        assert whole[0] == KEY_A
        after = hash7.raw.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert after - calls > 5

    def test_merging_slices_keeps_each_key_once(self) -> None:
        ranked = [(b"a", 0.9, ""), (b"b", 0.95, ""), (b"a", 0.9, ""), (b"c", 0.8, "")]
        assert _index.best_of(ranked, 2) == [(b"b", 0.95, ""), (b"a", 0.9, "")]

    def test_the_script_is_cached_and_reloaded(self, hash7: Setup) -> None:
        """EVALSHA; after SCRIPT FLUSH (a restart, a failover) one EVAL loads it again."""

        def calls(name: str) -> int:
            stats = hash7.raw.info("commandstats")
            return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

        hash7.backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        hash7.raw.script_flush()
        evals, shas = calls("eval"), calls("evalsha")
        assert hash7.backend.search(CTX, RESET2, None) is not None
        assert (calls("eval"), calls("evalsha")) == (evals + 1, shas + 1)  # refused, then EVAL
        assert hash7.backend.search(CTX, RESET2, None) is not None
        assert (calls("eval"), calls("evalsha")) == (evals + 1, shas + 2)

    def test_the_script_drops_expired_records(self, hash7: Setup) -> None:
        backend = hash7.make()
        backend.add(KEY_A, make_entry(), 0.2, CTX, RESET)
        backend.add(KEY_B, make_entry(), 60, CTX, OTHER)
        time.sleep(0.3)
        assert backend.search(CTX, RESET2, None) is None
        assert hash7.members() == {KEY_B}

    def test_an_index_of_another_type_is_nothing(self, hash7: Setup) -> None:
        """A key of another type where the index should be: no match, no error."""
        hash7.raw.set(hash7.index(), b"not a hash")
        assert hash7.backend.search(CTX, RESET, None) is None

    def test_records_of_earlier_releases_are_not_read(self, hash7: Setup) -> None:
        """The float16 ':h' index of earlier releases is left alone (and cleared by clear())."""
        old = hash7.index().removesuffix("q")
        hash7.raw.hset(old, KEY_A, b"x" * 64)
        hash7.backend.set(KEY_A, make_entry(), 60)
        assert hash7.backend.search(CTX, RESET, None) is None
        assert hash7.backend.clear() == 1
        assert not hash7.raw.exists(old)


# -- through the decorator, with the real offline model --------------------------------------------


class TestDecorator:
    @pytest.mark.parametrize("server_name", ["redis_server", "redis8_server"])
    def test_isolation_matrix_with_the_offline_model(
        self, server_name: str, request: pytest.FixtureRequest
    ) -> None:
        """Paraphrase hit with its similarity; no hit across model, parameter, system prompt,
        namespace or tenant, even for identical text (the backend built from its URL)."""
        url = _fresh(request.getfixturevalue(server_name), 11)
        configure(embedder=local_embedder())
        isolation_matrix(semantic_url(url))

    @pytest.mark.parametrize("server_name", ["redis_server", "redis8_server"])
    def test_async_functions(self, server_name: str, request: pytest.FixtureRequest) -> None:
        """Async functions get the async backend from the same URL."""
        url = _fresh(request.getfixturevalue(server_name), 11)
        backend = AsyncRedisSemanticBackend.from_url(semantic_url(url), embedder=local_embedder())

        async def run() -> None:
            try:
                await async_isolation(backend)
            finally:
                await backend.close()  # on the loop that owns the connections

        asyncio.run(run())

    def test_guard_refuses_a_negation_the_model_scores_high(
        self, redis8_server: RedisServer
    ) -> None:
        """The model scores these above the threshold; the guard (default on) refuses."""
        url = _fresh(redis8_server, 11)
        backend = RedisSemanticBackend.from_url(semantic_url(url), embedder=local_embedder())
        yes = "Which programming languages are statically typed?"
        no = "Which programming languages are not statically typed?"
        backend.add(KEY_A, make_entry(), 60, CTX, yes)
        assert backend.search(CTX, no, None) is None
        unguarded = RedisSemanticBackend.from_url(
            semantic_url(url), embedder=local_embedder(), guard=None
        )
        found = unguarded.search(CTX, no, None)
        assert found is not None
        assert found[2] > DEFAULT_THRESHOLD


class TestCluster:
    def test_partitions_on_a_cluster(self, redis_cluster: RedisCluster) -> None:
        """Each partition is one key, so the index works on Redis Cluster too (hash shape)."""
        raw = redis.cluster.RedisCluster(host=redis_cluster.host, port=redis_cluster.port)
        raw.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        backend = RedisSemanticBackend(
            RedisBackend.from_url(redis_cluster.url), embedder=ToyEmbedder(), threshold=0.8,
            guard=None,
        )  # fmt: skip
        keys = [make_key("spread", "f", f"{i:032d}") for i in range(10)]
        contexts = [make_key("spread", "f", f"c{i:031d}") for i in range(10)]
        for key, context in zip(keys, contexts, strict=True):
            backend.add(key, make_entry(), 60, context, RESET)
        assert backend.mode == "hash"
        found = backend.search(contexts[3], RESET2, None)
        assert found is not None
        assert found[0] == keys[3]
        assert backend.clear("llm_memo:2:spread:") == 10
        backend.close()
        raw.close()


# -- URLs, options, failures -----------------------------------------------------------------------


class TestUrls:
    def test_options_from_the_url(self, redis_server: RedisServer) -> None:
        """Our query parameters configure the index; the rest go to the redis:// parser."""
        url = semantic_url(_fresh(redis_server, 12))
        backend = RedisSemanticBackend.from_url(
            url + "?threshold=0.9&mode=hash&max_partition=10&candidates=3&quantization=q8"
            "&prefix=app:&socket_timeout=2",
            embedder=ToyEmbedder(),
        )
        layout = backend._layout
        assert (backend.threshold, backend.mode, layout.max_partition, backend._candidates) == (
            0.9, "hash", 10, 3,
        )  # fmt: skip
        assert (layout.quantization, layout.prefix, backend.exact.prefix) == ("q8", "app:", "app:")
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)  # the password in the URL works
        assert backend.search(CTX, RESET, None) is not None
        backend.close()

    def test_schemes(self) -> None:
        """redis+semantic -> redis, rediss+semantic -> rediss (TLS), for the entries."""
        assert split_url("redis+semantic://:pw@h:1/2?threshold=0.5&db=3") == (
            "redis+semantic", "redis://:pw@h:1/2?db=3", {"threshold": 0.5},
        )  # fmt: skip
        assert split_url("rediss+semantic://h/0")[1] == "rediss://h/0"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("redis://localhost/0", "not a semantic Redis URL"),
            ("redis+semantic://localhost/0?nope=1", "unknown query parameter 'nope'"),
            ("redis+semantic://localhost/0?threshold=high", "not valid"),
            ("redis+semantic://localhost/0?mode=fast", "mode must be"),
            ("redis+semantic://localhost/0?quantization=f16", "quantization must be"),
            ("redis+semantic://localhost/0?max_partition=0", "at least 1"),
            ("redis+semantic://localhost/0?threshold=2", "threshold must be"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        """Malformed URLs and options are ConfigurationErrors that say what is wrong."""
        with pytest.raises(ConfigurationError, match=message):
            RedisSemanticBackend.from_url(url, embedder=ToyEmbedder())

    def test_registry_and_configured_embedder(self) -> None:
        """llm_memo.backends.from_url finds both classes; without an embedder configured the
        error names configure(embedder=...)."""
        with pytest.raises(ConfigurationError, match=r"configure\(embedder="):
            from_url("redis+semantic://localhost/0")
        configure(embedder=ToyEmbedder())
        assert isinstance(from_url("redis+semantic://localhost/0"), RedisSemanticBackend)
        backend = from_url("redis+semantic://localhost/0", asynchronous=True)
        assert isinstance(backend, AsyncRedisSemanticBackend)

    def test_ready_backend_and_clients(self, redis_server: RedisServer) -> None:
        """A ready RedisBackend is wrapped as is; a client decoding to str is refused."""
        exact = RedisBackend.from_url(_fresh(redis_server, 12), prefix="x:")
        backend = RedisSemanticBackend(exact, embedder=ToyEmbedder(), guard=None, threshold=0.8)
        assert backend.exact is exact
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None
        with pytest.raises(ConfigurationError, match="decode"):
            RedisSemanticBackend(redis.Redis(decode_responses=True), embedder=ToyEmbedder())
        with pytest.raises(ConfigurationError, match="is async"):
            RedisSemanticBackend(redis.Redis(), embedder=AsyncToyEmbedder())
        assert repr(backend) == (
            "RedisSemanticBackend(embedder='toy-v1', mode='hash', threshold=0.8)"
        )


class TestOutage:
    def test_unreachable_server_fails_open(self) -> None:
        """Nothing listening: search and add raise BackendError (breaker counted), and the
        decorator calls the function."""
        client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
        breaker = CircuitBreaker(failures=100)
        backend = RedisSemanticBackend(client, embedder=ToyEmbedder(), breaker=breaker)
        with pytest.raises(BackendError):
            backend.search(CTX, RESET, None)
        with pytest.raises(BackendError):
            backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        calls = []

        @llm_cached(backend=backend)
        def ask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(1)
            return "x"

        assert ask("m", [{"role": "user", "content": RESET}]) == "x"
        assert calls == [1]

    def test_server_killed_and_back(self, redis_server: RedisServer) -> None:
        """After an outage the same backend works again (once the breaker lets it)."""
        url = _fresh(redis_server, 13)
        backend = RedisSemanticBackend.from_url(
            semantic_url(url), embedder=ToyEmbedder(), guard=None, threshold=0.8,
            breaker=CircuitBreaker(failures=1, cooldown=0.05),
        )  # fmt: skip
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        with redis_server.down(), pytest.raises(BackendError):
            backend.search(CTX, RESET, None)
        time.sleep(0.1)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, None) is not None


class _FailingToy(ToyEmbedder):
    """A toy embedder that raises while ``failing`` is set (a remote embedder having a bad day)."""

    failing = False

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if self.failing:
            raise RuntimeError("embedding service said no")
        return super().__call__(texts)


class TestRefusals:
    """Error replies and failures that are not the server's never count against the breaker, and
    a half-open probe that meets one still resolves (issue 9)."""

    def _half_open(self, breaker: CircuitBreaker, clock: FakeClock) -> None:
        for _ in range(breaker.failures):
            breaker.failure()
        assert breaker.is_open
        clock.advance(breaker.max_cooldown + 1)

    def test_probe_refused_with_oom_resolves(self, redis_scratch: RedisServer) -> None:
        """add() during OOM fails with a BackendError; the breaker stays usable (sync, async)."""
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
        url = semantic_url(redis_scratch.url)
        backend = RedisSemanticBackend.from_url(url, embedder=ToyEmbedder(), breaker=breaker)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        redis_scratch.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis_scratch.command("CONFIG", "SET", "maxmemory", "1")
        try:
            for _ in range(3):
                self._half_open(breaker, clock)
                with pytest.raises(BackendError) as info:
                    backend.add(KEY_B, make_entry(), 60, CTX, OTHER)
                assert "OutOfMemoryError" in str(info.value), info.value
                assert backend.search(CTX, RESET, 0.5) is not None  # not "probe under way"

            async def run() -> Any:
                aio = AsyncRedisSemanticBackend.from_url(
                    url, embedder=ToyEmbedder(), breaker=breaker
                )
                try:
                    self._half_open(breaker, clock)
                    with pytest.raises(BackendError):
                        await aio.add(KEY_B, make_entry(), 60, CTX, OTHER)
                    return await aio.search(CTX, RESET, 0.5)
                finally:
                    await aio.close()

            assert asyncio.run(run()) is not None
        finally:
            redis_scratch.command("CONFIG", "SET", "maxmemory", "0")
        assert not breaker.is_open
        backend.close()

    def test_probe_whose_embedder_fails_resolves(self, redis_scratch: RedisServer) -> None:
        """The embedder raising inside a probe is not the store failing: the next call probes."""
        clock = FakeClock(1000.0)
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)
        toy = _FailingToy()
        backend = RedisSemanticBackend.from_url(
            semantic_url(redis_scratch.url), embedder=toy, breaker=breaker
        )
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        self._half_open(breaker, clock)
        toy.failing = True
        with pytest.raises(RuntimeError):
            backend.search(CTX, OTHER, None)
        toy.failing = False
        assert backend.search(CTX, RESET, 0.5) is not None
        assert not breaker.is_open
        backend.close()
