"""Everything llm_memo knows about LLM SDKs: the registry, and the questions the rest asks of it.

One module per SDK (:mod:`.openai`, :mod:`.anthropic`, :mod:`.litellm`,
:mod:`.google_genai`) fills in one :class:`Sdk` record; :data:`SDKS` lists them, and the
functions here answer from that list:

=============================  ===============================================================
:func:`profile_for`            which SDK's own function a callable is (its never-keyed names)
:func:`file_params_for`        which parameters of an SDK's own function are files
:func:`per_item_for`           which list parameter of an SDK's own function is cached item
                               by item (embeddings), and how its responses split and merge
:func:`is_absent`              whether a value is an SDK's "not given" sentinel (``NOT_GIVEN``)
:func:`client_for`             the SDK client whose server answers a bound method (its endpoint
                               and default headers), and the wrappers met on the way
:func:`endpoint_identity`      the key form of an SDK client passed as an argument
:func:`sdk_class`              an SDK response class by tag name (the codec's allow-list)
:func:`is_sdk_type`            whether a class belongs to an SDK (rebuilt leniently on decode)
:func:`unstorable_hint`        what to wrap instead of an SDK helper whose result is a live
                               context manager (``messages.stream``), never stored
:func:`usage_tokens`           the tokens a response reports; :class:`StreamUsage` for streams
:func:`usage_split`            those tokens as input / output / cached input (:class:`Usage`)
:func:`response_model`         the model a response names (what its tokens are priced by)
:func:`split_for_similarity`   which text of a request a semantic cache embeds
=============================  ===============================================================

Two more answers are read straight off the profile :func:`profile_for` returns, once, when a
function is decorated: :attr:`Sdk.per_call` (the SDK's own per-call cache controls, e.g.
litellm's ``cache=`` / ``caching=``, as directives for that call) and :attr:`Sdk.mark_hit`
(marking a cached answer as the SDK marks its own cache hits).

Every answer comes from the object handed in (its module, its class's bases), never from what
the process happens to have imported, so keys cannot drift between processes.

**Adding an SDK** (``mistralai``, say): write ``sdks/mistral.py`` with ``SDK = Sdk(name=
"mistralai", ...)`` filling in only what applies (never-keyed names, "not given" sentinels, a
:class:`ClientFamily` for its client objects, usage fields, stream hooks, per-call controls,
a hit marker), and add ``mistral.SDK`` to :data:`SDKS` below. A name may be a package inside
a namespace (``"google.genai"``: ``google`` alone is shared by many packages). Nothing else
changes: keys, the codec, the drivers and the semantic backends ask these functions. (Where
a response keeps its usage, when not at ``.usage``, and a text parameter of its own shape are
listed below, next to the questions that read them: ``_USAGE_PATHS``, ``_TEXT_SPLITTERS``.)

Not here: the generic never-keyed names (``keys.DEFAULT_IGNORE``), the canonical walk
(``keys.canonical``), encoding values (``codec``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any

from . import anthropic, google_genai, litellm, openai
from ._base import ClientFamily, ItemBatch, Sdk, Usage, get_field, int_or_zero

__all__ = [
    "ABSENT_TYPES",
    "CREDENTIAL_HEADERS",
    "HEADER_MAPPINGS",
    "SDKS",
    "TEXT_PARAMETERS",
    "ClientFamily",
    "ItemBatch",
    "Sdk",
    "SdkClient",
    "StreamUsage",
    "Usage",
    "client_for",
    "endpoint_identity",
    "file_params_for",
    "is_absent",
    "is_sdk_type",
    "per_item_for",
    "profile_for",
    "response_model",
    "sdk_class",
    "split_for_similarity",
    "unstorable_hint",
    "usage_split",
    "usage_tokens",
]

#: The registry: every SDK llm_memo knows, one line each.
SDKS: tuple[Sdk, ...] = (
    openai.SDK,
    anthropic.SDK,
    litellm.SDK,
    google_genai.SDK,
)

_BY_NAME: dict[str, Sdk] = {sdk.name: sdk for sdk in SDKS}
#: Class names of every SDK's "not given" sentinels.
ABSENT_TYPES: frozenset[str] = frozenset().union(*(sdk.absent_types for sdk in SDKS))
_FAMILIES: tuple[ClientFamily, ...] = tuple(
    dict.fromkeys(sdk.clients for sdk in SDKS if sdk.clients is not None)
)
_TYPE_PACKAGES = frozenset(sdk.name for sdk in SDKS if sdk.response_types)
_USAGE_PARTS = tuple(dict.fromkeys(part for sdk in SDKS for part in sdk.usage_parts))
#: Where responses keep their usage: ``.usage`` (openai, anthropic, litellm), a Responses API
#: stream event's ``.response.usage`` (openai), Gemini's ``.usage_metadata``; the first found.
_USAGE_PATHS: tuple[tuple[str, ...], ...] = tuple(
    dict.fromkeys((("usage",), *openai.USAGE_PATHS, *google_genai.USAGE_PATHS))
)
#: Where a response holds a response that reports ``usage`` (a Responses API stream event).
_USAGE_HOLDERS = tuple(p[:-1] for p in _USAGE_PATHS if len(p) > 1 and p[-1] == "usage")
#: The usage fields that hold a total, by SDK shape.
_USAGE_TOTALS = ("total_tokens", google_genai.USAGE_TOTAL)
_STREAM_STARTS = tuple(sdk.stream_start_tokens for sdk in SDKS if sdk.stream_start_tokens)
_FILE_PARAMS: dict[str, frozenset[str]] = {
    name: params for sdk in SDKS for name, params in sdk.file_params.items()
}
_PER_ITEM: dict[str, ItemBatch] = {
    name: batch for sdk in SDKS for name, batch in sdk.per_item.items()
}
_REPORTS_INPUT = tuple(sdk.reports_input for sdk in SDKS if sdk.reports_input)
# In registry order: an SDK whose shape is more specific comes first (OpenAI's Responses usage
# has input_tokens too, but always with total_tokens, which Anthropic's never has). An SDK
# that reports only total tokens (no usage_split) is priced by the total, at the input price.
_USAGE_SPLITS = tuple(dict.fromkeys(sdk.usage_split for sdk in SDKS if sdk.usage_split))

#: Header names (lower case) that carry credentials: never keyed, even when asked for with
#: ``key_headers=``.
CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
    }
)

#: Parameters holding header mappings, in the order their headers are merged (later wins).
#: Never keyed as a whole; ``key_headers=`` keys chosen headers from them.
HEADER_MAPPINGS: tuple[str, ...] = ("default_headers", "headers", "extra_headers")


def is_absent(value: Any) -> bool:
    """Whether ``value`` is an SDK's "not given" sentinel (a falsy ``NotGiven`` / ``Omit``)."""
    return type(value).__name__ in ABSENT_TYPES and not value


# -- which SDK a callable belongs to ------------------------------------------------------------

_UNWRAP_LIMIT = 32


def _steps(fn: Any) -> Iterable[Any]:
    """``fn`` and what it wraps: ``__wrapped__`` (functools.wraps, the SDKs' raw-response
    wrappers), ``__func__`` (methods) and ``functools.partial``'s ``func``."""
    seen: set[int] = set()
    for _ in range(_UNWRAP_LIMIT):
        if fn is None or id(fn) in seen:
            return
        seen.add(id(fn))
        yield fn
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            inner = getattr(fn, "__func__", None)
        fn = inner


def _packages(module: str) -> tuple[str, ...]:
    """The names an SDK in ``module`` may be registered under: its first component, and its
    first two for a package inside a namespace (``google.genai``)."""
    top, _, rest = module.partition(".")
    return (top, f"{top}.{rest.partition('.')[0]}") if rest else (top,)


def _sdk_in(module: str) -> Sdk | None:
    for name in _packages(module):
        sdk = _BY_NAME.get(name)
        if sdk is not None:
            return sdk
    return None


def _sdk_of(obj: Any) -> Sdk | None:
    module = getattr(obj, "__module__", None)
    return _sdk_in(module) if isinstance(module, str) else None


def profile_for(fn: Callable[..., Any]) -> Sdk | None:
    """The SDK whose own function ``fn`` is (following wrappers and bound methods), or ``None``.

    A function of yours that calls an SDK is yours: ``None``.
    """
    for step in _steps(fn):
        sdk = _sdk_of(step)
        if sdk is not None:
            return sdk
        owner = getattr(step, "__self__", None)
        if owner is not None and not isinstance(owner, type(functools)):
            sdk = _sdk_of(type(owner))
            if sdk is not None:
                return sdk
    return None


def file_params_for(fn: Callable[..., Any]) -> frozenset[str]:
    """The parameters of ``fn`` that are files, when ``fn`` is (following wrappers and bound
    methods) an SDK's own function that uploads one (``client.audio.transcriptions.create``:
    ``file``); empty otherwise. A path passed there keys by the file's content.

    .. versionadded:: 0.1.0
    """
    for name in _code_names(fn):
        params = _FILE_PARAMS.get(name)
        if params is not None:
            return params
    return frozenset()


def per_item_for(fn: Callable[..., Any]) -> ItemBatch | None:
    """How ``fn`` caches a list parameter item by item, when ``fn`` is (following wrappers and
    bound methods) an SDK's own embedding function (``client.embeddings.create``,
    ``litellm.embedding``); ``None`` otherwise.

    .. versionadded:: 0.1.0
    """
    for name in _code_names(fn):
        batch = _PER_ITEM.get(name)
        if batch is not None:
            return batch
    return None


def _code_names(fn: Callable[..., Any]) -> Iterable[str]:
    """``"module:QualName"`` of ``fn`` and of each function it wraps."""
    for step in _steps(fn):
        module = getattr(step, "__module__", None)
        qualname = getattr(step, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            yield f"{module}:{qualname}"


# -- which server answers -----------------------------------------------------------------------


class SdkClient:
    """An SDK client whose server answers a cached function's calls.

    The endpoint is read again only when the objects it is read from changed (a client is
    mutable: ``client.base_url = ...``; :attr:`ClientFamily.endpoint_inputs`), so the hit path
    pays identity checks.
    """

    __slots__ = ("_cache", "client", "family")

    def __init__(self, client: Any, family: ClientFamily) -> None:
        self.client = client
        self.family = family
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def endpoint(self) -> dict[str, Any]:
        """The client's endpoint identity (never its credentials)."""
        client = self.client
        inputs = self.family.endpoint_inputs(client)
        cached = self._cache
        if (
            cached is not None
            and len(cached[0]) == len(inputs)
            and all(a is b for a, b in zip(cached[0], inputs, strict=True))
        ):
            return cached[1]
        endpoint = self.family.endpoint_of(client)
        self._cache = (inputs, endpoint)
        return endpoint

    def default_headers(self) -> Any:
        """The headers the client sends by default."""
        return self.family.default_headers(self.client)


def _client_of(obj: Any) -> tuple[Any, ClientFamily] | None:
    for family in _FAMILIES:
        client = family.client_of(obj)
        if client is not None:
            return client, family
    return None


def client_for(fn: Callable[..., Any]) -> tuple[SdkClient | None, tuple[str, ...]]:
    """The SDK client whose server answers calls of ``fn`` (a bound method of a client or of
    one of its resources, possibly wrapped), or ``None``; and the wrappers met on the way.

    The wrappers matter: ``with_raw_response.create`` copies the name of ``create`` (so it has
    the same function identity) but returns a raw response, never a ``ChatCompletion``; its
    entries must not meet those of ``create``. A wrapper is named by its own code's module and
    name (``openai._legacy_response.wrapped``), which ``functools.wraps`` does not copy.
    """
    wrappers: list[str] = []
    for step in _steps(fn):
        owner = getattr(step, "__self__", None)
        if owner is not None:
            found = _client_of(owner)
            if found is not None:
                return SdkClient(*found), tuple(wrappers)
        code = getattr(step, "__code__", None)
        if code is not None and getattr(step, "__wrapped__", None) is not None:
            # Where the wrapper's code lives (its globals' module, not its copied __module__)
            # and its own name: the same on every Python version.
            module = getattr(step, "__globals__", {}).get("__name__", "?")
            wrappers.append(f"{module}.{code.co_name}")
        elif isinstance(step, functools.partial):
            wrappers.append("functools.partial")
    return None, ()


def endpoint_identity(obj: Any) -> dict[str, Any] | None:
    """The endpoint of the SDK client behind ``obj`` (a client or resource passed as an
    argument: the server that answers, never its credentials), or ``None`` for other objects."""
    found = _client_of(obj)
    if found is None:
        return None
    client, family = found
    return family.endpoint_of(client)


# -- response types -----------------------------------------------------------------------------


def sdk_class(name: str) -> type | None:
    """The class tagged ``name`` (``"module:QualName"``) if it belongs to a known SDK and its
    module is already imported by the program, else ``None``: never imports for a stored tag."""
    module_name, _, qualname = name.partition(":")
    if _TYPE_PACKAGES.isdisjoint(_packages(module_name)):
        return None
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part.startswith("<"):
            return None
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and f"{obj.__module__}:{obj.__qualname__}" == name:
        return obj
    return None


def is_sdk_type(cls: type) -> bool:
    """Whether ``cls`` is one of a known SDK's response types (which the SDK builds without
    validation, so a stored one the strict validator refuses is rebuilt the same way)."""
    return not _TYPE_PACKAGES.isdisjoint(_packages(cls.__module__))


#: SDK helpers returning a live context manager, by its class: what to wrap instead.
_UNSTORABLE: dict[str, str] = {**openai.UNSTORABLE, **anthropic.UNSTORABLE}


def unstorable_hint(cls: type) -> str | None:
    """What to wrap instead of the SDK helper that returned a ``cls`` (a stream helper's
    context manager, such as anthropic's ``MessageStreamManager``), or ``None`` for any other
    class. Such a result is returned uncached (SPEC §5); the hint goes in the one log line.

    .. versionadded:: 0.1.0
    """
    return _UNSTORABLE.get(f"{cls.__module__}:{cls.__qualname__}")


# -- token usage --------------------------------------------------------------------------------


def _stream_start(chunk: Any) -> int | None:
    for hook in _STREAM_STARTS:
        tokens = hook(chunk)
        if tokens is not None:
            return tokens
    return None


def _reports_input(chunk: Any) -> bool:
    return any(hook(chunk) for hook in _REPORTS_INPUT)


class StreamUsage:
    """Token usage of a stream, counted chunk by chunk as it passes (see :func:`usage_tokens`).

    A recorder feeds each chunk to :meth:`add` when it is yielded, so the count does not need
    the chunks kept around (or a consumer's later edits of them).

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_first_has_input",
        "_last",
        "_last_has_input",
        "_last_split",
        "_seen",
        "_start_input",
        "_start_split",
        "model",
    )

    def __init__(self) -> None:
        #: The model the stream names (its first chunk that names one), "" when none does.
        self.model = ""
        self._last_split: Usage | None = None
        self._start_split: Usage | None = None
        self._seen = False
        self._last = 0  # tokens of the last chunk that reports any
        self._last_has_input = False
        self._first_has_input = False
        self._start_input: int | None = None  # input tokens reported by the stream's start

    def add(self, chunk: Any) -> None:
        """Count one chunk (in stream order)."""
        tokens = usage_tokens(chunk)
        if not self._seen:
            self._seen = True
            self._first_has_input = _reports_input(chunk)
            self._start_input = _stream_start(chunk)
            if self._start_input is not None:
                self._start_split = usage_split(chunk)
        if not self.model:
            self.model = response_model(chunk)
        if tokens:
            self._last = tokens
            self._last_has_input = _reports_input(chunk)
            self._last_split = usage_split(chunk)

    @property
    def total(self) -> int:
        """The stream's tokens: the last usage reported, plus the prompt tokens reported at the
        start (Anthropic's ``message_start``) when that last usage has only output tokens."""
        total = self._last
        has_input = self._last_has_input if self._last else self._first_has_input
        if self._start_input is not None and not has_input:
            total += self._start_input
        return total

    @property
    def split(self) -> Usage | None:
        """The stream's tokens as input / output / cached input, or ``None`` when its usage has
        no known shape: the last usage reported, with the start's input (and cache reads) when
        that last usage has only output tokens.

        .. versionadded:: 0.1.0
        """
        last = self._last_split
        has_input = self._last_has_input if self._last else self._first_has_input
        start = self._start_split
        if start is not None and not has_input:
            if last is None:
                return start
            return Usage(start.input, last.output, start.cached_input)
        return last


def usage_tokens(value: Any) -> int:
    """Tokens a response reports in its ``usage`` (every registered SDK's shape: also Gemini's
    ``usage_metadata`` and a Responses API event's ``response.usage``); 0 when it has none.
    For a list of stream chunks, the last chunk that reports usage, plus the prompt tokens of
    an Anthropic ``message_start`` when that last usage has only output tokens (Anthropic
    streams report input at the start and output at the end).

    .. versionadded:: 0.1.0
    """
    if isinstance(value, list):
        counter = StreamUsage()
        for chunk in value:
            counter.add(chunk)
        return counter.total
    try:
        usage = _usage_of(value)
        if usage is None:
            return 0
        for name in _USAGE_TOTALS:
            total = get_field(usage, name)
            if isinstance(total, int) and not isinstance(total, bool):
                return total
        return sum(int_or_zero(get_field(usage, name)) for name in _USAGE_PARTS)
    except (AttributeError, TypeError):
        return 0


def _usage_of(value: Any) -> Any:
    """The usage record of a response (the first of :data:`_USAGE_PATHS` present), or ``None``."""
    for path in _USAGE_PATHS:
        found = value
        for name in path:
            found = get_field(found, name)
            if found is None:
                break
        if found is not None:
            return found
    return None


def usage_split(value: Any) -> Usage | None:
    """A response's tokens as :class:`Usage` (input, output, cached input) when its ``usage``
    has a registered SDK's shape, else ``None`` (then only :func:`usage_tokens` is known). For
    a list of stream chunks, as :attr:`StreamUsage.split` counts them.

    .. versionadded:: 0.1.0
    """
    if isinstance(value, list):
        counter = StreamUsage()
        for chunk in value:
            counter.add(chunk)
        return counter.split
    try:
        for holder in (value, *(_field_at(value, path) for path in _USAGE_HOLDERS)):
            if holder is None:
                continue
            for split in _USAGE_SPLITS:
                found = split(holder)
                if found is not None:
                    return found
    except (AttributeError, TypeError):
        pass
    return None


def _field_at(value: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        value = get_field(value, name)
        if value is None:
            break
    return value


def response_model(value: Any) -> str:
    """The model a response names (``ChatCompletion.model``, ``Message.model``, a stream
    chunk's, the ``message`` of Anthropic's ``message_start``, the ``response`` of an OpenAI
    Responses stream event, Gemini's ``model_version``), "" when it names none. For a list of
    stream chunks: the first chunk that names one.

    .. versionadded:: 0.1.0
    """
    if isinstance(value, list):
        for chunk in value:
            model = response_model(chunk)
            if model:
                return model
        return ""
    try:
        model = get_field(value, "model")
        for holder in _MODEL_HOLDERS:
            if model is not None:
                break
            model = get_field(get_field(value, holder), "model")
        if model is None:
            model = get_field(value, "model_version")
    except (AttributeError, TypeError):
        return ""
    return model if isinstance(model, str) else ""


#: Where a response holds the message or response that names its model: Anthropic's
#: ``message_start`` (``message``), an OpenAI Responses stream event (``response``).
_MODEL_HOLDERS = ("message", "response")


# -- text to embed ------------------------------------------------------------------------------

#: Parameters whose text a semantic cache embeds, in order of preference.
TEXT_PARAMETERS = ("messages", "prompt", "input", "query", "question", "contents")

#: Text parameters of an SDK's own shape: (exact context, text) of the argument, or ``None``.
_TEXT_SPLITTERS: dict[str, Callable[[Any], tuple[Any, str] | None]] = {
    "contents": google_genai.split_contents,
}


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        texts = [t for t in parts if isinstance(t, str)]
        return "\n".join(texts) if texts else None
    return None


def split_for_similarity(view: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Split a canonical request view into (exact context, text to embed).

    The text is the conversation's user turns (``messages`` entries with role ``user``, joined
    by newlines), or else the first of ``prompt``, ``input``, ``query``, ``question`` that is a
    string, or else Gemini's ``contents`` (a string, strings, or the text parts of ``Content``
    turns whose role is ``user``). The context is the view with exactly that text removed, so
    everything else (model, parameters, system prompt, assistant turns, tools) must match
    exactly for a semantic hit.
    Returns ``None`` when the request has no such text.

    .. versionadded:: 0.1.0
    """
    for name in TEXT_PARAMETERS:
        value = view.get(name)
        if name == "messages" and isinstance(value, list):
            texts: list[str] = []
            context_messages = []
            for message in value:
                if isinstance(message, dict) and message.get("role") == "user":
                    text = _message_text(message.get("content"))
                    if text is not None:
                        texts.append(text)
                        context_messages.append({**message, "content": None})
                        continue
                context_messages.append(message)
            if texts:
                return {**view, "messages": context_messages}, "\n".join(texts)
        elif name in _TEXT_SPLITTERS:
            found = _TEXT_SPLITTERS[name](value)
            if found is not None:
                return {**view, name: found[0]}, found[1]
        elif isinstance(value, str) and value:
            return {**view, name: None}, value
    return None
