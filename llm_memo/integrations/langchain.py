"""llm_memo as LangChain's LLM cache: :class:`LlmMemoCache`, a ``langchain_core`` ``BaseCache``.

LangChain asks its cache two questions around every model call: ``lookup(prompt, llm_string)``
before it, ``update(prompt, llm_string, generations)`` after it (and ``alookup`` / ``aupdate``
from async code). :class:`LlmMemoCache` answers them with llm_memo's machinery, the same a
decorated function gets (one :class:`~llm_memo._memo.Memo`, whose function identity is the
cache's ``name``): backends by URL or object, ``configure()`` and the ``llm_cache`` fixture's
backend, ``cache_controls`` directives, namespaces, signing, events and stats, recordings.

**Keys** come from the structured request, as far as LangChain hands it over
(:func:`request_view`): the serialized messages are revived (LangChain's own ``load``, chat
message classes only) and keyed by their content without message ids; ``llm_string`` is
LangChain's ``json.dumps(dumpd(model))`` + ``"---"`` + ``str(sorted(params.items()))`` (for a
model that is not serializable, the param string alone), so the model part is parsed as JSON
and the params as Python literals (``ast.literal_eval``, which evaluates nothing); what does
not parse is kept as text. The same request written differently (param order, a message built
with its default fields spelled out) has one key; the model's identifying params, ``stop`` and
every per-call option LangChain passes on change it. Never keyed (:data:`NEVER_KEYED`):
the generic never-keyed names (credentials, transport, header mappings), LangChain's runtime
fields, and any secret-shaped name (``*_api_key``, ``*token``, ``*secret``, ``*password``):
every such parameter or model field, and a string under such a name at any depth, so
credentials reach neither keys nor stored bytes (a tool schema's ``token`` property still
keys).

**Values** are stored as LangChain's own serialized form (``dumpd``: plain JSON, never pickle)
and revived with LangChain's ``load`` restricted to the generation and AI message classes
(:data:`VALUE_CLASSES`), so a ``ChatGeneration`` comes back a ``ChatGeneration`` holding an
``AIMessage`` with its tool calls and usage metadata. A stored value that does not revive is a
miss, and the fresh result replaces it.

What the lookup/update pair cannot do: single-flight (LangChain calls the model between the
two, outside the cache) and ``stale_if_error`` (the cache never learns that the call failed).
docs/integrations/langchain.md says so, with LangChain's per-call-option gap and streaming.

``BaseCache`` wants its sync and async methods on one class, so each pair is written out;
each member is only its one backend call (``get`` / ``set``, awaited or not), and everything
else is shared with the DSPy cache (:mod:`llm_memo.integrations._cache`: policy, key and
backend, judging the entry with the drivers' ``_judge`` and ``_policy``, the event, the sealed
entry); this module adds the request view and the value form (``_revive``, ``_stored``).
``clear`` / ``aclear`` are the drivers' own ``clear_function`` twins.

Importing this module imports ``langchain_core``; importing ``llm_memo`` does not. It is a
little past 500 lines on purpose: one module per framework (``llm_memo.integrations``), in
two sections, the request view (pure parsing) and the cache.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from .._drivers import aclear_function, clear_function
from .._memo import logger
from ..backends import MISSING, Missing
from ..controls import UNSET, Unset
from ..entry import Entry
from ..errors import CodecError, MissingDependencyError
from ..events import CacheStats
from ..keys import DEFAULT_IGNORE, IGNORE_GROUPS
from ._cache import CacheCore, Call

_INSTALL = "pip install 'llm-memo[langchain]' (langchain-core 1.2.5 or later, or 0.3.81+)"
try:
    from langchain_core.caches import BaseCache
    from langchain_core.load import dumpd, load
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        Generation,
        GenerationChunk,
    )
    from langchain_core.utils.utils import LC_ID_PREFIX
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise MissingDependencyError(f"llm_memo.integrations.langchain needs {_INSTALL}") from exc

# LangChain's load() is marked beta and warns on every call; the undecorated function is the
# same code without the warning (which would be an error under warnings-as-errors test runs).
_load: Any = getattr(load, "__wrapped__", load)
# allowed_objects (which classes load() may build) arrived with the fix of CVE-2025-68664; an
# older load() would build any class in LangChain's namespaces from stored bytes.
if "allowed_objects" not in inspect.signature(_load).parameters:  # pragma: no cover
    raise MissingDependencyError(
        f"llm_memo.integrations.langchain needs a langchain-core whose load() takes "
        f"allowed_objects: {_INSTALL}"
    )

__all__ = ["NEVER_KEYED", "VALUE_CLASSES", "LlmMemoCache", "request_view"]

#: The classes a stored value may be revived as (LangChain's ``load`` allow-list): what a
#: model's generations are made of. Nothing else is ever constructed from stored bytes.
VALUE_CLASSES: tuple[type, ...] = (
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
)

#: Parameter and model field names never keyed: llm_memo's generic never-keyed list
#: (credentials, transport, header mappings) and LangChain's runtime-only model fields.
NEVER_KEYED: frozenset[str] = DEFAULT_IGNORE | frozenset(
    {
        "cache",
        "callbacks",
        "callback_manager",
        "tags",
        "metadata",
        "verbose",
        "rate_limiter",
        "http_async_client",
        "run_manager",
    }
)

# Secret-shaped names (openai_api_key, anthropic_api_key, aws_secret_access_key, session_token,
# db_password...), compared lower-cased with "-" read as "_". "max_tokens" is not one.
_SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|key|secret|password|passwd|token|credentials?)$")

_CREDENTIALS = IGNORE_GROUPS["credentials"]
_WALK_DEPTH = 64


# -- the request view: what LangChain hands the cache, as structure (pure) ---------------------


def _never_keyed(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower().replace("-", "_")
    return lowered in NEVER_KEYED or _SECRET_NAME.search(lowered) is not None


def _secret_name(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower().replace("-", "_")
    return lowered in _CREDENTIALS or _SECRET_NAME.search(lowered) is not None


def _clean(value: Any, depth: int = 0, names: bool = False) -> Any:
    """``value`` without LangChain secret references and without never-keyed names.

    ``names``: a level of parameter names (the top of the params, the constructor fields of
    the model and of any LangChain object inside it), where every never-keyed or
    secret-shaped name goes. Deeper down only a *string* under a secret-shaped name goes (a
    credential is a string; a tool schema's ``token`` property, a mapping, is content).
    """
    if depth > _WALK_DEPTH:
        return repr(value)[:200]  # a pathological nest keys by a bounded text, never recurses
    if isinstance(value, dict):
        constructor = value.get("lc") == 1 and value.get("type") == "constructor"
        return {
            k: _clean(v, depth + 1, constructor and k == "kwargs")
            for k, v in value.items()
            if not _is_secret_ref(v) and not ((names or isinstance(v, str)) and _never_keyed(k))
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value if not _is_secret_ref(v)]
    if isinstance(value, (set, frozenset)):
        return sorted((_clean(v, depth + 1) for v in value), key=repr)
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    return value


def _is_secret_ref(value: Any) -> bool:
    # dumpd writes a SecretStr field as {"lc": 1, "type": "secret", "id": ["ENV_VAR"]}.
    return isinstance(value, dict) and value.get("lc") == 1 and value.get("type") == "secret"


def _messages(prompt: str) -> list[Any] | None:
    """The messages of a chat model's serialized prompt, as keyable dicts; ``None`` when the
    prompt is not one (a completion model's prompt is plain text)."""
    if not prompt.startswith("["):
        return None
    try:
        revived = _load(json.loads(prompt), allowed_objects="messages")
    except (ValueError, TypeError, KeyError, NotImplementedError, RecursionError):
        return None
    if not isinstance(revived, list) or not all(isinstance(m, BaseMessage) for m in revived):
        return None
    out: list[Any] = []
    for message in revived:
        # Defaults left out, so a message with its empty fields spelled out keys as the short
        # form; ids never key (LangChain clears them too, before asking).
        try:
            fields = message.model_dump(mode="json", exclude_defaults=True, exclude={"id"})
        except ValueError:  # pydantic's serialization error: a field with no JSON form
            return None
        out.append({**fields, "type": message.type})
    return out


def _param_pairs(text: str) -> dict[str, Any] | None:
    """``str(sorted(params.items()))`` read back, or ``None`` if it holds a non-literal."""
    try:
        pairs = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs
    ):
        return None
    return dict(pairs)


# One "('name', value)" item of a param string that did not parse as a whole; its value runs
# to the next item or the end. Used only to leave secret-shaped items out of the kept text.
_PARAM_ITEM = re.compile(r"\('([^'\\]*)', .*?\)(?=, \('|\]$)", re.S)


def _param_text(text: str) -> str:
    return _PARAM_ITEM.sub(lambda m: "" if _never_keyed(m[1]) else m[0], text)


def request_view(prompt: str, llm_string: str) -> dict[str, Any]:
    """The structured request LangChain hands its cache, as the dict llm_memo keys.

    ``{"messages": [...]}`` (chat models) or ``{"prompt": "..."}`` (completion models), plus
    ``"model"`` (the serialized model, when LangChain serializes it), ``"params"`` (the
    per-call params and ``stop``) or ``"params_text"`` (the param string, when a value in it
    is not a Python literal), never-keyed and secret-shaped names left out everywhere.

    Example::

        >>> request_view("hello", "[('_type', 'fake-list'), ('api_key', 'sk-1'), ('stop', None)]")
        {'prompt': 'hello', 'params': {'_type': 'fake-list', 'stop': None}}

    .. versionadded:: 0.1.0
    """
    view: dict[str, Any] = {}
    messages = _messages(prompt)
    if messages is None:
        view["prompt"] = prompt
    else:
        view["messages"] = messages
    rest = llm_string
    if llm_string.startswith("{"):
        try:
            model, end = json.JSONDecoder().raw_decode(llm_string)
        except ValueError:
            model, end = None, 0
        if isinstance(model, dict) and llm_string.startswith("---", end):
            view["model"] = _clean(model)
            rest = llm_string[end + 3 :]
    params = _param_pairs(rest)
    if params is None:
        view["params_text"] = _param_text(rest)
    else:
        view["params"] = _clean(params, names=True)
    return view


# -- the cache ------------------------------------------------------------------------------------


def _langchain(**request: Any) -> Any:
    """The function whose calls the cache's keys name: one LangChain model request."""
    raise NotImplementedError  # never called: LangChain calls the model, not the cache


def _tokens(generations: Sequence[Generation]) -> int:
    total = 0
    for gen in generations:
        message = getattr(gen, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if isinstance(usage, dict):
            total += int(usage.get("total_tokens") or 0)
    return total


def _unserializable(value: Any, depth: int = 0) -> bool:
    # dumpd writes what it cannot serialize as {"type": "not_implemented"}: it would not revive.
    if depth > _WALK_DEPTH:
        return True
    if isinstance(value, dict):
        if value.get("lc") == 1 and value.get("type") == "not_implemented":
            return True
        return any(_unserializable(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_unserializable(v, depth + 1) for v in value)
    return False


def _drop_run_id(generation: Any) -> None:
    # LangChain names an answer's message after the run that produced it ("lc_run-<uuid>-0"):
    # an id of that run, not of the answer, so it is not stored (a hit is another run, and a
    # recording of the same answer stays the same bytes). Provider ids are kept.
    kwargs = generation.get("kwargs") if isinstance(generation, dict) else None
    message = kwargs.get("message") if isinstance(kwargs, dict) else None
    fields = message.get("kwargs") if isinstance(message, dict) else None
    if isinstance(fields, dict) and str(fields.get("id", "")).startswith(LC_ID_PREFIX):
        del fields["id"]


class LlmMemoCache(BaseCache):
    """LangChain's LLM cache, answered by llm_memo: ``set_llm_cache(LlmMemoCache(...))``, or
    one model's ``ChatX(..., cache=LlmMemoCache(...))``.

    Every lookup and update follows the active ``cache_controls`` block (``no_cache``,
    ``no_store``, ``only_if_cached``, ``ttl``, ``max_age``, ``namespace``, ``backend``,
    ``enabled``), ``configure()`` and the ``llm_cache`` / record-replay test fixtures, as a
    decorated function's calls do. See the module docstring for what is keyed and stored.

    Args:
        backend: a URL (``"disk:///path"``, ``"redis://host/0"``, ``"memory://"``...), a
            filesystem path or a backend object. Default: ``configure()``'s.
        ttl: seconds (or a timedelta) entries live; ``None`` = no expiry.
        namespace: the namespace of this cache's entries.
        name: the function identity in its keys (two caches with different names never share
            entries; ``clear()`` removes this name's entries in the current namespace).
        strict: raise :class:`~llm_memo.errors.BackendUnavailableError` when a read fails,
            instead of calling the model.
        **policy: more directive defaults (``max_age``, ``no_store``, ...), as for
            :func:`~llm_memo.llm_cached`.

    Raises:
        ConfigurationError: an unknown directive, an invalid value, a malformed backend URL.

    Example::

        from langchain_core.globals import set_llm_cache
        from llm_memo.integrations.langchain import LlmMemoCache

        set_llm_cache(LlmMemoCache("redis://localhost:6379/0", ttl=86400))

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        backend: Any = UNSET,
        *,
        ttl: Any = UNSET,
        namespace: str | Unset = UNSET,
        name: str = "langchain",
        strict: bool | Unset = UNSET,
        **policy: Any,
    ) -> None:
        self._core = CacheCore(_langchain, backend, ttl, namespace, name, strict, policy)
        self._memo = self._core.memo
        self._warned_unserializable = False

    def __repr__(self) -> str:
        return f"<LlmMemoCache {self._memo.function_id}>"

    # -- keys and values (no I/O) ---------------------------------------------------------------

    def key(self, prompt: str, llm_string: str) -> str:
        """The key a lookup of ``(prompt, llm_string)`` uses now (current namespace)."""
        policy, _ = self._memo.policy()
        return self._memo.key(None, (), request_view(prompt, llm_string), policy.namespace)

    def _begin(self, prompt: str, llm_string: str, asynchronous: bool, lookup: bool) -> Call | None:
        """Resolve a lookup's or update's policy, key and backend; ``None`` when the cache is
        disabled for it (``enabled=False``: a lookup counts a bypass)."""
        # The view's parts are the keyword arguments of one call of _langchain (so a recording
        # shows {"messages": ..., "params": ...} as its request).
        return self._core.begin(
            lambda: ((), request_view(prompt, llm_string)),
            asynchronous=asynchronous,
            lookup=lookup,
        )

    def _revive(self, key: str, value: Any) -> list[Generation] | Literal[Missing.MISSING]:
        """The generations of a decoded value, or MISSING when they do not revive (logged)."""
        try:
            generations = _load(value, allowed_objects=VALUE_CLASSES)
        except (ValueError, TypeError, KeyError, NotImplementedError, RecursionError) as exc:
            self._memo.unusable(key, CodecError(f"not revivable as LangChain generations: {exc}"))
            return MISSING
        if not isinstance(generations, list) or not all(
            isinstance(g, Generation) for g in generations
        ):
            self._memo.unusable(key, CodecError("a stored value that is not generations"))
            return MISSING
        return generations

    def _seal(self, call: Call, generations: Sequence[Generation]) -> tuple[Entry, Any] | None:
        """The entry to store for ``generations`` and its retention, or ``None`` (the policy
        stores nothing, or the value cannot be stored: logged once)."""
        return call.seal(lambda: self._stored(generations), _tokens(generations))

    def _stored(self, generations: Sequence[Generation]) -> Any:
        """``generations`` as stored (LangChain's ``dumpd``, plain JSON), or MISSING when
        LangChain cannot serialize part of them (logged once)."""
        # dumpd leaves str subclasses (a generation's text accessor) in place: one orjson
        # round trip makes the value plain JSON.
        data = orjson.loads(orjson.dumps([dumpd(g) for g in generations]))
        for gen in data:
            _drop_run_id(gen)
        if _unserializable(data):
            if not self._warned_unserializable:
                self._warned_unserializable = True
                logger.warning(
                    "not caching a result of %s: LangChain cannot serialize part of it "
                    "(dumpd wrote 'not_implemented'), so it could not be revived",
                    self._memo.function_id,
                )
            return MISSING
        return data

    # -- BaseCache ------------------------------------------------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """The generations stored for this request, or ``None`` (LangChain then calls the model).

        Raises:
            CacheMiss: ``only_if_cached`` (replay) and nothing usable is stored.
            BackendUnavailableError: ``strict=True`` and the read failed.
        """
        call = self._begin(prompt, llm_string, asynchronous=False, lookup=True)
        if call is not None and call.policy.reads:
            with call.reading():  # fail-open unless only_if_cached / strict
                call.entry = call.backend.get(call.key)
        return None if call is None else call.answer(self._revive)

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup` (an async backend is awaited; a sync one is called inline)."""
        call = self._begin(prompt, llm_string, asynchronous=True, lookup=True)
        if call is not None and call.policy.reads:
            with call.reading():
                call.entry = await call.backend.get(call.key)
        return None if call is None else call.answer(self._revive)

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store the model's generations for this request (unless ``no_store`` or disabled).
        A failed write is logged and counted; LangChain's result is returned as it is."""
        call = self._begin(prompt, llm_string, asynchronous=False, lookup=False)
        sealed = None if call is None else self._seal(call, return_val)
        if call is not None and sealed is not None:
            with call.writing():
                call.backend.set(call.key, *sealed)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async :meth:`update`."""
        call = self._begin(prompt, llm_string, asynchronous=True, lookup=False)
        sealed = None if call is None else self._seal(call, return_val)
        if call is not None and sealed is not None:
            with call.writing():
                await call.backend.set(call.key, *sealed)

    def clear(self, **kwargs: Any) -> None:
        """Remove this cache's entries (its ``name``) in the current namespace.

        ``kwargs``: accepted for ``BaseCache`` compatibility; none is used.
        """
        clear_function(self._memo)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await aclear_function(self._memo)

    # -- counters -------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """This cache's counters (hits, misses, refreshes, bypasses, errors, tokens saved), as
        ``fn.cache.stats()`` gives a decorated function's."""
        return self._memo.stats.snapshot()

    def reset_stats(self) -> None:
        """Zero this cache's counters."""
        self._memo.stats.reset()
