"""What a framework's own cache hook shares: the lookup / update pair around one ``Memo``.

LangChain (``BaseCache.lookup`` / ``update``) and DSPy (``dspy.cache.get`` / ``put``) each ask
their cache two questions around a model call they make themselves: what is stored for this
request, before it, and store this answer, after it. :class:`CacheCore` answers both with a
decorated function's machinery (one :class:`~llm_memo._memo.Memo`, whose function identity is
the cache's ``name``): :meth:`CacheCore.begin` resolves the policy, the key and the backend of
one question (a :class:`Call`), and the call then reads (:meth:`Call.reading`), answers
(:meth:`Call.answer`: the drivers' ``judge``, ``_policy.call_outcome``, the event), seals
(:meth:`Call.seal`) and writes (:meth:`Call.writing`).

What stays in each integration: its request view (what is keyed), its value form (what is
stored and how it is revived) and the one backend call of each method, awaited or not (so a
sync and an async twin differ in that call only, and no method here does I/O).

Single-flight and ``stale_if_error`` are not offered: the framework calls the model between
the two questions, so the cache never holds the call nor learns that it failed.

Imports no framework: each integration imports its own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .._drivers._judge import cache_miss, judge, read_failed
from .._memo import Memo
from .._policy import Policy, call_outcome
from ..backends import MISSING, Missing
from ..controls import CacheScope, Directives, Unset
from ..entry import Entry
from ..errors import BackendError
from ..events import Outcome

__all__ = ["Call", "CacheCore", "View"]

#: The arguments a request keys as: the positional and keyword arguments of one call of the
#: integration's stand-in function (what a recording shows as the request).
View = tuple[tuple[Any, ...], dict[str, Any]]

_T = TypeVar("_T")


@dataclass(slots=True)
class Call:
    """One lookup or update: the policy, key and backend it resolved, and what it read."""

    memo: Memo
    start: float
    policy: Policy
    scopes: tuple[CacheScope, ...]
    key: str
    backend: Any
    #: The entry a lookup read (MISSING until then, or when nothing is stored).
    entry: Entry | Any = MISSING
    #: The read's failure, when the cache fails open past it.
    failure: BackendError | None = field(default=None)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around the backend read (``call.entry = backend.get(call.key)``, awaited or not): a
        failed read is logged and counted, then raises (``strict``, ``only_if_cached``) or
        falls through to the model call (fail-open)."""
        try:
            yield
        except BackendError as exc:
            read_failed(
                self.memo, self.backend, self.key, self.policy, exc, self.start, self.scopes
            )
            self.failure = exc

    def answer(self, revive: Callable[[str, Any], _T | Literal[Missing.MISSING]]) -> _T | None:
        """What the lookup returns for the entry it read, with its event: ``revive(key,
        value)`` of a fresh, decodable entry (a hit), else ``None`` (a miss: the framework
        calls the model).

        ``revive``: the framework's value from the decoded one, or MISSING when it is not
        usable (the entry is then a miss, and the fresh answer replaces it).

        Raises:
            CacheMiss: ``only_if_cached`` and nothing usable is stored.
        """
        memo, key, policy = self.memo, self.key, self.policy
        if self.entry is not MISSING:
            value, _ = judge(memo, key, self.entry, policy, self.backend)
            if value is not MISSING:
                revived = revive(key, value)
                if revived is not MISSING:
                    memo.emit(Outcome.HIT, key, self.start, policy, self.scopes, entry=self.entry)
                    return revived
        if policy.only_if_cached:
            memo.emit(Outcome.MISS, key, self.start, policy, self.scopes)
            raise cache_miss(memo, key)
        outcome = call_outcome(policy, self.failure is not None)
        memo.emit(outcome, key, self.start, policy, self.scopes, error=self.failure)
        return None

    def seal(
        self, value: Callable[[], Any], tokens: int | None = None
    ) -> tuple[Entry, float | None] | None:
        """The entry to store and its retention, or ``None``: the policy stores nothing (then
        ``value`` is not called), ``value()`` returns MISSING (the integration cannot store
        it), or the codec refuses it (logged once).

        ``value``: the value to encode, built only when it is to be stored. ``tokens``: its
        token count when the integration knows it (``None``: read from the value, as for a
        decorated function's result).
        """
        memo = self.memo
        now = memo.now()
        plan = memo.plan(self.policy, now)
        if plan is None:
            return None
        data = value()
        if data is MISSING:
            return None
        encoded = memo.encode(data, self.backend)
        if encoded is None:
            return None
        entry = memo.entry_for(self.key, encoded, plan, now, data, tokens, backend=self.backend)
        return entry, plan.retention

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around the backend write (``backend.set(call.key, *sealed)``, awaited or not): a
        failed write is logged and counted; the framework's answer is returned as it is."""
        try:
            yield
        except BackendError as exc:
            self.memo.write_failed(self.backend, exc)


class CacheCore:
    """One framework cache's :class:`~llm_memo._memo.Memo` and the start of each question.

    Args:
        function: the stand-in function whose identity and signature the keys use (never
            called: the framework calls the model).
        backend, ttl, namespace, name, strict, policy: the integration constructor's own
            arguments, in its order (``policy``: more directive defaults, as for
            :func:`~llm_memo.llm_cached`).

    Raises:
        ConfigurationError: an unknown directive, an invalid value, a malformed backend URL.
    """

    __slots__ = ("memo",)

    def __init__(
        self,
        function: Callable[..., Any],
        backend: Any,
        ttl: Any,
        namespace: str | Unset,
        name: str,
        strict: bool | Unset,
        policy: dict[str, Any],
    ) -> None:
        directives = Directives.build(backend=backend, ttl=ttl, namespace=namespace, **policy)
        self.memo = Memo(
            function,
            directives=directives,
            name=name,
            ignore=(),
            key=None,
            cache_if=None,
            strict=strict,
            lock=False,
            allow_pickle=False,
        )

    def begin(self, view: Callable[[], View], *, asynchronous: bool, lookup: bool) -> Call | None:
        """Resolve a lookup's or update's policy, key and backend; ``None`` when the cache is
        disabled for it (``enabled=False``: a lookup counts a bypass, and ``view`` is not
        called, so nothing is keyed).

        Raises:
            UnkeyableArgumentError: a value of the view has no canonical form.
        """
        memo = self.memo
        start = time.perf_counter()
        policy, scopes = memo.policy()
        if not policy.enabled:
            if lookup:
                memo.emit(Outcome.BYPASS, "", start, policy, scopes)
            return None
        args, kwargs = view()
        key = memo.key(None, args, kwargs, policy.namespace)
        route = memo.route(policy, asynchronous)
        if route.describing and lookup:  # a recordings store shows the request it keyed
            route.backend.describe(key, functools.partial(memo.request_view, None, args, kwargs))
        return Call(memo, start, policy, scopes, key, route.backend)
