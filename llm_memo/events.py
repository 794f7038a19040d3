"""What happened to each cached call: :class:`Outcome`, :class:`Event`, and the :class:`Stats`
counters behind ``fn.cache.stats()``.

Every cached call ends in exactly one outcome. Events go to the active ``cache_controls``
scopes, to the per-function counters, to the ``llm_memo`` logger and to ``configure(on_event=)``
callbacks; the dispatching is ``Memo.emit`` (``_memo.py``), called by the runners. An
:class:`Event` object is only built when someone is listening (a scope, a callback, the test
fixture, or DEBUG logging); otherwise a call costs a counter increment. :class:`Stats` is the
one hit/miss counter: ``fn.cache.stats()`` and each :class:`~llm_memo.controls.CacheScope`
count with it.

Not here: decisions (``_policy.py``) and metric exporters.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

from . import _fork

__all__ = ["CacheStats", "Event", "Outcome", "Stats"]


class Outcome(str, enum.Enum):
    """How a cached call was answered.

    .. versionadded:: 0.1.0
    """

    #: Answered from the cache (or by an identical call already in flight); no call made.
    HIT = "hit"
    #: Nothing usable cached: the function was called (also an ``only_if_cached`` miss).
    MISS = "miss"
    #: ``no_cache``: the cache was not consulted; the function was called and the result stored.
    REFRESH = "refresh"
    #: The call raised and ``stale_if_error`` served an expired entry instead.
    STALE = "stale"
    #: ``enabled=False``: the cache was bypassed entirely.
    BYPASS = "bypass"
    #: A backend failed; the call still went through (fail-open).
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Event:
    """One cached call.

    Attributes:
        outcome: how the call was answered.
        key: the cache key (empty for ``bypass``).
        latency: seconds the cached call took, end to end.
        age: seconds since the served entry was created (``None`` when nothing was served
            from the cache).
        function: the function identity in the key.
        namespace: the namespace the call ran in.
        similarity: cosine similarity of a semantic hit, else ``None``.
        tokens: tokens the answer cost when it was first produced (from ``usage``), if known.
        error: the backend error behind an ``error`` outcome.
        model: the model the served answer names, "" when unknown.
        input_tokens, output_tokens, cached_input_tokens: ``tokens`` by kind, when the
            response reported them apart (else 0).
        cost_saved: US dollars the served answer did not spend again (``hit`` and ``stale``),
            priced by ``llm_memo.prices``; ``None`` when nothing was served or no price is known.
        items_hit, items_sent: for a call cached item by item (``per_item``, embeddings), the
            items answered from the cache (repeats within the batch included) and the items
            sent; ``tokens`` (and ``cost_saved``) is then what the items answered saved,
            whatever the call's outcome. Both 0 for other calls.

    .. versionadded:: 0.1.0
    """

    outcome: Outcome
    key: str
    latency: float
    age: float | None = None
    function: str = ""
    namespace: str = ""
    similarity: float | None = None
    tokens: int = 0
    error: BaseException | None = field(default=None, compare=False)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_saved: float | None = None
    items_hit: int = 0
    items_sent: int = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of one function's counters, from ``fn.cache.stats()``.

    Attributes:
        hits: calls answered from the cache (``hit``).
        misses: calls that ran the function because nothing usable was cached (``miss``).
        refreshes: ``no_cache`` calls (``refresh``).
        stale: calls answered by ``stale_if_error``.
        bypasses: calls with the cache disabled.
        errors: calls during which a backend failed.
        tokens_saved: tokens the hits did not spend again (from the responses' ``usage``).
        input_tokens_saved / output_tokens_saved / cached_input_tokens_saved: those tokens by
            kind, for answers whose response reported them apart.
        cost_saved: estimated US dollars of those tokens (``llm_memo.prices``; answers with no
            known price add nothing).

    .. versionadded:: 0.1.0
    """

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    stale: int = 0
    bypasses: int = 0
    errors: int = 0
    tokens_saved: int = 0
    input_tokens_saved: int = 0
    output_tokens_saved: int = 0
    cached_input_tokens_saved: int = 0
    cost_saved: float = 0.0

    @property
    def calls(self) -> int:
        """Every cached call counted."""
        return self.hits + self.misses + self.refreshes + self.stale + self.bypasses + self.errors

    @property
    def hit_ratio(self) -> float:
        """Share of lookups answered from the cache (``stale`` counts as answered)."""
        looked_up = self.hits + self.stale + self.misses + self.errors
        return (self.hits + self.stale) / looked_up if looked_up else 0.0


_FIELD = {
    Outcome.HIT: "hits",
    Outcome.MISS: "misses",
    Outcome.REFRESH: "refreshes",
    Outcome.STALE: "stale",
    Outcome.BYPASS: "bypasses",
    Outcome.ERROR: "errors",
}


_FIELD_BY_ID = {id(outcome): name for outcome, name in _FIELD.items()}


class Stats:
    """Thread-safe counters for one cached function.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("__weakref__", "_cost", "_counts", "_lock", "_split", "_tokens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_FIELD.values(), 0)
        self._tokens = 0
        self._split = [0, 0, 0]  # input, output, cached input
        self._cost = 0.0
        _fork.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def record(
        self,
        outcome: Outcome,
        tokens_saved: int = 0,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        cost_saved: float = 0.0,
    ) -> None:
        """Count one call with ``outcome``; ``tokens_saved`` for hits and stale answers, and
        (keywords) those tokens by kind and their price in USD.

        """
        field = _FIELD_BY_ID[id(outcome)]  # an Enum's own __hash__ is Python code: avoid it
        with self._lock:
            self._counts[field] += 1
            if tokens_saved:
                self._tokens += tokens_saved
                split = self._split
                split[0] += input_tokens
                split[1] += output_tokens
                split[2] += cached_input_tokens
                self._cost += cost_saved

    @property
    def hits(self) -> int:
        """Calls counted with outcome ``hit`` so far."""
        return self._counts["hits"]

    @property
    def misses(self) -> int:
        """Calls counted with outcome ``miss`` so far."""
        return self._counts["misses"]

    @property
    def refreshes(self) -> int:
        """Calls counted with outcome ``refresh`` so far."""
        return self._counts["refreshes"]

    def count_error(self) -> None:
        """Count a backend failure outside a call's own outcome (a stream's late write)."""
        with self._lock:
            self._counts["errors"] += 1

    def snapshot(self) -> CacheStats:
        """The counters as a frozen :class:`CacheStats`."""
        with self._lock:
            return CacheStats(
                tokens_saved=self._tokens,
                input_tokens_saved=self._split[0],
                output_tokens_saved=self._split[1],
                cached_input_tokens_saved=self._split[2],
                cost_saved=self._cost,
                **self._counts,
            )

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts = dict.fromkeys(_FIELD.values(), 0)
            self._tokens = 0
            self._split = [0, 0, 0]
            self._cost = 0.0
