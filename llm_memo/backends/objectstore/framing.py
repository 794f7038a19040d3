"""The object's bytes (LMO2 frames): a keep-until deadline and the full key in front of the entry.

Object stores have no per-object expiry, so the object is framed: a header (magic, a keep-until
deadline as f64 seconds since the epoch, the full key as u32 length + UTF-8) in front of
:meth:`Entry.to_bytes`. A read past the deadline, of another key's object, or of anything that
is not a whole frame, is a miss; listings read the key from the header where the path no longer
says it (:mod:`.layout`); ``purge_expired`` judges the deadline from the first 12 bytes. LMO1
frames (no key) of older versions are still judged by ``purge_expired``, never read as entries.

Pure code, no I/O.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final, Literal

from ...entry import Entry
from ...errors import CodecError
from .. import MISSING, Missing

_FRAME = struct.Struct("<4sd")  # magic, keep-until (f64 seconds since the epoch)
_KEY_LENGTH = struct.Struct("<I")
_MAGIC: Final = b"LMO2"  # then the key: u32 length + UTF-8, then the entry
_OLD_MAGIC: Final = b"LMO1"  # no key; still judged by purge_expired(), never read as an entry
_HEAD: Final = _FRAME.size + _KEY_LENGTH.size
#: Bytes read from each object whose key is not in its path, to list it: enough for any key
#: the decorator makes; a longer key costs a second read of that object.
_HEAD_READ: Final = 4096


def _frame(key: str, entry: Entry, ttl: float | None, now: float) -> bytes | None:
    """The object's bytes, or ``None`` when ``ttl`` leaves nothing to keep."""
    if ttl is not None and ttl <= 0:
        return None
    keep_until = math.inf if ttl is None else now + ttl
    raw = key.encode("utf-8", "surrogatepass")
    return _FRAME.pack(_MAGIC, keep_until) + _KEY_LENGTH.pack(len(raw)) + raw + entry.to_bytes()


def _keep_until(head: bytes | None) -> float | None:
    """The deadline in a frame header, ``None`` if the bytes are not one."""
    if head is None or len(head) < _FRAME.size:
        return None
    magic, keep_until = _FRAME.unpack_from(head)
    return float(keep_until) if magic in (_MAGIC, _OLD_MAGIC) else None


def _header_key(head: bytes | None) -> str | int | None:
    """The key in a frame header; the header's length when ``head`` is only its start;
    ``None`` for bytes that are not a keyed frame."""
    if head is None or len(head) < _HEAD or head[:4] != _MAGIC:
        return None
    end = _HEAD + int(_KEY_LENGTH.unpack_from(head, _FRAME.size)[0])
    if len(head) < end:
        return end
    try:
        return head[_HEAD:end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def _unframe(data: bytes, now: float, key: str) -> Entry | Literal[Missing.MISSING]:
    """Parse an object: ``key``'s entry within its deadline, else MISSING (expired, foreign,
    torn, or another key's object copied here)."""
    keep_until = _keep_until(data)
    if keep_until is None or not keep_until > now:  # NaN is never "> now"
        return MISSING
    if _header_key(data) != key:
        return MISSING
    (length,) = _KEY_LENGTH.unpack_from(data, _FRAME.size)
    try:
        return Entry.from_bytes(data[_HEAD + length :])
    except CodecError:
        return MISSING


def _expired(paths: Sequence[str], heads: Sequence[bytes | None], now: float) -> list[str]:
    """The paths whose frame header says they are past their deadline (unknown bytes are kept:
    they may belong to another version of llm_memo)."""
    out = []
    for path, head in zip(paths, heads, strict=True):
        keep_until = _keep_until(head)
        if keep_until is not None and keep_until <= now:
            out.append(path)
    return out
