"""Metrics export: cache events into an OpenTelemetry in-memory reader."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llm_memo import cache_controls, configure, llm_cached
from llm_memo import metrics as llm_metrics
from llm_memo.backends.memory import MemoryBackend
from llm_memo.config import settings
from llm_memo.errors import BackendError, ConfigurationError, MissingDependencyError
from llm_memo.testing import FakeClock


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    yield reader
    llm_metrics.disable()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def by_outcome(reader: InMemoryMetricReader, name: str) -> dict[str, Any]:
    return {p.attributes["outcome"]: p for p in points(reader, name)}


def answer(q: str) -> dict:
    return {
        "answer": q,
        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100},
    }


class FailingBackend(MemoryBackend):
    def get(self, key: str) -> Any:
        raise BackendError("down")


class TestExport:
    """Counters, histograms, tokens and money saved reach the reader."""

    def test_every_outcome_is_counted_with_latency(
        self, reader: InMemoryMetricReader, provider: MeterProvider
    ) -> None:
        """hit, miss, refresh, bypass, stale and error each land in the counter and histogram."""
        clock = FakeClock(1000.0)
        configure(clock=clock)
        llm_metrics.enable(provider)
        fail = False

        @llm_cached(backend=MemoryBackend(clock=clock), ttl=10, stale_if_error=100, name="app.ask")
        def ask(q: str) -> dict:
            if fail:
                raise RuntimeError("provider down")
            return answer(q)

        ask("a")  # miss
        ask("a")  # hit
        with cache_controls(no_cache=True):
            ask("a")  # refresh
        with cache_controls(enabled=False):
            ask("a")  # bypass
        clock.advance(20)
        fail = True
        ask("a")  # stale
        fail = False
        with cache_controls(backend=FailingBackend()):
            ask("b")  # error (fail-open)

        calls = by_outcome(reader, "llm_memo.calls")
        assert {k: p.value for k, p in calls.items()} == {
            "miss": 1,
            "hit": 1,
            "refresh": 1,
            "bypass": 1,
            "stale": 1,
            "error": 1,
        }
        assert calls["hit"].attributes == {"outcome": "hit", "function": "app.ask"}
        durations = by_outcome(reader, "llm_memo.call.duration")
        assert all(p.count == 1 for p in durations.values())
        assert durations["miss"].explicit_bounds[:2] == (0.0001, 0.0005)
        (saved,) = points(reader, "llm_memo.tokens.saved")
        assert saved.value == 200  # the hit and the stale answer
        assert saved.attributes == {"function": "app.ask"}
        assert points(reader, "llm_memo.cost.saved") == []  # no price given

    def test_money_saved_from_a_function_price(
        self, reader: InMemoryMetricReader, provider: MeterProvider
    ) -> None:
        """prices keyed by a function glob, in USD per million tokens."""
        observer = llm_metrics.enable(provider, prices={"app.*": 2.0})

        @llm_cached(backend=MemoryBackend(), name="app.ask")
        def ask(q: str) -> dict:
            return answer(q)

        for _ in range(4):
            ask("a")  # 1 miss, 3 hits of 100 tokens
        (cost,) = points(reader, "llm_memo.cost.saved")
        assert cost.value == pytest.approx(300 * 2.0 / 1e6)
        totals = observer.totals()
        assert totals.calls == {"miss": 1, "hit": 3}
        assert totals.tokens_saved == 300
        assert totals.cost_saved == pytest.approx(0.0006)

    def test_money_saved_by_model(
        self,
        reader: InMemoryMetricReader,
        provider: MeterProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """models maps functions to models, priced from prices or an imported litellm."""
        fake_litellm = types.SimpleNamespace(
            model_cost={"claude-x": {"input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5}}
        )
        monkeypatch.setitem(sys.modules, "litellm", fake_litellm)
        llm_metrics.enable(
            provider,
            prices={"gpt-small": 0.5},
            models={"app.cheap": "gpt-small", "app.smart*": "claude-x", "app.other": "unknown"},
        )
        for name in ("app.cheap", "app.smart", "app.other"):

            @llm_cached(backend=MemoryBackend(), name=name)
            def ask(q: str) -> dict:
                return answer(q)

            ask("q")
            ask("q")
        costs = {p.attributes["function"]: p.value for p in points(reader, "llm_memo.cost.saved")}
        assert costs == {
            "app.cheap": pytest.approx(100 * 0.5 / 1e6),
            # 80 prompt tokens at the input price, 20 completion tokens at the output price
            "app.smart": pytest.approx(80 * 3e-6 + 20 * 1.5e-5),
        }
        tokens = {
            p.attributes["function"]: p.value for p in points(reader, "llm_memo.tokens.saved")
        }
        assert tokens == {"app.cheap": 100, "app.smart": 100, "app.other": 100}

    def test_namespace_attribute_on_request(
        self, reader: InMemoryMetricReader, provider: MeterProvider
    ) -> None:
        """attributes=("function", "namespace") adds the namespace to data points."""
        llm_metrics.enable(provider, attributes=("function", "namespace"))

        @llm_cached(backend=MemoryBackend(), name="app.ask", namespace="tenant-1")
        def ask(q: str) -> str:
            return q

        ask("x")
        (point,) = points(reader, "llm_memo.calls")
        assert point.attributes == {
            "outcome": "miss",
            "function": "app.ask",
            "namespace": "tenant-1",
        }
        with pytest.raises(ConfigurationError, match="unknown metric attribute"):
            llm_metrics.enable(attributes=("key",))
        with pytest.raises(ConfigurationError, match="USD per 1M tokens"):
            llm_metrics.enable(prices={"x": -1})


class TestRegistration:
    """enable() adds one observer next to the user's callbacks; disable() removes it."""

    def test_appends_replaces_and_disables(
        self, reader: InMemoryMetricReader, provider: MeterProvider
    ) -> None:
        seen: list[str] = []

        def mine(event: Any) -> None:
            seen.append(event.outcome.value)

        configure(on_event=mine)
        first = llm_metrics.enable(provider)
        assert settings().on_event == (mine, first)
        second = llm_metrics.enable(MeterProvider(shutdown_on_exit=False))
        assert settings().on_event == (mine, second)

        @llm_cached(backend=MemoryBackend())
        def ask(q: str) -> str:
            return q

        ask("x")
        assert seen == ["miss"]
        assert second.totals().calls == {"miss": 1}
        assert first.totals().calls == {}
        llm_metrics.disable()
        assert settings().on_event == (mine,)
        llm_metrics.disable()  # idempotent

    def test_missing_opentelemetry(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without opentelemetry-api, enable() names the extra to install."""
        monkeypatch.setitem(sys.modules, "opentelemetry", None)
        with pytest.raises(MissingDependencyError, match=r"llm-memo\[otel\]"):
            llm_metrics.enable()
        assert settings().on_event == ()

    def test_zero_cost_when_not_enabled(self) -> None:
        """Importing llm_memo (and llm_memo.metrics) imports no OpenTelemetry, registers nothing."""
        code = (
            "import sys, llm_memo, llm_memo.metrics\n"
            "from llm_memo.config import settings\n"
            "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported'\n"
            "assert settings().on_event == ()\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
