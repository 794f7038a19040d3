"""The allow-list: which classes a stored value may be restored as, for one function.

A tag names a type, but the reader never imports or looks up arbitrary names: a class is
restored only if it is registered (:func:`register_type`), appears in the function's return
annotation (``-> ChatCompletion``, ``-> Iterator[ChatCompletionChunk]``), or is a pydantic model
of a known SDK (``llm_memo.sdks``: openai, anthropic, litellm) *whose module is already
imported*. A shared cache therefore cannot make a reader import or execute code. The return
annotation also gives the concrete classes a decoded value must be (:func:`expected_types`) and,
for non-class annotations (``list[Answer]``), the TypeAdapter that encodes and restores them.

Not here: encoding and decoding (``values.py``), sealing entries (``sealing.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import xxhash

from .. import sdks

__all__ = ["AllowList", "expected_types", "register_type", "registered_types", "type_name"]

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type] = {}


def type_name(cls: type) -> str:
    """The name a type tag uses for ``cls``: ``"module:QualName"``.

    .. versionadded:: 0.1.0
    """
    return f"{cls.__module__}:{cls.__qualname__}"


def register_type(cls: T) -> T:
    """Allow values of ``cls`` (a pydantic model or a dataclass) to be stored and restored.

    Needed only for types that are neither in the cached function's return annotation nor an
    SDK response type. Usable as a class decorator.

    Raises:
        TypeError: ``cls`` is not a pydantic model class or a dataclass.

    Example::

        @register_type
        class Verdict(BaseModel):
            label: str
            score: float

    .. versionadded:: 0.1.0
    """
    if not isinstance(cls, type) or not (_is_model_class(cls) or dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_type() takes a pydantic model class or a dataclass, not {cls!r}")
    _REGISTRY[type_name(cls)] = cls
    return cls


def registered_types() -> dict[str, type]:
    """The registered types by tag name (a copy).

    .. versionadded:: 0.1.0
    """
    return dict(_REGISTRY)


def _is_model_class(cls: type) -> bool:
    return hasattr(cls, "__pydantic_serializer__") and hasattr(cls, "model_validate_json")


def _sdk_type(name: str) -> type | None:
    # Only pydantic models of the known SDKs, only from modules already imported by the
    # program (sdks.sdk_class never imports on behalf of a stored tag).
    cls = sdks.sdk_class(name)
    return cls if cls is not None and _is_model_class(cls) else None


_STREAM_ORIGINS = {
    "Iterator",
    "Iterable",
    "Generator",
    "AsyncIterator",
    "AsyncIterable",
    "AsyncGenerator",
    "Stream",
    "AsyncStream",
}


def _return_annotation(fn: Callable[..., Any]) -> Any:
    target: Any = fn
    for attr in ("__func__", "__wrapped__"):
        while hasattr(target, attr):
            target = getattr(target, attr)
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError, AttributeError):  # unresolvable forward references
        try:
            hints = inspect.get_annotations(target)
        except TypeError:
            return None
    ann = hints.get("return", inspect.Signature.empty)
    if ann is inspect.Signature.empty or ann is None or ann is Any or ann is object:
        return None
    return ann


_NONE_TYPE = type(None)
# PEP 484's numeric tower: an int is acceptable where a float is declared, an int or a float
# where a complex is.
_TOWER: dict[type, tuple[type, ...]] = {float: (float, int), complex: (complex, float, int)}


def expected_types(annotation: Any, depth: int = 0) -> tuple[type, ...] | None:
    """The classes a value annotated ``annotation`` must be an instance of, or ``None`` when the
    annotation names no concrete class to check (``Any``, ``object``, a TypeVar, a string or
    forward reference, a Protocol, a TypedDict, ``Literal``...).

    A class is itself; ``X | Y`` / ``Optional[X]`` is the union of its members (``None`` when any
    member is open); a generic alias is its origin (``list[str]`` -> ``list``);
    ``Annotated[X, ...]`` is ``X``. Used to refuse a stored value that contradicts the return
    annotation (SPEC §5).

    .. versionadded:: 0.1.0
    """
    if depth > 8:
        return None
    if annotation is None or annotation is _NONE_TYPE:
        return (_NONE_TYPE,)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return expected_types(typing.get_args(annotation)[0], depth + 1)
    if origin is typing.Union or origin is types.UnionType:
        out: list[type] = []
        for arg in typing.get_args(annotation):
            member = expected_types(arg, depth + 1)
            if member is None:
                return None
            out.extend(member)
        return tuple(dict.fromkeys(out))
    tp = annotation if origin is None else origin
    if not isinstance(tp, type) or tp is object:
        return None
    if getattr(tp, "_is_protocol", False) or typing.is_typeddict(tp):
        return None
    try:
        isinstance(None, tp)
    except TypeError:  # a class isinstance() cannot check
        return None
    return _TOWER.get(tp, (tp,))


def _collect(tp: Any, out: dict[str, type], depth: int = 0) -> None:
    if depth > 8:
        return
    if isinstance(tp, type) and (_is_model_class(tp) or dataclasses.is_dataclass(tp)):
        out[type_name(tp)] = tp
    for arg in typing.get_args(tp):
        _collect(arg, out, depth + 1)


def _is_plain(tp: Any) -> bool:
    return isinstance(tp, type) and typing.get_origin(tp) is None


def _chunk_annotation(tp: Any) -> Any:
    origin = typing.get_origin(tp) or tp
    if getattr(origin, "__name__", "") in _STREAM_ORIGINS:
        args = typing.get_args(tp)
        return args[0] if args else None
    return None


class _Adapter:
    """A pydantic TypeAdapter for a non-class annotation, with a tag naming the annotation."""

    def __init__(self, annotation: Any) -> None:
        from pydantic import TypeAdapter

        self.adapter: Any = TypeAdapter(annotation)
        self.tag = "adapter:" + xxhash.xxh64_hexdigest(repr(annotation).encode())


class AllowList:
    """The types one function's values may be restored as (see the module docstring).

    Args:
        fn: the cached function; its return annotation is read lazily, on first use.

    .. versionadded:: 0.1.0
    """

    def __init__(self, fn: Callable[..., Any] | None = None) -> None:
        self._fn = fn
        self._ready = False
        self._local: dict[str, type] = {}
        self._adapter: _Adapter | None = None
        self._chunk_adapter: _Adapter | None = None
        self._expected: tuple[type, ...] | None = None

    def _load(self) -> None:
        if self._ready:
            return
        ann = _return_annotation(self._fn) if self._fn is not None else None
        if ann is not None:
            self._expected = expected_types(ann)
            _collect(ann, self._local)
            chunk = _chunk_annotation(ann)
            self._adapter = self._make_adapter(ann if chunk is None else None)
            self._chunk_adapter = self._make_adapter(chunk)
        self._ready = True

    @staticmethod
    def _make_adapter(ann: Any) -> _Adapter | None:
        if ann is None or _is_plain(ann) or ann is Any:
            return None
        try:
            from pydantic import PydanticSchemaGenerationError, PydanticUserError
        except ImportError:
            return None
        try:
            return _Adapter(ann)
        except (PydanticSchemaGenerationError, PydanticUserError):  # an annotation it can't adapt
            return None

    def resolve(self, name: str) -> type | None:
        """The allowed class named ``name``, or ``None``."""
        self._load()
        return self._local.get(name) or _REGISTRY.get(name) or _sdk_type(name)

    def allows(self, cls: type) -> bool:
        """Whether values of exactly ``cls`` may be stored (a reader could restore them)."""
        return self.resolve(type_name(cls)) is cls

    @property
    def expected(self) -> tuple[type, ...] | None:
        """The classes the return annotation allows (see :func:`expected_types`), or ``None``
        when it names none to check. Resolved once, with the rest of the allow-list."""
        if not self._ready:
            self._load()
        return self._expected

    def adapter(self, chunk: bool) -> _Adapter | None:
        """The TypeAdapter for the return annotation (or for stream chunks), if any."""
        self._load()
        return self._chunk_adapter if chunk else self._adapter
