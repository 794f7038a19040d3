"""Sealing entries: an entry names its key, large payloads are compressed, signatures checked.

:func:`seal` builds the :class:`~llm_memo.entry.Entry` for an encoded value: it carries its
key's digest (:func:`check_key` refuses it under any other key), a large payload is compressed
and inflated only up to the entry size limit (:func:`inflate`: a small bomb never balloons), and
with signing keys configured an HMAC-SHA256 over the key, the metadata and the value is checked
(:func:`unseal`) before anything is decoded. Every failure is a
:class:`~llm_memo.errors.CodecError`, which the decorator turns into a miss.

Not here: the entry's byte layout (``entry.py``), encoding values (``values.py``).
"""

from __future__ import annotations

import dataclasses
import hmac
import zlib
from collections.abc import Sequence

from ..entry import DEFAULT_MAX_ENTRY_SIZE, FLAG_COMPRESSED, Entry, key_digest
from ..errors import CodecError

__all__ = ["check_key", "inflate", "seal", "unseal"]


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

    .. versionadded:: 0.1.0
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

    .. versionadded:: 0.1.0
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
