"""Hypothesis strategies for what a backend may hold under a key: hostile entries and bytes.

The conformance suite's fuzz test (:mod:`llm_memo.testing.conformance`) draws from these, and
so does llm_memo's own decoder fuzzing; a backend author can use them in a backend's own
property tests. :func:`hostile_entries` gives :class:`~llm_memo.entry.Entry` objects (another
key's entries, garbage values and tags, corrupt or truncated compressed values, a compressed
bomb); :func:`entry_bytes_strategy` gives raw bytes (real entries mutated: truncated, bytes
replaced or inserted, absurd tag lengths, other formats, noise). Needs hypothesis
(``pip install 'llm-memo[testing]'``).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import zlib
from collections.abc import Sequence

from ..errors import MissingDependencyError

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - the testing extra is installed in our CI
    raise MissingDependencyError(
        "llm_memo.testing.strategies needs hypothesis; fix: pip install 'llm-memo[testing]'"
    ) from exc

from ..codec import seal
from ..entry import DEFAULT_MAX_ENTRY_SIZE, FLAG_COMPRESSED, Entry

__all__ = ["compressed_bomb", "entry_bytes_strategy", "hostile_entries"]


# Payloads that have broken decoders: absurd nesting, malformed chunk lists, bad numbers.
_NASTY_PAYLOADS = [
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'[["json"]]',
    b'[["json", 1, 2]]',
    b"[[1, 2]]",
    b'[["model:os:system", {}]]',
    b'[["pickle", "!!!"]]',
    b'{"not": "a list"}',
    b"1e999999",
    b"\xff\xfe",
    b"",
    b"null",
]
_TAGS = ["json", "stream", "astream", "pickle", "model:os:system", "dataclass:x:Y", "adapter:0", ""]
# Offsets in an entry's header (format 2): the tag length follows magic, format, created,
# expires, window, tokens, flags and the 8-byte key digest.
_TAG_LEN_AT = 3 + 1 + 8 + 8 + 4 + 4 + 1 + 8


@functools.lru_cache(maxsize=1)
def compressed_bomb() -> bytes:
    """zlib data (~70 KB) of a JSON string just over the default entry size limit."""
    packer = zlib.compressobj(9)
    block = b"a" * (1024 * 1024)
    parts = [packer.compress(b'"')]
    parts += [packer.compress(block) for _ in range(DEFAULT_MAX_ENTRY_SIZE // len(block) + 1)]
    parts += [packer.compress(b'"'), packer.flush()]
    return b"".join(parts)


def _sealed(key: str, tag: str, payload: bytes, compress: int) -> Entry:
    entry = seal(key, tag, payload, created_at=0.0, expires_at=None, stale_window=0, tokens=0)
    if compress:
        packed = zlib.compress(payload)
        if compress == 2:
            packed = packed[: len(packed) // 2]  # a truncated stream
        entry = dataclasses.replace(entry, value=packed, flags=FLAG_COMPRESSED)
    return entry


def hostile_entries(
    key: str,
    others: Sequence[str],
    good: Sequence[tuple[str, bytes]] = (("json", b'{"answer": "planted"}'),),
) -> st.SearchStrategy[Entry]:
    """Entries a reader of ``key`` may find: another key's valid entries, entries naming no key
    or a random one, valid headers with garbage values or tags, corrupt or truncated compressed
    values, a compressed bomb, and ``key``'s own well-formed entries (``good``: tag and payload
    pairs valid for the reading function)."""
    keys = st.sampled_from([key, *others])
    tags = st.sampled_from(_TAGS + [t for t, _ in good]) | st.text(max_size=20)
    payloads = (
        st.binary(max_size=200)
        | st.sampled_from(_NASTY_PAYLOADS)
        | st.sampled_from([p for _, p in good])
    )
    digests = st.just(b"") | st.binary(min_size=8, max_size=8)
    common = st.one_of(
        st.builds(_sealed, keys, tags, payloads, st.integers(0, 2)),
        st.builds(lambda k, g: _sealed(k, g[0], g[1], 0), keys, st.sampled_from(list(good))),
        st.builds(
            Entry,
            value=payloads,
            type_tag=tags,
            created_at=st.just(0.0),
            flags=st.sampled_from([0, FLAG_COMPRESSED]),
            signature=st.binary(max_size=40),
            key_digest=digests,
        ),
    )
    # A bomb costs the reader up to the entry size limit (64 MiB) to refuse: drawn rarely.
    bomb = st.builds(
        lambda k: dataclasses.replace(
            _sealed(k, "json", b'"x"', 0), value=compressed_bomb(), flags=FLAG_COMPRESSED
        ),
        keys,
    )
    return st.integers(0, 15).flatmap(lambda n: bomb if n == 0 else common)


def _mutate(base: bytes, how: int, at: int, value: int, junk: bytes) -> bytes:
    i = at % (len(base) + 1)
    if how == 0:
        return base[:i]  # truncated
    if how == 1:
        if i == len(base):
            return base + junk
        return base[:i] + bytes((value,)) + base[i + 1 :]  # one byte replaced
    if how == 2:
        return base[:i] + junk + base[i:]  # bytes inserted
    if how == 3:
        return base[:_TAG_LEN_AT] + struct.pack("<H", value * 257) + base[_TAG_LEN_AT + 2 :]
    if how == 4:
        return base[:3] + bytes((value,)) + base[4:]  # another format
    return junk


def entry_bytes_strategy(key: str) -> st.SearchStrategy[bytes]:
    """Raw bytes a backend may hold under ``key``: real entries of ``key`` and other keys,
    truncated, with bytes replaced or inserted, absurd tag lengths, other formats, noise."""
    bases = [
        _sealed(key, "json", b'{"answer": "planted"}', 0).to_bytes(),
        _sealed(key + "x", "json", b'{"answer": "other key"}', 0).to_bytes(),
        _sealed(key, "stream", b'[["json", 1]]', 1).to_bytes(),
        dataclasses.replace(_sealed(key, "json", b"1", 0), signature=b"s" * 32).to_bytes(),
    ]
    return st.builds(
        _mutate,
        st.sampled_from(bases),
        st.integers(0, 5),
        st.integers(0, 10_000),
        st.integers(0, 255),
        st.binary(max_size=64),
    ) | st.sampled_from(bases)
