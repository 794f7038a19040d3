"""Values as data: encode results to ``(type_tag, payload)`` and restore them as the same types.

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

Values of types the allow-list (``allow_list.py``) does not allow are returned to the caller but
not stored (:class:`UnencodableValueError`). Decoding a hostile or damaged payload raises a
:class:`~llm_memo.errors.CodecError`, which the decorator turns into a miss.

Not here: which classes are allowed (``allow_list.py``), sealing entries (``sealing.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
import pickle
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from .. import sdks
from ..errors import CodecError
from .allow_list import AllowList, _is_model_class, type_name

__all__ = ["Codec", "UnencodableValueError", "join_chunks"]


class UnencodableValueError(CodecError):
    """A result is neither JSON-native nor of an allow-listed type; it is not stored."""


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
        hint = sdks.unstorable_hint(cls)
        if hint is not None:  # an SDK stream helper's live context manager: never a value
            raise UnencodableValueError(f"a {type_name(cls)} is a live stream, not a value; {hint}")
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

    .. versionadded:: 0.1.0
    """
    return b"[" + b",".join(parts) + b"]"
