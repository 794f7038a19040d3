"""@llm_cached end to end on every driver: hits, directives, values, failures, streams."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from llm_memo import (
    BackendUnavailableError,
    CacheMiss,
    ConfigurationError,
    Outcome,
    cache_controls,
    configure,
    llm_cached,
)
from llm_memo.backends import MISSING
from llm_memo.backends.memory import MemoryBackend
from llm_memo.entry import Entry
from llm_memo.errors import BackendError
from llm_memo.testing import CacheRecorder

KINDS = ["sync", "async", "gen", "agen"]


class Probe:
    """A cached function of one kind plus a synchronous way to call it and count calls."""

    def __init__(self, kind: str, body: Callable[[str], Any], **options: Any) -> None:
        self.kind = kind
        self.calls: list[str] = []

        def record(x: str) -> Any:
            self.calls.append(x)
            return body(x)

        if kind == "sync":

            def fn(x: str) -> Any:
                return record(x)
        elif kind == "async":

            async def fn(x: str) -> Any:  # type: ignore[misc]
                await asyncio.sleep(0)
                return record(x)
        elif kind == "gen":

            def fn(x: str) -> Iterator[Any]:  # type: ignore[misc]
                yield from record(x)
        else:

            async def fn(x: str) -> AsyncIterator[Any]:  # type: ignore[misc]
                for chunk in record(x):
                    yield chunk

        fn.__qualname__ = f"Probe.{kind}"
        self.fn = llm_cached(**options)(fn)

    def __call__(self, x: str = "q") -> Any:
        if self.kind == "sync":
            return self.fn(x)
        if self.kind == "async":
            return asyncio.run(self.fn(x))
        if self.kind == "gen":
            return list(self.fn(x))

        async def collect() -> list[Any]:
            return [c async for c in self.fn(x)]

        return asyncio.run(collect())


def answer(x: str) -> Any:
    return [{"text": x.upper()}, {"n": 1}]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestHitsAndMisses:
    def test_miss_then_hit(self, kind: str, llm_cache: CacheRecorder) -> None:
        """The second identical call is answered from the cache without calling."""
        probe = Probe(kind, answer)
        assert probe() == probe() == answer("q")
        assert probe.calls == ["q"]
        assert (llm_cache.misses, llm_cache.hits) == (1, 1)
        assert [e.outcome for e in llm_cache.events] == [Outcome.MISS, Outcome.HIT]

    def test_hit_returns_a_fresh_object(self, llm_cache: CacheRecorder) -> None:
        """Mutating a returned value never changes what the cache returns next."""
        probe = Probe("sync", lambda x: {"items": [1]})
        first = probe()
        first["items"].append(2)
        second = probe()
        second["items"].append(3)
        assert probe() == {"items": [1]}

    def test_different_arguments_miss(self, kind: str, llm_cache: CacheRecorder) -> None:
        probe = Probe(kind, answer)
        probe("a")
        probe("b")
        assert probe.calls == ["a", "b"]

    def test_exceptions_are_never_cached(self, kind: str, llm_cache: CacheRecorder) -> None:
        """A call that raises stores nothing; the next call runs the function again."""
        state = {"fail": True}

        def body(x: str) -> Any:
            if state["fail"]:
                raise RuntimeError("boom")
            return answer(x)

        probe = Probe(kind, body)
        with pytest.raises(RuntimeError):
            probe()
        state["fail"] = False
        assert probe() == answer("q")
        assert probe.calls == ["q", "q"]
        assert llm_cache.entries()

    def test_cache_if_refuses_results(self, llm_cache: CacheRecorder) -> None:
        """Results cache_if rejects are returned but not stored."""
        probe = Probe(
            "sync",
            lambda x: {"finish_reason": "length"},
            cache_if=lambda r: r["finish_reason"] != "length",
        )
        probe()
        probe()
        assert len(probe.calls) == 2
        assert llm_cache.entries() == []

    def test_none_is_a_cacheable_value(self, llm_cache: CacheRecorder) -> None:
        """A function returning None is cached like any other value."""
        probe = Probe("sync", lambda x: None)
        assert probe() is None
        assert probe() is None
        assert len(probe.calls) == 1
        assert probe.fn.cache.contains("q")
        assert probe.fn.cache.get("q", default="x") is None


class TestDirectives:
    def test_no_cache_refreshes(self, kind: str, llm_cache: CacheRecorder) -> None:
        """no_cache calls the function and stores the new result (outcome refresh)."""
        n = iter(range(100))
        probe = Probe(kind, lambda x: [next(n)])
        first = probe()
        with cache_controls(no_cache=True) as scope:
            second = probe()
        assert second != first
        assert probe() == second
        assert [e.outcome for e in scope.events] == [Outcome.REFRESH]

    def test_no_store_reads_but_never_writes(self, kind: str, llm_cache: CacheRecorder) -> None:
        probe = Probe(kind, answer)
        with cache_controls(no_store=True):
            probe()
            probe()
        assert len(probe.calls) == 2
        assert llm_cache.entries() == []
        probe()
        with cache_controls(no_store=True) as scope:
            probe()
        assert scope.hits == 1

    def test_enabled_false_bypasses(self, kind: str, llm_cache: CacheRecorder) -> None:
        """enabled=False neither reads nor writes, and wins over every other directive."""
        probe = Probe(kind, answer)
        probe()
        with cache_controls(enabled=False, only_if_cached=True) as scope:
            probe()
        assert len(probe.calls) == 2
        assert [e.outcome for e in scope.events] == [Outcome.BYPASS]

    def test_ttl_expires(self, kind: str, llm_cache: CacheRecorder) -> None:
        """An entry older than its ttl is a miss."""
        probe = Probe(kind, answer, ttl=60)
        probe()
        llm_cache.advance(59)
        probe()
        llm_cache.advance(2)
        probe()
        assert len(probe.calls) == 2

    def test_ttl_none_explicit_beats_configured_ttl(self, llm_cache: CacheRecorder) -> None:
        """ttl=None given explicitly means no expiry, overriding configure(ttl=...)."""
        configure(ttl=1)
        probe = Probe("sync", answer, ttl=None)
        probe()
        llm_cache.advance(10_000)
        probe()
        assert len(probe.calls) == 1

    def test_max_age(self, kind: str, llm_cache: CacheRecorder) -> None:
        """max_age refuses entries older than N seconds, whatever their ttl."""
        probe = Probe(kind, answer)
        probe()
        llm_cache.advance(30)
        with cache_controls(max_age=60):
            probe()
        with cache_controls(s_maxage=10):
            probe()
        assert len(probe.calls) == 2

    def test_stale_if_error_serves_expired_entry(self, kind: str, llm_cache: CacheRecorder) -> None:
        """A failing call is answered by an entry expired less than stale_if_error ago."""
        state = {"fail": False}

        def body(x: str) -> Any:
            if state["fail"]:
                raise ConnectionError("provider down")
            return answer(x)

        probe = Probe(kind, body, ttl=10, stale_if_error=100)
        probe()
        llm_cache.advance(50)
        state["fail"] = True
        with cache_controls() as scope:
            assert probe() == answer("q")
        assert [e.outcome for e in scope.events] == [Outcome.STALE]
        llm_cache.advance(100)
        with pytest.raises(ConnectionError):
            probe()

    def test_stale_is_not_served_when_the_call_succeeds(self, llm_cache: CacheRecorder) -> None:
        n = iter(range(100))
        probe = Probe("sync", lambda x: [next(n)], ttl=10, stale_if_error=100)
        probe()
        llm_cache.advance(20)
        assert probe() == [1]

    def test_only_if_cached(self, kind: str, llm_cache: CacheRecorder) -> None:
        """only_if_cached never calls: it returns the entry or raises CacheMiss."""
        probe = Probe(kind, answer)
        with cache_controls(only_if_cached=True), pytest.raises(CacheMiss) as info:
            probe()
        assert probe.calls == []
        assert "only_if_cached" in str(info.value)
        probe()
        with cache_controls(only_if_cached=True):
            assert probe() == answer("q")
        with cache_controls(only_if_cached=True, no_cache=True), pytest.raises(CacheMiss):
            probe()
        assert len(probe.calls) == 1

    def test_namespaces_partition(self, kind: str, llm_cache: CacheRecorder) -> None:
        """Entries in one namespace are invisible in another."""
        probe = Probe(kind, answer)
        with cache_controls(namespace="tenant:1"):
            probe()
            probe()
        with cache_controls(namespace="tenant:2"):
            probe()
        assert len(probe.calls) == 2

    def test_nested_blocks_inner_wins_per_directive(self, llm_cache: CacheRecorder) -> None:
        """Nested blocks merge per directive, the inner one winning, and both scopes record."""
        probe = Probe("sync", answer)
        with cache_controls(namespace="a", no_store=True) as outer:
            with cache_controls(no_store=False) as inner:
                probe()
            probe()
        assert (outer.misses, outer.hits, inner.misses) == (1, 1, 1)

    def test_decorator_beats_configure_and_block_beats_decorator(
        self, llm_cache: CacheRecorder
    ) -> None:
        """Precedence: block > decorator > configure."""
        configure(namespace="from-configure")
        probe = Probe("sync", answer, namespace="from-decorator")
        assert ":from-decorator:" in probe.fn.cache.key("q")
        with cache_controls(namespace="from-block"):
            assert ":from-block:" in probe.fn.cache.key("q")

    def test_directives_stay_in_their_thread(self, llm_cache: CacheRecorder) -> None:
        """A block applies to its own thread; propagate() carries it into a pool."""
        from concurrent.futures import ThreadPoolExecutor

        from llm_memo import propagate

        probe = Probe("sync", answer)
        with ThreadPoolExecutor(2) as pool, cache_controls(namespace="blocked"):
            plain = pool.submit(probe.fn.cache.key, "q").result()
            carried = pool.submit(propagate(probe.fn.cache.key), "q").result()
        assert ":default:" in plain
        assert ":blocked:" in carried

    @pytest.mark.asyncio
    async def test_async_with_and_tasks(self, llm_cache: CacheRecorder) -> None:
        """async with works, and concurrent tasks keep their own directives."""
        probe = Probe("async", answer)

        async def in_ns(ns: str) -> str:
            async with cache_controls(namespace=ns):
                await asyncio.sleep(0)
                return probe.fn.cache.key("q")

        a, b = await asyncio.gather(in_ns("a"), in_ns("b"))
        assert ":a:" in a
        assert ":b:" in b


class FaultyBackend(MemoryBackend):
    """A memory backend whose reads and/or writes fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_get = False
        self.fail_set = False

    def get(self, key: str) -> Any:
        if self.fail_get:
            raise BackendError("injected read failure")
        return super().get(key)

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        if self.fail_set:
            raise BackendError("injected write failure")
        super().set(key, entry, ttl)


class TestFailOpen:
    def test_read_failure_calls_through(self, kind: str, caplog: pytest.LogCaptureFixture) -> None:
        """A failing backend never breaks the caller: the call goes through, logged, counted."""
        backend = FaultyBackend()
        backend.fail_get = True
        probe = Probe(kind, answer, backend=backend)
        with caplog.at_level(logging.WARNING, "llm_memo"), cache_controls() as scope:
            assert probe() == answer("q")
            assert probe() == answer("q")
        assert len(probe.calls) == 2
        assert [e.outcome for e in scope.events] == [Outcome.ERROR, Outcome.ERROR]
        assert probe.fn.cache.stats().errors == 2
        assert sum("injected read failure" in r.message for r in caplog.records) == 1

    def test_write_failure_returns_the_paid_result(self, kind: str) -> None:
        backend = FaultyBackend()
        backend.fail_set = True
        probe = Probe(kind, answer, backend=backend, strict=True)
        assert probe() == answer("q")
        assert probe.fn.cache.stats().errors == 1

    def test_strict_raises_on_read_failure(self, kind: str) -> None:
        backend = FaultyBackend()
        backend.fail_get = True
        probe = Probe(kind, answer, backend=backend, strict=True)
        with pytest.raises(BackendUnavailableError):
            probe()
        assert probe.calls == []

    def test_only_if_cached_outage_is_a_cache_miss_with_cause(self) -> None:
        backend = FaultyBackend()
        backend.fail_get = True
        probe = Probe("sync", answer, backend=backend, only_if_cached=True)
        with pytest.raises(CacheMiss) as info:
            probe()
        assert isinstance(info.value.__cause__, BackendError)

    def test_other_exceptions_are_not_swallowed(self) -> None:
        """A backend bug (not a BackendError) surfaces instead of being hidden."""

        class Buggy(MemoryBackend):
            def get(self, key: str) -> Any:
                raise ZeroDivisionError

        probe = Probe("sync", answer, backend=Buggy())
        with pytest.raises(ZeroDivisionError):
            probe()


class TestDamagedEntries:
    def test_corrupt_entry_is_a_miss_and_is_overwritten(self, kind: str) -> None:
        backend = MemoryBackend()
        probe = Probe(kind, answer, backend=backend)
        key = probe.fn.cache.key("q")
        backend.set(key, Entry(b"{not json", "json", 0.0), None)
        assert probe() == answer("q")
        assert probe.calls == ["q"]
        got = backend.get(key)
        assert got is not MISSING
        assert got.value != b"{not json"
        probe()
        assert probe.calls == ["q"]

    def test_tampered_signed_entry_is_a_miss(self, kind: str) -> None:
        configure(signing_keys=["k" * 32])
        backend = MemoryBackend()
        probe = Probe(kind, answer, backend=backend)
        probe()
        key = probe.fn.cache.key("q")
        good = backend.get(key)
        assert good is not MISSING
        assert good.signature
        import dataclasses

        backend.set(key, dataclasses.replace(good, value=b'[{"text":"EVIL"}]'), None)
        assert probe() == answer("q")
        assert len(probe.calls) == 2

    def test_unknown_type_tag_is_a_miss(self) -> None:
        backend = MemoryBackend()
        probe = Probe("sync", answer, backend=backend)
        backend.set(probe.fn.cache.key("q"), Entry(b"{}", "model:os:system", 0.0), None)
        assert probe() == answer("q")
        assert probe.calls == ["q"]


class TestUnstorableValues:
    def test_unstorable_result_is_returned_and_logged_once(
        self, llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        probe = Probe("sync", lambda x: object())
        with caplog.at_level(logging.WARNING, "llm_memo"):
            probe()
            probe()
        assert len(probe.calls) == 2
        msgs = [r.message for r in caplog.records if "not caching" in r.message]
        assert len(msgs) == 1
        assert "annotate the function's return type" in msgs[0]

    def test_allow_pickle_opt_in(self, llm_cache: CacheRecorder) -> None:
        probe = Probe("sync", lambda x: {1, 2, 3}, allow_pickle=True)
        assert probe() == probe() == {1, 2, 3}
        assert len(probe.calls) == 1


class TestWrapping:
    def test_signature_and_introspection_survive(self) -> None:
        @llm_cached
        def ask(model: str, prompt: str, temperature: float = 0.0) -> str:
            """Docs."""
            return prompt

        @llm_cached(ttl=5)
        async def aask(prompt: str) -> str:
            return prompt

        assert inspect.signature(ask) == inspect.signature(ask.__wrapped__)
        assert list(inspect.signature(ask).parameters) == ["model", "prompt", "temperature"]
        assert ask.__name__ == "ask"
        assert ask.__doc__ == "Docs."
        assert ask.__wrapped__.__name__ == "ask"
        assert inspect.iscoroutinefunction(aask)
        assert not inspect.iscoroutinefunction(ask)

    def test_callables_you_do_not_own(self, llm_cache: CacheRecorder) -> None:
        """A bound method of someone else's object can be cached; its self is not keyed."""

        class Completions:
            def __init__(self) -> None:
                self.calls = 0

            def create(self, *, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
                self.calls += 1
                return {"model": model}

        client = Completions()
        create = llm_cached(ttl=60)(client.create)
        create(model="m", messages=[])
        create(model="m", messages=[])
        assert client.calls == 1

    def test_methods_classmethods_staticmethods(self, llm_cache: CacheRecorder) -> None:
        calls: list[str] = []

        class Svc:
            @llm_cached(ignore=("self",))
            def inst(self, x: int) -> int:
                calls.append("inst")
                return x

            @llm_cached
            @classmethod
            def cls_(cls, x: int) -> int:
                calls.append("cls")
                return x

            @llm_cached
            @staticmethod
            def stat(x: int) -> int:
                calls.append("stat")
                return x

        s = Svc()
        for _ in range(2):
            assert s.inst(1) == Svc.inst(s, 1) == 1
            assert Svc.cls_(2) == s.cls_(2) == 2
            assert Svc.stat(3) == s.stat(3) == 3
        assert calls == ["inst", "cls", "stat"]
        assert s.inst.cache.contains(1)

    def test_async_callable_object(self, llm_cache: CacheRecorder) -> None:
        """An object with an async __call__ gets the async driver."""

        class Model:
            async def __call__(self, prompt: str) -> str:
                return prompt * 2

        cached = llm_cached(Model())
        assert asyncio.run(cached("a")) == "aa"
        assert asyncio.run(cached("a")) == "aa"
        assert llm_cache.hits == 1

    def test_bad_options_fail_at_decoration(self) -> None:
        with pytest.raises(ConfigurationError):
            llm_cached(ttl=-1)
        with pytest.raises(ConfigurationError):
            llm_cached(ignore="self")
        with pytest.raises(ConfigurationError):
            llm_cached(bogus=True)
        with pytest.raises(ConfigurationError):
            llm_cached(strict="yes")

    def test_name_overrides_identity(self, llm_cache: CacheRecorder) -> None:
        """name= keeps entries shared across a rename."""

        @llm_cached(name="stable")
        def old(x: int) -> int:
            return x

        @llm_cached(name="stable")
        def new(x: int) -> int:
            raise AssertionError("should hit old's entry")

        old(1)
        assert new(1) == 1


class TestHandle:
    def test_get_contains_delete_clear(self, llm_cache: CacheRecorder) -> None:
        probe = Probe("sync", answer)
        h = probe.fn.cache
        assert h.get("q") is None
        assert not h.contains("q")
        probe("q")
        probe("r")
        assert h.get("q") == answer("q")
        assert h.contains("q")
        assert h.delete("q") is True
        assert not h.contains("q")
        assert h.clear() == 1
        assert llm_cache.entries() == []
        assert len(llm_cache.events) == 2  # handle calls emit no events

    def test_clear_only_this_function_and_namespace(self, llm_cache: CacheRecorder) -> None:
        a, b = Probe("sync", answer), Probe("async", answer)
        a()
        b()
        with cache_controls(namespace="other"):
            a()
        assert a.fn.cache.clear() == 1
        assert b.fn.cache.contains("q")
        assert asyncio.run(b.fn.cache.acontains("q"))
        assert not a.fn.cache.contains("q")
        with cache_controls(namespace="other"):
            assert a.fn.cache.contains("q")

    def test_async_handle_methods(self, llm_cache: CacheRecorder) -> None:
        probe = Probe("async", answer)
        probe()
        h = probe.fn.cache

        async def run() -> tuple[Any, ...]:
            return (
                await h.aget("q"),
                await h.acontains("q"),
                await h.adelete("q"),
                await h.acontains("q"),
                await h.aclear(),
            )

        assert asyncio.run(run()) == (answer("q"), True, True, False, 0)

    def test_stats_count_tokens_saved(self, llm_cache: CacheRecorder) -> None:
        probe = Probe("sync", lambda x: {"usage": {"total_tokens": 100}})
        probe()
        probe()
        probe()
        stats = probe.fn.cache.stats()
        assert (stats.hits, stats.misses, stats.tokens_saved) == (2, 1, 200)
        assert stats.hit_ratio == pytest.approx(2 / 3)


class TestEvents:
    def test_event_fields(self, llm_cache: CacheRecorder) -> None:
        probe = Probe("sync", lambda x: {"usage": {"total_tokens": 7}})
        probe()
        llm_cache.advance(5)
        probe()
        miss, hit = llm_cache.events
        assert miss.outcome is Outcome.MISS
        assert miss.age is None
        assert hit.outcome is Outcome.HIT
        assert hit.age == pytest.approx(5)
        assert hit.key == miss.key == probe.fn.cache.key("q")
        assert hit.tokens == 7
        assert hit.latency >= 0
        assert hit.namespace == "default"

    def test_on_event_callbacks(self, llm_cache: CacheRecorder) -> None:
        seen: list[Outcome] = []
        configure(on_event=lambda e: seen.append(e.outcome))
        probe = Probe("sync", answer)
        probe()
        probe()
        assert seen == [Outcome.MISS, Outcome.HIT]

    def test_failing_callback_does_not_lose_the_result(
        self, llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        def bad(event: Any) -> None:
            raise ValueError("listener bug")

        configure(on_event=bad)
        probe = Probe("sync", answer)
        with caplog.at_level(logging.ERROR, "llm_memo"):
            assert probe() == answer("q")
        assert any("on_event callback" in r.message for r in caplog.records)

    def test_debug_logging(
        self, llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        probe = Probe("sync", answer)
        with caplog.at_level(logging.DEBUG, "llm_memo"):
            probe()
            probe()
        assert [r.message.split()[0] for r in caplog.records] == ["miss", "hit"]


def test_sync_function_rejects_an_async_backend() -> None:
    class AsyncOnly:
        async def get(self, key: str) -> Any: ...
        async def set(self, key: str, entry: Entry, ttl: float | None) -> None: ...

    probe = Probe("sync", answer, backend=AsyncOnly())
    with pytest.raises(ConfigurationError, match="async backend"):
        probe()


class TestNothingIsLost:
    def test_unresolvable_annotation_returns_the_result(self, llm_cache: CacheRecorder) -> None:
        """A return annotation pydantic cannot build (a TYPE_CHECKING-only name) never
        loses the paid result: it is returned, just not stored."""
        ns: dict[str, Any] = {}
        exec(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from decimal import Decimal\n"
            "def f(x: int) -> tuple['Decimal', int]:\n"
            "    return (x, x)\n",
            ns,
        )
        cached = llm_cached(ns["f"])
        assert cached(1) == (1, 1)
        assert cached(1) == (1, 1)

    def test_failing_cache_if_returns_the_result(
        self, llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
    ) -> None:
        def bad(result: Any) -> bool:
            raise KeyError("bug")

        probe = Probe("sync", answer, cache_if=bad)
        with caplog.at_level(logging.ERROR, "llm_memo"):
            assert probe() == answer("q")
        assert llm_cache.entries() == []
        assert any("cache_if" in r.message for r in caplog.records)

    def test_strict_failure_still_has_an_event(self) -> None:
        backend = FaultyBackend()
        backend.fail_get = True
        probe = Probe("sync", answer, backend=backend, strict=True)
        with cache_controls() as scope, pytest.raises(BackendUnavailableError):
            probe()
        assert [e.outcome for e in scope.events] == [Outcome.ERROR]
        assert probe.fn.cache.stats().errors == 1


def test_classmethod_handle_through_the_class(llm_cache: CacheRecorder) -> None:
    class A:
        @llm_cached
        @classmethod
        def make(cls, x: int) -> int:
            return x

    A.make(1)
    assert A.make.cache.contains(1)
    assert A().make.cache.contains(1)
    assert A.make.cache.key(1) == A().make.cache.key(1)


def test_lock_without_lock_support_warns_once(
    llm_cache: CacheRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe("sync", answer, lock=True)
    with caplog.at_level(logging.WARNING, "llm_memo"):
        probe("a")
        probe("b")
    assert sum("no cross-process lock" in r.message for r in caplog.records) == 1


def test_configure_flags_must_be_bools() -> None:
    for name in ("strict", "lock", "allow_pickle"):
        with pytest.raises(ConfigurationError):
            configure(**{name: "yes"})
