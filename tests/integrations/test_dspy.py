"""llm_memo.integrations.dspy: dspy.LM calls through LlmMemoCache, against a loopback
OpenAI-compatible stub that counts the requests reaching it (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy  # type: ignore[import-untyped]
import pytest

from llm_memo import CacheMiss, cache_controls
from llm_memo.backends import Missing
from llm_memo.backends.memory import MemoryBackend
from llm_memo.codec import inflate
from llm_memo.entry import FLAG_COMPRESSED
from llm_memo.integrations.dspy import LlmMemoCache, configure_cache
from llm_memo.recording import use_recordings
from tests.stubs import StubHandler, serve

ANSWER = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


class _Chat(StubHandler):
    """An OpenAI-compatible chat completions endpoint, logging each request's body."""

    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.read_body())
        self.bodies.append(body)
        choice = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": ANSWER},
        }
        self.reply_json(
            {
                "id": f"chatcmpl-{len(self.bodies)}",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model"),
                "choices": [choice],
                "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
            }
        )


@dataclass
class Stub:
    """The loopback endpoint's base URL and the bodies it was sent."""

    url: str
    bodies: list[dict[str, Any]]


class SpyBackend(MemoryBackend):
    """A memory backend counting the reads and writes that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.sets = 0

    def get(self, key: str) -> Any:
        self.gets += 1
        return super().get(key)

    def set(self, key: str, entry: Any, ttl: float | None = None) -> None:
        self.sets += 1
        super().set(key, entry, ttl)


@pytest.fixture(autouse=True)
def _dspy_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DSPy's own cache is put back after each test; its model metadata comes from the
    bundled snapshot (DSPy would otherwise try a download, and warn when offline)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    had = "cache" in vars(dspy)
    before = vars(dspy).get("cache")
    yield
    if had:
        dspy.cache = before
    else:
        vars(dspy).pop("cache", None)


@pytest.fixture
def stub() -> Iterator[Stub]:
    bodies: list[dict[str, Any]] = []
    with serve(_Chat, bodies=bodies) as url:
        yield Stub(f"{url}/v1", bodies)


def lm(stub: Stub, **kwargs: Any) -> Any:
    return dspy.LM(
        "openai/gpt-4o-mini", api_base=stub.url, api_key="sk-secret-1", temperature=0.7, **kwargs
    )


def ask(model: Any, question: str = "capital of France?", **config: Any) -> str:
    with dspy.context(lm=model):
        prediction = dspy.Predict("question -> answer")(question=question, config=config)
    return str(prediction.answer)


class TestPredict:
    def test_a_program_run_twice_calls_the_lm_once(self, stub: Stub) -> None:
        """The second identical Predict is served by llm_memo; the stub sees one request."""
        cache = configure_cache("memory://")
        model = lm(stub)
        assert ask(model) == ask(model) == "Paris"
        assert len(stub.bodies) == 1
        stats = cache.stats()
        assert (stats.misses, stats.hits) == (1, 1)
        assert stats.tokens_saved == 35

    def test_rollout_id_and_temperature_changes_miss(self, stub: Stub) -> None:
        """rollout_id and temperature are part of the key; repeating either hits."""
        configure_cache("memory://")
        model = lm(stub)
        ask(model)
        ask(model, rollout_id=1)
        ask(model, rollout_id=1)
        ask(model, rollout_id=2)
        ask(model, temperature=1.0)
        ask(model, temperature=1.0)
        assert len(stub.bodies) == 4
        assert [b.get("temperature") for b in stub.bodies] == [0.7, 0.7, 0.7, 1.0]

    def test_credentials_and_server_are_not_keyed(self, stub: Stub, tmp_path: Path) -> None:
        """Another API key shares the entry (and DSPy leaves api_base out too); no credential
        reaches the stored bytes."""
        backend = MemoryBackend()
        configure_cache(backend)
        ask(lm(stub))
        model = dspy.LM(
            "openai/gpt-4o-mini", api_base=stub.url, api_key="sk-secret-2", temperature=0.7
        )
        ask(model)
        assert len(stub.bodies) == 1
        (key,) = backend.keys()
        stored = backend.get(key)
        assert not isinstance(stored, Missing)
        value = inflate(stored.value) if stored.flags & FLAG_COMPRESSED else stored.value
        assert b"Paris" in value
        assert b"sk-secret" not in value

    def test_async_program(self, stub: Stub) -> None:
        """acall goes through the same cache (DSPy runs get/put in a worker thread)."""
        import asyncio

        cache = configure_cache("memory://")
        model = lm(stub)

        async def twice() -> list[str]:
            with dspy.context(lm=model):
                predict = dspy.Predict("question -> answer")
                # One after the other: the second call finds what the first stored.
                return [str((await predict.acall(question="capital?")).answer) for _ in "12"]

        assert asyncio.run(twice()) == ["Paris", "Paris"]
        assert len(stub.bodies) == 1
        assert cache.stats().hits == 1


class TestDisabled:
    def test_lm_cache_false_computes_no_key_and_stores_nothing(
        self, stub: Stub, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """dspy.LM(cache=False): the cache is never asked, no key is made, nothing stored."""
        views: list[int] = []
        original = LlmMemoCache.request_view

        def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
            views.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(LlmMemoCache, "request_view", staticmethod(counting))
        backend = SpyBackend()
        configure_cache(backend)
        model = lm(stub, cache=False)
        ask(model)
        ask(model)
        assert len(stub.bodies) == 2
        assert (backend.gets, backend.sets, views) == (0, 0, [])

    @pytest.mark.parametrize("how", ["constructor", "block"])
    def test_enabled_false_computes_no_key(
        self, stub: Stub, monkeypatch: pytest.MonkeyPatch, how: str
    ) -> None:
        """enabled=False (at construction or in a cache_controls block): get and put return
        before a key is computed; the backend is never touched; the gets count as bypasses."""
        views: list[int] = []
        original = LlmMemoCache.request_view

        def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
            views.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(LlmMemoCache, "request_view", staticmethod(counting))
        backend = SpyBackend()
        if how == "constructor":
            cache = configure_cache(backend, enabled=False)
            ask(lm(stub))
            ask(lm(stub))
        else:
            cache = configure_cache(backend)
            with cache_controls(enabled=False):
                ask(lm(stub))
                ask(lm(stub))
        assert len(stub.bodies) == 2
        assert (backend.gets, backend.sets, views) == (0, 0, [])
        assert cache.stats().bypasses == 2


class TestDirectivesAndBackends:
    def test_no_cache_calls_the_lm_and_refreshes(self, stub: Stub) -> None:
        """no_cache skips the read, calls the LM and stores the new answer."""
        cache = configure_cache("memory://")
        ask(lm(stub))
        with cache_controls(no_cache=True):
            ask(lm(stub))
        ask(lm(stub))
        assert len(stub.bodies) == 2
        assert cache.stats().hits == 1

    def test_no_store_leaves_nothing(self, stub: Stub) -> None:
        """no_store: the answer is returned, not stored."""
        backend = MemoryBackend()
        configure_cache(backend)
        with cache_controls(no_store=True):
            ask(lm(stub))
        assert list(backend.keys()) == []

    def test_only_if_cached_raises_cache_miss(self, stub: Stub) -> None:
        """Nothing stored and only_if_cached: CacheMiss, and the LM is not called."""
        configure_cache("memory://")
        with cache_controls(only_if_cached=True), pytest.raises(CacheMiss):
            ask(lm(stub))
        assert stub.bodies == []

    def test_a_disk_url_is_shared_by_a_new_cache(self, stub: Stub, tmp_path: Path) -> None:
        """Entries written through disk:// are served to a new cache object (a new run)."""
        url = f"disk://{tmp_path / 'dspy'}"
        configure_cache(url, ttl=3600)
        ask(lm(stub))
        cache = configure_cache(url)
        assert ask(lm(stub)) == "Paris"
        assert len(stub.bodies) == 1
        assert cache.stats().hits == 1

    def test_namespaces_partition_entries(self, stub: Stub) -> None:
        """The same request in another namespace misses."""
        backend = MemoryBackend()
        configure_cache(backend, namespace="a")
        ask(lm(stub))
        configure_cache(backend, namespace="b")
        ask(lm(stub))
        assert len(stub.bodies) == 2

    def test_cache_key_and_contains(self, stub: Stub) -> None:
        """cache_key gives the llm_memo key; `in` finds the stored entry; clear removes it."""
        cache = configure_cache("memory://")
        request = {"model": "m", "messages": [{"role": "user", "content": "x"}], "api_key": "k"}
        key = cache.cache_key(request)
        assert key.startswith("llm_memo:")
        others = {"api_key": "o", "api_base": "http://b", "vertex_credentials": "c", "timeout": 3}
        assert key == cache.cache_key({**request, **others})
        assert key != cache.cache_key({**request, "max_tokens": 5})
        assert key not in cache
        cache.put(request, {"outputs": ["y"]})
        assert key in cache
        assert cache.get(request) == {"outputs": ["y"]}
        assert cache.clear() == 1
        assert key not in cache

    def test_an_unkeyable_request_is_neither_read_nor_stored(self) -> None:
        """A value with no canonical form: get answers None and put stores nothing."""
        backend = SpyBackend()
        cache = LlmMemoCache(backend)
        request = {"model": "m", "handle": threading.Lock()}
        assert cache.get(request) is None
        cache.put(request, {"outputs": ["y"]})
        assert (backend.gets, backend.sets) == (0, 0)

    def test_a_pydantic_class_keys_as_its_schema(self) -> None:
        """A response_format class keys by its JSON schema, as in DSPy's own keys."""
        from pydantic import BaseModel

        class A(BaseModel):
            x: int

        class B(BaseModel):
            x: str

        cache = LlmMemoCache("memory://")
        key_a = cache.cache_key({"model": "m", "response_format": A})
        assert key_a == cache.cache_key({"model": "m", "response_format": A})
        assert key_a != cache.cache_key({"model": "m", "response_format": B})


COMPAT_PROGRAM = """
import sys
import dspy
from llm_memo.integrations.dspy import configure_cache

cache = configure_cache(sys.argv[1])
lm = dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[2], api_key="sk-secret-1",
             temperature=0.7, engine="litellm")
with dspy.context(lm=lm):
    answer = dspy.Predict("question -> answer")(question="capital of France?").answer
stats = cache.stats()
print(answer, stats.hits, stats.misses)
"""


class TestCompatibilityPath:
    def test_a_litellm_response_is_served_to_a_fresh_process(
        self, stub: Stub, tmp_path: Path
    ) -> None:
        """On DSPy's litellm path the record is a litellm response, stored typed; a new
        process (litellm not yet imported at lookup time) is served it without a request."""
        import os
        import subprocess
        import sys

        script = tmp_path / "program.py"
        script.write_text(COMPAT_PROGRAM)
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root), "LITELLM_LOCAL_MODEL_COST_MAP": "true"}
        url = f"disk://{tmp_path / 'cache'}"
        outputs = [
            subprocess.run(
                [sys.executable, str(script), url, stub.url],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                cwd=tmp_path,
            ).stdout.split()
            for _ in range(2)
        ]
        assert outputs == [["Paris", "0", "1"], ["Paris", "1", "0"]]
        assert len(stub.bodies) == 1


class TestSupportedDSPy:
    def test_the_installed_dspy_is_in_the_pinned_range(self) -> None:
        """The dspy extra's range (pyproject) contains the DSPy these tests ran with."""
        tomllib = pytest.importorskip("tomllib")
        from packaging.requirements import Requirement

        root = Path(__file__).resolve().parents[2]
        extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        (spec,) = extras["dspy"]
        assert Requirement(spec).specifier.contains(dspy.__version__)

    @pytest.mark.parametrize("method", ["get", "put", "cache_key", "reset_memory_cache"])
    def test_the_methods_dspy_calls_take_its_arguments(self, method: str) -> None:
        """Every parameter of DSPy's own Cache method exists on LlmMemoCache's, by name and
        in order (so positional and keyword calls both land)."""
        import inspect

        from dspy.clients.cache import Cache  # type: ignore[import-untyped]

        theirs = list(inspect.signature(getattr(Cache, method)).parameters)
        ours = list(inspect.signature(getattr(LlmMemoCache, method)).parameters)
        if ours[:1] != ["self"]:  # a staticmethod seen on the class
            ours = ["self", *ours]
        assert ours[: len(theirs)] == theirs


class TestRecordReplay:
    def test_a_program_replays_without_the_lm(self, stub: Stub, tmp_path: Path) -> None:
        """Recorded once, a DSPy program replays from recordings without a request."""
        configure_cache()
        with use_recordings(tmp_path, "record"):
            assert ask(lm(stub)) == "Paris"
        assert len(stub.bodies) == 1
        (recording,) = tmp_path.rglob("*.json")
        assert "sk-secret" not in recording.read_text()
        with use_recordings(tmp_path, "replay") as rec:
            assert ask(lm(stub)) == "Paris"
        assert len(stub.bodies) == 1
        assert rec.hits == 1

    def test_replay_of_an_unrecorded_call_fails(self, stub: Stub, tmp_path: Path) -> None:
        """In replay mode a call with no recording is a CacheMiss, not a request."""
        configure_cache()
        with use_recordings(tmp_path, "replay"), pytest.raises(CacheMiss):
            ask(lm(stub))
        assert stub.bodies == []
