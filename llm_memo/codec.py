"""Values as data: encode results to bytes and restore them as the same types, from an allow-list.

A stored value is ``(type_tag, payload)``:

=====================  ================================================================
``json``               JSON-native values (dict with str keys, list, str, int, float, bool,
                       None), checked exactly on write; orjson both ways
``model:<mod>:<qual>`` a pydantic model; payload is its JSON (``exclude_unset``, aliases), so
                       a re-dump matches the original, and ``model_validate_json`` restores it
``dataclass:<...>``    a dataclass; pydantic's TypeAdapter restores nested types when present
``adapter:<hash>``     any other value matching the function's return annotation
                       (``list[Answer]``, ``tuple[str, int]``), through a TypeAdapter of it
``stream``/``astream`` the chunks of a recorded (async) stream, each tagged as above
``pickle``             only with ``allow_pickle=True``, on write and on read
=====================  ================================================================

**The allow-list.** A tag names a type, but the reader never imports or looks up arbitrary
names: a class is restored only if it is registered (:func:`register_type`), appears in the
function's return annotation (``-> ChatCompletion``, ``-> Iterator[ChatCompletionChunk]``), or
is a pydantic model of the openai, anthropic or litellm SDK *whose module is already imported*.
A shared cache therefore cannot make a reader import or execute code. Values of other types
are returned to the caller but not stored, and one log line per function names the fix.

Entries are sealed here too (:func:`seal` / :func:`unseal`): an entry carries its key's digest
(:func:`check_key` refuses it under any other key), large payloads are compressed and inflated
only up to the entry size limit (:func:`inflate`: a small bomb never balloons), and with signing
keys configured an HMAC-SHA256 over the key, the metadata and the value is checked before
anything is decoded. A decoded value is also checked against the concrete classes of the return
annotation (:func:`expected_types`, by the decorator). Every failure is a
:class:`~llm_memo.errors.CodecError`, which the decorator turns into a miss.

Not here: the entry's byte layout (``entry.py``); what is known about each SDK, its response
types and its token usage (``llm_memo.sdks``: :func:`usage_tokens` and :class:`StreamUsage` are
re-exported here, where callers have always found them).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hmac
import inspect
import math
import pickle
import types
import typing
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
import xxhash

from . import sdks
from .entry import DEFAULT_MAX_ENTRY_SIZE, FLAG_COMPRESSED, Entry, key_digest
from .errors import CodecError
from .sdks import StreamUsage, usage_tokens

__all__ = [
    "AllowList",
    "Codec",
    "StreamUsage",
    "UnencodableValueError",
    "check_key",
    "expected_types",
    "inflate",
    "join_chunks",
    "register_type",
    "registered_types",
    "seal",
    "type_name",
    "unseal",
    "usage_tokens",
]

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type] = {}
_JSON_SCALARS = (str, int, float, bool, type(None))


class UnencodableValueError(CodecError):
    """A result is neither JSON-native nor of an allow-listed type; it is not stored."""


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

    .. versionadded:: 0.2.0
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


def _json_native(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-(2**63) <= value < 2**64)
    if t is float:
        return math.isfinite(value)
    if depth > 200:
        return False
    if t is dict:
        return all(type(k) is str and _json_native(v, depth + 1) for k, v in value.items())
    if t is list:
        return all(_json_native(v, depth + 1) for v in value)
    return False


# What decoding a hostile or damaged payload can raise (orjson's JSONDecodeError and pydantic's
# ValidationError are ValueErrors; a malformed chunk list gives TypeError / IndexError; absurd
# nesting RecursionError): each is a CodecError, so a miss, never a crash.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)


def _unpickle(payload: bytes) -> Any:
    # Only with allow_pickle (an explicit opt-in that trusts the cache). Unpickling damaged
    # bytes can raise almost anything (EOFError, ImportError, ...): each is a miss.
    try:
        return pickle.loads(payload)  # noqa: S301 - explicit opt-in, documented
    except Exception as exc:  # any failure of damaged bytes: see above
        raise CodecError(f"cannot unpickle the entry: {exc!r}") from exc


@functools.lru_cache(maxsize=256)
def _dataclass_adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


class Codec:
    """Encodes and decodes one function's values against its :class:`AllowList`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_classes", "_validators", "allow")

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self._classes: dict[str, type] = {}
        # tag -> the model's JSON validator, once its class has been resolved: the hit path
        # for typed values is one dict lookup and pydantic-core.
        self._validators: dict[str, Callable[[bytes], Any]] = {}

    # -- single values -----------------------------------------------------------------------

    def encode(
        self, value: Any, *, allow_pickle: bool = False, chunk: bool = False
    ) -> tuple[str, bytes]:
        """Encode ``value`` to ``(type_tag, payload)``.

        Raises:
            UnencodableValueError: the value is not JSON-native and its type is not allowed;
                the message names the fix.
        """
        if _json_native(value):
            return "json", orjson.dumps(value)
        cls = type(value)
        try:
            return self._encode_typed(value, cls, allow_pickle, chunk)
        except UnencodableValueError:
            raise
        except Exception as exc:
            # Serialisers of user types (pydantic with an unresolved forward reference, a
            # custom serializer, pickle of a lock) fail in many ways. The result is already
            # paid for: report it as unstorable, so it is returned, never lost.
            raise UnencodableValueError(
                f"a {type_name(cls)} could not be encoded: {exc!r}"
            ) from exc

    def _encode_typed(
        self, value: Any, cls: type, allow_pickle: bool, chunk: bool
    ) -> tuple[str, bytes]:
        if _is_model_class(cls) and self.allow.allows(cls):
            return "model:" + type_name(cls), value.model_dump_json(
                by_alias=True, exclude_unset=True, round_trip=True, warnings=False
            ).encode()
        if dataclasses.is_dataclass(cls) and self.allow.allows(cls):
            try:
                data = _dataclass_adapter(cls).dump_json(value, warnings=False)
            except ImportError:
                data = orjson.dumps(value)
            return "dataclass:" + type_name(cls), data
        adapter = self.allow.adapter(chunk)
        if adapter is not None:
            try:
                return adapter.tag, adapter.adapter.dump_json(value, warnings=False)
            except (ValueError, TypeError) as exc:  # PydanticSerializationError is a ValueError
                raise UnencodableValueError(
                    f"a {type_name(cls)} does not match the return annotation: {exc}"
                ) from exc
        if allow_pickle:
            return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if cls.__module__ == "builtins":
            fix = "annotate the function's return type (e.g. -> tuple[str, int])"
        else:
            fix = (
                "annotate the function's return type, or call "
                f"llm_memo.register_type({cls.__qualname__}) (pydantic models and dataclasses)"
            )
        raise UnencodableValueError(
            f"a {type_name(cls)} result is not JSON-native and its type is not allow-listed; "
            f"to cache it, {fix}"
        )

    def decode(self, tag: str, payload: bytes, *, allow_pickle: bool = False) -> Any:
        """Restore a value from ``(type_tag, payload)`` as a fresh object.

        Raises:
            CodecError: unknown or disallowed tag, or a payload that does not decode.
        """
        validate = self._validators.get(tag)
        if validate is not None:
            try:
                return validate(payload)
            except ValueError:
                pass  # the general path below retries leniently or reports the error
        try:
            if tag == "json":
                return orjson.loads(payload)
            kind, _, name = tag.partition(":")
            if kind == "model":
                cls = self._class(name)
                try:
                    value = cls.model_validate_json(payload)  # type: ignore[attr-defined]
                except ValueError:
                    return self._construct(cls, orjson.loads(payload))
                self._validators[tag] = cls.__pydantic_validator__.validate_json  # type: ignore[attr-defined]
                return value
            if kind == "dataclass":
                cls = self._class(name)
                try:
                    return _dataclass_adapter(cls).validate_json(payload)
                except ImportError:
                    return cls(**orjson.loads(payload))
            if kind == "adapter":
                adapter = self.allow.adapter(chunk=False)
                if adapter is None or adapter.tag != tag:
                    raise CodecError("entry was written for another return annotation")
                return adapter.adapter.validate_json(payload)
            if tag == "stream" or tag == "astream":
                return self.decode_chunks(payload, allow_pickle=allow_pickle)
            if tag == "pickle" and allow_pickle:
                return _unpickle(payload)
        except CodecError:
            raise
        except _DECODE_ERRORS as exc:
            raise CodecError(f"cannot decode a {tag!r} entry: {exc}") from exc
        raise CodecError(f"entry type {tag!r} is not allowed here")

    def _class(self, name: str) -> type:
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        cls = self.allow.resolve(name)
        if cls is not None:
            self._classes[name] = cls
        if cls is None:
            raise CodecError(
                f"entry type {name!r} is not allow-listed here (register_type() or annotate)"
            )
        return cls

    @staticmethod
    def _construct(cls: type, data: Any) -> Any:
        # openai / anthropic build responses without validation (``construct``); a stored
        # response that the strict validator rejects (a new enum value, say) is rebuilt the
        # same lenient way the SDK built it in the first place.
        if sdks.is_sdk_type(cls) and isinstance(data, dict):
            return cls.construct(**data)  # type: ignore[attr-defined]
        raise CodecError(f"stored {type_name(cls)} no longer validates")

    # -- streams ---------------------------------------------------------------------------

    def encode_chunk(self, chunk: Any, *, allow_pickle: bool = False) -> bytes:
        """Encode one stream chunk (tagged) as an item of a stream payload.

        Recorders call this as each chunk passes, so what is stored is the chunk as it was
        yielded (a consumer editing it in place later changes nothing) and a recording holds
        bytes, not the chunks themselves. :func:`join_chunks` assembles the payload.

        Raises:
            UnencodableValueError: the chunk cannot be encoded.
        """
        tag, payload = self.encode(chunk, allow_pickle=allow_pickle, chunk=True)
        if tag == "pickle":
            return orjson.dumps([tag, base64.b64encode(payload).decode()])
        return orjson.dumps([tag, orjson.Fragment(payload)])

    def encode_chunks(self, chunks: Iterable[Any], *, allow_pickle: bool = False) -> bytes:
        """Encode a recorded stream's chunks (each tagged) as one payload.

        Raises:
            UnencodableValueError: a chunk cannot be encoded.
        """
        return join_chunks([self.encode_chunk(c, allow_pickle=allow_pickle) for c in chunks])

    def decode_chunks(self, payload: bytes, *, allow_pickle: bool = False) -> list[Any]:
        """Restore a stream's chunks, in order, as fresh objects.

        Raises:
            CodecError: as :meth:`decode`.
        """
        try:
            return self._decode_chunks(payload, allow_pickle)
        except CodecError:
            raise
        except _DECODE_ERRORS as exc:
            raise CodecError(f"cannot decode a stream entry: {exc}") from exc

    def _decode_chunks(self, payload: bytes, allow_pickle: bool) -> list[Any]:
        items = orjson.loads(payload)
        if type(items) is not list:
            raise CodecError("stream entry is not a list")
        out = []
        adapter = None
        for item in items:
            tag, obj = item
            if tag == "json":
                out.append(obj)
                continue
            kind, _, name = tag.partition(":")
            if kind == "model":
                cls = self._class(name)
                try:
                    out.append(cls.model_validate(obj))  # type: ignore[attr-defined]
                except ValueError:
                    out.append(self._construct(cls, obj))
            elif kind == "dataclass":
                cls = self._class(name)
                try:
                    out.append(_dataclass_adapter(cls).validate_python(obj))
                except ImportError:
                    out.append(cls(**obj))
            elif kind == "adapter":
                adapter = adapter or self.allow.adapter(chunk=True)
                if adapter is None or adapter.tag != tag:
                    raise CodecError("stream was written for another chunk annotation")
                out.append(adapter.adapter.validate_python(obj))
            elif tag == "pickle" and allow_pickle:
                out.append(_unpickle(base64.b64decode(obj)))
            else:
                raise CodecError(f"stream chunk type {tag!r} is not allowed here")
        return out


def join_chunks(parts: Sequence[bytes]) -> bytes:
    """The stream payload made of items from :meth:`Codec.encode_chunk`, in order.

    .. versionadded:: 0.2.0
    """
    return b"[" + b",".join(parts) + b"]"


# -- sealing: compression and signatures --------------------------------------------------------


def _sign(signing_key: bytes, key: str, entry: Entry) -> bytes:
    return hmac.digest(signing_key, entry.signed_view(key), "sha256")


def seal(
    key: str,
    tag: str,
    payload: bytes,
    *,
    created_at: float,
    expires_at: float | None,
    stale_window: float,
    tokens: int,
    signing_keys: Sequence[bytes] = (),
    compress_threshold: int | None = None,
) -> Entry:
    """Build the :class:`Entry` for an encoded value under ``key``: it carries the key's
    digest (so it is never served under another key), is compressed if large and signed if keys
    are set.

    .. versionadded:: 0.1.0
    """
    flags = 0
    if compress_threshold is not None and len(payload) > compress_threshold:
        packed = zlib.compress(payload, 1)
        if len(packed) < len(payload) * 0.9:
            payload, flags = packed, FLAG_COMPRESSED
    entry = Entry(
        payload, tag, created_at, expires_at, stale_window, tokens, flags, b"", key_digest(key)
    )
    if signing_keys:
        entry = dataclasses.replace(entry, signature=_sign(signing_keys[0], key, entry))
    return entry


def check_key(key: str, entry: Entry) -> None:
    """Refuse an entry written for another key (or naming none).

    Raises:
        CodecError: the entry's key digest is not ``key``'s.

    .. versionadded:: 0.2.0
    """
    if not entry.belongs_to(key):
        raise CodecError("entry belongs to another key (copied or swapped), not to this one")


_INFLATE_STEP = 1024 * 1024


def inflate(data: bytes, limit: int = DEFAULT_MAX_ENTRY_SIZE) -> bytes:
    """Decompress a zlib value, refusing to produce more than ``limit`` bytes.

    A small compressed entry can inflate a thousandfold: the output is bounded, so a hostile or
    damaged entry costs at most ``limit`` bytes of memory and is then a miss.

    Raises:
        CodecError: the data is corrupt, incomplete, followed by junk, or inflates past
            ``limit``.

    .. versionadded:: 0.2.0
    """
    inflater = zlib.decompressobj()
    parts: list[bytes] = []
    size = 0
    pending: bytes = data
    try:
        # In steps, so a bomb is refused having produced at most ``limit`` + one step; an empty
        # input still drains output zlib holds back (a long match copy in progress).
        while not inflater.eof and size <= limit:
            part = inflater.decompress(pending, min(_INFLATE_STEP, limit + 1 - size))
            left = inflater.unconsumed_tail
            if not part and len(left) == len(pending):
                break  # no progress: the input ended before the stream did
            pending = left
            parts.append(part)
            size += len(part)
    except zlib.error as exc:
        raise CodecError("compressed entry is corrupt") from exc
    if size > limit:
        raise CodecError(f"compressed entry inflates past the entry size limit ({limit} bytes)")
    if not inflater.eof or inflater.unused_data:
        raise CodecError("compressed entry is truncated or has trailing data")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def unseal(
    key: str,
    entry: Entry,
    signing_keys: Sequence[bytes] = (),
    *,
    limit: int = DEFAULT_MAX_ENTRY_SIZE,
) -> bytes:
    """Verify ``entry`` (when signing keys are set) and return its payload, decompressed to at
    most ``limit`` bytes. Whether the entry is ``key``'s at all is :func:`check_key`'s question
    (the decorator asks it first; tools that only show an entry need not).

    Raises:
        CodecError: unsigned or tampered entry (with keys set), or corrupt or oversized
            compressed data.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 bounded decompression (``limit``).
    """
    if signing_keys:
        if not entry.signature:
            raise CodecError("entry is not signed")
        view = entry.signed_view(key)
        if not any(
            hmac.compare_digest(entry.signature, hmac.digest(k, view, "sha256"))
            for k in signing_keys
        ):
            raise CodecError("entry signature does not match (tampered, or signed by another key)")
    if entry.flags & FLAG_COMPRESSED:
        return inflate(entry.value, limit)
    return entry.value
