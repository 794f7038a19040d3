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

**Money saved.** An event names the function and the tokens the cached answer cost when it was
first produced (``usage.total_tokens``), not the model. So prices are found per function:
``prices`` maps a function identity (``"app.llm.ask"``), a glob of them (``"app.llm.*"``) or a
model name to US dollars per million tokens; ``models`` maps functions (or globs) to model
names, whose price comes from ``prices`` or, when the program has imported litellm, from
litellm's model cost map. Only the total token count is known, so litellm prices count every
token at the model's *input* price: a lower bound. A function with no price counts tokens but
no money.

Not here: the events themselves (``events.py``) and per-function counters (``fn.cache.stats()``).
"""

from __future__ import annotations

import fnmatch
import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import config
from .errors import ConfigurationError, MissingDependencyError
from .events import Event, Outcome

__all__ = ["DURATION_BUCKETS", "CacheMetrics", "MetricsTotals", "disable", "enable"]

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
        prices: Mapping[str, float] | None = None,
        models: Mapping[str, str] | None = None,
        attributes: Sequence[str] = ("function",),
    ) -> None:
        unknown = sorted(set(attributes) - set(_ATTRIBUTES))
        if unknown:
            raise ConfigurationError(
                f"unknown metric attribute(s) {unknown}; known: {', '.join(_ATTRIBUTES)}"
            )
        self._prices = dict(prices or {})
        self._models = dict(models or {})
        for name, price in self._prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ConfigurationError(f"price of {name!r} must be USD per 1M tokens, >= 0")
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
        self._per_token: dict[str, float | None] = {}
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
        per_token = self.price_per_token(event.function) if saved else None
        with self._lock:
            self._calls[ident] = self._calls.get(ident, 0) + 1
            if saved:
                self._tokens[where] = self._tokens.get(where, 0) + saved
                if per_token is not None:
                    self._cost[where] = self._cost.get(where, 0.0) + saved * per_token

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
        """USD per token for ``function``'s answers, or ``None`` when no price is known."""
        try:
            return self._per_token[function]
        except KeyError:
            pass
        price = self._resolve(function)
        if price is None:
            logger.debug("llm_memo metrics: no price for %s; counting tokens only", function)
        self._per_token[function] = price
        return price

    def _resolve(self, function: str) -> float | None:
        per_million = _lookup(self._prices, function)
        if per_million is not None:
            return float(per_million) / 1e6
        model = _lookup(self._models, function)
        if model is None:
            return None
        if model in self._prices:
            return float(self._prices[model]) / 1e6
        return _litellm_price(model)


def _lookup(table: Mapping[str, Any], function: str) -> Any:
    if function in table:
        return table[function]
    for pattern, value in table.items():
        if fnmatch.fnmatchcase(function, pattern):
            return value
    return None


def _litellm_price(model: str) -> float | None:
    # Only a litellm the program has imported already: importing it here would be slow and
    # would fetch its cost map over the network.
    litellm = sys.modules.get("litellm")
    costs = getattr(litellm, "model_cost", None)
    if not isinstance(costs, Mapping):
        return None
    row = costs.get(model)
    price = row.get("input_cost_per_token") if isinstance(row, Mapping) else None
    if isinstance(price, (int, float)) and not isinstance(price, bool):
        return float(price)
    return None


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
    prices: Mapping[str, float] | None = None,
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
        prices: US dollars per million tokens, keyed by function identity, function glob or
            model name.
        models: function identity (or glob) -> model name, to price functions by model (from
            ``prices``, else from litellm's cost map when litellm is imported).
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
