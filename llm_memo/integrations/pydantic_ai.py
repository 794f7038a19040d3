"""llm_memo for pydantic-ai: :class:`CachedModel`, a wrapper model that caches model requests.

pydantic-ai has no cache of its own; its extension point for one is the wrapper model
(``pydantic_ai.models.wrapper.WrapperModel``). ``Agent(CachedModel(inner, backend=...))`` sends
every ``request`` and ``request_stream`` of the agent through one ``llm_cached`` function
each, so keys, backends (a URL or an object), ``cache_controls`` directives, stats, events,
single-flight and record/replay are llm_memo's own, with no second mechanism.

What the key is made of (:meth:`CachedModel.request_view`, canonicalised and hashed by
``llm_memo.keys``): the wrapped model's ``model_id`` and ``system``, the messages as
pydantic-ai serialises them (``ModelMessagesTypeAdapter``) minus what changes from run to run
and the model never reads (timestamps, ``run_id``, ``conversation_id``, the ``model_id`` the
agent stamps on a response it received), the model settings minus credentials and transport
(:data:`IGNORED_SETTINGS` and secret-shaped names), and the request parameters (function and
output tools with their schemas, native tools without their credentials, output mode...). The
run context and ``deps`` are never part of it.

What is stored: a response is the JSON of pydantic-ai's own ``ModelMessagesTypeAdapter`` and
is restored by it as a typed ``ModelResponse`` (parts, tool calls, usage); no pickle, and the
codec's allow-list is not involved, since the value is JSON. A stream is stored as its events
(the ``ModelResponseStreamEvent`` JSON the live stream yielded) between a header and the final
response, and replays as a :class:`ReplayedStream` the agent consumes like the live one. A
stream is stored only when it is consumed to its end. A stored response or stream this
pydantic-ai cannot validate (another version's) is a miss: the model answers again and
replaces it.

Importing this module imports pydantic-ai (and no other framework); ``import llm_memo`` does
not import this module.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pydantic
from pydantic_ai.messages import (
    FinalResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ModelResponseStreamEvent,
)
from pydantic_ai.models import KnownModelName, Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from .._decorator import CacheHandle, llm_cached
from .._memo import logger
from ..controls import UNSET, Unset, cache_controls
from ..events import Outcome
from ..keys import DEFAULT_IGNORE

__all__ = ["IGNORED_SETTINGS", "CachedModel", "ReplayedStream", "dump_response", "load_response"]

#: Settings that never change the answer: llm_memo's never-keyed names (credentials,
#: transport, header mappings) and pydantic-ai's own transport deadline. Secret-shaped names
#: (``*_api_key``, ``*_token``, ``*_secret``, ``*_password``, ``*_credentials``) are left out
#: too, of the settings and of each native tool (an MCP server's ``authorization_token``).
IGNORED_SETTINGS: frozenset[str] = DEFAULT_IGNORE | {"first_event_timeout"}

# "max_tokens" is not one: the name must end in the singular.
_SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|secret|password|passwd|token|credentials?)$")

# Fields pydantic-ai sets per run, or stamps on a response after it arrived: two runs of the
# same conversation differ in them, and no provider is sent them.
_VOLATILE_MESSAGE_FIELDS = ("timestamp", "run_id", "conversation_id", "model_id")
_VOLATILE_PART_FIELDS = ("timestamp",)

# Bytes (images, audio) as base64 in JSON, as ModelMessagesTypeAdapter does.
_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
    ModelResponseStreamEvent,
    config=pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64"),
)
_PARAMETERS: pydantic.TypeAdapter[ModelRequestParameters] = pydantic.TypeAdapter(
    ModelRequestParameters
)
_TIMESTAMP: pydantic.TypeAdapter[datetime] = pydantic.TypeAdapter(datetime)


def dump_response(response: ModelResponse) -> dict[str, Any]:
    """A response as JSON-native data (what is stored), through ``ModelMessagesTypeAdapter``.

    .. versionadded:: 0.1.0
    """
    data: dict[str, Any] = ModelMessagesTypeAdapter.dump_python([response], mode="json")[0]
    return data


def load_response(data: Any) -> ModelResponse:
    """The typed ``ModelResponse`` back from :func:`dump_response`'s data.

    Raises:
        pydantic.ValidationError: the data is not a response.

    .. versionadded:: 0.1.0
    """
    (message,) = ModelMessagesTypeAdapter.validate_python([data])
    if not isinstance(message, ModelResponse):
        raise TypeError(f"stored message is a {type(message).__name__}, not a ModelResponse")
    return message


def _never_keyed(name: object) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower().replace("-", "_")
    return lowered in IGNORED_SETTINGS or _SECRET_NAME.search(lowered) is not None


def _without_secrets(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if not _never_keyed(k)}


def _messages_view(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    view: list[dict[str, Any]] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    for message in view:
        for name in _VOLATILE_MESSAGE_FIELDS:
            message.pop(name, None)
        for part in message.get("parts", ()):
            for name in _VOLATILE_PART_FIELDS:
                part.pop(name, None)
    return view


class ReplayedStream(StreamedResponse):
    """The stream an agent consumes from :meth:`CachedModel.request_stream`, live or replayed.

    It iterates the cached stream function's chunks: the events the live stream yielded (its
    part-end and final-result events included, so they are yielded as they are, not derived
    again), applying each to its parts manager so :meth:`get` reflects the stream so far, then
    the final response (the last chunk), whose usage, finish reason and provider details
    :meth:`get` returns.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        model_request_parameters: ModelRequestParameters,
        head: dict[str, Any],
        chunks: AsyncGenerator[Any, None],
    ) -> None:
        super().__init__(model_request_parameters)
        self._head = head
        self._chunks = chunks
        self._response: ModelResponse | None = None

    def __aiter__(self) -> AsyncIterator[ModelResponseStreamEvent]:
        if self._event_iterator is None:
            self._event_iterator = self._replay()
        return self._event_iterator

    async def _replay(self) -> AsyncIterator[ModelResponseStreamEvent]:
        async for chunk in self._chunks:
            if "event" in chunk:
                event = _EVENTS.validate_python(chunk["event"])
                self._parts_manager.apply_event(event)
                if isinstance(event, FinalResultEvent):
                    self.final_result_event = event
                yield event
            elif chunk.get("kind") == "response":
                self._finish(load_response(chunk))
        if self._response is not None and not self._cancelled:
            self._finished = True

    def _finish(self, response: ModelResponse) -> None:
        self._response = response
        self._usage = response.usage
        self.provider_response_id = response.provider_response_id
        self.provider_details = response.provider_details
        self.canonical_system = response.canonical_system
        self.finish_reason = response.finish_reason
        self.metadata = response.metadata
        self.state = response.state

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        # Not used: __aiter__ yields the recorded events as they are.
        return
        yield  # pragma: no cover

    async def close_stream(self) -> None:
        await self._chunks.aclose()

    @property
    def model_name(self) -> str:
        return str(self._head["model_name"])

    @property
    def provider_name(self) -> str | None:
        name = self._head.get("provider_name")
        return None if name is None else str(name)

    @property
    def provider_url(self) -> str | None:
        url = self._head.get("provider_url")
        return None if url is None else str(url)

    @property
    def timestamp(self) -> datetime:
        return _TIMESTAMP.validate_python(self._head["timestamp"])


def _head(live: StreamedResponse) -> dict[str, Any]:
    return {
        "model_name": live.model_name,
        "provider_name": live.provider_name,
        "provider_url": live.provider_url,
        "timestamp": _TIMESTAMP.dump_python(live.timestamp, mode="json"),
    }


class CachedModel(WrapperModel):
    """A pydantic-ai model whose requests are cached by llm_memo: wrap any model with it.

    Args:
        wrapped: the model answering misses (a ``Model`` or a model name such as
            ``"openai:gpt-4o-mini"``).
        backend: as for :func:`~llm_memo.llm_cached`: a URL (``"memory://"``,
            ``"redis://host/0"``, ``"s3://bucket/prefix"``), a path, or a backend object.
        ttl: seconds (or a timedelta) an entry stays fresh; ``None`` = forever.
        namespace: partition of the key space.
        name: the function identity in keys (``<name>.request`` and ``<name>.request_stream``):
            models given the same name share entries, told apart by their ``model_id``.
        **policy: more directives and options, as for :func:`~llm_memo.llm_cached`
            (``no_store``, ``max_age``, ``strict``, ``lock``...).

    Raises:
        ConfigurationError: an unknown option or an invalid value.

    Example::

        from pydantic_ai import Agent
        from llm_memo.integrations.pydantic_ai import CachedModel

        agent = Agent(CachedModel("openai:gpt-4o-mini", backend="redis://localhost/0", ttl=3600))

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        wrapped: Model | KnownModelName | str,
        *,
        backend: Any = UNSET,
        ttl: Any = UNSET,
        namespace: str | Unset = UNSET,
        name: str = "pydantic_ai",
        **policy: Any,
    ) -> None:
        super().__init__(wrapped)
        inner = self.wrapped

        def cached(fn: Callable[..., Any], suffix: str) -> Any:
            return llm_cached(
                backend=backend,
                ttl=ttl,
                namespace=namespace,
                name=f"{name}.{suffix}",
                key=self.request_view,
                **policy,
            )(fn)

        async def request(
            messages: list[ModelMessage],
            model_settings: ModelSettings | None,
            model_request_parameters: ModelRequestParameters,
        ) -> Any:
            response = await inner.request(messages, model_settings, model_request_parameters)
            return dump_response(response)

        async def request_stream(
            messages: list[ModelMessage],
            model_settings: ModelSettings | None,
            model_request_parameters: ModelRequestParameters,
            run_context: Any = None,
        ) -> AsyncIterator[Any]:
            async with inner.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as live:
                yield {"head": _head(live)}
                async for event in live:
                    yield {"event": _EVENTS.dump_python(event, mode="json")}
                # The response itself, last: its usage is what the stream's tokens count.
                yield dump_response(live.get())

        self._cached_request = cached(request, "request")
        self._cached_stream = cached(request_stream, "request_stream")

    # -- the key ---------------------------------------------------------------------------

    def request_view(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> dict[str, Any]:
        """What a request's key is made of (see the module docstring); never the run context.

        .. versionadded:: 0.1.0
        """
        parameters = _PARAMETERS.dump_python(model_request_parameters, mode="json")
        parameters = {k: v for k, v in parameters.items() if not k.startswith("_")}
        parameters["native_tools"] = [
            _without_secrets(tool) if isinstance(tool, dict) else tool
            for tool in parameters.get("native_tools", ())
        ]
        return {
            "model": self.wrapped.model_id,
            "system": self.wrapped.system,
            "messages": _messages_view(messages),
            "settings": _without_secrets(dict(model_settings or {})),
            "parameters": parameters,
        }

    # -- the cache ---------------------------------------------------------------------------

    @property
    def cache(self) -> CacheHandle:
        """The ``fn.cache`` handle of the cached ``request`` (stats, clear, key...)."""
        handle: CacheHandle = self._cached_request.cache
        return handle

    @property
    def stream_cache(self) -> CacheHandle:
        """The ``fn.cache`` handle of the cached ``request_stream``."""
        handle: CacheHandle = self._cached_stream.cache
        return handle

    # -- the model ---------------------------------------------------------------------------

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """The wrapped model's response, from the cache when it has it."""
        data = await self._cached_request(messages, model_settings, model_request_parameters)
        try:
            return load_response(data)
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            # A stored response this pydantic-ai cannot read (written by another version): a
            # miss, as an unreadable entry is everywhere in llm_memo. The model answers, and
            # its response replaces the entry.
            logger.warning("unreadable pydantic-ai response in the cache, asking again: %s", exc)
            with cache_controls(no_cache=True):
                data = await self._cached_request(
                    messages, model_settings, model_request_parameters
                )
            return load_response(data)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        """The wrapped model's stream, replayed from the cache when it has it."""
        request = (messages, model_settings, model_request_parameters, run_context)
        with cache_controls() as scope:  # records whether the stream is a stored one
            chunks = self._cached_stream(*request)
            first = await _first(chunks)
        if scope.events and scope.events[-1].outcome in _STORED:
            # A stored stream is all in memory: check it before the agent sees any of it, so
            # one this pydantic-ai cannot read is a miss (as an unreadable entry is everywhere
            # in llm_memo), not a failure halfway through a run.
            stored = [first, *[chunk async for chunk in chunks]]
            if _readable(stored):
                chunks = _replay(stored[1:])
            else:
                logger.warning("unreadable pydantic-ai stream in the cache, asking again")
                with cache_controls(no_cache=True):
                    chunks = self._cached_stream(*request)
                    first = await _first(chunks)
        try:
            yield ReplayedStream(model_request_parameters, first["head"], chunks)
        finally:
            await chunks.aclose()


_STORED = (Outcome.HIT, Outcome.STALE)


async def _first(chunks: AsyncGenerator[Any, None]) -> Any:
    try:
        return await chunks.__anext__()
    except BaseException:
        await chunks.aclose()
        raise


async def _replay(chunks: list[Any]) -> AsyncGenerator[Any, None]:
    for chunk in chunks:
        yield chunk


def _readable(stored: list[Any]) -> bool:
    """Whether a stored stream is a head, events and a response this pydantic-ai reads."""
    try:
        head, *events, last = stored
        _TIMESTAMP.validate_python(head["head"]["timestamp"])
        for chunk in events:
            _EVENTS.validate_python(chunk["event"])
        load_response(last)
    except (ValueError, TypeError, KeyError):  # pydantic's ValidationError is a ValueError
        return False
    return True
