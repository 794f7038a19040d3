"""``Memo``: what every driver needs for one decorated function, set up once at decoration.

A :class:`Memo` owns the function's key builder, codec, counters and decorator-level options,
and answers the per-call questions cheaply: the effective :class:`~llm_memo._policy.Policy`
(cached until ``configure()`` or the active ``cache_controls`` state changes), the key, the
backend, how to decode a hit and how to store a result, and where events go.

The runners (``_drivers/``) are the only callers; the wrapper and the ``fn.cache`` handle live
in ``_decorator.py``; the rate-limited failure log is ``_error_log.py``; prices are
``prices.py`` and the persistent counters ``_counters.py``. The module is one class past 500
lines: its per-call resolution, value handling and event sections share the state the Memo
resolves once per settings generation, and splitting it would put that state behind another
object on the hit path.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hmac
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from . import _counters, config, controls
from ._async_view import async_view, unwrap
from ._error_log import ErrorLog
from ._policy import Policy, WritePlan, resolve, write_plan
from .backends import (
    AsyncBulkReading,
    AsyncCounting,
    AsyncLocking,
    BulkReading,
    Counting,
    Locking,
    is_async_backend,
    is_describing_backend,
    is_semantic_backend,
)
from .codec import AllowList, Codec, UnencodableValueError, seal, unseal
from .controls import UNSET, CacheScope, Directives, Unset
from .entry import DEFAULT_MAX_ENTRY_SIZE, FLAG_COMPRESSED, Entry, PackedEntry, key_digest
from .errors import BackendError, CodecError, ConfigurationError
from .events import Event, Outcome, Stats
from .keys import KeyBuilder, digest, function_prefix
from .prices import PriceTable, default_table
from .sdks import Usage, response_model, split_for_similarity, usage_split, usage_tokens

if TYPE_CHECKING:
    from ._per_item._batch import Request

__all__ = ["Memo", "Route", "logger"]

logger = logging.getLogger("llm_memo")

_DEBUG = logging.DEBUG
_HIT = Outcome.HIT
_STALE = Outcome.STALE


#: A compression threshold no value reaches.
_NEVER = 2**63


def function_identity(fn: Any) -> str:
    """``module.qualname`` of the underlying function (through classmethod/staticmethod)."""
    target = getattr(fn, "__func__", fn)
    module = getattr(target, "__module__", None) or "__unknown__"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    return f"{module}.{qualname}"


def _compressing(backend: Any) -> tuple[bool, bool]:
    """Whether ``backend`` wants values compressed in its local tier and in its shared one: a
    tiered backend answers for its L1 and its L2; any other store for both at once. A store
    says no with the class attribute ``compress_values = False`` (the memory backend: inflating
    on every hit costs more than the memory saved)."""
    from .backends.tiered import AsyncTieredBackend, TieredBackend  # on first write, not import

    inner = unwrap(backend)
    if isinstance(inner, (TieredBackend, AsyncTieredBackend)):
        return _compresses(inner.l1), _compresses(inner.l2)
    wanted = _compresses(inner)
    return wanted, wanted


def _compresses(backend: Any) -> bool:
    return backend is None or bool(getattr(unwrap(backend), "compress_values", True))


class Route:
    """The backend a policy resolves to, and what a runner asks of it on every call (decided
    once per resolution, not per call)."""

    __slots__ = ("backend", "bulk", "counting", "describing", "semantic")

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        #: Where persistent counters go (``persist_stats``): the backend itself (under an
        #: async view) when it keeps counters, a tiered backend's shared tier (L2), else
        #: ``None``.
        inner = unwrap(backend)
        inner = getattr(inner, "shared_tier", inner)
        self.counting = inner if isinstance(inner, (Counting, AsyncCounting)) else None
        #: It keeps each call's request (test recordings): offer it with ``Memo.describe``.
        self.describing = is_describing_backend(backend)
        #: It answers similar requests: the runner asks it on an exact miss.
        self.semantic = is_semantic_backend(backend)
        #: It reads many keys in one round trip (``get_many``): a per-item batch uses it.
        self.bulk = isinstance(backend, (BulkReading, AsyncBulkReading))


class Memo:
    """Per-function machinery shared by the four drivers.

    Args:
        fn: the decorated callable (function, method, classmethod, bound method, ...).
        directives: the decorator's directive defaults.
        name: function identity override.
        ignore: parameter names to leave out of keys.
        key: optional key function.
        cache_if: optional predicate on results; ``False`` means do not store.
        strict / lock / allow_pickle: decorator-level options, UNSET to inherit.
        key_params / key_headers: never-keyed names and chosen headers to key after all.
        file_params: parameter names whose paths key by their file's content.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        directives: Directives,
        name: str | None,
        ignore: Iterable[str],
        key: Callable[..., Any] | None,
        cache_if: Callable[[Any], bool] | None,
        strict: bool | Unset,
        lock: bool | Unset,
        allow_pickle: bool | Unset,
        semantic_text: Callable[..., str] | None = None,
        key_params: Iterable[str] = (),
        key_headers: Iterable[str] = (),
        file_params: Iterable[str] = (),
    ) -> None:
        self.function_id = name or function_identity(fn)
        self.keys = KeyBuilder(
            fn,
            self.function_id,
            ignore=ignore,
            key=key,
            key_params=key_params,
            key_headers=key_headers,
            file_params=file_params,
        )
        # How the SDK marks its own cache hits (litellm's _hidden_params), applied on decode.
        profile = self.keys.profile
        self._mark_hit = profile.mark_hit if profile is not None else None
        self.codec = Codec(AllowList(fn))
        self.stats = Stats()
        self.directives = directives
        self.cache_if = cache_if
        self.semantic_text = semantic_text
        self._strict = strict
        self._lock_opt = lock
        self._allow_pickle = allow_pickle
        # A method's instance is an argument like any other (SPEC §4); it is bound in front of
        # the call's arguments unless fn is already bound or a staticmethod.
        self.binds_instance = not (inspect.ismethod(fn) or isinstance(fn, staticmethod))
        self.is_classmethod = isinstance(fn, classmethod)
        self._generation = -1
        self._base: Policy = Policy()
        self._settings: config.Settings = config.settings()
        self._last: tuple[Any, tuple[Policy, tuple[CacheScope, ...]]] | None = None
        self._base_answer: tuple[Policy, tuple[CacheScope, ...]] = (self._base, ())
        self._listeners: tuple[Callable[[Event], Any], ...] = ()
        self._last_backend: tuple[Any, bool, Route] = (None, False, Route(None))
        self._warned_unstorable = False
        self._warned_lock = False
        self._warned_size = False
        self._warned_unusable = False
        self._expected: tuple[type, ...] | Unset | None = UNSET
        self._error_log = ErrorLog(logger)
        # Resolved from the settings with the decorator's options (see _refresh): what the
        # drivers read instead of the settings themselves.
        self.strict = False
        self.lock = False
        self.allow_pickle = False
        self.wait_timeout = config.DEFAULT_WAIT_TIMEOUT
        self.lock_ttl = config.DEFAULT_LOCK_TTL
        self._prices: PriceTable = default_table()
        self._persist = 0.0

    # -- per-call resolution ---------------------------------------------------------------

    def _refresh(self, s: config.Settings) -> None:
        merged = self.directives.over(s.directives)
        base = resolve(merged)
        if s.override_backend is not None:
            base = dataclasses.replace(base, backend=s.override_backend)
        self._base = base
        # Built once per generation, so a call outside any block allocates nothing here.
        self._base_answer = (base, ())
        self._listeners = (*s.observers, *s.on_event)
        self._settings = s
        self.strict = s.strict if self._strict is UNSET else bool(self._strict)
        self.lock = s.lock if self._lock_opt is UNSET else bool(self._lock_opt)
        self.allow_pickle = (
            s.allow_pickle if self._allow_pickle is UNSET else bool(self._allow_pickle)
        )
        self.wait_timeout = s.wait_timeout
        self.lock_ttl = s.lock_ttl
        self._prices = s.prices if s.prices is not None else default_table()
        self._persist = s.persist_stats
        self._last = None
        self._generation = s.generation

    def policy(self) -> tuple[Policy, tuple[CacheScope, ...]]:
        """The policy for a call now, and the scopes that record it."""
        s = config.settings()
        if s.generation != self._generation:
            self._refresh(s)
        state = controls.current()
        if state is None:
            return self._base_answer
        last = self._last
        if last is not None and last[0] is state:
            return last[1]
        block = state.directives
        merged = block.over(self.directives.over(s.directives))
        if block.backend is UNSET and s.override_backend is not None:
            merged = dataclasses.replace(merged, backend=s.override_backend)
        answer = (resolve(merged), state.scopes)
        self._last = (state, answer)
        return answer

    def _key_args(self, instance: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        # A method's instance (or a classmethod's class) is an argument like any other.
        if instance is not None and self.binds_instance:
            if self.is_classmethod and not isinstance(instance, type):
                instance = type(instance)
            return (instance, *args)
        return args

    def key(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], ns: str) -> str:
        """The key of a call (``instance`` is prepended for methods)."""
        if instance is None:  # the common case: a plain function
            return self.keys.key(args, kwargs, ns)
        return self.keys.key(self._key_args(instance, args), kwargs, ns)

    def item_keys(self, instance: Any, request: Request, ns: str) -> list[str]:
        """The key of each item of a per-item batch: the key of the same call with the list
        replaced by ``[item]`` (one canonical pass for the batch when the items are strings)."""
        items = request.items
        args, kwargs = request.with_items(items[:1])
        keys = self.keys.item_keys(self._key_args(instance, args), kwargs, ns, request.param, items)
        if keys is not None:
            return keys
        return [self.key(instance, *request.with_items([item]), ns) for item in items]

    def request_view(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The canonical request a call's key hashes (what recordings show to humans)."""
        return self.keys.canonical_view(self._key_args(instance, args), kwargs)

    def describe(
        self, backend: Any, key: str, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Offer the request behind ``key`` to a backend that records it (a
        :attr:`Route.describing` one), lazily: only the backend decides whether to compute it."""
        backend.describe(key, functools.partial(self.request_view, instance, args, kwargs))

    def backend(self, policy: Policy, asynchronous: bool) -> Any:
        """The backend object for ``policy``: :meth:`route`'s backend."""
        return self.route(policy, asynchronous).backend

    def route(self, policy: Policy, asynchronous: bool) -> Route:
        """The backend for ``policy`` (built from its URL on first use) and its abilities.

        ``asynchronous``: for an async runner, which always awaits: a sync backend comes back
        as its :func:`~llm_memo._async_view.async_view` (calling it inline).

        Raises:
            ConfigurationError: an async backend for a sync function.
        """
        last = self._last_backend
        if last[0] is policy and last[1] is asynchronous:
            return last[2]
        backend = config.backend_from_spec(policy.backend, asynchronous)
        if type(backend) is config.Unopened:
            # Not remembered: the next call asks again, which builds it once its back-off
            # has passed. Its operations raise BackendError, so the call fails open.
            return Route(async_view(backend, remember=False) if asynchronous else backend)
        if self.lock and not self._warned_lock and not isinstance(backend, (Locking, AsyncLocking)):
            self._warned_lock = True
            logger.warning(
                "lock=True for %s, but %r offers no cross-process lock; "
                "single-flight is per process only",
                self.function_id,
                backend,
            )
        if is_async_backend(backend):
            if not asynchronous:
                raise ConfigurationError(
                    f"{type(backend).__name__} is an async backend and cannot serve the sync "
                    f"function {self.function_id}; use its sync twin or a URL"
                )
        elif asynchronous:
            backend = async_view(backend)
        route = Route(backend)
        # Policies are rebuilt whenever settings or the active block change, so remembering
        # the route of the last policy seen is always current.
        self._last_backend = (policy, asynchronous, route)
        return route

    def similar_request(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], ns: str
    ) -> tuple[str, str] | None:
        """For a semantic backend: the call's exact context string and the text to embed.

        The context names the function and namespace and hashes everything in the request but
        the embedded text, so a similarity search never crosses model, parameters, system
        prompt, namespace or tenant. ``None`` when the request has no text to embed.
        """
        args = self._key_args(instance, args)
        split = split_for_similarity(self.keys.canonical_view(args, kwargs))
        if split is None:
            return None
        context_view, text = split
        if self.semantic_text is not None:
            call_args = args[1:] if instance is not None and self.binds_instance else args
            text = self.semantic_text(*call_args, **kwargs)
            if not isinstance(text, str) or not text:
                return None
        data = orjson.dumps(context_view, option=orjson.OPT_SORT_KEYS)
        return function_prefix(ns, self.function_id) + digest(data), text

    def now(self) -> float:
        return self._settings.clock()

    # -- values --------------------------------------------------------------------------

    def decode(
        self,
        key: str,
        entry: Entry,
        limit: int = DEFAULT_MAX_ENTRY_SIZE,
        *,
        chunks: bool = False,
    ) -> Any:
        """Check, verify and decode an entry found under ``key``.

        ``limit``: the backend's entry size (:meth:`entry_limit`), which bounds decompression.
        ``chunks``: the caller iterates chunks (a generator function), so only a stream entry
        will do.

        Raises:
            CodecError: another key's entry, tampered, corrupt, too large or not allowed; the
                caller treats it as a miss.
        """
        if entry.key_digest != key_digest(key):  # inline check_key(): this is the hit path
            raise CodecError("entry belongs to another key (copied or swapped), not to this one")
        tag = entry.type_tag
        if chunks and tag != "stream" and tag != "astream":
            raise CodecError(f"a {tag!r} entry is not a stream; a generator cannot replay it")
        keys = self._settings.signing_keys
        # Unsigned and uncompressed (the common case): nothing to verify or inflate.
        payload = unseal(key, entry, keys, limit=limit) if keys or entry.flags else entry.value
        value = self.codec.decode(tag, payload, allow_pickle=self.allow_pickle)
        if chunks or tag == "stream" or tag == "astream":
            return value  # a stream is never checked against the annotation (stream=True)
        expected = self._expected
        if expected is UNSET:  # resolved once, with the allow-list, on first use
            expected = self._expected = self.codec.allow.expected
        if expected is not None and not isinstance(value, expected):
            raise CodecError(
                f"a stored {type(value).__qualname__} contradicts the return annotation "
                f"of {self.function_id}"
            )
        if self._mark_hit is not None:
            self._mark_hit(value, key)
        return value

    def unusable(self, key: str, exc: CodecError) -> None:
        """Log an entry that was found but cannot be served (a miss; the fresh result will
        overwrite it): the first one per function as a warning, later ones at debug level."""
        if self._warned_unusable:
            logger.debug("unusable entry %s treated as a miss: %s", key, exc)
            return
        self._warned_unusable = True
        logger.warning(
            "unusable cache entry for %s treated as a miss (the fresh result replaces it; "
            "later ones are logged at debug level): %s: %s",
            self.function_id,
            key,
            exc,
        )

    def encode(self, value: Any, backend: Any = None) -> tuple[str, bytes] | None:
        """Encode a result, or ``None`` (logged once per function) when it cannot be stored:
        not encodable, contradicted by its own return annotation (a read of it would be
        refused), or larger than ``backend``'s entry size (:meth:`entry_limit`)."""
        expected = self.codec.allow.expected
        if expected is not None and not isinstance(value, expected):
            self._unstorable(
                UnencodableValueError(
                    f"a {type(value).__qualname__} result contradicts its return annotation "
                    "(fix the annotation to cache it)"
                )
            )
            return None
        try:
            encoded = self.codec.encode(value, allow_pickle=self.allow_pickle)
        except UnencodableValueError as exc:
            self._unstorable(exc)
            return None
        limit = self.entry_limit(backend)
        if len(encoded[1]) > limit:
            self.too_large(len(encoded[1]), limit)
            return None
        return encoded

    def encode_chunk(self, chunk: Any) -> bytes | None:
        """Snapshot one stream chunk as it passes, or ``None`` (logged once per function) when
        it cannot be stored, in which case the stream is not stored."""
        try:
            return self.codec.encode_chunk(chunk, allow_pickle=self.allow_pickle)
        except UnencodableValueError as exc:
            self._unstorable(exc)
            return None

    def decode_chunks(self, payload: bytes) -> list[Any] | None:
        """Fresh chunks from a stream payload this process just encoded (for ``cache_if``)."""
        try:
            return self.codec.decode_chunks(payload, allow_pickle=self.allow_pickle)
        except CodecError:
            return None

    @staticmethod
    def entry_limit(backend: Any) -> int:
        """The largest value (decompressed) ``backend`` stores and serves: its
        ``max_entry_size`` attribute when it has a positive one, else
        :data:`~llm_memo.entry.DEFAULT_MAX_ENTRY_SIZE`."""
        limit = getattr(backend, "max_entry_size", None)
        if type(limit) is int and limit > 0:
            return limit
        return DEFAULT_MAX_ENTRY_SIZE

    def too_large(self, size: int, limit: int) -> None:
        """Log (once per function) that a result is not stored because of its size."""
        if not self._warned_size:
            self._warned_size = True
            logger.warning(
                "not caching a result of %s: its encoded value of at least %d bytes exceeds "
                "the backend's entry size limit of %d bytes (max_entry_size)",
                self.function_id,
                size,
                limit,
            )

    def _unstorable(self, exc: UnencodableValueError) -> None:
        if not self._warned_unstorable:
            self._warned_unstorable = True
            logger.warning("not caching results of %s: %s", self.function_id, exc)

    def copy_for_waiter(self, value: Any, payload: tuple[str, bytes] | None, key: str) -> Any:
        """A waiter's own copy of the leader's result (a hit: marked as the SDK marks its
        hits, unless no copy could be made and the waiter shares the leader's object)."""
        if payload is not None:
            try:
                tag, data = payload
                copied = self.codec.decode(tag, data, allow_pickle=self.allow_pickle)
            except CodecError:
                pass
            else:
                if self._mark_hit is not None:
                    self._mark_hit(copied, key)
                return copied
        try:
            copied = copy.deepcopy(value)
        except (TypeError, copy.Error, RecursionError):
            return value
        if self._mark_hit is not None:
            self._mark_hit(copied, key)
        return copied

    def should_store(self, value: Any) -> bool:
        """Whether ``cache_if`` accepts the result (a failing ``cache_if`` refuses, logged:
        the result itself is still returned)."""
        if self.cache_if is None:
            return True
        try:
            return bool(self.cache_if(value))
        except Exception:  # a predicate's bug must not lose a paid result
            logger.exception("cache_if of %s failed; the result is not stored", self.function_id)
            return False

    def entry_for(
        self,
        key: str,
        encoded: tuple[str, bytes],
        plan: WritePlan,
        now: float,
        value: Any,
        tokens: int | None = None,
        *,
        usage: Usage | None = None,
        model: str = "",
        backend: Any = None,
    ) -> Entry:
        """The sealed entry for an encoded result (``tokens``, ``usage``, ``model``: its usage
        and model when already counted, as for streams; otherwise read from ``value``), to be
        written to ``backend``, compressed past the threshold as each tier of that backend
        wants (:func:`_compressing`): a store whose class says ``compress_values = False``
        (the memory backend) gets it uncompressed; a tiered backend whose L1 says so and whose
        L2 does not gets a :class:`~llm_memo.entry.PackedEntry`, compressed for L2 and holding
        the uncompressed twin L1 keeps."""
        tag, payload = encoded
        if tokens is None:
            tokens = usage_tokens(value)
            usage = usage_split(value)
            model = response_model(value)
        if len(model.encode("utf-8", "surrogatepass")) > 0xFF:
            model = ""  # the entry layout's bound; no table names such a model
        local, shared = _compressing(backend)
        threshold = self._settings.compress_threshold
        seal_for = functools.partial(
            self._seal, key, tag, payload, plan, now, tokens=tokens, usage=usage, model=model
        )
        if local or not shared or len(payload) <= threshold:
            return seal_for(threshold if shared else _NEVER)
        packed = seal_for(threshold)
        if not packed.flags & FLAG_COMPRESSED:
            return packed  # compression did not pay: one entry serves both tiers
        fields = {f.name: getattr(packed, f.name) for f in dataclasses.fields(Entry)}
        return PackedEntry(**fields, unpacked=seal_for(_NEVER))

    def _seal(
        self,
        key: str,
        tag: str,
        payload: bytes,
        plan: WritePlan,
        now: float,
        threshold: int,
        *,
        tokens: int,
        usage: Usage | None,
        model: str,
    ) -> Entry:
        s = self._settings
        entry = seal(
            key,
            tag,
            payload,
            created_at=now,
            expires_at=plan.expires_at,
            stale_window=plan.stale_window,
            tokens=tokens,
            compress_threshold=threshold,
        )
        if usage or model:
            entry = dataclasses.replace(
                entry,
                input_tokens=usage.input if usage else 0,
                output_tokens=usage.output if usage else 0,
                cached_input_tokens=usage.cached_input if usage else 0,
                model=model,
            )
        if s.signing_keys:
            # Signed here, not by seal(), so the signature covers the usage block too (the
            # view and the verification are codec.sealing's: unseal checks it).
            view = entry.signed_view(key)
            signature = hmac.digest(s.signing_keys[0], view, "sha256")
            entry = dataclasses.replace(entry, signature=signature)
        return entry

    def plan(self, policy: Policy, now: float) -> WritePlan | None:
        return write_plan(policy, now, self._settings.grace)

    # -- events --------------------------------------------------------------------------

    def emit(
        self,
        outcome: Outcome,
        key: str,
        start: float,
        policy: Policy,
        scopes: tuple[CacheScope, ...],
        *,
        entry: Entry | None = None,
        error: BaseException | None = None,
        similarity: float | None = None,
        tokens: int = 0,
        usage: Usage | None = None,
        model: str = "",
        items: tuple[int, int] | None = None,
    ) -> None:
        """Count one call and tell whoever listens.

        ``tokens`` (and ``usage``, ``model``): what the answer cost when produced, for answers
        that come without an entry (a caller served by an identical call in flight); otherwise
        the entry's counts are used. ``items``: for a call cached item by item (``per_item``),
        the items answered from the cache and the items sent: each counts once in the stats
        (as ``hit``, and as ``outcome``), and ``tokens`` is what the items answered saved.
        """
        cost: float | None = None
        if entry is not None:
            tokens = entry.tokens
            model = entry.model
            usage = None
            if entry.input_tokens or entry.output_tokens:
                usage = Usage(entry.input_tokens, entry.output_tokens, entry.cached_input_tokens)
        # A per-item call's tokens are what its answered items saved, whatever its outcome.
        saved = tokens if items is not None or outcome is _HIT or outcome is _STALE else 0
        if saved:
            cost = self._prices.cost(self.function_id, model, usage, saved)
        if items is not None:
            self._count_items(outcome, policy, items, saved, cost)
        elif not saved:
            self.stats.record(outcome)
        elif usage is None:
            self.stats.record(outcome, saved, cost_saved=cost or 0.0)
        else:
            self.stats.record(
                outcome,
                saved,
                input_tokens=usage.input,
                output_tokens=usage.output,
                cached_input_tokens=usage.cached_input,
                cost_saved=cost or 0.0,
            )
        if self._persist and items is None:
            self._count(outcome, policy, saved, usage, cost)
        listeners = self._listeners
        debug = logger.isEnabledFor(_DEBUG)
        if not (scopes or listeners or debug):
            return  # nobody observes: no Event is built
        now = self._settings.clock()
        event = Event(
            outcome=outcome,
            key=key,
            latency=time.perf_counter() - start,
            age=None if entry is None else max(0.0, now - entry.created_at),
            function=self.function_id,
            namespace=policy.namespace,
            similarity=similarity,
            tokens=tokens,
            error=error,
            model=model,
            input_tokens=usage.input if usage else 0,
            output_tokens=usage.output if usage else 0,
            cached_input_tokens=usage.cached_input if usage else 0,
            cost_saved=cost,
            items_hit=0 if items is None else items[0],
            items_sent=0 if items is None else items[1],
        )
        for scope in scopes:
            scope.record(event)
        for callback in listeners:
            try:
                callback(event)
            except Exception:  # a listener's bug must not lose a paid result; it is logged
                logger.exception("on_event callback %r failed", callback)
        if debug:
            logger.debug(
                "%s %s %s (%.1f us)", outcome.value, self.function_id, key, event.latency * 1e6
            )

    def _count_items(
        self,
        outcome: Outcome,
        policy: Policy,
        items: tuple[int, int],
        saved: int,
        cost: float | None,
    ) -> None:
        # Each item counts once (answered ones as hits); the savings go with the first.
        hit, sent = items
        record = self.stats.record
        for n, counted in enumerate([_HIT] * hit + [outcome] * sent):
            first = n == 0
            record(counted, saved if first else 0, cost_saved=(cost or 0.0) if first else 0.0)
            if self._persist:
                self._count(counted, policy, saved if first else 0, None, cost if first else None)

    def _count(
        self, outcome: Outcome, policy: Policy, saved: int, usage: Usage | None, cost: float | None
    ) -> None:
        # The backend the call's policy resolved to (the runner asked route() for it first);
        # a call that never reached one (bypass, a backend still unopened) is not counted.
        last = self._last_backend
        counting = last[2].counting if last[0] is policy else None
        if counting is not None:
            split = (usage.input, usage.output, usage.cached_input) if usage else (0, 0, 0)
            _counters.record(
                counting,
                self.function_id,
                outcome,
                self._settings.clock(),
                self._persist,
                saved,
                split,
                cost,
            )

    def backend_failed(self, backend: Any, exc: BackendError, during: str) -> None:
        """Log a backend failure (once per burst per backend); the caller counts it."""
        self._error_log.log(self.function_id, unwrap(backend), exc, during)

    def write_failed(self, backend: Any, exc: BackendError) -> None:
        """Log and count a failed write that happened after the call's event (a stream's)."""
        self.backend_failed(backend, exc, "set")
        self.stats.count_error()
