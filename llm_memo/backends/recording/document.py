"""The recording document: one cached call as pretty-printed, diff-friendly JSON.

A recording is a JSON object with sorted top-level keys: ``format`` (:data:`RECORDING_FORMAT`),
``function``, ``key``, ``namespace``, ``request`` (the canonical request the key was hashed
from, scrubbed of credentials, for humans and for ``llm-memo explain``), ``tokens``, ``type``
(the codec's type tag) and ``value`` (the stored value as JSON, in its original key order, so a
replay returns exactly what was recorded; ``value_base64`` instead for a payload that is not
JSON). The same call with the same answer always gives the same bytes: there is **no
timestamp** in the file (git history says when a recording changed; a wall-clock field would
turn every re-record into a diff).

Pure code: :func:`render` builds a document's bytes, :func:`parse` reads them back as a
:class:`RecordedCall`; :func:`read_recording` adds the file read. Where the files live is
:mod:`.layout`; the store is :mod:`.backend`.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ...codec import unseal
from ...entry import Entry
from ...errors import CodecError
from ...keys import parse_key
from .scrub import Redactor, scrub_request

__all__ = ["RECORDING_FORMAT", "RecordedCall", "parse", "read_recording", "render"]

#: Version of the recording document layout (the ``format`` field).
RECORDING_FORMAT = 1

_DUMP = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


@dataclass(frozen=True)
class RecordedCall:
    """One recording file, parsed.

    Attributes:
        key: the cache key.
        function: the function identity in the key.
        namespace: the namespace in the key.
        request: the canonical request view (``None`` when it could not be captured).
        type_tag: the codec's type tag of the value.
        value: the value as JSON (for a non-JSON payload, the payload's bytes).
        tokens: tokens the recorded answer cost.
        path: the file it was read from, if any.

    .. versionadded:: 0.1.0
    """

    key: str
    function: str
    namespace: str
    request: Any
    type_tag: str
    value: Any
    tokens: int = 0
    path: Path | None = None
    binary: bool = False

    def payload(self) -> bytes:
        """The value's bytes as the codec reads them."""
        if self.binary:
            return bytes(self.value)
        return orjson.dumps(self.value)


def render(key: str, entry: Entry, request: Any, redact: Redactor | None) -> bytes:
    """The document for ``entry`` stored under ``key``, as the bytes written to its file.

    ``request`` is scrubbed (:func:`~.scrub.scrub_request`) and then redacted; the value is
    redacted only when it is JSON.

    Raises:
        CodecError: the entry's compressed value cannot be inflated.
    """
    payload = unseal(key, entry)  # no keys: only inflates a compressed value
    parts = parse_key(key)
    namespace = parts.namespace if parts else ""
    function = parts.function if parts else ""
    value: Any = None
    binary = entry.type_tag == "pickle"
    if not binary:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:  # a payload that is not JSON (or beyond orjson's ints)
            binary = True
    if request is not None:
        # Sorted for people and diffs; the request is only read, never fed back to the codec.
        request = orjson.loads(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
        request = scrub_request(request)  # never a credential in a file written for git
        if redact is not None:
            request = redact(request)
    if not binary and redact is not None:
        value = redact(value)
    # Top-level fields in sorted order; the value keeps its own order, so a replay returns
    # exactly what was recorded.
    doc: dict[str, Any] = {
        "format": RECORDING_FORMAT,
        "function": function,
        "key": key,
        "namespace": namespace,
        "request": request,
        "tokens": entry.tokens,
        "type": entry.type_tag,
    }
    if binary:
        doc["value_base64"] = base64.b64encode(payload).decode()
    else:
        doc["value"] = value
    return orjson.dumps(doc, option=_DUMP)


def read_recording(path: str | os.PathLike[str]) -> RecordedCall:
    """Parse one recording file.

    Raises:
        CodecError: the file is not a recording (bad JSON, missing fields, unknown format).
        OSError: the file cannot be read.

    .. versionadded:: 0.1.0
    """
    p = Path(path)
    return parse(p.read_bytes(), p)


def parse(data: bytes, path: Path | None = None) -> RecordedCall:
    """A recording document's bytes as a :class:`RecordedCall` (``path``: where they came from).

    Raises:
        CodecError: not a recording (bad JSON, missing fields, unknown format).
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON ({exc}); a merge conflict?") from exc
    if not isinstance(doc, dict):
        raise CodecError("not a recording document")
    if doc.get("format") != RECORDING_FORMAT:
        raise CodecError(f"recording format {doc.get('format')!r} is not {RECORDING_FORMAT}")
    try:
        key, tag = doc["key"], doc["type"]
        if "value_base64" in doc:
            value: Any = base64.b64decode(doc["value_base64"], validate=True)
            binary = True
        else:
            value, binary = doc["value"], False
    except (KeyError, ValueError) as exc:
        raise CodecError(f"recording is missing or has a bad field: {exc}") from exc
    tokens = doc.get("tokens", 0)
    if not isinstance(key, str) or not isinstance(tag, str) or not isinstance(tokens, int):
        raise CodecError("recording has a bad key, type or tokens field")
    return RecordedCall(
        key=key,
        function=str(doc.get("function", "")),
        namespace=str(doc.get("namespace", "")),
        request=doc.get("request"),
        type_tag=tag,
        value=value,
        tokens=tokens,
        path=path,
        binary=binary,
    )
