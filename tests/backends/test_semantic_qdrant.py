"""QdrantSemanticBackend / AsyncQdrantSemanticBackend on qdrant-client's local mode (in memory and
in a folder): the conformance suite for the exact part, similarity within a partition only,
threshold, guard, TTL by deadline, clearing, the decorator's isolation matrix with the real
offline model, URLs (a server URL is tested by the client it builds: no server runs here)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from llm_memo import BackendError, ConfigurationError, configure, llm_cached
from llm_memo.backends import MISSING, AsyncSemantic, Semantic, from_url
from llm_memo.backends._breaker import CircuitBreaker
from llm_memo.backends.semantic import DEFAULT_THRESHOLD, LexicalGuard, key_prefixes
from llm_memo.backends.semantic.qdrant import (
    DEFAULT_COLLECTION,
    AsyncQdrantSemanticBackend,
    QdrantSemanticBackend,
    point_id,
)
from llm_memo.errors import BackendUnavailableError
from llm_memo.testing import FakeClock
from tests.servers import free_port

from .conformance import BackendConformance, SyncOverAsync, make_entry, make_key
from .test_embedders import (
    PARAPHRASE,
    AsyncToyEmbedder,
    Q,
    ToyEmbedder,
    async_isolation,
    isolation_matrix,
    local_embedder,
)

CTX = make_key("ns", "mod.ask", "c" * 32)  # a context string has a key's shape


def _planter(backend: Any) -> Callable[[str, bytes], None]:
    """Raw bytes as a point's entry, bypassing the backend."""

    def plant(key: str, data: bytes) -> None:
        backend.get(make_key())  # creates the collection
        client = backend.inner.client if hasattr(backend, "inner") else backend.client
        payload = {"key": key, "prefixes": key_prefixes(key), "deadline": 1e300,
                   "entry": base64.b64encode(data).decode()}  # fmt: skip
        point = models.PointStruct(id=point_id(key), vector={}, payload=payload)
        if isinstance(client, AsyncQdrantClient):
            backend._run(client.upsert(DEFAULT_COLLECTION, points=[point]))
        else:
            client.upsert(DEFAULT_COLLECTION, points=[point])

    return plant


class TestQdrantConformance(BackendConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, clock: FakeClock) -> Iterator[QdrantSemanticBackend]:
        backend = QdrantSemanticBackend(
            QdrantClient(":memory:"), embedder=ToyEmbedder(), clock=clock
        )
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def plant(self, backend: QdrantSemanticBackend) -> Callable[[str, bytes], None]:
        return _planter(backend)


class TestAsyncQdrantConformance(BackendConformance):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, clock: FakeClock) -> Iterator[SyncOverAsync]:
        inner = AsyncQdrantSemanticBackend(
            AsyncQdrantClient(":memory:"), embedder=AsyncToyEmbedder(), clock=clock
        )
        backend = SyncOverAsync(inner)
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def plant(self, backend: SyncOverAsync) -> Callable[[str, bytes], None]:
        return _planter(backend)


class TestFolderConformance(BackendConformance):
    """qdrant+local:///folder (persisted), built from its URL."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, tmp_path: Path, clock: FakeClock) -> Iterator[QdrantSemanticBackend]:
        backend = QdrantSemanticBackend.from_url(
            f"qdrant+local://{tmp_path}/q", embedder=ToyEmbedder(), clock=clock
        )
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def plant(self, backend: QdrantSemanticBackend) -> Callable[[str, bytes], None]:
        return _planter(backend)


# -- similarity ------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def toy() -> ToyEmbedder:
    return ToyEmbedder()


@pytest.fixture
def backend(toy: ToyEmbedder, clock: FakeClock) -> Iterator[QdrantSemanticBackend]:
    backend = QdrantSemanticBackend(
        QdrantClient(":memory:"), embedder=toy, clock=clock, threshold=0.8, guard=None
    )
    yield backend
    backend.close()


KEY_A = make_key("ns", "mod.ask", "a" * 32)
KEY_B = make_key("ns", "mod.ask", "b" * 32)
RESET = "how do i reset my account password"
RESET2 = "how do i reset my password for my account"
OTHER = "what is the boiling point of water"


class TestSearch:
    def test_protocols(self, backend: QdrantSemanticBackend) -> None:
        """Both classes are semantic backends to the decorator."""
        assert isinstance(backend, Semantic)
        asynchronous = AsyncQdrantSemanticBackend(QdrantClient(":memory:"), embedder=ToyEmbedder())
        assert isinstance(asynchronous, AsyncSemantic)

    def test_similar_text_hits_with_its_similarity(self, backend: QdrantSemanticBackend) -> None:
        """A similar text in the same context finds the entry, its key and the cosine score."""
        entry = make_entry(b'"reset answer"')
        backend.add(KEY_A, entry, 60, CTX, RESET)
        backend.add(KEY_B, make_entry(b'"water"'), 60, CTX, OTHER)
        found = backend.search(CTX, RESET2, None)
        assert found is not None
        key, got, similarity = found
        assert (key, got) == (KEY_A, entry)
        assert 0.8 <= similarity <= 1.0
        assert backend.search(CTX, "completely unrelated words here", None) is None

    def test_threshold_per_backend_and_per_call(self, toy: ToyEmbedder) -> None:
        """The call's threshold wins; None means the backend's default."""
        strict = QdrantSemanticBackend(QdrantClient(":memory:"), embedder=toy, threshold=0.99)
        strict.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert strict.search(CTX, RESET2, None) is None
        assert strict.search(CTX, RESET2, 0.5) is not None
        assert strict.threshold == 0.99
        assert QdrantSemanticBackend(QdrantClient(":memory:"), embedder=toy).threshold == (
            DEFAULT_THRESHOLD
        )

    def test_never_crosses_contexts(self, backend: QdrantSemanticBackend) -> None:
        """Identical text in another context (model, parameters, namespace...) is no match."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        other = make_key("other-ns", "mod.ask", "c" * 32)
        assert backend.search(other, RESET, None) is None
        assert backend.search(CTX[:-1] + "d", RESET, None) is None

    def test_never_crosses_embedders(self, clock: FakeClock) -> None:
        """Entries embedded by another model (same dimension, same collection) never match."""
        client = QdrantClient(":memory:")
        QdrantSemanticBackend(client, embedder=ToyEmbedder("toy-v1"), clock=clock).add(
            KEY_A, make_entry(), 60, CTX, RESET
        )
        other = QdrantSemanticBackend(client, embedder=ToyEmbedder("toy-v2"), clock=clock)
        assert other.search(CTX, RESET, 0.0) is None
        assert other.get(KEY_A) is not MISSING  # the exact part is shared

    def test_a_miss_embeds_once(self, backend: QdrantSemanticBackend, toy: ToyEmbedder) -> None:
        """search then add for the same text make one embedding call."""
        backend.get(KEY_A)  # the collection exists (its creation needs no embedding)
        before = toy.calls
        assert backend.search(CTX, RESET, None) is None
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert toy.calls == before + 1

    def test_set_is_exact_only(self, backend: QdrantSemanticBackend) -> None:
        """An entry stored with set() (no text) is found by key, never by similarity."""
        backend.set(KEY_A, make_entry(), 60)
        assert backend.get(KEY_A) is not MISSING
        assert backend.search(CTX, RESET, -1.0) is None

    def test_best_candidate_the_guard_accepts(self, clock: FakeClock) -> None:
        """With the guard on, a refused best candidate gives way to the next one."""
        toy = ToyEmbedder()
        backend = QdrantSemanticBackend(
            QdrantClient(":memory:"), embedder=toy, clock=clock, threshold=0.5
        )
        assert isinstance(backend.guard, LexicalGuard)
        backend.add(KEY_A, make_entry(b'"5"'), 60, CTX, "pace for running 5 miles")
        backend.add(KEY_B, make_entry(b'"50"'), 60, CTX, "pace for running 50 miles")
        found = backend.search(CTX, "good pace for running 50 miles", None)
        assert found is not None
        assert found[0] == KEY_B
        assert backend.search(CTX, "good pace for running 7 miles", None) is None

    def test_ttl_zero_stores_nothing(self, backend: QdrantSemanticBackend) -> None:
        """ttl <= 0 removes any previous entry and indexes nothing."""
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(KEY_A, make_entry(), 0, CTX, RESET)
        assert backend.get(KEY_A) is MISSING
        assert backend.search(CTX, RESET, None) is None


class TestExpiry:
    def test_expired_entries_are_not_found(
        self, backend: QdrantSemanticBackend, clock: FakeClock
    ) -> None:
        """Past its ttl an entry is invisible to search (filtered on the deadline) and to get."""
        backend.add(KEY_A, make_entry(), 10, CTX, RESET)
        clock.advance(9)
        assert backend.search(CTX, RESET2, None) is not None
        clock.advance(2)
        assert backend.search(CTX, RESET2, None) is None
        assert backend.get(KEY_A) is MISSING

    def test_purge_expired(self, backend: QdrantSemanticBackend, clock: FakeClock) -> None:
        """purge_expired deletes what has expired (Qdrant never does) and counts it."""
        backend.add(KEY_A, make_entry(), 10, CTX, RESET)
        backend.add(KEY_B, make_entry(), None, CTX, OTHER)
        backend.set(make_key(digest="e" * 32), make_entry(), 5)
        clock.advance(11)
        assert backend.purge_expired() == 2
        assert backend.client.count(DEFAULT_COLLECTION, exact=True).count == 1
        assert backend.purge_expired() == 0


class TestClear:
    def test_clear_removes_vectors_by_prefix(self, backend: QdrantSemanticBackend) -> None:
        """Clearing a namespace removes its entries and their vectors, and nothing else."""
        other_ctx = make_key("keep", "mod.ask", "c" * 32)
        kept = make_key("keep", "mod.ask", "f" * 32)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        backend.add(kept, make_entry(), 60, other_ctx, RESET)
        assert backend.clear("llm_memo:2:ns:") == 1
        assert backend.search(CTX, RESET, None) is None
        assert backend.search(other_ctx, RESET, None) is not None

    def test_clear_with_a_partial_prefix(self, backend: QdrantSemanticBackend) -> None:
        """A prefix that ends inside a key part is matched exactly too."""
        backend.set(KEY_A, make_entry(), None)
        backend.set(KEY_B, make_entry(), None)
        assert backend.clear(KEY_A[:-30]) == 1
        assert backend.get(KEY_B) is not MISSING

    def test_clear_all_leaves_foreign_points(self, backend: QdrantSemanticBackend) -> None:
        """clear() removes llm_memo's keys only."""
        backend.set(KEY_A, make_entry(), None)
        foreign = models.PointStruct(id=1, vector={}, payload={"title": "not ours"})
        backend.client.upsert(DEFAULT_COLLECTION, points=[foreign])
        assert backend.clear() == 1
        assert backend.client.count(DEFAULT_COLLECTION, exact=True).count == 1


class TestFailures:
    def test_a_closed_client_is_a_backend_error(self, backend: QdrantSemanticBackend) -> None:
        """A failing store raises BackendError (the decorator then calls the function)."""
        backend.get(KEY_A)
        backend.client.close()
        with pytest.raises(BackendError):
            backend.get(KEY_A)
        with pytest.raises(BackendError):
            backend.search(CTX, RESET, None)

    def test_decorator_fails_open(self, backend: QdrantSemanticBackend) -> None:
        """With the store down, cached calls still run the function."""
        backend.get(KEY_A)
        backend.client.close()
        calls = []

        @llm_cached(backend=backend)
        def ask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(1)
            return "x"

        assert ask("m", [{"role": "user", "content": RESET}]) == "x"
        assert ask("m", [{"role": "user", "content": RESET}]) == "x"
        assert calls == [1, 1]

    def test_collection_of_another_dimension(self, clock: FakeClock) -> None:
        """An embedder whose vectors do not fit the collection fails open with the fix named."""
        client = QdrantClient(":memory:")
        QdrantSemanticBackend(client, embedder=ToyEmbedder(dimension=8)).get(KEY_A)
        wide = QdrantSemanticBackend(client, embedder=ToyEmbedder("wide", dimension=16))
        with pytest.raises(BackendError, match="another collection"):
            wide.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert wide.search(CTX, RESET, None) is None

    def test_a_foreign_collection_is_refused(self) -> None:
        """A collection llm_memo did not create is not written to."""
        client = QdrantClient(":memory:")
        client.create_collection(
            DEFAULT_COLLECTION,
            vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT),
        )
        with pytest.raises(BackendError, match="not created by llm_memo"):
            QdrantSemanticBackend(client, embedder=ToyEmbedder()).get(KEY_A)


class TestBreaker:
    """Only an unreachable server counts against the breaker; a refusal (local mode's "not
    found", an HTTP 4xx, a rate limit) and a failing embedder never do, and every probe resolves
    (issue 9)."""

    def test_a_dropped_collection_is_a_refusal_not_an_outage(self, toy: ToyEmbedder) -> None:
        """The collection deleted under the backend: that call fails, the next recreates it;
        with a breaker that opens on one failure, nothing is refused in between."""
        client = QdrantClient(":memory:")
        breaker = CircuitBreaker(failures=1)
        backend = QdrantSemanticBackend(client, embedder=toy, guard=None, breaker=breaker)
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        client.delete_collection(DEFAULT_COLLECTION)
        with pytest.raises(BackendError) as info:
            backend.search(CTX, RESET, None)
        assert not isinstance(info.value, BackendUnavailableError), info.value
        assert not breaker.is_open
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        assert backend.search(CTX, RESET, 0.5) is not None

    def test_probe_whose_embedder_fails_resolves(self) -> None:
        """The embedder raising inside the half-open probe lets the next call probe."""
        clock = FakeClock()
        breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=5, clock=clock)

        class EmbedderDown(Exception):
            pass

        class Failing(ToyEmbedder):
            failing = False

            def __call__(self, texts: list[str]) -> list[list[float]]:
                if self.failing:
                    raise EmbedderDown("embedding service said no")
                return super().__call__(texts)

        toy = Failing()
        backend = QdrantSemanticBackend(
            QdrantClient(":memory:"), embedder=toy, guard=None, breaker=breaker
        )
        backend.add(KEY_A, make_entry(), 60, CTX, RESET)
        breaker.failure()
        assert breaker.is_open
        clock.advance(10)
        toy.failing = True
        with pytest.raises(EmbedderDown):
            backend.search(CTX, OTHER, None)
        toy.failing = False
        assert backend.search(CTX, RESET, 0.5) is not None
        assert not breaker.is_open

    def test_a_refused_port_opens_the_breaker(self) -> None:
        """A server URL where nothing listens: BackendErrors, then the breaker answers alone."""
        backend = QdrantSemanticBackend.from_url(
            f"qdrant://127.0.0.1:{free_port()}/c", embedder=ToyEmbedder(),
            breaker=CircuitBreaker(failures=2),
        )  # fmt: skip
        for _ in range(2):
            with pytest.raises(BackendError) as info:
                backend.search(CTX, RESET, None)
            assert not isinstance(info.value, BackendUnavailableError), info.value
        with pytest.raises(BackendUnavailableError):
            backend.search(CTX, RESET, None)
        backend.close()

    def test_only_unreachable_counts(self) -> None:
        """The classification, exception by exception."""
        from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        from llm_memo.backends.semantic.qdrant._failures import unreachable

        def status(code: int) -> UnexpectedResponse:
            return UnexpectedResponse(code, "", b"", httpx.Headers())

        outages: list[BaseException] = [
            ResponseHandlingException(httpx.ConnectError("refused")),
            ResponseHandlingException(httpx.ReadTimeout("timed out")),
            status(502), status(503), status(504),
            ConnectionRefusedError(111, "refused"),
            TimeoutError(),
        ]  # fmt: skip
        refusals: list[BaseException] = [
            status(400), status(404), status(409), status(500),
            ResourceExhaustedResponse("slow down", 1),
            ValueError("Collection llm_memo not found"),
            RuntimeError("instance is closed"),
            asyncio.CancelledError(),
        ]  # fmt: skip
        wrongly = [x for x in outages if not unreachable(x)]
        wrongly += [x for x in refusals if unreachable(x)]
        assert wrongly == [], wrongly


# -- through the decorator, with the real offline model --------------------------------------------


class TestDecorator:
    def test_isolation_matrix_with_the_offline_model(self) -> None:
        """Paraphrase hit with its similarity; no hit across model, parameter, system prompt,
        namespace or tenant, even for identical text."""
        isolation_matrix(QdrantSemanticBackend(QdrantClient(":memory:"), embedder=local_embedder()))

    def test_async_functions(self) -> None:
        """The async backend serves async functions the same way."""
        backend = AsyncQdrantSemanticBackend(
            AsyncQdrantClient(":memory:"), embedder=local_embedder()
        )
        asyncio.run(async_isolation(backend))

    def test_guard_refuses_a_negation_the_model_scores_high(self) -> None:
        """The model scores these above the threshold; the guard (default on) refuses."""
        backend = QdrantSemanticBackend(QdrantClient(":memory:"), embedder=local_embedder())
        yes = "Which programming languages are statically typed?"
        no = "Which programming languages are not statically typed?"
        backend.add(KEY_A, make_entry(), 60, CTX, yes)
        assert backend.search(CTX, no, None) is None
        unguarded = QdrantSemanticBackend(backend.client, embedder=local_embedder(), guard=None)
        found = unguarded.search(CTX, no, None)
        assert found is not None
        assert found[2] > DEFAULT_THRESHOLD
        assert backend.search(CTX, "Which programming languages have static typing?", 0.8)

    def test_configured_embedder_and_url(self, tmp_path: Path) -> None:
        """backend= a qdrant+local URL uses configure(embedder=...); sync and async functions
        share one folder."""
        configure(embedder=local_embedder())
        url = f"qdrant+local://{tmp_path}/cache"
        calls = []

        @llm_cached(backend=url)
        def ask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(1)
            return "sync answer"

        @llm_cached(backend=url, name="tests.shared")
        async def aask(model: str, messages: list[dict[str, str]]) -> str:
            calls.append(2)
            return "async answer"

        ask("m", [{"role": "user", "content": Q}])
        assert ask("m", [{"role": "user", "content": PARAPHRASE}]) == "sync answer"
        asyncio.run(aask("m", [{"role": "user", "content": Q}]))
        assert asyncio.run(aask("m", [{"role": "user", "content": PARAPHRASE}])) == "async answer"
        assert calls == [1, 2]


# -- URLs ------------------------------------------------------------------------------------------


class TestUrls:
    def test_local_memory(self) -> None:
        """qdrant+local:// and qdrant+local://:memory: are in-memory stores; query options apply."""
        toy = ToyEmbedder()
        for url in ("qdrant+local://", "qdrant+local://:memory:"):
            backend = QdrantSemanticBackend.from_url(
                url + "?collection=c1&threshold=0.9&candidates=2", embedder=toy
            )
            assert (backend.collection, backend.threshold) == ("c1", 0.9)
            assert backend._candidates == 2
            backend.set(KEY_A, make_entry(), None)
            assert backend.get(KEY_A) is not MISSING
            backend.close()

    def test_local_folder_persists(self, tmp_path: Path) -> None:
        """A folder keeps entries across backends (after the first one closes)."""
        url = f"qdrant+local://{tmp_path}/store"
        first = QdrantSemanticBackend.from_url(url, embedder=ToyEmbedder())
        first.add(KEY_A, make_entry(), None, CTX, RESET)
        first.close()
        second = QdrantSemanticBackend.from_url(url, embedder=ToyEmbedder())
        assert second.get(KEY_A) is not MISSING
        assert second.search(CTX, RESET2, 0.8) is not None
        second.close()

    def test_server_url_builds_its_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """qdrant://host:port/collection: host, port, https, timeout and the API key (option or
        QDRANT_API_KEY) reach qdrant-client; nothing connects before the first call."""
        monkeypatch.setenv("QDRANT_API_KEY", "from-env")
        backend = QdrantSemanticBackend.from_url(
            "qdrant://127.0.0.1:6334/answers?https=true&timeout=5", embedder=ToyEmbedder()
        )
        assert backend.collection == "answers"
        options = backend.client.init_options
        assert (options["host"], options["port"], options["https"]) == ("127.0.0.1", 6334, True)
        assert (options["timeout"], options["api_key"]) == (5, "from-env")
        explicit = QdrantSemanticBackend.from_url(
            "qdrant://localhost", embedder=ToyEmbedder(), api_key="given",
            client_kwargs={"prefer_grpc": True},
        )  # fmt: skip
        options = explicit.client.init_options
        assert (options["api_key"], options["prefer_grpc"], options["port"]) == (
            "given",
            True,
            6333,
        )
        assert explicit.collection == DEFAULT_COLLECTION
        assert explicit._indexes  # a server gets payload indexes
        assert options["check_compatibility"] is False  # nothing is asked at construction

    def test_boolean_parameters(self) -> None:
        """?https= and ?prefer_grpc= take every spelling of true and false (a typo is an error,
        see test_bad_urls, where it used to read as False)."""
        for value, expected in (("1", True), ("YES", True), ("off", False), ("false", False)):
            backend = QdrantSemanticBackend.from_url(
                f"qdrant://localhost/c?https={value}&prefer_grpc={value}", embedder=ToyEmbedder()
            )
            options = backend.client.init_options
            assert (options["https"], options["prefer_grpc"]) == (expected, expected)

    def test_async_server_url(self) -> None:
        """The async backend builds an AsyncQdrantClient for the running event loop."""
        backend = AsyncQdrantSemanticBackend.from_url(
            "qdrant://localhost:6333/c", embedder=ToyEmbedder()
        )

        async def client() -> Any:
            return backend.client

        assert isinstance(asyncio.run(client()), AsyncQdrantClient)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("qdrant://localhost/c?nope=1", "unknown query parameter 'nope'"),
            ("qdrant+local://?https=true", "unknown query parameter 'https'"),
            ("qdrant://:secret@localhost/c", "api_key"),
            ("qdrant://localhost:port/c", "bad port"),
            ("qdrant:///c", "names no host"),
            ("qdrant://localhost/a/b", "one collection"),
            ("qdrant://localhost/c?timeout=soon", "not valid"),
            ("qdrant://localhost/c?https=ture", r"https='ture' is not valid: \?https="),
            ("qdrant://localhost/c?prefer_grpc=maybe", r"\?prefer_grpc='maybe' is not a boolean"),
            ("http://localhost/c", "not a Qdrant URL"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        """Malformed URLs are ConfigurationErrors that say what is wrong."""
        with pytest.raises(ConfigurationError, match=message):
            QdrantSemanticBackend.from_url(url, embedder=ToyEmbedder())

    def test_registry_and_configured_embedder(self) -> None:
        """llm_memo.backends.from_url finds both classes; without an embedder configured the
        error names configure(embedder=...)."""
        with pytest.raises(ConfigurationError, match=r"configure\(embedder="):
            from_url("qdrant+local://")
        configure(embedder=ToyEmbedder())
        assert isinstance(from_url("qdrant+local://"), QdrantSemanticBackend)
        assert isinstance(
            from_url("qdrant+local://", asynchronous=True), AsyncQdrantSemanticBackend
        )

    def test_async_embedder_needs_the_async_backend(self) -> None:
        """A sync backend cannot use an async embedder; the async backend accepts both."""
        with pytest.raises(ConfigurationError, match="is async"):
            QdrantSemanticBackend(QdrantClient(":memory:"), embedder=AsyncToyEmbedder())
        AsyncQdrantSemanticBackend(QdrantClient(":memory:"), embedder=ToyEmbedder())

    def test_repr(self, backend: QdrantSemanticBackend) -> None:
        """The repr names collection, embedder and threshold (never credentials)."""
        assert repr(backend) == (
            "QdrantSemanticBackend(collection='llm_memo', embedder='toy-v1', threshold=0.8)"
        )


# A factory's clients are taken for server clients (payload indexes are created); these tests
# use local-mode ones, which warn that indexes do nothing there.
@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
class TestClients:
    def test_a_new_event_loop_closes_the_old_loops_client(self) -> None:
        """With a client factory, each event loop gets its own client, and the previous loop's
        client is closed (not just dropped) when the backend moves to a new loop."""
        built: list[AsyncQdrantClient] = []

        def factory() -> AsyncQdrantClient:
            built.append(AsyncQdrantClient(":memory:"))
            return built[-1]

        backend = AsyncQdrantSemanticBackend(factory, embedder=ToyEmbedder(), guard=None)

        async def use() -> None:
            await backend.set(KEY_A, make_entry(), None)
            assert await backend.get(KEY_A) is not MISSING

        asyncio.run(use())
        asyncio.run(use())
        assert len(built) == 2
        assert built[0]._client.closed  # the first loop's client
        assert not built[1]._client.closed
        asyncio.run(backend.close())
        assert built[1]._client.closed

    def test_a_forked_child_builds_its_own_client(self) -> None:
        """The sync backend's client belongs to the process: after a fork (simulated through
        _fork's hook) the child builds a new client and leaves the parent's untouched."""
        built: list[QdrantClient] = []

        def factory() -> QdrantClient:
            built.append(QdrantClient(":memory:"))
            return built[-1]

        backend = QdrantSemanticBackend(factory, embedder=ToyEmbedder(), guard=None)
        backend.set(KEY_A, make_entry(), None)
        assert backend.client is built[0]
        backend._after_fork()
        assert backend.client is built[1]
        assert not built[0]._client.closed
        backend.close()
        assert built[1]._client.closed
