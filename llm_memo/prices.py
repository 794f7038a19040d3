"""What tokens cost: the one price API behind ``fn.cache.stats().cost_saved``, each event's and
scope's ``cost_saved``, the OpenTelemetry ``llm_memo.cost.saved`` counter and ``llm-memo stats``.

A :class:`PriceTable` answers "what is one million tokens of this function's answers worth", as a
:class:`Price` (USD per 1M input, output and cached-input tokens), from, in this order:

1. the prices given to it (``configure(prices=...)``, ``metrics.enable(prices=...)``), keyed by
   function identity (``"app.llm.ask"``), a glob of them (``"app.llm.*"``) or a model name;
2. for the model the answer names (the response's ``model``, stored with the entry) or the one
   ``models=`` maps the function to: a given price for that model, then litellm's cost map when
   the program has already imported litellm (never imported here: that would be slow and fetch
   the map over the network), then the table shipped with llm_memo (``prices.json``,
   :data:`AS_OF`).

A price is a number (USD per 1M tokens of any kind, as ``metrics.enable(prices=)`` took it
since 0.1.0), a mapping ``{"input": .., "output": .., "cached_input": ..}`` or a :class:`Price`.
A model name matches a table row exactly, without a provider prefix (``openai/``, ``models/``),
or by its longest row name followed by ``-`` (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``).

The shipped table holds the providers' public **list prices** on :data:`AS_OF` (standard tier,
no batch discounts, short-context rates): an estimate to see what a cache saves, not a bill.
When only a response's total tokens are known (an entry written before 0.3.0, an SDK that
reports no split), every token is counted at the input price: a lower bound.

Not here: which tokens a response reports (``llm_memo.sdks``), counting (``events.Stats``), the
exporters (``metrics.py``).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Union

from .errors import ConfigurationError
from .sdks import Usage

__all__ = ["AS_OF", "Price", "PriceTable", "PriceTypes", "default_table", "shipped_prices"]

#: What a price may be given as: USD per 1M tokens of any kind, a mapping with ``input``,
#: ``output`` and optional ``cached_input``, or a :class:`Price`.
PriceTypes = Union[float, int, Mapping[str, float], "Price"]

_PREFIXES = ("openai/", "anthropic/", "gemini/", "vertex_ai/", "models/", "azure/")


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens, by kind.

    Args:
        input: per 1M prompt tokens not read from the provider's prompt cache.
        output: per 1M completion tokens.
        cached_input: per 1M prompt tokens read from the prompt cache; ``None``: as ``input``.

    Example::

        Price(input=0.15, output=0.6, cached_input=0.075).cost(Usage(1000, 200, 500))

    .. versionadded:: 0.1.0
    """

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage | None, tokens: int = 0) -> float:
        """USD of ``usage``; of ``tokens`` at the input price when there is no split."""
        if not usage:
            return tokens * self.input / 1e6
        cached = min(usage.cached_input, usage.input)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.input - cached) * self.input + cached * cached_price + usage.output * self.output
        ) / 1e6

    @classmethod
    def of(cls, name: str, value: Any) -> Price:
        """A :class:`Price` from any :data:`PriceTypes` form (``name`` is for the error).

        Raises:
            ConfigurationError: not a price, or a negative one.
        """
        if isinstance(value, Price):
            parts: tuple[Any, ...] = (value.input, value.output, value.cached_input)
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - {"input", "output", "cached_input"})
            if unknown or "input" not in value:
                raise ConfigurationError(
                    f"price of {name!r} must have 'input' (and 'output', 'cached_input') in "
                    f"USD per 1M tokens; unknown: {unknown}"
                )
            parts = (value["input"], value.get("output", value["input"]), value.get("cached_input"))
        else:
            parts = (value, value, None)
        for part in parts if parts[2] is not None else parts[:2]:
            if isinstance(part, bool) or not isinstance(part, (int, float)) or not part >= 0:
                raise ConfigurationError(f"price of {name!r} must be USD per 1M tokens, >= 0")
        cached = None if parts[2] is None else float(parts[2])
        return cls(float(parts[0]), float(parts[1]), cached)


@functools.cache
def _shipped() -> tuple[str, dict[str, Price]]:
    data = json.loads(resources.files(__package__).joinpath("prices.json").read_text("utf-8"))
    return str(data["as_of"]), {name: Price.of(name, row) for name, row in data["models"].items()}


def shipped_prices() -> dict[str, Price]:
    """The price table shipped with llm_memo (list prices on :data:`AS_OF`), by model name.

    .. versionadded:: 0.1.0
    """
    return dict(_shipped()[1])


def __getattr__(name: str) -> Any:
    # AS_OF is read from prices.json on first use, not at import.
    if name == "AS_OF":
        return _shipped()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


AS_OF: str  #: The date (``YYYY-MM-DD``) of the list prices in the shipped table.


def _match(table: Mapping[str, Price], model: str) -> Price | None:
    """A model's row: exact, without a provider prefix, or the longest ``row-`` prefix."""
    found = table.get(model)
    if found is not None:
        return found
    for prefix in _PREFIXES:
        if model.startswith(prefix):
            return _match(table, model[len(prefix) :])
    best = ""
    for name in table:
        if len(name) > len(best) and model.startswith(name + "-"):
            best = name
    return table[best] if best else None


def _litellm(model: str) -> Price | None:
    # Only a litellm the program has imported already: importing it here would be slow and
    # would fetch its cost map over the network.
    costs = getattr(sys.modules.get("litellm"), "model_cost", None)
    if not isinstance(costs, Mapping):
        return None
    row = costs.get(model)
    if not isinstance(row, Mapping):
        return None

    def per_million(name: str) -> float | None:
        value = row.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value) * 1e6
        return None

    price_in = per_million("input_cost_per_token")
    if price_in is None:
        return None
    price_out = per_million("output_cost_per_token")
    return Price(
        price_in,
        price_in if price_out is None else price_out,
        per_million("cache_read_input_token_cost"),
    )


def _lookup(table: Mapping[str, Any], function: str) -> Any:
    if function in table:
        return table[function]
    for pattern, value in table.items():
        if fnmatch.fnmatchcase(function, pattern):
            return value
    return None


class PriceTable:
    """Prices for functions and models (see the module docstring for the order of lookup).

    Args:
        prices: function identity, function glob or model name -> a price (:data:`PriceTypes`).
        models: function identity (or glob) -> model name, for functions whose answers name no
            model (a function returning ``str``).
        shipped: whether to fall back to the table shipped with llm_memo.

    Raises:
        ConfigurationError: a bad price or model name.

    Example::

        configure(prices=PriceTable({"app.llm.*": {"input": 0.15, "output": 0.6}}))

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_cache", "_lock", "_models", "_prices", "_shipped")

    def __init__(
        self,
        prices: Mapping[str, PriceTypes] | None = None,
        models: Mapping[str, str] | None = None,
        *,
        shipped: bool = True,
    ) -> None:
        if prices is not None and not isinstance(prices, Mapping):
            raise ConfigurationError("prices must map function or model names to prices")
        self._prices = {str(name): Price.of(name, value) for name, value in (prices or {}).items()}
        self._models = dict(models or {})
        for name, model in self._models.items():
            if not isinstance(model, str) or not model:
                raise ConfigurationError(f"the model of {name!r} must be a model name")
        self._shipped = shipped
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Price | None] = {}

    def price(self, function: str, model: str = "") -> Price | None:
        """The price of ``function``'s answers naming ``model`` ("" when they name none), or
        ``None`` when no price is known. Remembered per (function, model)."""
        try:
            return self._cache[function, model]
        except KeyError:
            pass
        found = self._resolve(function, model)
        with self._lock:
            if len(self._cache) > 4096:  # a bound against unbounded model names
                self._cache.clear()
            self._cache[function, model] = found
        return found

    def cost(self, function: str, model: str, usage: Usage | None, tokens: int = 0) -> float | None:
        """USD of an answer of ``function`` naming ``model`` with ``usage`` (or ``tokens``, at
        the input price), or ``None`` when no price is known."""
        price = self.price(function, model)
        return None if price is None else price.cost(usage, tokens)

    def _resolve(self, function: str, model: str) -> Price | None:
        given = _lookup(self._prices, function)
        if given is not None:
            return given  # type: ignore[no-any-return]
        model = model or _lookup(self._models, function) or ""
        if not model:
            return None
        found = _match(self._prices, model) or _litellm(model)
        if found is None and self._shipped:
            found = _match(_shipped()[1], model)
        return found


_default: PriceTable | None = None


def default_table() -> PriceTable:
    """The table used when ``configure(prices=)`` gives none: the shipped list prices and
    litellm's cost map (when litellm is imported).

    .. versionadded:: 0.1.0
    """
    global _default
    if _default is None:
        _default = PriceTable()
    return _default
