"""The stored record: a value's encoded bytes plus the metadata every backend keeps with it.

An :class:`Entry` is what crosses the backend protocol. The codec (``codec.py``) produces the
``value`` bytes and the ``type_tag``; the policy (``_policy.py``) reads the timestamps; backends
store the record in whatever way suits them. Backends that hold bytes (disk, object stores,
Redis) use :meth:`Entry.to_bytes` / :meth:`Entry.from_bytes`, a small fixed binary header in
front of the value, so one GET returns everything a hit needs.

Not here: encoding values (``codec.py``) and signing (``codec.py`` signs :meth:`Entry.signed_view`).

Header layout (little endian), format 1::

    magic  b"LMM"  3 bytes
    format u8      1
    created_at f64 | expires_at f64 (NaN = never) | stale_window f32 | tokens u32 | flags u8
    tag_len u16, tag (utf-8)
    sig_len u8, signature
    value (the rest)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .errors import CodecError

__all__ = ["DEFAULT_MAX_ENTRY_SIZE", "FLAG_COMPRESSED", "FORMAT_VERSION", "Entry"]

#: Version of the entry layout and of the value encoding; bumped when either changes. It is also
#: part of every key string, so a reader never interprets another version's bytes.
FORMAT_VERSION = 1

#: The largest value, in bytes *after decompression*, stored in or served from a backend that
#: names no limit of its own (a backend may set a ``max_entry_size`` attribute). A larger result
#: is returned but not stored; a stored value that would inflate past it is a miss, so a small
#: compressed entry can never balloon in memory (64 MiB).
DEFAULT_MAX_ENTRY_SIZE = 64 * 1024 * 1024

#: ``flags`` bit: ``value`` is zlib-compressed.
FLAG_COMPRESSED = 1

_MAGIC = b"LMM"
_HEAD = struct.Struct("<3sBddfIBH")
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached value and its metadata.

    Args:
        value: the codec's bytes for the value (compressed when ``flags & FLAG_COMPRESSED``).
        type_tag: the codec's name for the value's type (``"json"``, ``"model:pkg.mod.Cls"``...).
        created_at: when the value was produced (seconds since the epoch, from the cache clock).
        expires_at: when it stops being fresh; ``None`` means never.
        stale_window: seconds past ``expires_at`` during which ``stale_if_error`` may still serve
            it; backends keep the entry that long.
        tokens: tokens the producing call used (from the response's ``usage``), for stats.
        flags: codec flags such as :data:`FLAG_COMPRESSED`.
        signature: HMAC over :meth:`signed_view`, empty when signing is off.

    .. versionadded:: 0.1.0
    """

    value: bytes
    type_tag: str
    created_at: float
    expires_at: float | None = None
    stale_window: float = 0.0
    tokens: int = 0
    flags: int = 0
    signature: bytes = b""

    @property
    def retain_until(self) -> float | None:
        """The last moment the entry is of any use (fresh or stale); ``None`` = forever."""
        if self.expires_at is None:
            return None
        return self.expires_at + self.stale_window

    @property
    def size(self) -> int:
        """Approximate bytes the entry occupies (value, tag, signature, header)."""
        return len(self.value) + len(self.type_tag) + len(self.signature) + _HEAD.size

    def signed_view(self, key: str) -> bytes:
        """The bytes an HMAC signature covers: the key, every metadata field and the value.

        Binding the key in stops a valid entry from being copied under another key.
        """
        head = _HEAD.pack(
            _MAGIC,
            FORMAT_VERSION,
            self.created_at,
            _NAN if self.expires_at is None else self.expires_at,
            self.stale_window,
            self.tokens,
            self.flags,
            len(self.type_tag),
        )
        return b"".join((key.encode(), b"\0", head, self.type_tag.encode(), self.value))

    def to_bytes(self) -> bytes:
        """Serialise to the binary layout in the module docstring."""
        tag = self.type_tag.encode()
        head = _HEAD.pack(
            _MAGIC,
            FORMAT_VERSION,
            self.created_at,
            _NAN if self.expires_at is None else self.expires_at,
            self.stale_window,
            self.tokens,
            self.flags,
            len(tag),
        )
        return b"".join((head, tag, bytes((len(self.signature),)), self.signature, self.value))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Entry:
        """Parse :meth:`to_bytes` output.

        Raises:
            CodecError: the bytes are truncated, of another format, or not an entry at all.
        """
        if type(data) is not bytes:
            data = bytes(data)
        try:
            magic, version, created, expires, window, tokens, flags, tag_len = _HEAD.unpack_from(
                data
            )
        except struct.error as exc:
            raise CodecError("entry is truncated") from exc
        if magic != _MAGIC:
            raise CodecError("not an llm_memo entry")
        if version != FORMAT_VERSION:
            raise CodecError(f"entry format {version} is not {FORMAT_VERSION}")
        pos = _HEAD.size
        end = pos + tag_len
        if end + 1 > len(data):
            raise CodecError("entry is truncated")
        try:
            tag = data[pos:end].decode()
        except UnicodeDecodeError as exc:
            raise CodecError("entry type tag is not text") from exc
        sig_len = data[end]
        sig_start = end + 1
        value_start = sig_start + sig_len
        if value_start > len(data):
            raise CodecError("entry is truncated")
        if math.isnan(created) or (window < 0) or math.isnan(window):
            raise CodecError("entry metadata is invalid")
        return cls(
            value=data[value_start:],
            type_tag=tag,
            created_at=created,
            expires_at=None if math.isnan(expires) else expires,
            stale_window=window,
            tokens=tokens,
            flags=flags,
            signature=data[sig_start:value_start],
        )
