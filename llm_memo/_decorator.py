"""``@llm_cached`` and the ``fn.cache`` handle.

The decorator is a :class:`wrapt.FunctionWrapper` subclass, so the cached function keeps its
signature, ``__wrapped__``, ``__name__``, docstring, ``inspect.iscoroutinefunction`` answer and
method binding. The driver (plain, coroutine, generator or async generator) is chosen once,
here, from the underlying function; per call, wrapt hands the driver the bound instance and the
arguments.

``fn.cache`` is a :class:`CacheHandle` for managing the function's entries without calling it,
and for calling it once under directives (:meth:`CacheHandle.controls`); on a bound method
(``obj.ask.cache``) the handle includes the instance in keys.

An SDK's own function whose SDK has per-call cache controls (litellm's ``cache=`` /
``caching=``) gets a driver that applies them as a ``cache_controls`` block around that one
call (:func:`_with_sdk_controls`): the same machinery, so the same semantics.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

import wrapt

from . import _drivers, _per_item
from ._memo import Memo
from .backends import MISSING
from .controls import UNSET, Directives, Unset, cache_controls
from .errors import ConfigurationError
from .events import CacheStats
from .explain import Call, Difference, Explanation, call
from .explain import as_call as _as_call
from .explain import differences as _diff

__all__ = [
    "CacheHandle",
    "CachedFunction",
    "Call",
    "Difference",
    "Explanation",
    "call",
    "llm_cached",
]

P = ParamSpec("P")
R = TypeVar("R")

_OPTIONS = (
    "strict",
    "lock",
    "allow_pickle",
    "semantic_text",
    "key_params",
    "key_headers",
    "file_params",
    "per_item",
)


# -- the handle --------------------------------------------------------------------------------


class CacheHandle:
    """Manage one cached function's entries without calling it: ``fn.cache``.

    Every method follows the active ``cache_controls`` block's backend and namespace (and the
    ``llm_cache`` test fixture's backend). None of them emits hit/miss events. Backend failures
    raise :class:`~llm_memo.errors.BackendError` here: these are explicit management calls.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_asynchronous", "_fn", "_instance", "_memo")

    def __init__(
        self,
        memo: Memo,
        instance: Any = None,
        fn: Callable[..., Any] | None = None,
        *,
        asynchronous: bool = False,
    ) -> None:
        self._memo = memo
        self._instance = instance
        self._fn = fn  # the cached function (bound, for obj.ask.cache), for controls()
        self._asynchronous = asynchronous  # calling fn returns a coroutine to await

    def __repr__(self) -> str:
        return f"<CacheHandle {self._memo.function_id}>"

    @property
    def function_id(self) -> str:
        """The function identity used in keys."""
        return self._memo.function_id

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The key the call ``fn(*args, **kwargs)`` would use now.

        Raises:
            UnkeyableArgumentError: an argument has no canonical form.
        """
        policy, _ = self._memo.policy()
        return self._memo.key(self._instance, args, kwargs, policy.namespace)

    def get(self, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """The stored, fresh value for the call, or ``default``; never calls the function.

        Use :meth:`contains` to tell a cached ``None`` from a miss.
        """
        value = _drivers.cached_value(self._memo, self._instance, args, kwargs)
        return default if value is MISSING else value

    def contains(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a fresh, readable entry exists for the call."""
        return _drivers.cached_value(self._memo, self._instance, args, kwargs) is not MISSING

    def delete(self, *args: Any, **kwargs: Any) -> bool:
        """Remove the call's entry; return whether there was one."""
        return _drivers.delete_entry(self._memo, self._instance, args, kwargs)

    def clear(self) -> int:
        """Remove this function's entries in the current namespace; return how many."""
        return _drivers.clear_function(self._memo)

    async def aget(self, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """Async :meth:`get`."""
        value = await _drivers.acached_value(self._memo, self._instance, args, kwargs)
        return default if value is MISSING else value

    async def acontains(self, *args: Any, **kwargs: Any) -> bool:
        """Async :meth:`contains`."""
        value = await _drivers.acached_value(self._memo, self._instance, args, kwargs)
        return value is not MISSING

    async def adelete(self, *args: Any, **kwargs: Any) -> bool:
        """Async :meth:`delete`."""
        return await _drivers.adelete_entry(self._memo, self._instance, args, kwargs)

    async def aclear(self) -> int:
        """Async :meth:`clear`."""
        return await _drivers.aclear_function(self._memo)

    def controls(self, **directives: Any) -> Callable[..., Any]:
        """The cached function, for calls under these directives: a ``cache_controls`` block
        around each call, without writing the ``with``.

        ``ask.cache.controls(no_cache=True)(model, messages)`` is exactly
        ``with cache_controls(no_cache=True): ask(model, messages)`` (for an ``async def``,
        ``await ask.cache.controls(...)(...)`` enters the block inside the awaited call). The
        directives win over any enclosing block, as an inner block does. The returned callable
        may be kept and called many times, from several threads or tasks at once.

        Args:
            **directives: as for :func:`~llm_memo.cache_controls` (``no_cache``, ``no_store``,
                ``ttl``, ``max_age`` / ``s_maxage``, ``stale_if_error``, ``only_if_cached``,
                ``namespace``, ``backend``, ``threshold``, ``enabled``).

        Raises:
            ConfigurationError: an unknown directive or an invalid value (raised here).

        Example::

            fresh = ask.cache.controls(no_cache=True)("gpt-4o-mini", messages)
            draft = ask.cache.controls(no_store=True)

        .. versionadded:: 0.1.0
        """
        scope = cache_controls(**directives)
        fn = self._fn
        if fn is None:
            raise ConfigurationError("this handle has no function to call")
        if self._asynchronous:

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                # Entered inside the coroutine: the block is the awaiting task's own.
                with scope:
                    return await fn(*args, **kwargs)

            return call_async

        def call(*args: Any, **kwargs: Any) -> Any:
            # Generators and returned streams take their policy at the call: the block
            # need not stay open while they are iterated.
            with scope:
                return fn(*args, **kwargs)

        return call

    def stats(self) -> CacheStats:
        """The function's counters since decoration (or the last :meth:`reset_stats`)."""
        return self._memo.stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the function's counters."""
        self._memo.stats.reset()

    def explain(self, call_a: Any, call_b: Any) -> Explanation:
        """Say why two calls have different keys (or confirm they share one).

        Args:
            call_a, call_b: :func:`llm_memo.call` objects (``call("gpt-4o", msgs)``), keyword
                dicts, or ``(args, kwargs)`` pairs.

        Example::

            print(ask.cache.explain(call("gpt-4o", msgs), call("gpt-4o", msgs, temperature=1)))
            # different keys: ... temperature: 0 != 1

        .. versionadded:: 0.1.0
        """
        a, b = _as_call(call_a), _as_call(call_b)
        memo = self._memo
        policy, _ = memo.policy()
        key_a = memo.key(self._instance, a.args, a.kwargs, policy.namespace)
        key_b = memo.key(self._instance, b.args, b.kwargs, policy.namespace)
        view_a = memo.keys.canonical_view(*self._with_instance(a))
        view_b = memo.keys.canonical_view(*self._with_instance(b))
        out: list[Difference] = []
        _diff(view_a, view_b, "", out)
        return Explanation(key_a, key_b, tuple(out))

    def _with_instance(self, c: Call[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self._instance is not None and self._memo.binds_instance:
            return (self._instance, *c.args), c.kwargs
        return c.args, c.kwargs


# -- the wrapper ---------------------------------------------------------------------------------


class _BoundCachedFunction(wrapt.BoundFunctionWrapper[P, R]):
    @property
    def cache(self) -> CacheHandle:
        parent = self._self_parent
        memo: Memo = parent._self_memo
        instance = self._self_instance
        if instance is None and memo.is_classmethod:
            instance = self._self_owner  # Cls.method.cache: the class is the cls argument
        return CacheHandle(memo, instance, self, asynchronous=parent._self_asynchronous)


class CachedFunction(wrapt.FunctionWrapper[P, R]):
    """A cached function: call it as the original; manage its entries through ``.cache``.

    .. versionadded:: 0.1.0
    """

    __bound_function_wrapper__ = _BoundCachedFunction  # type: ignore[assignment]

    def __init__(
        self,
        wrapped: Callable[..., Any],
        memo: Memo,
        driver: Callable[..., Any],
        *,
        asynchronous: bool = False,
    ) -> None:
        super().__init__(wrapped, functools.partial(driver, memo))
        self._self_memo = memo
        self._self_asynchronous = asynchronous
        self._self_handle = CacheHandle(memo, None, self, asynchronous=asynchronous)

    @property
    def cache(self) -> CacheHandle:
        """The :class:`CacheHandle` of this function."""
        handle: CacheHandle = self._self_handle
        return handle

    def __repr__(self) -> str:
        return f"<cached {self._self_memo.function_id}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a cached function cannot be pickled; pickle the original instead")


def _driver_for(fn: Any) -> Callable[..., Any]:
    target = fn
    for _ in range(100):
        inner = getattr(target, "__func__", None) or getattr(target, "__wrapped__", None)
        if inner is None:
            break
        target = inner
    if (
        not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target))
        and callable(target)
        and not isinstance(target, type)
    ):
        # A callable object: its __call__ decides (an async __call__ makes an async callable).
        target = type(target).__call__
    if inspect.isasyncgenfunction(target):
        return _drivers.run_async_generator
    if inspect.iscoroutinefunction(target):
        return _drivers.run_async
    if inspect.isgeneratorfunction(target):
        return _drivers.run_generator
    return _drivers.run_sync


def _with_sdk_controls(
    driver: Callable[..., Any],
    translate: Callable[[Any], dict[str, Any] | None],
    asynchronous: bool,
) -> Callable[..., Any]:
    """``driver`` applying an SDK's own per-call cache controls (``translate`` reads them from
    the call's keyword arguments as directives) as a ``cache_controls`` block around the call.

    A call without any runs the driver as is. The arguments are passed on unchanged: the SDK
    sees its own controls too.
    """
    if asynchronous:

        async def run_async(
            memo: Memo, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            given = translate(kwargs)
            if given is None:
                return await driver(memo, wrapped, instance, args, kwargs)
            with cache_controls(**given):
                return await driver(memo, wrapped, instance, args, kwargs)

        return run_async

    def run(
        memo: Memo, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        given = translate(kwargs)
        if given is None:
            return driver(memo, wrapped, instance, args, kwargs)
        with cache_controls(**given):
            return driver(memo, wrapped, instance, args, kwargs)

    return run


def _decorate(
    fn: Callable[..., Any],
    *,
    directives: Directives,
    name: str | None,
    ignore: Iterable[str],
    key: Callable[..., Any] | None,
    cache_if: Callable[[Any], bool] | None,
    options: dict[str, Any],
) -> CachedFunction[Any, Any]:
    if isinstance(fn, CachedFunction):
        raise ConfigurationError("this function is already cached; decorate it once")
    if not callable(fn) and not isinstance(fn, (classmethod, staticmethod)):
        raise ConfigurationError(f"llm_cached() needs a callable, got {fn!r}")
    memo = Memo(
        fn,
        directives=directives,
        name=name,
        ignore=ignore,
        key=key,
        cache_if=cache_if,
        strict=options.get("strict", UNSET),
        lock=options.get("lock", UNSET),
        allow_pickle=options.get("allow_pickle", UNSET),
        semantic_text=options.get("semantic_text"),
        key_params=options.get("key_params", ()),
        key_headers=options.get("key_headers", ()),
        file_params=options.get("file_params", ()),
    )
    driver = _driver_for(fn)
    asynchronous = driver is _drivers.run_async
    generator = driver is _drivers.run_generator or driver is _drivers.run_async_generator
    batching = _per_item.batching_for(fn, options.get("per_item"), generator)
    if batching is not None:
        driver = _per_item.driver_for(batching, asynchronous)
    profile = memo.keys.profile
    if profile is not None and profile.per_call is not None:
        driver = _with_sdk_controls(driver, profile.per_call, asynchronous)
    return CachedFunction(fn, memo, driver, asynchronous=asynchronous)


@overload
def llm_cached(fn: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def llm_cached(
    fn: None = None,
    /,
    *,
    backend: Any = ...,
    ttl: Any = ...,
    key: Callable[..., Any] | None = ...,
    ignore: Iterable[str] = ...,
    namespace: str | Unset = ...,
    name: str | None = ...,
    cache_if: Callable[[Any], bool] | None = ...,
    **policy: Any,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def llm_cached(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    backend: Any = UNSET,
    ttl: Any = UNSET,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    namespace: str | Unset = UNSET,
    name: str | None = None,
    cache_if: Callable[[Any], bool] | None = None,
    **policy: Any,
) -> Any:
    """Cache a function that calls a model: same request, same answer, no second call.

    Works on plain functions, ``async def``, generator and async generator functions (streams
    are recorded and replayed chunk by chunk), methods, and callables you do not own::

        @llm_cached(ttl=3600)
        def ask(model: str, messages: list[dict], temperature: float = 0.0) -> ChatCompletion:
            return client.chat.completions.create(model=model, messages=messages,
                                                  temperature=temperature)

        create = llm_cached(ttl=60)(client.chat.completions.create)

    Args:
        fn: the function, when used bare (``@llm_cached``).
        backend: a URL (``"memory://"``, ``"redis://host/0"``, ``"s3://bucket/prefix"``), a
            filesystem path (disk backend) or a backend object. Default: ``configure()``'s, else
            a disk cache in the user's cache directory.
        ttl: seconds (or timedelta) an entry stays fresh; ``None`` = forever.
        key: ``key(*args, **kwargs)`` returning the value to key on, replacing the bound
            arguments (function identity and namespace still apply).
        ignore: parameter names to leave out of the key, added to
            :data:`llm_memo.keys.DEFAULT_IGNORE` (credentials, timeouts, header mappings) and,
            for an SDK's own functions, that SDK's names (litellm's ``cache``, ``callbacks``,
            ``litellm_*``...).
        namespace: partition of the key space (versions, tenants).
        name: function identity in keys instead of ``module.qualname`` (keeps entries valid
            across a rename or move).
        cache_if: ``cache_if(result) -> bool``; results it refuses are returned, not stored.
        **policy: more directives (``no_cache``, ``no_store``, ``max_age``,
            ``stale_if_error``, ``only_if_cached``, ``enabled``, ``threshold``) and options
            (``strict``, ``lock``, ``allow_pickle``, and ``semantic_text`` for semantic
            backends: a function of the call's arguments returning the text to embed), and
            for keys ``key_params`` (never-keyed parameter names to key after all, e.g.
            ``key_params=("token",)`` when your ``token`` is text) and ``key_headers``
            (header names to key from ``extra_headers`` / ``headers`` / ``default_headers``
            and an SDK client's default headers, e.g. ``key_headers=("anthropic-beta",)``;
            credential headers are refused) and ``file_params`` (parameters that are files:
            a ``pathlib.Path`` there keys by the file's content, e.g.
            ``file_params=("audio",)``), and ``per_item`` (the list parameter whose items
            are cached one by one, for a function returning one answer per item, e.g.
            ``per_item="texts"``; an SDK's embedding function, ``client.embeddings.create``
            or ``litellm.embedding``, does so for ``input`` unless ``per_item=False``; see
            the embeddings guide).

    Raises:
        ConfigurationError: an unknown option or an invalid value (at decoration time).

    .. versionadded:: 0.1.0
    """
    if isinstance(ignore, str):
        raise ConfigurationError(f"ignore= takes a tuple of names, e.g. ignore=({ignore!r},)")
    options = {k: policy.pop(k) for k in _OPTIONS if k in policy}
    if "semantic_text" in options and not callable(options["semantic_text"]):
        raise ConfigurationError("semantic_text= must be a function of the call's arguments")
    for opt in ("strict", "lock", "allow_pickle"):
        if opt in options and not isinstance(options[opt], bool):
            raise ConfigurationError(f"{opt} must be True or False")
    for opt in ("key_params", "key_headers", "file_params"):
        if opt in options:
            names = options[opt]
            if not isinstance(names, (tuple, list, set, frozenset)) or not all(
                isinstance(n, str) for n in names
            ):
                raise ConfigurationError(f"{opt}= takes a tuple of names, e.g. {opt}=({names!r},)")
            options[opt] = tuple(names)
    directives = Directives.build(backend=backend, ttl=ttl, namespace=namespace, **policy)
    if key is not None and not callable(key):
        raise ConfigurationError("key= must be a function of the cached function's arguments")
    if cache_if is not None and not callable(cache_if):
        raise ConfigurationError("cache_if= must be a function of the result returning a bool")

    def decorate(f: Callable[..., Any]) -> Any:
        return _decorate(
            f,
            directives=directives,
            name=name,
            ignore=tuple(ignore),
            key=key,
            cache_if=cache_if,
            options=options,
        )

    if fn is not None:
        return decorate(fn)
    return decorate
