"""Metrics: cache events as OpenTelemetry counters and histograms, with tokens and money saved.

One call turns it on::

    import llm_memo.metrics

    llm_memo.metrics.enable(prices={"gpt-4o-mini": 0.15}, models={"app.llm.*": "gpt-4o-mini"})

:func:`enable` registers an observer with ``configure(on_event=...)`` (added to the callbacks
already there) that records, through the ``opentelemetry-api`` package
(``pip install 'llm-memo[otel]'``), into the global meter provider or the one given:

==========================  =========  =========================================================
instrument                  unit       what, with attributes
==========================  =========  =========================================================
``llm_memo.calls``          {call}     counter: cached calls by ``outcome`` (hit, miss, refresh,
                                       stale, bypass, error) and ``function`` (configurable)
``llm_memo.call.duration``  s          histogram: latency of cached calls, same attributes
``llm_memo.tokens.saved``   {token}    counter: tokens hits (and stale answers) did not spend
                                       again, by ``function``
``llm_memo.cost.saved``     {USD}      counter: the estimated US dollars of those tokens
==========================  =========  =========================================================

Nothing of this runs, and OpenTelemetry is not imported, until :func:`enable` is called: the
decorator only builds event objects when someone listens.

**Money saved.** Each event carries ``cost_saved``, priced by :mod:`llm_memo.prices` (the prices
``configure(prices=...)`` gave, litellm's cost map when the program imported litellm, the
list prices shipped with llm_memo) from the model the answer names and its input, output and
cached-input tokens. ``enable(prices=..., models=...)`` prices this exporter's counts with its
own :class:`~llm_memo.prices.PriceTable` instead: ``prices`` maps a function identity
(``"app.llm.ask"``), a glob of them (``"app.llm.*"``) or a model name to US dollars per million
tokens (a number, or ``{"input": .., "output": .., "cached_input": ..}``); ``models`` maps
functions (or globs) to model names for answers that name none. When only the total token count
is known, every token counts at the *input* price: a lower bound. A function with no price
counts tokens but no money.

**Persistent counters** (``configure(persist_stats=True)``) are flushed to the backends in the
background and at exit; :func:`flush_stats` (sync backends) and :func:`aflush_stats` (async
backends, from their event loop) flush them now.

Not here: the events themselves (``events.py``) and per-function counters (``fn.cache.stats()``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _counters, config
from .errors import ConfigurationError, MissingDependencyError
from .events import Event, Outcome
from .prices import PriceTable, PriceTypes
from .sdks import Usage

__all__ = [
    "DURATION_BUCKETS",
    "CacheMetrics",
    "MetricsTotals",
    "aflush_stats",
    "disable",
    "enable",
    "flush_stats",
]

logger = logging.getLogger("llm_memo")

#: Histogram bucket bounds in seconds: hits take microseconds to milliseconds, misses seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_SAVING = (Outcome.HIT, Outcome.STALE)
_ATTRIBUTES = ("function", "namespace")
_lock = threading.Lock()
_active: CacheMetrics | None = None


@dataclass
class MetricsTotals:
    """In-process totals since :func:`enable` (handy for a batch job's closing line).

    .. versionadded:: 0.1.0
    """

    calls: dict[str, int] = field(default_factory=dict)
    tokens_saved: int = 0
    cost_saved: float = 0.0


class CacheMetrics:
    """The observer :func:`enable` registers: records each event into OpenTelemetry instruments.

    Call it with an :class:`~llm_memo.events.Event`; read in-process sums with :meth:`totals`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        meter_provider: Any = None,
        *,
        prices: Mapping[str, PriceTypes] | None = None,
        models: Mapping[str, str] | None = None,
        attributes: Sequence[str] = ("function",),
    ) -> None:
        unknown = sorted(set(attributes) - set(_ATTRIBUTES))
        if unknown:
            raise ConfigurationError(
                f"unknown metric attribute(s) {unknown}; known: {', '.join(_ATTRIBUTES)}"
            )
        # Own prices price this exporter's counts; without them, the events' cost_saved (the
        # configured prices) is counted.
        self._table = PriceTable(prices, models) if prices or models else None
        try:
            from opentelemetry import metrics as otel
        except ImportError as exc:
            raise MissingDependencyError(
                "llm_memo.metrics exports through OpenTelemetry; fix: pip install 'llm-memo[otel]'"
            ) from exc
        from .__about__ import __version__

        provider = meter_provider if meter_provider is not None else otel.get_meter_provider()
        meter = provider.get_meter("llm_memo", __version__)
        self._attributes = tuple(attributes)
        self._observation = otel.Observation
        # Counters are summed here and read by OpenTelemetry when it collects (observable
        # counters): a synchronous counter's add() costs about as much as a whole cache hit in
        # the Python SDK. The latency histogram has no observable form: one record() per call.
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, ...], int] = {}
        self._tokens: dict[tuple[str, ...], int] = {}
        self._cost: dict[tuple[str, ...], float] = {}
        self._labels: dict[tuple[str, ...], dict[str, str]] = {}
        meter.create_observable_counter(
            "llm_memo.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Cached calls, by outcome",
        )
        self._duration = _histogram(meter)
        meter.create_observable_counter(
            "llm_memo.tokens.saved",
            callbacks=[self._observe_tokens],
            unit="{token}",
            description="Tokens that cache hits did not spend again",
        )
        meter.create_observable_counter(
            "llm_memo.cost.saved",
            callbacks=[self._observe_cost],
            unit="{USD}",
            description="Estimated US dollars that cache hits did not spend again",
        )

    def __call__(self, event: Event) -> None:
        """Record one event."""
        outcome = event.outcome.value
        where = tuple(getattr(event, name) for name in self._attributes)
        ident = (outcome, *where)
        labels = self._labels.get(ident)
        if labels is None:
            labels = {"outcome": outcome, **dict(zip(self._attributes, where, strict=True))}
            labels = self._labels.setdefault(ident, labels)
        self._duration.record(event.latency, labels)
        saved = event.tokens if event.outcome in _SAVING else 0
        cost = self._cost_of(event) if saved else None
        with self._lock:
            self._calls[ident] = self._calls.get(ident, 0) + 1
            if saved:
                self._tokens[where] = self._tokens.get(where, 0) + saved
                if cost is not None:
                    self._cost[where] = self._cost.get(where, 0.0) + cost

    def _cost_of(self, event: Event) -> float | None:
        table = self._table
        if table is None:
            return event.cost_saved
        usage = None
        if event.input_tokens or event.output_tokens:
            usage = Usage(event.input_tokens, event.output_tokens, event.cached_input_tokens)
        cost = table.cost(event.function, event.model, usage, event.tokens)
        if cost is None:
            logger.debug("llm_memo metrics: no price for %s; counting tokens only", event.function)
        return cost

    def _observe_calls(self, options: Any) -> list[Any]:
        with self._lock:
            counts = list(self._calls.items())
        return [self._observation(n, self._labels[ident]) for ident, n in counts]

    def _observe_tokens(self, options: Any) -> list[Any]:
        with self._lock:
            counts = list(self._tokens.items())
        return [self._observation(n, self._by(where)) for where, n in counts]

    def _observe_cost(self, options: Any) -> list[Any]:
        with self._lock:
            sums = list(self._cost.items())
        return [self._observation(usd, self._by(where)) for where, usd in sums]

    def _by(self, where: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self._attributes, where, strict=True))

    def totals(self) -> MetricsTotals:
        """The in-process sums since this observer was created."""
        calls: dict[str, int] = {}
        with self._lock:
            for ident, n in self._calls.items():
                calls[ident[0]] = calls.get(ident[0], 0) + n
            return MetricsTotals(calls, sum(self._tokens.values()), sum(self._cost.values()))

    def price_per_token(self, function: str) -> float | None:
        """USD per input token for ``function``'s answers (when they name no model), or
        ``None`` when no price is known."""
        price = (self._table or _configured()).price(function)
        return None if price is None else price.input / 1e6


def _configured() -> PriceTable:
    from .prices import default_table

    configured = config.settings().prices
    return configured if isinstance(configured, PriceTable) else default_table()


def _histogram(meter: Any) -> Any:
    name, unit = "llm_memo.call.duration", "s"
    description = "Latency of cached calls, by outcome"
    try:
        return meter.create_histogram(
            name,
            unit=unit,
            description=description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
    except TypeError:  # opentelemetry-api < 1.23 has no bucket advice; configure a View
        return meter.create_histogram(name, unit=unit, description=description)


def enable(
    meter_provider: Any = None,
    *,
    prices: Mapping[str, PriceTypes] | None = None,
    models: Mapping[str, str] | None = None,
    attributes: Sequence[str] = ("function",),
) -> CacheMetrics:
    """Export cache metrics through OpenTelemetry, from now on; return the observer.

    Registers a :class:`CacheMetrics` observer with ``configure(on_event=...)``, after the
    callbacks already configured (a later ``configure(on_event=...)`` replaces all callbacks:
    call :func:`enable` after it). Calling :func:`enable` again replaces the previous observer.

    Args:
        meter_provider: an OpenTelemetry ``MeterProvider``; default: the global one
            (``opentelemetry.metrics.get_meter_provider()``).
        prices: US dollars per million tokens (a number, or ``{"input": .., "output": ..,
            "cached_input": ..}``), keyed by function identity, function glob or model name;
            given (or ``models``), this exporter prices with its own
            :class:`~llm_memo.prices.PriceTable`, else it counts the events' ``cost_saved``.
        models: function identity (or glob) -> model name, to price functions whose answers
            name no model (from ``prices``, litellm's cost map when litellm is imported, or
            the shipped list prices).
        attributes: event fields added to every data point besides ``outcome``: ``function``
            (default) and ``namespace`` (mind the cardinality of per-tenant namespaces).

    Raises:
        MissingDependencyError: ``opentelemetry-api`` is not installed.
        ConfigurationError: an unknown attribute or a bad price.

    Example::

        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
        llm_memo.metrics.enable(provider, prices={"app.llm.*": 0.15})

    .. versionadded:: 0.1.0
    """
    global _active
    observer = CacheMetrics(meter_provider, prices=prices, models=models, attributes=attributes)
    with _lock:
        previous, _active = _active, observer
        callbacks = [cb for cb in config.settings().on_event if cb is not previous]
        config.configure(on_event=[*callbacks, observer])
    return observer


def disable() -> None:
    """Stop exporting: remove the observer :func:`enable` registered (if any).

    .. versionadded:: 0.1.0
    """
    global _active
    with _lock:
        previous, _active = _active, None
        if previous is not None:
            callbacks = [cb for cb in config.settings().on_event if cb is not previous]
            config.configure(on_event=callbacks)


def flush_stats() -> int:
    """Write the pending persistent counters (``configure(persist_stats=...)``) of every sync
    backend now; return how many backends' batches were written. They are otherwise written
    every ``persist_stats`` seconds and at exit.

    Example::

        configure(persist_stats=True)
        run_batch_job()
        llm_memo.metrics.flush_stats()

    .. versionadded:: 0.1.0
    """
    return _counters.flush()


async def aflush_stats() -> int:
    """Write the pending persistent counters of every async backend now, from the running event
    loop; return how many batches were written. Await it before a loop that used async backends
    ends (their counts still pending when the loop closes are lost).

    .. versionadded:: 0.1.0
    """
    return await _counters.aflush()
