"""The stored record: a value's encoded bytes plus the metadata every backend keeps with it.

An :class:`Entry` is what crosses the backend protocol. The codec (``llm_memo.codec``) produces the
``value`` bytes and the ``type_tag``; the policy (``_policy.py``) reads the timestamps; backends
store the record in whatever way suits them. Backends that hold bytes (disk, object stores,
Redis) use :meth:`Entry.to_bytes` / :meth:`Entry.from_bytes`, a small fixed binary header in
front of the value, so one GET returns everything a hit needs.

Not here: encoding values (``codec/values.py``) and signing (``codec/sealing.py`` signs
:meth:`Entry.signed_view`).

Header layout (little endian), format 2::

    magic  b"LMM"  3 bytes
    format u8      2
    created_at f64 | expires_at f64 (NaN = never) | stale_window f32 | tokens u32 | flags u8
    key_digest     8 bytes: xxh3-64 of the key string (all zero = none)
    tag_len u16, tag (utf-8)
    sig_len u8, signature
    [usage block, when flags has FLAG_USAGE (bit 2):
     input u32 | output u32 | cached_input u32 | model_len u8, model (utf-8)]
    value (the rest)

**An entry knows what it saved.** Since 0.3.0 an entry whose response reported its usage by
kind carries the input, output and cached-input tokens and the model the response names, so a
hit is priced by kind and by model. The block is announced by a flag bit, not by a new format
number (which would change every key): entries written before it decode as before (no split,
no model), and a reader from before it refuses an entry with the bit (an unknown flag) as a
miss, which the fresh result overwrites.

**An entry names its key.** ``key_digest`` (:func:`key_digest`, written by ``codec.seal``) lets
a reader tell an entry copied or swapped under another key from its own, with or without
signing: the decorator treats a mismatch as a miss and the fresh result overwrites it. It is a
check against accidents (a copied file, a swapped object, two functions sharing ``name=``), not
a secret: against someone who can write the store, signing is the protection. Format 1 had no
digest; its entries are refused (and its keys differ, since the format is part of every key).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import xxhash

from .errors import CodecError

__all__ = [
    "DEFAULT_MAX_ENTRY_SIZE",
    "FLAG_COMPRESSED",
    "FLAG_USAGE",
    "FORMAT_VERSION",
    "Entry",
    "key_digest",
]

#: Version of the entry layout and of the value encoding; bumped when either changes. It is also
#: part of every key string, so a reader never interprets another version's bytes.
FORMAT_VERSION = 2

#: The largest value, in bytes *after decompression*, stored in or served from a backend that
#: names no limit of its own (a backend may set a ``max_entry_size`` attribute). A larger result
#: is returned but not stored; a stored value that would inflate past it is a miss, so a small
#: compressed entry can never balloon in memory (64 MiB).
DEFAULT_MAX_ENTRY_SIZE = 64 * 1024 * 1024

#: ``flags`` bit: ``value`` is zlib-compressed.
FLAG_COMPRESSED = 1

#: ``flags`` bit in the bytes: a usage block follows the signature. A layout bit: it is never
#: in :attr:`Entry.flags`, which holds the codec's flags; :meth:`Entry.to_bytes` sets it when
#: the entry has a split or a model.
FLAG_USAGE = 2

#: Every flag this version understands; an entry with any other bit set is refused.
_KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_USAGE

_MAGIC = b"LMM"
_DIGEST_SIZE = 8
_NO_DIGEST = bytes(_DIGEST_SIZE)
_HEAD = struct.Struct(f"<3sBddfIB{_DIGEST_SIZE}sH")
_USAGE = struct.Struct("<IIIB")
_U32 = 0xFFFFFFFF
_NAN = float("nan")
_xxh3_64 = xxhash.xxh3_64_digest


def key_digest(key: str) -> bytes:
    """The 8-byte digest of ``key`` that an entry carries (xxh3-64 of its UTF-8 bytes).

    .. versionadded:: 0.1.0
    """
    try:
        return _xxh3_64(key.encode())  # the hit path: keys are ASCII (their parts are escaped)
    except UnicodeEncodeError:  # a lone surrogate in a key someone built by hand
        return _xxh3_64(key.encode("utf-8", "surrogatepass"))


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
        key_digest: :func:`key_digest` of the key the entry was written for (empty: unknown,
            which no reader accepts); ``codec.seal`` sets it.
        input_tokens, output_tokens, cached_input_tokens: ``tokens`` by kind, when the
            response reported them apart (all 0: only the total is known).
        model: the model the response names (at most 255 bytes of UTF-8), "" when unknown.

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
    key_digest: bytes = b""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    model: str = ""

    def belongs_to(self, key: str) -> bool:
        """Whether the entry was written for ``key`` (its digest matches)."""
        return bool(self.key_digest) and self.key_digest == key_digest(key)

    @property
    def retain_until(self) -> float | None:
        """The last moment the entry is of any use (fresh or stale); ``None`` = forever."""
        if self.expires_at is None:
            return None
        return self.expires_at + self.stale_window

    @property
    def size(self) -> int:
        """Approximate bytes the entry occupies (value, tag, signature, header)."""
        return (
            len(self.value)
            + len(self.type_tag)
            + len(self.signature)
            + _HEAD.size
            + len(self._usage())
        )

    def _usage(self) -> bytes:
        """The usage block (empty when there is no split and no model)."""
        if not (self.input_tokens or self.output_tokens or self.cached_input_tokens or self.model):
            return b""
        model = self.model.encode("utf-8", "surrogatepass")
        if len(model) > 0xFF:
            raise ValueError("entry model name longer than 255 bytes")
        counts = (self.input_tokens, self.output_tokens, self.cached_input_tokens)
        if any(not 0 <= n <= _U32 for n in counts):
            raise ValueError("entry token counts must fit in 32 bits")
        return _USAGE.pack(*counts, len(model)) + model

    def _head(self, tag_len: int, usage: bytes = b"") -> bytes:
        digest = self.key_digest
        if digest and len(digest) != _DIGEST_SIZE:
            raise ValueError(f"key_digest must be {_DIGEST_SIZE} bytes, not {len(digest)}")
        return _HEAD.pack(
            _MAGIC,
            FORMAT_VERSION,
            self.created_at,
            _NAN if self.expires_at is None else self.expires_at,
            self.stale_window,
            self.tokens,
            self.flags | FLAG_USAGE if usage else self.flags,
            digest,
            tag_len,
        )

    def signed_view(self, key: str) -> bytes:
        """The bytes an HMAC signature covers: the key, every metadata field and the value.

        Binding the key in stops a valid entry from being copied under another key.
        """
        tag = self.type_tag.encode()
        usage = self._usage()
        return b"".join(
            (
                key.encode("utf-8", "surrogatepass"),
                b"\0",
                self._head(len(tag), usage),
                tag,
                usage,
                self.value,
            )
        )

    def to_bytes(self) -> bytes:
        """Serialise to the binary layout in the module docstring.

        Raises:
            ValueError: ``key_digest`` is neither empty nor 8 bytes, the tag is longer than
                65535 bytes or the signature longer than 255.
        """
        tag = self.type_tag.encode()
        sig = self.signature
        if len(tag) > 0xFFFF or len(sig) > 0xFF:
            raise ValueError("entry type tag or signature too long for the layout")
        usage = self._usage()
        return b"".join(
            (self._head(len(tag), usage), tag, bytes((len(sig),)), sig, usage, self.value)
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Entry:
        """Parse :meth:`to_bytes` output.

        Raises:
            CodecError: the bytes are truncated, of another format, or not an entry at all.
        """
        if type(data) is not bytes:
            data = bytes(data)
        # Magic and format first, so an entry of another format says so even when its
        # header is shorter than this one's.
        if data[:3] != _MAGIC:
            raise CodecError("entry is truncated" if len(data) < 3 else "not an llm_memo entry")
        if len(data) > 3 and data[3] != FORMAT_VERSION:
            raise CodecError(f"entry format {data[3]} is not {FORMAT_VERSION}")
        try:
            _, _, created, expires, window, tokens, flags, digest, tag_len = _HEAD.unpack_from(data)
        except struct.error as exc:
            raise CodecError("entry is truncated") from exc
        if flags & ~_KNOWN_FLAGS:
            raise CodecError(f"entry flags {flags:#x} are not known to this version")
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
        sig_end = value_start
        split: tuple[int, int, int] = (0, 0, 0)
        model = ""
        if flags & FLAG_USAGE:
            flags &= ~FLAG_USAGE
            try:
                *counts, model_len = _USAGE.unpack_from(data, value_start)
            except struct.error as exc:
                raise CodecError("entry is truncated") from exc
            model_start = value_start + _USAGE.size
            value_start = model_start + model_len
            if value_start > len(data):
                raise CodecError("entry is truncated")
            try:
                model = data[model_start:value_start].decode()
            except UnicodeDecodeError as exc:
                raise CodecError("entry model name is not text") from exc
            split = (counts[0], counts[1], counts[2])
        if not (
            math.isfinite(created)
            and (math.isnan(expires) or math.isfinite(expires))
            and math.isfinite(window)
            and window >= 0
        ):
            raise CodecError("entry metadata is invalid")
        return cls(
            value=data[value_start:],
            type_tag=tag,
            created_at=created,
            expires_at=None if math.isnan(expires) else expires,
            stale_window=window,
            tokens=tokens,
            flags=flags,
            signature=data[sig_start:sig_end],
            key_digest=b"" if digest == _NO_DIGEST else digest,
            input_tokens=split[0],
            output_tokens=split[1],
            cached_input_tokens=split[2],
            model=model,
        )


@dataclass(frozen=True, slots=True)
class PackedEntry(Entry):
    """A compressed entry holding its uncompressed twin, for a store with two tiers that want
    different forms: a tiered backend whose L1 keeps values uncompressed (the memory backend,
    where inflating on every hit costs more than the memory saved) in front of an L2 that
    compresses them (Redis, disk, object stores). L2 stores the entry itself (its bytes are
    the compressed entry's; the twin is never serialised), L1 stores :attr:`unpacked`.

    Both are sealed, and signed, for the same key with the same metadata; only ``value`` and
    ``flags`` differ. Internal (not in ``__all__``): the decorator writes one to a tiered
    backend, which splits it; nothing reads one back.
    """

    unpacked: Entry | None = field(default=None, compare=False, repr=False)
