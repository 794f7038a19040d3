"""llm_memo as DSPy's response cache: :class:`LlmMemoCache`, installed as ``dspy.cache``.

DSPy looks every cached LM call up in ``dspy.cache`` (``get(request, ignored_args)``), calls
the model on a miss and stores the result (``put(request, value, ignored_args)``); the object
is replaceable, which is DSPy's hook for a custom cache (``dspy.configure_cache`` builds its
own two-tier one). :func:`configure_cache` puts an :class:`LlmMemoCache` there, so ``dspy.LM``
calls use llm_memo's backends (a URL or an object: Redis shared by a team's optimizer runs,
S3 for CI), its ``cache_controls`` directives, ``configure()``, stats, events and the
record/replay fixtures, exactly as a decorated function's calls do.

Supported: DSPy 3.x (``dspy>=3.0,<4``; tested with 3.4), whose LMs call ``get`` / ``put``
with the request dict and DSPy's ignored argument names, and whose ``dspy.LM(cache=False)``
never calls the cache.

What is keyed (:meth:`LlmMemoCache.request_view`): the request dict DSPy hands over (model,
messages, sampling settings, ``rollout_id``, DSPy's function identifier), minus DSPy's ignored
names (``api_key``, ``api_base``, ``base_url``), llm_memo's never-keyed ones
(:data:`llm_memo.keys.DEFAULT_IGNORE`: credentials, transport, header mappings) and
secret-shaped names (``vertex_credentials``, ``*_token``...) at its top level, canonicalised
and hashed by ``llm_memo.keys``. As DSPy does, a pydantic model class (a ``response_format``)
keys as its JSON schema and a callable as its source. A request with no
canonical form is neither looked up nor stored (logged once), as DSPy skips one it cannot key.

What is stored: DSPy's own record, encoded by llm_memo's codec: the plain data of DSPy's
native results as JSON, a litellm response on DSPy's compatibility path as that SDK's typed
model (allow-listed for litellm's own types; reading one imports litellm, which DSPy's
compatibility path would import to answer the request anyway). Never pickle.

When caching is off, nothing is keyed: ``dspy.LM(cache=False)`` never calls ``dspy.cache``,
and under ``enabled=False`` (the constructor's, ``configure(enabled=False)`` or
``cache_controls(enabled=False)``) :meth:`~LlmMemoCache.get` and :meth:`~LlmMemoCache.put`
return before computing a key and store nothing.

Single-flight is not possible through ``get`` / ``put`` (DSPy calls the model between them).

Importing this module imports DSPy (and no other framework); ``import llm_memo`` does not
import this module.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import sys
from collections.abc import Iterable
from typing import Any

import dspy  # type: ignore[import-untyped]  # DSPy ships no type information
import pydantic

from .._drivers import clear_function
from .._drivers._judge import judge
from .._memo import logger
from ..backends import MISSING
from ..controls import UNSET, Unset
from ..errors import BackendError, UnkeyableArgumentError
from ..events import CacheStats
from ..keys import DEFAULT_IGNORE, MAX_DEPTH
from ._cache import CacheCore, Call

__all__ = ["DSPY_IGNORED", "LlmMemoCache", "configure_cache"]

# Secret-shaped names (vertex_credentials, azure_ad_token, *_api_key, *_secret...), compared
# lower-cased with "-" read as "_". "max_tokens" is not one: the name must end in the singular.
_SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|secret|password|passwd|token|credentials?)$")

#: The names DSPy leaves out of its own keys (``dspy.clients.execution.IGNORED_CACHE_KEYS``),
#: used when a caller passes none.
DSPY_IGNORED: tuple[str, ...] = ("api_key", "api_base", "base_url")


def _dspy(request: Any) -> Any:
    """The function whose identity DSPy's entries carry (never called: the LM is DSPy's)."""
    return request  # pragma: no cover


def _never_keyed(name: object, ignored: set[str]) -> bool:
    if not isinstance(name, str):
        return False
    if name in ignored:
        return True
    lowered = name.lower().replace("-", "_")
    return lowered in DEFAULT_IGNORE or _SECRET_NAME.search(lowered) is not None


def _keyable(value: Any, depth: int = 0) -> Any:
    """DSPy's key transform (``dspy.clients.cache._transform_value``), walked with a depth
    bound: a pydantic model class is its JSON schema, a callable its source; the rest is left
    to :func:`llm_memo.keys.canonical`, which refuses what has no stable form."""
    if depth > MAX_DEPTH:
        return value  # canonical() reports it as too deep, naming the request
    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        return {"$schema": value.model_json_schema()}
    if isinstance(value, dict):
        return {k: _keyable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_keyable(v, depth + 1) for v in value]
    if callable(value) and not isinstance(value, pydantic.BaseModel):
        try:
            return {"$callable": inspect.getsource(value)}
        except (TypeError, OSError):
            return {"$callable": getattr(value, "__qualname__", type(value).__qualname__)}
    return value


class LlmMemoCache:
    """DSPy's response cache, answered by llm_memo: install it with :func:`configure_cache`.

    It has the methods DSPy calls on ``dspy.cache`` (``get``, ``put``, ``cache_key``,
    ``reset_memory_cache``, ``in``) plus llm_memo's ``clear``, ``stats`` and ``reset_stats``.
    Every ``get`` and ``put`` follows the active ``cache_controls`` block (``no_cache``,
    ``no_store``, ``only_if_cached``, ``ttl``, ``max_age``, ``namespace``, ``backend``,
    ``enabled``), ``configure()`` and the test fixtures. DSPy's pickle files
    (``save_memory_cache`` / ``load_memory_cache``) are not offered: use a disk, object store
    or recordings backend, which outlive the process without pickle.

    Args:
        backend: a URL (``"disk:///path"``, ``"redis://host/0"``, ``"s3://bucket/prefix"``,
            ``"memory://"``), a filesystem path or a sync backend object (DSPy calls the
            cache synchronously, from a worker thread on its async path). Default:
            ``configure()``'s.
        ttl: seconds (or a timedelta) entries stay fresh; ``None`` = forever.
        namespace: the namespace of this cache's entries.
        name: the function identity in keys (``clear()`` removes this name's entries).
        strict: raise :class:`~llm_memo.errors.BackendUnavailableError` when a read fails,
            instead of calling the model.
        **policy: more directive defaults (``enabled``, ``max_age``, ``no_store``...), as for
            :func:`~llm_memo.llm_cached`.

    Raises:
        ConfigurationError: an unknown directive, an invalid value, a malformed backend URL.

    Example::

        import dspy
        from llm_memo.integrations.dspy import configure_cache

        configure_cache("redis://localhost:6379/0", ttl=7 * 86400)
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        backend: Any = UNSET,
        *,
        ttl: Any = UNSET,
        namespace: str | Unset = UNSET,
        name: str = "dspy",
        strict: bool | Unset = UNSET,
        **policy: Any,
    ) -> None:
        self._core = CacheCore(_dspy, backend, ttl, namespace, name, strict, policy)
        self._memo = self._core.memo
        self._warned_unkeyable = False

    def __repr__(self) -> str:
        return f"<LlmMemoCache {self._memo.function_id}>"

    # -- keys (no I/O) ---------------------------------------------------------------------

    @staticmethod
    def request_view(
        request: dict[str, Any], ignored_args_for_cache_key: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """What a request's key is made of (see the module docstring).

        .. versionadded:: 0.1.0
        """
        ignored = set(DSPY_IGNORED if ignored_args_for_cache_key is None else ())
        ignored.update(ignored_args_for_cache_key or ())
        return {k: _keyable(v) for k, v in request.items() if not _never_keyed(k, ignored)}

    def cache_key(
        self, request: dict[str, Any], ignored_args_for_cache_key: Iterable[str] | None = None
    ) -> str:
        """The llm_memo key of ``request`` in the current namespace.

        Raises:
            UnkeyableArgumentError: a value in the request has no canonical form.
        """
        policy, _ = self._memo.policy()
        view = (self.request_view(request, ignored_args_for_cache_key),)
        return self._memo.key(None, view, {}, policy.namespace)

    def _begin(
        self, request: dict[str, Any], ignored: Iterable[str] | None, lookup: bool
    ) -> Call | None:
        """Resolve a get's or put's policy, key and backend; ``None`` when nothing is to be
        keyed: the cache is disabled for the call (a get counts a bypass) or the request has
        no canonical form."""
        try:
            return self._core.begin(
                lambda: ((self.request_view(request, ignored),), {}),
                asynchronous=False,
                lookup=lookup,
            )
        except UnkeyableArgumentError as exc:
            if not self._warned_unkeyable:
                self._warned_unkeyable = True
                logger.warning("not caching a DSPy request of %s: %s", self._memo.function_id, exc)
            return None

    # -- what DSPy calls ---------------------------------------------------------------------

    def get(
        self, request: dict[str, Any], ignored_args_for_cache_key: Iterable[str] | None = None
    ) -> Any:
        """The stored response for ``request``, or ``None`` (DSPy then calls the LM).

        Raises:
            CacheMiss: ``only_if_cached`` (replay) and nothing usable is stored.
            BackendUnavailableError: ``strict=True`` and the read failed.
        """
        call = self._begin(request, ignored_args_for_cache_key, lookup=True)
        if call is None:
            return None
        if call.policy.reads:
            with call.reading():  # fail-open unless only_if_cached / strict
                call.entry = call.backend.get(call.key)
            if call.entry is not MISSING:
                _import_litellm_for(call.entry.type_tag)
        return call.answer(_as_hit)

    def put(
        self,
        request: dict[str, Any],
        value: Any,
        ignored_args_for_cache_key: Iterable[str] | None = None,
        enable_memory_cache: bool = True,
    ) -> None:
        """Store the LM's response for ``request`` (unless ``no_store`` or disabled). A value
        the codec cannot store, or a failed write, is logged and counted; DSPy's result is
        returned to the program as it is.

        ``enable_memory_cache``: DSPy's switch for its in-process tier; llm_memo keeps no
        in-process copy beyond what the backend is (``memory://``), so it is accepted and
        changes nothing.
        """
        call = self._begin(request, ignored_args_for_cache_key, lookup=False)
        sealed = None if call is None else call.seal(lambda: value)
        if call is not None and sealed is not None:
            with call.writing():
                call.backend.set(call.key, *sealed)

    def __contains__(self, key: object) -> bool:
        """Whether a fresh, readable entry is stored under ``key`` (a :meth:`cache_key`)."""
        if not isinstance(key, str):
            return False
        memo = self._memo
        policy, _ = memo.policy()
        backend = memo.backend(policy, asynchronous=False)
        try:
            entry = backend.get(key)
        except BackendError:
            return False
        return entry is not MISSING and judge(memo, key, entry, policy, backend)[0] is not MISSING

    def reset_memory_cache(self) -> None:
        """DSPy's "drop the in-process tier": llm_memo keeps none of its own (a ``memory://``
        backend is the store itself), so nothing is dropped; :meth:`clear` removes entries."""

    # -- llm_memo's own ---------------------------------------------------------------------

    def clear(self) -> int:
        """Remove this cache's entries (its ``name``) in the current namespace; how many."""
        return clear_function(self._memo)

    def stats(self) -> CacheStats:
        """This cache's counters (hits, misses, refreshes, bypasses, errors, tokens saved)."""
        return self._memo.stats.snapshot()

    def reset_stats(self) -> None:
        """Zero this cache's counters."""
        self._memo.stats.reset()


def _import_litellm_for(type_tag: str) -> None:
    # The allow-list restores an SDK's models only once the program has imported that SDK,
    # and DSPy's compatibility path imports litellm only after the lookup, to call the model:
    # in a fresh process every stored litellm response would be unreadable. So an entry that
    # holds one imports litellm, the SDK DSPy itself imports to answer this request, and
    # nothing else: the tag chooses between litellm and no import, never a module by name.
    if type_tag.startswith("model:litellm.") and "litellm" not in sys.modules:
        # Not installed: the entry is unreadable here, a miss.
        with contextlib.suppress(ImportError):
            importlib.import_module("litellm")


def _as_hit(key: str, value: Any) -> Any:
    # As DSPy's own cache does for a response object (a litellm response on the compatibility
    # path): a hit made no LM call, so it reports no usage, and says it was a hit. The value
    # is freshly decoded, never shared with the store or another caller.
    if not isinstance(value, dict) and hasattr(value, "usage"):
        value.usage = {}
        object.__setattr__(value, "cache_hit", True)
    return value


def configure_cache(backend: Any = UNSET, **options: Any) -> LlmMemoCache:
    """Make an :class:`LlmMemoCache` DSPy's cache (``dspy.cache``) and return it.

    The counterpart of ``dspy.configure_cache``, which replaces it again with DSPy's own.

    Args:
        backend: as for :class:`LlmMemoCache`.
        **options: the other arguments of :class:`LlmMemoCache`.

    Raises:
        ConfigurationError: as for :class:`LlmMemoCache`.

    Example::

        cache = configure_cache("disk:///tmp/dspy-cache", ttl=86400)
        program(question="...")
        print(cache.stats())

    .. versionadded:: 0.1.0
    """
    cache = LlmMemoCache(backend, **options)
    # The lock DSPy's lazy default and its configure_cache hold, so a concurrent first read
    # of dspy.cache cannot overwrite this one with the default it was building.
    lock = getattr(dspy, "_cache_lock", None)
    if lock is None:
        dspy.cache = cache
    else:
        with lock:
            dspy.cache = cache
    return cache
