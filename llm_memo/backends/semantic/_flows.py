"""The generator flows the semantic backends run on (being replaced by async sources + unasync).

Transitional: each backend writes its behaviour as generators that *yield* operations
(:class:`Embed`, or a backend-specific client call); :func:`drive` runs one against a sync client
and :func:`adrive` against an async one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from .vectors import VectorCache

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Embed:
    """Operation: embed one text; the result sent back is its unit vector (float32 row)."""

    text: str


#: A backend operation written once: a generator that yields operations and returns ``T``.
Flow: TypeAlias = Generator[Any, Any, T]


def embed_flow(text: str, cache: VectorCache) -> Flow[Any]:
    """Yield an :class:`Embed` unless ``text``'s vector is cached; return the vector."""
    vector = cache.get(text)
    if vector is None:
        vector = yield Embed(text)
        cache.put(text, vector)
    return vector


def drive(
    flow: Flow[T], perform: Callable[[Any], Any], failures: tuple[type[BaseException], ...]
) -> T:
    """Run ``flow``, performing each operation it yields with ``perform``.

    A ``failures`` exception raised by ``perform`` is thrown into the flow at the ``yield``, so
    a flow can handle the store's answers (a missing collection, say); anything else, and
    anything the flow does not handle, propagates.
    """
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            send = perform(op)
        except failures as exc:
            send, error = None, exc


async def adrive(
    flow: Flow[T],
    perform: Callable[[Any], Awaitable[Any]],
    failures: tuple[type[BaseException], ...],
) -> T:
    """The async twin of :func:`drive`: ``perform`` returns an awaitable."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            send = await perform(op)
        except failures as exc:
            send, error = None, exc
